// Forward-auth: the IdP decides, for a gateway in front of other sites and
// APIs, whether a request may pass (README "Protecting sites and APIs at the
// edge", openid-configuration.md for the proxy snippets).
//
//   ANY /forward-auth                nginx auth_request, Traefik ForwardAuth: the original
//                                    request is described by X-Original-Method / X-Forwarded-Method,
//                                    X-Original-URI / X-Forwarded-Uri (or X-Original-URL),
//                                    X-Forwarded-Host and X-Forwarded-Proto; the site by its host
//                                    or an X-Edge-Site header. ?redirect=1: browsers get a 302
//                                    to sign in instead of a 401 (Traefik)
//   ANY /forward-auth/envoy/<path>   Envoy ext_authz (path_prefix /forward-auth/envoy): the
//                                    original method, path and Host; browsers get a 302
//   GET /forward-auth/start?rd=URL   sign in, then back to URL (a page of a site with sessions)
//   GET /forward-auth/callback       the end of that sign-in
//
// Answers: 200 with `Authorization: Bearer <internal JWT>` and `X-User-Sub`
// (none for a public route); 401 with `WWW-Authenticate` (and, for a browser
// asking for a page, `Location`: the sign-in URL); 403 when the credential
// is good but the route is denied or needs scopes or roles it lacks; 400 for
// a path that cannot be judged safely. Every answer is `no-store`.
//
// Signing in is a normal authorization request (code + PKCE, scope openid)
// of the built-in first-party client `idp-edge` against ourselves: the login
// (and MFA) pages set our session cookie, the callback redeems nothing but
// consumes the code, and sends the browser back to the page it wanted. The
// site sees the session only if the browser sends it the cookie: the site's
// host must be the issuer's, or under SESSION_COOKIE_DOMAIN (checked at
// start). Where to return to travels in `state`, and is accepted only when it
// is a page of a site with sessions: no open redirect.
import crypto from 'node:crypto';
import Router from '@koa/router';
import type { Context } from 'koa';
import type Provider from 'oidc-provider';
import type { ClientMetadata } from 'oidc-provider';
import type { Config } from '../config/index.ts';
import type { Keyring } from '../keys/types.ts';
import type { AccountStore } from '../accounts/types.ts';
import type { Views } from '../http/views.ts';
import { InteractionError } from '../interactions/errors.ts';
import { Credentials, sessionCookieOf, type Resolved } from './credentials.ts';
import { InternalJwtSigner } from './internal-jwt.ts';
import { decideRoute, loadSites, normalizePath, type Site } from './sites.ts';

export const EDGE_CLIENT_ID = 'idp-edge';
const ENVOY_PREFIX = '/forward-auth/envoy';
const MAX_RETURN_URL = 2048;

export interface EdgeDeps {
  config: Config;
  keyring: Keyring;
  accounts: AccountStore;
  views: Views;
  provider: () => Provider;
}

export interface Edge {
  /** the built-in client of the sign-in (oidc-provider `clients`) */
  clients: ClientMetadata[];
  routers: Router[];
  /** plain-http sites with sessions: the login form's CSP must let its redirects end there */
  formActions: string[];
}

/** what the gateway says about the original request */
interface Original {
  method: string;
  host: string;
  proto: string;
  target: string;
  /** answer a browser with a 302 to sign in (Traefik, Envoy) rather than a 401 with Location (nginx) */
  redirect: boolean;
}

const first = (v: string) => v.split(',')[0].trim();

