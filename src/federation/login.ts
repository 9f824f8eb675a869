// Federation in the login flow (src/interactions/flow.ts): the third way in.
//
//   strategy `federation`   the login POST with method=federation&connection=ID
//                           (a button on the login page), or a hint, sends the
//                           browser to the upstream IdP: code + PKCE, with
//                           `state` and `nonce` kept server-side for this
//                           interaction and `state` also in a cookie of this
//                           browser (path /federation), so a callback URL
//                           handed to someone else signs nobody in.
//   extension               a button per visible connection; home-realm
//                           discovery (an e-mail typed into the login field
//                           whose domain a connection serves goes there);
//                           `idp_hint` and a `login_hint` whose domain a
//                           connection serves skip the page.
//   GET /federation/:id/callback
//                           the upstream answers on the callback of the very
//                           connection the flow started with (another
//                           connection's callback is refused: mix-up); the
//                           answer is validated (upstream.ts) and the identity
//                           resolved to one of our accounts (below); then the
//                           browser goes back under its interaction.
//   GET /interaction/:uid/federation/continue
//                           the interaction cookie proves it is the same
//                           browser and interaction; the account's lockout
//                           state applies; the flow's steps run (link, MFA).
//
// Resolving an identity, keyed by (connection, issuer, subject) — never by e-mail:
//   linked            → that account (amr `fed`, plus `mfa` when the connection
//                       trusts the upstream's MFA and its amr shows one)
//   linkOnly          → refused
//   an account owns the upstream's e-mail address:
//     the upstream does not vouch for it (unverified) → never linked: a new
//                       account with the address unverified when signup is
//                       allowed, refused otherwise
//     linking=off     → refused
//     verified-email  → linked at once when trustEmailVerified is on, the
//                       upstream says the address is verified and our account
//                       verified it too; otherwise as `prove`
//     prove           → the link step (link-step.ts): the user proves the
//                       account (its password under the lockout guard, or a
//                       code sent to its verified address), bound to this
//                       interaction and this upstream identity
//   none, allowSignup → a new account, provenance federated:<connection>
//   none              → refused
import crypto from 'node:crypto';
import Router from '@koa/router';
import type { Context } from 'koa';
import { GetCommand, PutCommand, DeleteCommand } from '@aws-sdk/lib-dynamodb';
import type { Logger } from '../logging/index.ts';
import type { Storage } from '../storage/index.ts';
import { sendOrUnavailable } from '../storage/errors.ts';
import type { Account, FederatedKey, FederationAccounts } from '../accounts/types.ts';
import { isValidEmail } from '../accounts/types.ts';
import { currentInteraction, type Details } from '../interactions/current.ts';
import { InteractionError } from '../interactions/errors.ts';
import { ensureDeviceId } from '../interactions/device.ts';
import { TRY_LATER } from '../interactions/guard.ts';
import type { LoginFlow, LoginPageExtension } from '../interactions/flow.ts';
import type { Authenticated, LoginStrategy } from '../interactions/strategies/types.ts';
import type { Connection, UpstreamIdentity } from './types.ts';
import { UpstreamError } from './types.ts';
import type { ConnectionStore } from './connections.ts';
import { redirectUriFor } from './connections.ts';

export const FEDERATION_STRATEGY = 'federation';
export const LINK_STEP = 'link';
const STATE_COOKIE = 'idp.fed';
/** how long a browser may stay at the upstream */
const FLOW_SECONDS = 15 * 60;

export type { EventRecorder as EventsLike } from '../events/types.ts';
import type { EventRecorder as EventsLike } from '../events/types.ts';

/** what the login flow needs of the upstream client (upstream.ts) */
export interface UpstreamPort {
  authorizationUrl(c: Connection, p: { redirectUri: string; state: string; nonce: string; codeVerifier: string; loginHint?: string }): Promise<URL>;
  callback(c: Connection, currentUrl: URL, checks: { state: string; nonce: string; codeVerifier: string; redirectUri: string }): Promise<{ claims: Record<string, unknown>; idToken?: string }>;
  identityOf(c: Connection, claims: Record<string, unknown>): UpstreamIdentity;
}

