// Who is asking, for forward-auth: a bearer access token or our session
// cookie, resolved to a principal, and the decision cache in front of that.
//
//   JWT access token   verified here against the keyring's published keys
//                      (jose; iss, typ at+jwt, exp, one of our algorithms):
//                      no read. JWT access tokens are not stored, so they
//                      cannot be revoked: they are good until `exp`.
//   opaque token       one read through the provider's AccessToken or
//                      ClientCredentials model (the value's length names the
//                      model: src/provider/token-kinds.ts)
//   session cookie     oidc-provider's signed `idp.session` cookie: the
//                      session (one read) and its account (one read: a
//                      disabled account is signed out here too)
//
// A credential that resolves is cached for EDGE_CACHE_SECONDS (never past its
// own expiry), for at most EDGE_CACHE_SIZE credentials (the oldest dropped),
// together with the internal JWTs minted for it per site (reused while at
// least half their lifetime is left). So a token revoked, a session ended or
// an account disabled keeps passing here for up to EDGE_CACHE_SECONDS.
// Concurrent misses for one credential share one lookup. Failed lookups are
// not cached.
import type { Context } from 'koa';
import type Provider from 'oidc-provider';
import { createLocalJWKSet, jwtVerify, type JWTVerifyGetKey } from 'jose';
import type { Keyring } from '../keys/types.ts';
import type { AccountStore } from '../accounts/types.ts';
import { TtlCache } from '../provider/client-cache.ts';
import { mayBelongTo } from '../provider/token-kinds.ts';
import type { InternalJwtSigner } from './internal-jwt.ts';
import type { Site } from './sites.ts';

export interface Principal {
  kind: 'session' | 'bearer';
  sub: string;
  scope: string;
  scopes: ReadonlySet<string>;
  /** bearer: the client the token was issued to */
  clientId?: string;
  /** bearer: the token's audiences (a site accepts it only when its audience is one); session: any site */
  aud?: readonly string[];
  roles: readonly string[];
  /** epoch seconds: when the token or session expires */
  exp: number;
}

export interface Resolved {
  principal: Principal;
  /** internal JWTs minted for this credential, by site audience */
  jwts: Map<string, { jwt: string; exp: number }>;
}

export const SESSION_COOKIE = 'idp.session';
const OPAQUE = /^[A-Za-z0-9_~-]{20,512}$/;
const OPAQUE_MODELS = ['AccessToken', 'ClientCredentials'] as const;

/** the signed session cookie as sent (value and signature), or undefined */
export function sessionCookieOf(header: string | undefined): string | undefined {
  if (!header || !header.includes(SESSION_COOKIE)) return undefined;
  let value: string | undefined;
  let sig: string | undefined;
  for (const part of header.split(';')) {
    const i = part.indexOf('=');
    if (i < 0) continue;
    const name = part.slice(0, i).trim();
    if (name === SESSION_COOKIE) value ??= part.slice(i + 1).trim();
    else if (name === `${SESSION_COOKIE}.sig`) sig ??= part.slice(i + 1).trim();
  }
  return value && sig ? `${value}.${sig}` : undefined;
}

export class Credentials {
  readonly #provider: () => Provider;
  readonly #keyring: Keyring;
  readonly #accounts: AccountStore;
  readonly #issuer: string;
  readonly #signer: InternalJwtSigner;
  readonly #cache: TtlCache<Resolved>;
  readonly #inflight = new Map<string, Promise<Resolved | undefined>>();
  #jwks: { version: unknown; getKey: JWTVerifyGetKey } | undefined;

  constructor(opts: { provider: () => Provider; keyring: Keyring; accounts: AccountStore; issuer: string; signer: InternalJwtSigner; cacheSeconds: number; cacheSize: number }) {
    this.#provider = opts.provider;
    this.#keyring = opts.keyring;
    this.#accounts = opts.accounts;
    this.#issuer = opts.issuer;
    this.#signer = opts.signer;
    this.#cache = new TtlCache<Resolved>({ ttlMs: opts.cacheSeconds * 1000, maxEntries: opts.cacheSize });
  }

  /** a bearer token's principal, or undefined when it is not a valid token of ours */
  bearer(token: string): Promise<Resolved | undefined> {
    return this.#cached(`b:${token}`, () => (token.split('.').length === 3 ? this.#jwt(token) : this.#opaque(token)));
  }

