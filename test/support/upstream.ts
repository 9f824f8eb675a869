// A test upstream identity provider: a second, real oidc-provider (v9, the
// package the IdP itself runs on) on 127.0.0.2 and a free port, so that its
// cookies are its own (cookies are per host, not per port). It plays one of
// three kinds:
//
//   oidc    a generic OP; issuer = its origin; the RFC 9207 `iss` parameter in
//           every authorization response (oidc-provider's default, advertised
//           in discovery as authorization_response_iss_parameter_supported)
//   google  the same, and ID tokens carry `hd` for users that have one
//   entra   Entra ID multi-tenant. The discovery document is served at
//           /organizations/v2.0/.well-known/openid-configuration (and at
//           /<tid>/v2.0/.well-known/openid-configuration, single-tenant style)
//           with issuer https://login.example/{tenantid}/v2.0 (resp. the
//           tenant's issuer); the endpoints are this server's own. Each ID
//           token's `iss` is https://login.example/<tid>/v2.0 for the user's
//           tenant: `provider.issuer` (read when tokens are signed, see
//           oidc-provider lib/models/id_token.js) is an AsyncLocalStorage-backed
//           property, set from the user's tid while IdToken#issue (and
//           IdToken.validate, for id_token_hint at logout) runs. Claims: tid,
//           oid, email, preferred_username, xms_edov; `sub` is a per-user value
//           distinct from oid, as Entra's pairwise sub is. Like real Entra,
//           the authorization response carries NO `iss` parameter and
//           discovery does not advertise one (a middleware strips it from the
//           redirect): a relying party must not depend on it for Entra.
//
// Sign-in: /interaction/<uid> is a plain HTML page with one `login` field
// (the user's e-mail) and a submit button; no password (a test IdP), no
// inline script, no external resource; drivable by test/support/user-agent.ts
// and by a real browser. Consent is skipped: a grant for the requested scopes
// is created automatically (loadExistingGrant). There is no CSRF token on the
// form: it is a test IdP, and the interaction cookie binds the submission.
//
// Misbehaviour on demand: failNext('access_denied' | 'login_required') ends
// the next authorization with that error (even with a session: a login check
// forces the interaction), delay(ms) slows every response, stop()/restart()
// make it unreachable and back (same port), rotateKey() signs with a new key
// (new kid; the old one stays published unless dropOld).
import http from 'node:http';
import net from 'node:net';
import crypto from 'node:crypto';
import { AsyncLocalStorage } from 'node:async_hooks';
import Provider, { interactionPolicy, type Adapter, type AdapterPayload, type ClientMetadata, type Configuration, type KoaContextWithOIDC } from 'oidc-provider';
import type { JWK } from 'jose';
import { generateSigningJwk } from '../../src/keys/generate.ts';

export type UpstreamKind = 'oidc' | 'google' | 'entra';

export interface UpstreamUser {
  /** generic/google: the subject (default: a value derived from the e-mail) */
  sub?: string;
  /** entra: the object id (a GUID) */
  oid?: string;
  /** entra: the tenant id (a GUID) */
  tid?: string;
  email: string;
  email_verified?: boolean;
  /** entra: the e-mail's domain is verified by the tenant */
  xms_edov?: boolean;
  /** entra: defaults to the e-mail */
  preferred_username?: string;
  /** google: the hosted domain */
  hd?: string;
  name?: string;
  given_name?: string;
  family_name?: string;
  /** authentication methods of the sign-in (default ['pwd']) */
  amr?: string[];
  /** group names (a `groups` claim, as Entra and many IdPs send) */
  groups?: string[];
}

export type UpstreamClient = Partial<ClientMetadata> & { client_id: string; client_secret?: string; redirect_uris: string[] };

export interface UpstreamOptions {
  kind?: UpstreamKind;
  users?: UpstreamUser[];
  clients?: UpstreamClient[];
  /** entra: the host of the issuer template (default login.example) */
  entraHost?: string;
  /** ID token signing alg (default RS256) */
  alg?: 'RS256' | 'ES256' | 'PS256';
}