export interface FederationLoginDeps {
  flow: LoginFlow;
  accounts: FederationAccounts & { findByLogin(login: string): Promise<Account | undefined> };
  connections: ConnectionStore;
  upstream: UpstreamPort;
  /** after a validated answer: e.g. keep what upstream logout needs (logout.ts) */
  onUpstreamAnswer?(ctx: Context, c: Connection, idToken: string | undefined): void;
  /**
   * an upstream identity resolved to one of our accounts (linked, or made):
   * e.g. the roles its claims give under the connection's roleMapping
   * (src/consent, wired in server.ts). Awaited before the sign-in goes on.
   */
  onSignedIn?(sub: string, c: Connection, claims: Record<string, unknown>): Promise<void>;
  storage: Pick<Storage, 'doc' | 'tables'>;
  events: EventsLike;
  log: Logger;
  issuer: string;
  secureCookies: boolean;
}

/** the started flow, server-side: pk fedflow#<sha256(state)> in the accounts table */
interface FlowItem {
  pk: string;
  sk: '_';
  uid: string;
  connection: string;
  connectionVersion: number;
  nonce: string;
  verifier: string;
  redirectUri: string;
  clientId: string;
  /** set by the callback: who the upstream proved, for the continue route */
  who?: Authenticated;
  expiresAt: number;
}

/** the data the link step needs (Authenticated.pending.data) */
export interface PendingLink extends FederatedKey {
  /** how the link will be made once proven */
  via: 'prove';
  connectionName: string;
  /** the upstream claim that gives roles (roleMapping), applied once the link is proven */
  roleClaims?: Record<string, unknown>;
}

/** refusals and failures of a federated sign-in: the error page, with the way back to sign-in */
export class FederationFailed extends InteractionError {
  override name = 'FederationFailed';
  readonly reason: string;
  constructor(status: number, reason: string, message: string, uid?: string) {
    super(status, 'access_denied', message, uid ? [{ href: `/interaction/${uid}`, text: 'Back to sign-in' }] : []);
    this.reason = reason;
  }
}

const REFUSALS = {
  not_linked: 'This sign-in is not linked to an account here. Sign in another way, or ask your administrator.',
  linking_off: 'An account with this e-mail address already exists here, and it cannot be linked to this sign-in. Sign in with your password instead.',
  email_in_use: 'An account with this e-mail address already exists here. Sign in with your password instead.',
  no_account: 'There is no account here for this sign-in. Ask your administrator for access.',
  inactive: 'This account cannot sign in. Contact support.',
  expired: 'This sign-in attempt has expired or was already used. Please start again.',
  unknown_connection: 'This way of signing in is not available.',
} as const;

const sha256 = (s: string) => crypto.createHash('sha256').update(s).digest('base64url');
const random = () => crypto.randomBytes(32).toString('base64url');
const flowPk = (state: string) => `fedflow#${sha256(state)}`;

function httpStatusOf(err: UpstreamError): number {
  switch (err.reason) {
    case 'unreachable': case 'discovery': case 'jwks': return 502;
    case 'denied': case 'tenant': case 'hosted_domain': case 'login_required': return 403;
    default: return 400;
  }
}

