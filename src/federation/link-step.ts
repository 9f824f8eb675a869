// The link step of the login flow (id `link`): an upstream identity whose
// verified e-mail address belongs to an account here is linked to that
// account only after the user proves the account, in this interaction:
//
//   POST /interaction/:uid/federation/link        password: the account's password,
//                                                  checked by the password strategy under
//                                                  the lockout guard (kind password)
//   POST /interaction/:uid/federation/link/send   a 6-digit code to the account's verified address
//   POST /interaction/:uid/federation/link/code   code: that code (5 tries, 10 minutes)
//
// The proof is bound to this interaction and this upstream identity: both
// live in one item, pk fedlink#<uid>, written when the step begins, and every
// route reads the interaction from this browser's interaction cookie first.
// A code is kept as an HMAC (under the keyring's blind-index key), never in
// clear. When the proof is right the link is made, `federation.linked` is
// emitted and the flow goes on after this step (MFA).
import crypto from 'node:crypto';
import Router from '@koa/router';
import { bodyParser } from '@koa/bodyparser';
import type { Context } from 'koa';
import { DeleteCommand, GetCommand, PutCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import type { Logger } from '../logging/index.ts';
import type { Storage } from '../storage/index.ts';
import { isConditionFailed, sendOrUnavailable } from '../storage/errors.ts';
import type { Views } from '../http/views.ts';
import type { Account, FederatedKey, FederationAccounts } from '../accounts/types.ts';
import { currentInteraction, type Details } from '../interactions/current.ts';
import { csrfToken, verifyCsrf } from '../interactions/csrf.ts';
import { deviceId, ensureDeviceId } from '../interactions/device.ts';
import { LoginFailed, UnexpectedPrompt } from '../interactions/errors.ts';
import { maskEmail } from '../interactions/mask.ts';
import { TRY_LATER, type Attempt } from '../interactions/guard.ts';
import type { LoginFlow, LoginStep } from '../interactions/flow.ts';
import type { Authenticated } from '../interactions/strategies/types.ts';
import { LINK_STEP, type EventsLike, type PendingLink } from './login.ts';
import type { Connection } from './types.ts';

const CODE_TTL_SECONDS = 10 * 60;
const CODE_TRIES = 5;
const CODE_SENDS = 3;

interface LinkItem extends FederatedKey {
  pk: string;
  sk: '_';
  uid: string;
  sub: string;
  amr: string[];
  connectionName: string;
  /** the upstream claim that gives roles, applied once the link is made */
  roleClaims?: Record<string, unknown>;
  codeMac?: string;
  codeExpires?: number;
  tries: number;
  sends: number;
  expiresAt: number;
}

export interface LinkStepDeps {
  flow: LoginFlow;
  views: Views;
  accounts: FederationAccounts & { findBySub(sub: string): Promise<Account | undefined> };
  storage: Pick<Storage, 'doc' | 'tables'>;
  /** the HMAC key of stored codes */
  codeKey: () => Buffer;
  messages: { send(m: { channel: 'email'; to: string; template: string; vars: Record<string, string>; sub?: string }): Promise<unknown> };
  events: EventsLike;
  log: Logger;
  secureCookies: boolean;
  /** the connection of a link, and what an upstream sign-in sets off (login.ts FederationLoginDeps.onSignedIn) */
  connections?: { get(id: string): Promise<Connection | undefined> };
  onSignedIn?(sub: string, c: Connection, claims: Record<string, unknown>): Promise<void>;
}

const MESSAGES = {
  wrongPassword: 'That password is not right.',
  wrongCode: 'That code is not right, or it has expired.',
  tooManyCodes: 'You have asked for too many codes. Start the sign-in again.',
  noAddress: 'This account has no verified e-mail address to send a code to. Use its password instead.',
};

export function linkStep(deps: LinkStepDeps): { step: LoginStep; router: Router } {
  const table = deps.storage.tables.accounts;
  const send = <T>(cmd: object) => sendOrUnavailable<T>(deps.storage.doc, cmd);
  const pkOf = (uid: string) => `fedlink#${uid}`;
  const mac = (uid: string, code: string) => crypto.createHmac('sha256', deps.codeKey()).update(`link\0${uid}\0${code}`).digest('base64url');

  async function render(ctx: Context, uid: string, item: LinkItem, account: Account, extra: { error?: string; sent?: boolean; status?: number } = {}) {
    ctx.status = extra.status ?? 200;
    ctx.type = 'html';
    ctx.body = await deps.views.page('federation-link', {
      title: 'Link your account',
      base: `/interaction/${uid}/federation/link`,
      abortUrl: `/interaction/${uid}/abort`,
      csrf: csrfToken(ctx, uid, deps.secureCookies),
      connectionName: item.connectionName,
      email: account.email ? maskEmail(account.email) : undefined,
      canSendCode: !!(account.email && account.emailVerified),
      sent: extra.sent || !!item.codeMac,
      minutes: Math.round(CODE_TTL_SECONDS / 60),
      error: extra.error,
    });
  }

  const step: LoginStep = {
    id: LINK_STEP,
    async run(ctx, details, who) {
      if (who.pending?.step !== LINK_STEP) return { done: true };
      const p = who.pending.data as unknown as PendingLink;
      const now = Math.floor(Date.now() / 1000);
      const item: LinkItem = {
        pk: pkOf(details.uid), sk: '_', uid: details.uid, sub: who.accountId, amr: who.amr,
        connection: p.connection, issuer: p.issuer, subject: p.subject, connectionName: p.connectionName,
        ...(p.roleClaims ? { roleClaims: p.roleClaims } : {}),
        tries: 0, sends: 0, expiresAt: details.exp > now ? details.exp : now + 3600,
      };
      await send(new PutCommand({ TableName: table, Item: item }));
      const account = await deps.accounts.findBySub(who.accountId);
      if (!account) throw new UnexpectedPrompt('link your account');
      await render(ctx, details.uid, item, account);
      return { done: false };
    },
  };

  const router = new Router({ prefix: '/interaction' });
  const body = bodyParser({ enableTypes: ['form'], formLimit: '16kb' });
  const form = (ctx: Context) => ((ctx.request as unknown as { body?: Record<string, unknown> }).body ?? {});
  router.use(async (ctx, next) => {
    ctx.set('Cache-Control', 'no-store');
    await next();
  });

  /** this browser's interaction, its pending link and the account to prove; CSRF checked */
  async function load(ctx: Context): Promise<{ details: Details; item: LinkItem; account: Account; fields: Record<string, unknown> }> {
    const details = await currentInteraction(deps.flow.provider(), ctx, 'login');
    const fields = form(ctx);
    verifyCsrf(ctx, details.uid, fields.csrf);
    const item = (await send<{ Item?: LinkItem }>(new GetCommand({ TableName: table, Key: { pk: pkOf(details.uid), sk: '_' }, ConsistentRead: true }))).Item;
    const account = item && item.expiresAt > Math.floor(Date.now() / 1000) ? await deps.accounts.findBySub(item.sub) : undefined;
    if (!item || !account || account.status !== 'active') throw new UnexpectedPrompt('link your account');
    return { details, item, account, fields };
  }

  /** the proof is right: link, then on with the flow */
  async function linked(ctx: Context, details: Details, item: LinkItem, proof: 'pwd' | 'email') {
    await send(new DeleteCommand({ TableName: table, Key: { pk: item.pk, sk: '_' } }));
    await deps.events.commit({ type: 'federation.linked', sub: item.sub, requestId: ctx.state.requestId, data: { connection: item.connection, via: 'prove', proof } },
      () => deps.accounts.linkFederated(item.sub, { connection: item.connection, issuer: item.issuer, subject: item.subject, via: 'prove' }));
    const c = deps.onSignedIn && item.roleClaims ? await deps.connections?.get(item.connection) : undefined;
    if (c) await deps.onSignedIn!(item.sub, c, item.roleClaims!);
    deps.events.emit('federation.login', { sub: item.sub, clientId: String(details.params.client_id), requestId: ctx.state.requestId, data: { connection: item.connection, linked: true } });
    const who: Authenticated = { accountId: item.sub, amr: [...new Set([...item.amr, proof])] };
    await deps.flow.proceed(ctx, details, who, { after: LINK_STEP });
  }

  const attemptOf = (ctx: Context, item: LinkItem, account: Account): Attempt => ({
    kind: 'password', ip: ctx.ip, login: account.email, accountId: item.sub, deviceId: deviceId(ctx), requestId: ctx.state.requestId as string | undefined,
  });

  router.post('/:uid/federation/link', body, async (ctx) => {
    const { details, item, account, fields } = await load(ctx);
    const attempt = attemptOf(ctx, item, account);
    const decision = await deps.flow.guard.check(attempt);
    if (!decision.allowed) return render(ctx, details.uid, item, account, { error: TRY_LATER, status: 429 });
    const password = deps.flow.strategy('password');
    if (!password?.authenticate || !account.email) throw new UnexpectedPrompt('link your account');
    let ok = false;
    try {
      // the account's own identifier: the password proves this account and no other
      const who = await password.authenticate(ctx, { login: account.email, password: fields.password });
      ok = who.accountId === item.sub;
    } catch (err) {
      if (!(err instanceof LoginFailed)) throw err;
    }
    if (!ok) {
      const after = await deps.flow.guard.failed(attempt);
      return render(ctx, details.uid, item, account, { error: after.allowed ? MESSAGES.wrongPassword : TRY_LATER, status: after.allowed ? 401 : 429 });
    }
    attempt.deviceId = ensureDeviceId(ctx, deps.secureCookies);
    await deps.flow.guard.succeeded(attempt);
    await linked(ctx, details, item, 'pwd');
  });

  router.post('/:uid/federation/link/send', body, async (ctx) => {
    const { details, item, account } = await load(ctx);
    if (!account.email || !account.emailVerified) return render(ctx, details.uid, item, account, { error: MESSAGES.noAddress, status: 400 });
    if (item.sends >= CODE_SENDS) return render(ctx, details.uid, item, account, { error: MESSAGES.tooManyCodes, status: 429 });
    const code = String(crypto.randomInt(0, 1_000_000)).padStart(6, '0');
    try {
      await send(new UpdateCommand({
        TableName: table, Key: { pk: item.pk, sk: '_' },
        UpdateExpression: 'SET codeMac = :m, codeExpires = :e, tries = :z, sends = sends + :one',
        ConditionExpression: 'sends = :s',
        ExpressionAttributeValues: { ':m': mac(item.uid, code), ':e': Math.floor(Date.now() / 1000) + CODE_TTL_SECONDS, ':z': 0, ':one': 1, ':s': item.sends },
      }));
    } catch (err) {
      if (!isConditionFailed(err)) throw err;
      return render(ctx, details.uid, item, account, { error: MESSAGES.tooManyCodes, status: 429 });
    }
    await deps.messages.send({ channel: 'email', to: account.email, template: 'link-code', vars: { code, minutes: String(Math.round(CODE_TTL_SECONDS / 60)), connection: item.connectionName }, sub: item.sub });
    await render(ctx, details.uid, { ...item, codeMac: 'sent' }, account, { sent: true });
  });

  router.post('/:uid/federation/link/code', body, async (ctx) => {
    const { details, item, account, fields } = await load(ctx);
    const attempt = attemptOf(ctx, item, account);
    const decision = await deps.flow.guard.check(attempt);
    if (!decision.allowed) return render(ctx, details.uid, item, account, { error: TRY_LATER, status: 429 });
    const code = typeof fields.code === 'string' ? fields.code.trim().slice(0, 16) : '';
    // each try is counted in the item first (conditional on the count read), so tries cannot run in parallel past the limit
    let counted = false;
    if (item.codeMac && item.tries < CODE_TRIES) {
      try {
        await send(new UpdateCommand({
          TableName: table, Key: { pk: item.pk, sk: '_' }, UpdateExpression: 'SET tries = tries + :one',
          ConditionExpression: 'tries = :t', ExpressionAttributeValues: { ':one': 1, ':t': item.tries },
        }));
        counted = true;
      } catch (err) {
        if (!isConditionFailed(err)) throw err;
      }
    }
    const expected = item.codeMac ? Buffer.from(item.codeMac) : undefined;
    const got = Buffer.from(mac(item.uid, code));
    const right = counted && !!expected && (item.codeExpires ?? 0) > Math.floor(Date.now() / 1000)
      && expected.length === got.length && crypto.timingSafeEqual(expected, got);
    if (!right) {
      const after = await deps.flow.guard.failed(attempt);
      return render(ctx, details.uid, item, account, { error: after.allowed ? MESSAGES.wrongCode : TRY_LATER, status: after.allowed ? 401 : 429 });
    }
    attempt.deviceId = ensureDeviceId(ctx, deps.secureCookies);
    await deps.flow.guard.succeeded(attempt);
    await linked(ctx, details, item, 'email');
  });

  return { step, router };
}