  /** the signed-in session's principal (`cookie`: sessionCookieOf), or undefined */
  session(ctx: Context, cookie: string): Promise<Resolved | undefined> {
    return this.#cached(`s:${cookie}`, () => this.#session(ctx));
  }

  /** the internal JWT for this credential at this site, minted or reused */
  async internalJwt(resolved: Resolved, site: Site): Promise<string> {
    const now = Date.now() / 1000;
    const have = resolved.jwts.get(site.audience);
    if (have && have.exp - now >= this.#signer.ttlSeconds / 2) return have.jwt;
    const p = resolved.principal;
    const minted = await this.#signer.sign({
      aud: site.audience, sub: p.sub, scope: p.scope, roles: p.roles,
      ...(p.clientId ? { client_id: p.clientId } : {}), notAfter: p.exp,
    }, this.#provider());
    resolved.jwts.set(site.audience, minted);
    return minted.jwt;
  }

  async #cached(key: string, load: () => Promise<Principal | undefined>): Promise<Resolved | undefined> {
    const hit = this.#cache.get(key)?.value;
    if (hit && hit.principal.exp > Date.now() / 1000) return hit;
    const running = this.#inflight.get(key);
    if (running) return running;
    const p = (async () => {
      const principal = await load();
      if (!principal || principal.exp <= Date.now() / 1000) return undefined;
      const resolved: Resolved = { principal, jwts: new Map() };
      this.#cache.set(key, resolved);
      return resolved;
    })();
    this.#inflight.set(key, p);
    try {
      return await p;
    } finally {
      this.#inflight.delete(key);
    }
  }

  /** our published keys (next, active, retired), rebuilt when the provider is (a key change) */
  #getKey(): JWTVerifyGetKey {
    const version = this.#provider();
    if (this.#jwks?.version !== version) this.#jwks = { version, getKey: createLocalJWKSet({ keys: this.#keyring.publicJwks() }) };
    return this.#jwks.getKey;
  }

  async #jwt(token: string): Promise<Principal | undefined> {
    let payload;
    try {
      ({ payload } = await jwtVerify(token, this.#getKey(), { issuer: this.#issuer, typ: 'at+jwt', algorithms: [...this.#keyring.algs], requiredClaims: ['exp', 'sub'] }));
    } catch {
      return undefined;
    }
    const scope = typeof payload.scope === 'string' ? payload.scope : '';
    return {
      kind: 'bearer', sub: payload.sub!, scope, scopes: new Set(scope.split(' ').filter(Boolean)),
      ...(typeof payload.client_id === 'string' ? { clientId: payload.client_id } : {}),
      aud: payload.aud === undefined ? [] : [payload.aud].flat(), roles: [], exp: payload.exp!,
    };
  }

  async #opaque(token: string): Promise<Principal | undefined> {
    if (!OPAQUE.test(token)) return undefined;
    const provider = this.#provider();
    const models = OPAQUE_MODELS.filter((m) => mayBelongTo(m, token));
    type Found = { isExpired: boolean; clientId?: string; accountId?: string; scope?: string; aud?: string | string[]; exp?: number } | undefined;
    const find = (m: (typeof OPAQUE_MODELS)[number]) => (provider[m] as unknown as { find(v: string): Promise<Found> }).find(token);
    const t = (await Promise.all(models.map(find))).find((x) => x && !x.isExpired);
    if (!t) return undefined;
    const scope = t.scope ?? '';
    return {
      kind: 'bearer', sub: t.accountId ?? t.clientId!, scope, scopes: new Set(scope.split(' ').filter(Boolean)),
      clientId: t.clientId, aud: t.aud === undefined ? [] : [t.aud].flat(), roles: [], exp: t.exp!,
    };
  }

  async #session(ctx: Context): Promise<Principal | undefined> {
    const session = await this.#provider().Session.get(ctx as never);
    if (!session.accountId || !session.exp) return undefined;
    const account = await this.#accounts.findBySub(session.accountId);
    if (!account || account.status === 'disabled') return undefined;
    return { kind: 'session', sub: session.accountId, scope: '', scopes: new Set(), roles: [], exp: session.exp };
  }
}