export function federationLogin(deps: FederationLoginDeps) {
  const { flow, connections, upstream, log } = deps;
  const table = deps.storage.tables.accounts;
  const send = <T>(cmd: object) => sendOrUnavailable<T>(deps.storage.doc, cmd);
  const cookieOpts = { signed: true, httpOnly: true, secure: deps.secureCookies, sameSite: 'lax' as const, path: '/federation', overwrite: true };

  function fail(ctx: Context, reason: string, message: string, status: number, uid?: string, fields: Record<string, unknown> = {}): never {
    log.warn({ requestId: ctx.state.requestId, event: 'federation.failed', reason, ...fields }, 'federated sign-in failed');
    deps.events.emit('login.failed', { reason: `federation_${reason}`, requestId: ctx.state.requestId, data: { kind: 'federated', method: 'federation', ...fields } });
    throw new FederationFailed(status, reason, message, uid);
  }

  /** sends the browser to the upstream, for this interaction */
  async function start(ctx: Context, details: Details, c: Connection, loginHint?: string): Promise<void> {
    const state = random();
    const nonce = random();
    const verifier = random();
    const redirectUri = redirectUriFor(deps.issuer, c.id);
    const now = Math.floor(Date.now() / 1000);
    let url: URL;
    try {
      url = await upstream.authorizationUrl(c, { redirectUri, state, nonce, codeVerifier: verifier, ...(loginHint ? { loginHint } : {}) });
    } catch (err) {
      if (!(err instanceof UpstreamError)) throw err;
      fail(ctx, err.reason, err.userMessage, httpStatusOf(err), details.uid, { connection: c.id, detail: err.detail });
    }
    const item: FlowItem = {
      pk: flowPk(state), sk: '_', uid: details.uid, connection: c.id, connectionVersion: c.version, nonce, verifier, redirectUri,
      clientId: String(details.params.client_id), expiresAt: Math.min(now + FLOW_SECONDS, details.exp > now ? details.exp : now + FLOW_SECONDS),
    };
    await send(new PutCommand({ TableName: table, Item: item }));
    ctx.cookies.set(STATE_COOKIE, state, { ...cookieOpts, maxAge: FLOW_SECONDS * 1000 });
    ctx.status = 303;
    ctx.redirect(url.href);
  }

  /** a connection a user may start from here: visible, or named by a hint */
  async function usable(id: unknown): Promise<Connection | undefined> {
    if (typeof id !== 'string' || id.length > 40) return undefined;
    return connections.get(id);
  }

  const hintOf = (details: Details) => (typeof details.params.login_hint === 'string' ? details.params.login_hint.trim() : '');

  const strategy: LoginStrategy = {
    id: FEDERATION_STRATEGY,
    async start(ctx, details, form) {
      const c = await usable(form.connection);
      if (!c) fail(ctx, 'unknown_connection', REFUSALS.unknown_connection, 400, details.uid, { connection: String(form.connection).slice(0, 40) });
      const login = typeof form.login === 'string' && isValidEmail(form.login) ? form.login.trim() : hintOf(details);
      await start(ctx, details, c, login || undefined);
    },
  };

  // plain-http upstreams (loopback only: connections.ts refuses others) must be
  // allowed as form targets, since the sign-in buttons' POST redirects there
  let httpOrigins: string[] = [];
  const noteOrigins = (list: Connection[]) => {
    httpOrigins = [...new Set(list.filter((c) => c.discoveryUrl.startsWith('http:')).map((c) => new URL(c.discoveryUrl).origin))];
    return list;
  };

  const extension: LoginPageExtension = {
    async beforePage(ctx, details) {
      const idpHint = details.params.idp_hint;
      const named = idpHint !== undefined ? await usable(idpHint) : undefined;
      const hint = hintOf(details);
      const c = named ?? (isValidEmail(hint) ? await connections.byEmail(hint) : undefined);
      if (!c) return false;
      await start(ctx, details, c, hint || undefined);
      return true;
    },
    async identify(ctx, details, login) {
      if (!isValidEmail(login)) return false;
      const c = await connections.byEmail(login);
      if (!c) return false;
      await start(ctx, details, c, login.trim());
      return true;
    },
    async buttons() {
      return noteOrigins(await connections.list()).filter((c) => !c.hidden).map((c) => ({
        text: c.name, fields: { method: FEDERATION_STRATEGY, connection: c.id },
      }));
    },
    async identifiesWithoutPassword() {
      return (await connections.list()).some((c) => c.domains.length > 0);
    },
  };

  /** who the upstream identity is here (see the header); refusals throw */
  async function resolve(ctx: Context, c: Connection, id: UpstreamIdentity, uid: string, claims: Record<string, unknown>): Promise<Authenticated> {
    const signedIn = (sub: string) => deps.onSignedIn?.(sub, c, claims) ?? Promise.resolve();
    const key: FederatedKey = { connection: c.id, issuer: id.issuer, subject: id.subject };
    const amr = ['fed', ...(c.trustUpstreamMfa && id.upstreamMfa ? ['mfa'] : [])];
    const log = { connection: c.id };
    const linked = await deps.accounts.findByFederated(key);
    if (linked) {
      if (linked.status !== 'active') fail(ctx, 'inactive', REFUSALS.inactive, 403, uid, { ...log, sub: linked.sub });
      // last use (best effort) beside what the claims give (roles)
      await Promise.all([deps.accounts.touchFederated(linked, key).catch(() => undefined), signedIn(linked.sub)]);
      return { accountId: linked.sub, amr, account: linked };
    }
    if (c.linkOnly) fail(ctx, 'not_linked', REFUSALS.not_linked, 403, uid, log);
    const owner = id.email ? await deps.accounts.findByLogin(id.email) : undefined;
    if (owner) {
      if (!id.emailVerified) {
        // the upstream does not vouch for the address: it never leads to this account
        if (!c.allowSignup) fail(ctx, 'email_in_use', REFUSALS.email_in_use, 403, uid, log);
        return signup(ctx, c, id, key, amr);
      }
      if (c.linking === 'off') fail(ctx, 'linking_off', REFUSALS.linking_off, 403, uid, log);
      if (owner.status !== 'active') fail(ctx, 'inactive', REFUSALS.inactive, 403, uid, log);
      const ownerVerified = owner.email === id.email && owner.emailVerified;
      if (c.linking === 'verified-email' && c.trustEmailVerified && ownerVerified) {
        const account = await deps.events.commit({ type: 'federation.linked', sub: owner.sub, requestId: ctx.state.requestId, data: { connection: c.id, via: 'verified-email' } },
          () => deps.accounts.linkFederated(owner.sub, { ...key, via: 'verified-email' }));
        await signedIn(owner.sub);
        return { accountId: owner.sub, amr, account };
      }
      // the claim that gives roles waits with the link for the proof (never applied to an account not proven)
      const roleClaim = c.roleMapping ? claims[c.roleMapping.claim] : undefined;
      const pending: PendingLink = { ...key, via: 'prove', connectionName: c.name, ...(roleClaim !== undefined ? { roleClaims: { [c.roleMapping!.claim]: roleClaim } } : {}) };
      return { accountId: owner.sub, amr, pending: { step: LINK_STEP, data: { ...pending } } };
    }
    if (!c.allowSignup) fail(ctx, 'no_account', REFUSALS.no_account, 403, uid, log);
    const made = await signup(ctx, c, id, key, amr);
    await signedIn(made.accountId);
    return made;
  }

  async function signup(ctx: Context, c: Connection, id: UpstreamIdentity, key: FederatedKey, amr: string[]): Promise<Authenticated> {
    const sub = crypto.randomUUID();
    const account = await deps.events.commit([
      { type: 'user.created', sub, requestId: ctx.state.requestId, data: { provenance: `federated:${c.id}` } },
      { type: 'federation.linked', sub, requestId: ctx.state.requestId, data: { connection: c.id, via: 'signup' } },
    ], () => deps.accounts.createFederated({
      sub,
      profile: {
        ...(id.email ? { email: id.email, emailVerified: id.emailVerified } : {}),
        ...(id.profile.phone ? { phone: id.profile.phone, phoneVerified: false } : {}),
        ...(id.profile.name !== undefined ? { name: id.profile.name } : {}),
        ...(id.profile.givenName !== undefined ? { givenName: id.profile.givenName } : {}),
        ...(id.profile.familyName !== undefined ? { familyName: id.profile.familyName } : {}),
        ...(id.profile.extra ? { extra: id.profile.extra } : {}),
      },
      link: { ...key, via: 'signup' },
    }));
    return { accountId: account.sub, amr, account };
  }

  const callbackRouter = new Router({ prefix: '/federation' });
  callbackRouter.use(async (ctx, next) => {
    ctx.set('Cache-Control', 'no-store');
    await next();
  });

  callbackRouter.get('/:id/callback', async (ctx) => {
    const state = typeof ctx.query.state === 'string' ? ctx.query.state : '';
    const cookie = ctx.cookies.get(STATE_COOKIE, { signed: true });
    // the state this browser started with, and no other: a callback URL from someone else's attempt signs nobody in
    if (!state || !cookie || state.length !== cookie.length || !crypto.timingSafeEqual(Buffer.from(state), Buffer.from(cookie))) {
      fail(ctx, 'state', 'This sign-in attempt does not match the one started in this browser. Please start again from the application.', 400, undefined, { connection: ctx.params.id });
    }
    const pk = flowPk(state);
    const item = (await send<{ Item?: FlowItem }>(new GetCommand({ TableName: table, Key: { pk, sk: '_' }, ConsistentRead: true }))).Item;
    if (!item || item.expiresAt <= Math.floor(Date.now() / 1000) || item.who) {
      fail(ctx, 'expired', REFUSALS.expired, 400, item?.uid, { connection: ctx.params.id });
    }
    // one answer per flow: whatever happens next, this state is spent
    await send(new DeleteCommand({ TableName: table, Key: { pk, sk: '_' } }));
    ctx.cookies.set(STATE_COOKIE, '', { ...cookieOpts, maxAge: 0 });
    const uid = item.uid;
    // the answer must come back on the callback of the connection the flow started with (mix-up)
    if (ctx.params.id !== item.connection) {
      fail(ctx, 'mixup', 'The answer came from a different sign-in service than the one you chose. Please start again.', 400, uid, { connection: item.connection, callback: ctx.params.id });
    }
    const c = await connections.get(item.connection);
    if (!c) fail(ctx, 'unknown_connection', REFUSALS.unknown_connection, 400, uid, { connection: item.connection });
    let identity: UpstreamIdentity;
    let claims: Record<string, unknown>;
    try {
      // the redirect URI as registered, with the answer's parameters (behind a proxy the request's own URL may differ)
      const current = new URL(`${item.redirectUri}?${ctx.querystring}`);
      const answer = await upstream.callback(c, current, { state, nonce: item.nonce, codeVerifier: item.verifier, redirectUri: item.redirectUri });
      claims = answer.claims;
      const idToken = answer.idToken;
      identity = upstream.identityOf(c, claims);
      deps.onUpstreamAnswer?.(ctx, c, idToken);
    } catch (err) {
      if (!(err instanceof UpstreamError)) throw err;
      fail(ctx, err.reason, err.userMessage, httpStatusOf(err), uid, { connection: c.id, detail: err.detail, upstreamError: err.upstreamError });
    }
    const who = await resolve(ctx, c, identity, uid, claims);
    // back under the interaction, with a one-time reference to what was proven
    const ref = random();
    await send(new PutCommand({ TableName: table, Item: { ...item, pk: flowPk(ref), who: { accountId: who.accountId, amr: who.amr, ...(who.pending ? { pending: who.pending } : {}) } } }));
    ctx.status = 303;
    ctx.redirect(`/interaction/${uid}/federation/continue?ref=${encodeURIComponent(ref)}`);
  });

  const interactionRouter = new Router({ prefix: '/interaction' });
  interactionRouter.use(async (ctx, next) => {
    ctx.set('Cache-Control', 'no-store');
    await next();
  });

  interactionRouter.get('/:uid/federation/continue', async (ctx) => {
    const details = await currentInteraction(flow.provider(), ctx, 'login');
    const ref = typeof ctx.query.ref === 'string' ? ctx.query.ref : '';
    const pk = ref ? flowPk(ref) : '';
    const item = pk ? (await send<{ Item?: FlowItem }>(new GetCommand({ TableName: table, Key: { pk, sk: '_' }, ConsistentRead: true }))).Item : undefined;
    if (!item?.who || item.uid !== details.uid || item.expiresAt <= Math.floor(Date.now() / 1000)) {
      fail(ctx, 'expired', REFUSALS.expired, 400, details.uid);
    }
    await send(new DeleteCommand({ TableName: table, Key: { pk, sk: '_' } }));
    const who = item.who;
    // the account's own lockout state still applies after an upstream: a lock
    // by strangers' failures asks for a second factor, a permanent one refuses
    const decision = await flow.guard.accountState(who.accountId);
    if (!decision.allowed) fail(ctx, 'locked', TRY_LATER, 429, details.uid, { connection: item.connection, sub: who.accountId });
    if (decision.secondFactor) who.secondFactor = decision.secondFactor;
    ensureDeviceId(ctx, deps.secureCookies);
    if (!who.pending) {
      deps.events.emit('federation.login', { sub: who.accountId, clientId: item.clientId, requestId: ctx.state.requestId, data: { connection: item.connection, upstreamMfa: who.amr.includes('mfa') } });
    }
    await flow.proceed(ctx, details, who);
  });

  return { strategy, extension, routers: [callbackRouter, interactionRouter], start, formActionSources: () => httpOrigins };
}