function original(ctx: Context, envoy: boolean): Original {
  const full = ctx.get('x-original-url');
  let url: URL | undefined;
  if (full) {
    try {
      url = new URL(full);
    } catch { /* fall back to the separate headers */ }
  }
  const rest = ctx.url.slice(ENVOY_PREFIX.length);
  const target = envoy
    ? (rest.startsWith('/') ? rest : `/${rest}`)
    : url ? `${url.pathname}${url.search}` : ctx.get('x-original-uri') || ctx.get('x-forwarded-uri') || '/';
  return {
    method: (envoy ? ctx.method : ctx.get('x-original-method') || ctx.get('x-forwarded-method') || ctx.method).toUpperCase(),
    host: envoy ? ctx.get('host') : url?.host ?? first(ctx.get('x-forwarded-host') || ctx.get('host')),
    proto: url ? url.protocol.slice(0, -1) : first(ctx.get('x-forwarded-proto') || ctx.protocol),
    target,
    redirect: envoy || ctx.query.redirect === '1' || ctx.query.redirect === 'true',
  };
}

function deny(ctx: Context, status: number, error: string, description: string, headers: Record<string, string> = {}): void {
  ctx.status = status;
  for (const [k, v] of Object.entries(headers)) ctx.set(k, v);
  ctx.body = { error, error_description: description };
}