export interface Upstream {
  kind: UpstreamKind;
  /** http://127.0.0.2:<port> */
  origin: string;
  /** the issuer a connection expects (entra: the {tenantid} template) */
  issuer: string;
  discoveryUrl: string;
  /** entra: the issuer of one tenant */
  tenantIssuer(tid: string): string;
  /** entra: the single-tenant discovery URL of one tenant */
  tenantDiscoveryUrl(tid: string): string;
  /** users by login (their e-mail); change them between tests */
  users: Map<string, UpstreamUser>;
  /** clients by id; change them between tests (takes effect at once) */
  clients: Map<string, UpstreamClient>;
  /** the next authorization ends with this error at the redirect URI */
  failNext(error: 'access_denied' | 'login_required'): void;
  /** every response waits this long first (0: no delay) */
  delay(ms: number): void;
  /** stop listening (connections refused) */
  stop(): Promise<void>;
  /** listen again on the same port */
  restart(): Promise<void>;
  /** sign with a new key (new kid); the old key stays in the JWKS unless dropOld */
  rotateKey(opts?: { dropOld?: boolean }): Promise<string>;
  /** the kid ID tokens are signed with now */
  currentKid(): string;
  /** requests seen, by path (e.g. '/jwks', '/token') */
  hits: Map<string, number>;
  /** the oidc-provider instance in use */
  provider(): Provider;
  close(): Promise<void>;
}

const HOST = '127.0.0.2';