const quoted = (s: string) => s.replace(/["\\]/g, '');

export function createEdge(deps: EdgeDeps): Edge | undefined {
  const { config } = deps;
  const loaded = loadSites(config);
  if (!loaded) return undefined;
  const sites = loaded;
  const signer = new InternalJwtSigner({ keyring: deps.keyring, alg: config.edge.jwtAlg, issuer: config.issuer, ttlSeconds: config.edge.jwtTtlSeconds });
  const credentials = new Credentials({
    provider: deps.provider, keyring: deps.keyring, accounts: deps.accounts, issuer: config.issuer, signer,
    cacheSeconds: config.edge.cacheSeconds, cacheSize: config.edge.cacheSize,
  });
  const callbackUrl = `${config.issuer}/forward-auth/callback`;

  /** a page of a site with sessions, or undefined (never an open redirect) */
  const returnTarget = (rd: unknown): string | undefined => {
    if (typeof rd !== 'string' || rd.length > MAX_RETURN_URL) return undefined;
    let u: URL;
    try {
      u = new URL(rd);
    } catch {
      return undefined;
    }
    if ((u.protocol !== 'https:' && u.protocol !== 'http:') || u.username || u.password) return undefined;
    return sites.byHost(u.host)?.session ? u.href : undefined;
  };

  async function decide(ctx: Context, envoy: boolean): Promise<void> {
    ctx.set('Cache-Control', 'no-store');
    const o = original(ctx, envoy);
    const named = ctx.get('x-edge-site');
    const site: Site | undefined = named ? sites.byId(named) : sites.byHost(o.host);
    if (!site) return deny(ctx, 403, 'access_denied', 'no protected site is configured for this host');
    const path = normalizePath(o.target);
    if (path === null) return deny(ctx, 400, 'invalid_request', 'the request path cannot be judged safely (an encoded "/" or "\\", or a bad escape)');
    const decision = decideRoute(site, o.method, path);
    if (decision.kind === 'public') {
      ctx.status = 200;
      ctx.body = '';
      return;
    }
    if (decision.kind === 'none') return deny(ctx, 403, 'access_denied', 'no route of this site allows this request');

    const realm = `realm="${quoted(site.id)}"`;
    const authz = ctx.get('authorization');
    const bearer = /^Bearer\s+(\S+)\s*$/i.exec(authz)?.[1];
    let resolved: Resolved | undefined;
    if (bearer) {
      resolved = await credentials.bearer(bearer);
      const aud = resolved?.principal.aud;
      if (!resolved || !aud?.includes(site.audience)) {
        const why = resolved ? 'the token is not for this site (audience)' : 'the token is invalid, expired or revoked';
        return deny(ctx, 401, 'invalid_token', why, { 'WWW-Authenticate': `Bearer ${realm}, error="invalid_token", error_description="${why}"` });
      }
    } else {
      const cookie = site.session ? sessionCookieOf(ctx.get('cookie')) : undefined;
      if (cookie) resolved = await credentials.session(ctx, cookie);
      if (!resolved) {
        const headers: Record<string, string> = { 'WWW-Authenticate': `Bearer ${realm}` };
        const page = site.session && (o.method === 'GET' || o.method === 'HEAD') && (ctx.get('accept').includes('text/html'));
        const back = page ? returnTarget(`${o.proto}://${o.host}${o.target}`) : undefined;
        if (back) {
          headers.Location = `${config.issuer}/forward-auth/start?rd=${encodeURIComponent(back)}`;
          if (o.redirect) {
            ctx.set('WWW-Authenticate', headers['WWW-Authenticate']);
            ctx.status = 302;
            ctx.set('Location', headers.Location);
            ctx.body = '';
            return;
          }
        }
        return deny(ctx, 401, 'login_required', 'sign in first', headers);
      }
    }

    const p = resolved.principal;
    const { route } = decision;
    if (route.scopes.some((s) => !p.scopes.has(s))) {
      return deny(ctx, 403, 'insufficient_scope', `this route needs the scope ${route.scopes.join(' ')}`,
        { 'WWW-Authenticate': `Bearer ${realm}, error="insufficient_scope", scope="${quoted(route.scopes.join(' '))}"` });
    }
    if (route.roles.some((r) => !p.roles.includes(r))) return deny(ctx, 403, 'access_denied', `this route needs the role ${route.roles.join(', ')}`);

    ctx.status = 200;
    ctx.set('Authorization', `Bearer ${await credentials.internalJwt(resolved, site)}`);
    ctx.set('X-User-Sub', p.sub);
    ctx.body = '';
  }

  const router = new Router({ prefix: '/forward-auth' });
  router.all('/', (ctx) => decide(ctx, false));
  router.all('/envoy{/*path}', (ctx) => decide(ctx, true));

  router.get('/start', async (ctx) => {
    ctx.set('Cache-Control', 'no-store');
    const back = returnTarget(ctx.query.rd);
    if (!back) throw new InteractionError(400, 'invalid_request', 'This sign-in link is not for a site protected here.');
    const verifier = crypto.randomBytes(32).toString('base64url');
    const state = Buffer.from(JSON.stringify({ rd: back, n: crypto.randomBytes(9).toString('base64url') })).toString('base64url');
    const params = new URLSearchParams({
      client_id: EDGE_CLIENT_ID, response_type: 'code', scope: 'openid', state, redirect_uri: callbackUrl,
      code_challenge: crypto.createHash('sha256').update(verifier).digest('base64url'), code_challenge_method: 'S256',
    });
    ctx.status = 303;
    ctx.redirect(`/auth?${params}`);
  });

  router.get('/callback', async (ctx) => {
    ctx.set('Cache-Control', 'no-store');
    let rd: unknown;
    try {
      rd = (JSON.parse(Buffer.from(String(ctx.query.state ?? ''), 'base64url').toString()) as { rd?: unknown }).rd;
    } catch { /* no state */ }
    const back = returnTarget(rd);
    if (!back) throw new InteractionError(400, 'invalid_request', 'This sign-in link has expired or is not for a site protected here.');
    if (typeof ctx.query.error === 'string') {
      ctx.type = 'html';
      ctx.body = await deps.views.page('message', { title: 'Not signed in', heading: 'The sign-in was cancelled', text: 'Go back to the page you wanted to open to try again.' });
      return;
    }
    // the session cookie is what the sites use; the code is consumed so it is never left lying around
    if (typeof ctx.query.code === 'string') {
      const code = await deps.provider().AuthorizationCode.find(ctx.query.code);
      if (code?.clientId === EDGE_CLIENT_ID) await code.consume();
    }
    ctx.status = 303;
    ctx.redirect(back);
  });

  return {
    clients: [{
      client_id: EDGE_CLIENT_ID, client_name: 'Sign-in for protected sites', token_endpoint_auth_method: 'none',
      grant_types: ['authorization_code'], response_types: ['code'], redirect_uris: [callbackUrl], first_party: true,
    }],
    routers: [router],
    formActions: sites.list.filter((s) => s.session).flatMap((s) => s.hosts.map((h) => `http://${h}${h.includes(':') ? '' : ':*'}`)),
  };
}