/** a Map-backed adapter shared by every provider instance of one upstream (rotation rebuilds the provider) */
function memoryAdapter(clientById: (id: string) => AdapterPayload | undefined): new (name: string) => Adapter {
  const store = new Map<string, { payload: AdapterPayload; exp?: number }>();
  const live = (key: string) => {
    const e = store.get(key);
    if (!e) return undefined;
    if (e.exp && e.exp < Date.now()) {
      store.delete(key);
      return undefined;
    }
    return e.payload;
  };
  return class MemoryAdapter implements Adapter {
    readonly name: string;
    constructor(name: string) {
      this.name = name;
    }
    private key(id: string) {
      return `${this.name}:${id}`;
    }
    async upsert(id: string, payload: AdapterPayload, expiresIn: number) {
      store.set(this.key(id), { payload: { ...payload }, exp: expiresIn ? Date.now() + expiresIn * 1000 : undefined });
      if (payload.uid) store.set(`uid:${this.name}:${payload.uid}`, { payload: { id } as AdapterPayload, exp: expiresIn ? Date.now() + expiresIn * 1000 : undefined });
      if (payload.grantId) {
        const g = `grant:${payload.grantId}`;
        const ids = ((live(g) as { keys?: string[] } | undefined)?.keys ?? []).concat(this.key(id));
        store.set(g, { payload: { keys: ids } as AdapterPayload });
      }
    }
    async find(id: string) {
      // clients come from the upstream's live map: changes take effect at once
      if (this.name === 'Client') return clientById(id);
      return live(this.key(id));
    }
    async findByUid(uid: string) {
      const ref = live(`uid:${this.name}:${uid}`) as { id?: string } | undefined;
      return ref?.id ? live(this.key(ref.id)) : undefined;
    }
    async findByUserCode() {
      return undefined;
    }
    async consume(id: string) {
      const p = live(this.key(id));
      if (p) p.consumed = Math.floor(Date.now() / 1000);
    }
    async destroy(id: string) {
      store.delete(this.key(id));
    }
    async revokeByGrantId(grantId: string) {
      const g = `grant:${grantId}`;
      for (const k of (live(g) as { keys?: string[] } | undefined)?.keys ?? []) store.delete(k);
      store.delete(g);
    }
  };
}

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function page(title: string, body: string): string {
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font-family:system-ui,sans-serif;max-width:26rem;margin:3rem auto;padding:0 1rem}label,input,button{display:block;width:100%;margin:.4rem 0;font-size:1rem}input{padding:.5rem}button{padding:.6rem;background:#1f6feb;color:#fff;border:0;border-radius:4px}.error{color:#b42318}</style>
</head><body>${body}</body></html>`;
}

async function readForm(req: http.IncomingMessage): Promise<URLSearchParams> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > 64 * 1024) break;
    chunks.push(c as Buffer);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

/** a stable subject for a user without one (what a generic OP would use) */
const derivedSub = (email: string) => `u-${crypto.createHash('sha256').update(email.toLowerCase()).digest('hex').slice(0, 16)}`;

export async function startUpstream(opts: UpstreamOptions = {}): Promise<Upstream> {
  const kind = opts.kind ?? 'oidc';
  const alg = opts.alg ?? 'RS256';
  const entraHost = opts.entraHost ?? 'login.example';
  const template = `https://${entraHost}/{tenantid}/v2.0`;
  const tenantIssuer = (tid: string) => template.replace('{tenantid}', tid);

  const users = new Map<string, UpstreamUser>((opts.users ?? []).map((u) => [u.email.toLowerCase(), u]));
  const clients = new Map<string, UpstreamClient>((opts.clients ?? []).map((c) => [c.client_id, c]));
  const hits = new Map<string, number>();
  let failing: 'access_denied' | 'login_required' | undefined;
  let delayMs = 0;
  let keys: JWK[] = [await generateSigningJwk(alg)];
  const cookieKeys = [crypto.randomBytes(32).toString('base64url')];
  const Adapter = memoryAdapter((id) => {
    const c = clients.get(id);
    return c ? { grant_types: ['authorization_code'], response_types: ['code'], token_endpoint_auth_method: 'client_secret_basic', ...c } as AdapterPayload : undefined;
  });
  const issuerStore = new AsyncLocalStorage<string>();

  // Entra's sub is pairwise (per application), distinct from the user's oid
  const accountId = (u: UpstreamUser) => (kind === 'entra'
    ? `pairwise-${crypto.createHash('sha256').update(u.oid ?? u.email).digest('hex').slice(0, 24)}`
    : u.sub ?? derivedSub(u.email));
  const byAccountId = (id: string) => [...users.values()].find((u) => accountId(u) === id);

  const claimsOf = (u: UpstreamUser): Record<string, unknown> => {
    const out: Record<string, unknown> = { sub: accountId(u) };
    if (u.groups !== undefined) out.groups = u.groups;
    if (u.email !== undefined) out.email = u.email;
    if (u.email_verified !== undefined) out.email_verified = u.email_verified;
    if (u.name !== undefined) out.name = u.name;
    if (u.given_name !== undefined) out.given_name = u.given_name;
    if (u.family_name !== undefined) out.family_name = u.family_name;
    if (kind === 'google' && u.hd !== undefined) out.hd = u.hd;
    if (kind === 'entra') {
      if (u.tid !== undefined) out.tid = u.tid;
      if (u.oid !== undefined) out.oid = u.oid;
      out.preferred_username = u.preferred_username ?? u.email;
      if (u.xms_edov !== undefined) out.xms_edov = u.xms_edov;
    }
    return out;
  };

  let origin = '';
  let current: Provider;

  const build = (): Provider => {
    const policy = interactionPolicy.base();
    // failNext: the login prompt is requested even with a session, so the interaction page can end it with the error
    policy.get('login')!.checks.add(new interactionPolicy.Check('test_failure', 'a failure was requested', () => failing !== undefined));
    const configuration: Configuration = {
      adapter: Adapter,
      clients: [],
      jwks: { keys: keys as never },
      cookies: { keys: cookieKeys },
      scopes: ['openid', 'email', 'profile', 'offline_access'],
      claims: {
        openid: ['sub', 'acr', 'amr', 'tid', 'oid', 'hd', 'xms_edov', 'groups'],
        email: ['email', 'email_verified'],
        profile: ['name', 'given_name', 'family_name', 'preferred_username'],
      },
      // ID tokens carry the scope claims, as Entra's and Google's do
      conformIdTokenClaims: false,
      responseTypes: ['code'],
      pkce: { required: () => true },
      features: { devInteractions: { enabled: false }, rpInitiatedLogout: { enabled: true, logoutSource, postLogoutSuccessSource } },
      interactions: { policy, url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
      findAccount: async (_ctx, id) => {
        const u = byAccountId(id);
        return u ? { accountId: id, claims: async () => claimsOf(u) as { sub: string } } : undefined;
      },
      loadExistingGrant: async (ctx: KoaContextWithOIDC) => {
        const { session, client } = ctx.oidc;
        if (!session?.accountId || !client) return undefined;
        const grantId = ctx.oidc.result?.consent?.grantId || session.grantIdFor(client.clientId);
        if (grantId) {
          const existing = await ctx.oidc.provider.Grant.find(grantId);
          if (existing) return existing;
        }
        const grant = new ctx.oidc.provider.Grant({ clientId: client.clientId, accountId: session.accountId });
        grant.addOIDCScope([...(ctx.oidc.requestParamOIDCScopes ?? [])].join(' ') || 'openid');
        await grant.save();
        return grant;
      },
      renderError: async (ctx, out) => {
        ctx.type = 'html';
        ctx.body = page('Error', `<h1>Error</h1><p>${esc(String(out.error))}: ${esc(String(out.error_description ?? ''))}</p>`);
      },
      ttl: { AccessToken: 600, AuthorizationCode: 60, IdToken: 600, Interaction: 600, Session: 3600, Grant: 3600 },
    };
    const provider = new Provider(kind === 'entra' ? `${origin}` : origin, configuration);
    if (kind === 'entra') entraIssuer(provider);
    provider.use(middleware);
    return provider;
  };

  /** provider.issuer follows the tenant of the user a token is issued (or an id_token_hint validated) for */
  const entraIssuer = (provider: Provider) => {
    let base = provider.issuer;
    Object.defineProperty(provider, 'issuer', {
      configurable: true,
      get: () => issuerStore.getStore() ?? base,
      set: (v: string) => { base = v; },
    });
    const IdToken = provider.IdToken as unknown as { prototype: { issue(...a: unknown[]): Promise<string>; available?: { sub?: string } }; validate(jwt: string, client: unknown): Promise<unknown> };
    const issue = IdToken.prototype.issue;
    IdToken.prototype.issue = function (this: { available?: Record<string, unknown> }, ...args: unknown[]) {
      const tid = this.available?.tid;
      return typeof tid === 'string' ? issuerStore.run(tenantIssuer(tid), () => issue.apply(this, args)) : issue.apply(this, args);
    };
    const validate = IdToken.validate.bind(IdToken);
    IdToken.validate = (jwt: string, client: unknown) => {
      let tid: unknown;
      try {
        tid = JSON.parse(Buffer.from(jwt.split('.')[1] ?? '', 'base64url').toString('utf8')).tid;
      } catch { /* not a JWT: validate refuses it */ }
      return typeof tid === 'string' ? issuerStore.run(tenantIssuer(tid), () => validate(jwt, client)) : validate(jwt, client);
    };
  };

  async function logoutSource(ctx: KoaContextWithOIDC, form: string) {
    ctx.body = page('Sign out', `<h1>Sign out of the test upstream?</h1>${form}<button type="submit" form="op.logoutForm" value="yes" name="logout">Yes, sign me out</button><button type="submit" form="op.logoutForm">No, stay signed in</button>`);
  }
  async function postLogoutSuccessSource(ctx: KoaContextWithOIDC) {
    ctx.body = page('Signed out', '<h1>Signed out</h1>');
  }

  const middleware = async (ctx: KoaContextWithOIDC, next: () => Promise<void>) => {
    hits.set(ctx.path, (hits.get(ctx.path) ?? 0) + 1);
    if (delayMs > 0) await new Promise((r) => setTimeout(r, delayMs));
    const m = kind === 'entra' ? /^\/(organizations|[0-9a-f-]{36})\/v2\.0\/\.well-known\/openid-configuration$/.exec(ctx.path) : null;
    if (m) {
      ctx.path = '/.well-known/openid-configuration';
      await next();
      if (ctx.status === 200 && ctx.body && typeof ctx.body === 'object') {
        const body: Record<string, unknown> = { ...(ctx.body as Record<string, unknown>), issuer: m[1] === 'organizations' ? template : tenantIssuer(m[1]) };
        delete body.authorization_response_iss_parameter_supported;
        ctx.body = body;
      }
      return;
    }
    const interaction = /^\/interaction\/([^/]+)(\/login)?$/.exec(ctx.path);
    if (interaction) {
      await interactionRoute(ctx, interaction[2] !== undefined);
      return;
    }
    await next();
    // Entra sends no RFC 9207 `iss` with its authorization responses
    const location = ctx.response.get('location');
    if (kind === 'entra' && location && ctx.status >= 300 && ctx.status < 400) {
      const u = new URL(location, origin);
      if (u.searchParams.has('iss') && (u.searchParams.has('code') || u.searchParams.has('error'))) {
        u.searchParams.delete('iss');
        ctx.redirect(u.href);
        ctx.status = 303;
      }
    }
  };

  const interactionRoute = async (ctx: KoaContextWithOIDC, submit: boolean) => {
    const provider = current;
    let details;
    try {
      details = await provider.interactionDetails(ctx.req, ctx.res);
    } catch {
      ctx.status = 400;
      ctx.type = 'html';
      ctx.body = page('Error', '<h1>This sign-in has expired</h1>');
      return;
    }
    if (failing) {
      const error = failing;
      failing = undefined;
      ctx.respond = false;
      await provider.interactionFinished(ctx.req, ctx.res, { error, error_description: error === 'access_denied' ? 'the user refused' : 'a sign-in is required' }, { mergeWithLastSubmission: false });
      return;
    }
    if (details.prompt.name === 'login' && submit && ctx.method === 'POST') {
      const form = await readForm(ctx.req);
      const login = (form.get('login') ?? '').trim().toLowerCase();
      const user = users.get(login);
      if (user) {
        ctx.respond = false;
        await provider.interactionFinished(ctx.req, ctx.res, { login: { accountId: accountId(user), amr: user.amr ?? ['pwd'] } }, { mergeWithLastSubmission: false });
        return;
      }
      ctx.status = 200;
      ctx.type = 'html';
      ctx.body = loginPage(details.uid, 'No account with that e-mail address.');
      return;
    }
    if (details.prompt.name === 'login') {
      ctx.type = 'html';
      ctx.body = loginPage(details.uid);
      return;
    }
    // consent is never asked for (loadExistingGrant makes the grant); finish whatever else comes
    ctx.respond = false;
    await provider.interactionFinished(ctx.req, ctx.res, {}, { mergeWithLastSubmission: true });
  };

  const loginPage = (uid: string, error?: string) => page('Test upstream sign-in', `
<h1>Test upstream (${esc(kind)})</h1>
${error ? `<p class="error" role="alert">${esc(error)}</p>` : ''}
<form id="upstream-login" method="post" action="/interaction/${esc(uid)}/login">
<label for="login">E-mail</label>
<input id="login" name="login" type="email" autocomplete="username" required autofocus>
<button type="submit">Sign in</button>
</form>`);

  const sockets = new Set<net.Socket>();
  let server: http.Server | undefined;
  let port = 0;
  const listen = async () => {
    const s = http.createServer((req, res) => current.callback()(req, res));
    s.on('connection', (sock) => {
      sockets.add(sock);
      sock.on('close', () => sockets.delete(sock));
    });
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.listen(port, HOST, () => resolve());
    });
    port = (s.address() as net.AddressInfo).port;
    server = s;
  };
  const stop = async () => {
    const s = server;
    server = undefined;
    if (!s) return;
    await new Promise<void>((resolve) => {
      s.close(() => resolve());
      for (const sock of sockets) sock.destroy();
    });
  };

  await listen();
  origin = `http://${HOST}:${port}`;
  current = build();

  return {
    kind,
    origin,
    issuer: kind === 'entra' ? template : origin,
    discoveryUrl: kind === 'entra' ? `${origin}/organizations/v2.0/.well-known/openid-configuration` : `${origin}/.well-known/openid-configuration`,
    tenantIssuer,
    tenantDiscoveryUrl: (tid) => `${origin}/${tid}/v2.0/.well-known/openid-configuration`,
    users,
    clients,
    hits,
    failNext(error) {
      failing = error;
    },
    delay(ms) {
      delayMs = ms;
    },
    stop,
    restart: listen,
    async rotateKey(o = {}) {
      const next = await generateSigningJwk(alg);
      keys = o.dropOld ? [next] : [next, ...keys];
      current = build();
      return next.kid!;
    },
    currentKid: () => keys[0].kid!,
    provider: () => current,
    close: stop,
  };
}
