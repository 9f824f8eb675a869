// The upstream client: our IdP as a relying party of an upstream OpenID
// Provider, on openid-client v6. Everything a response is checked on is
// checked by openid-client; this file chooses what to expect, adds the checks
// of each kind, and turns every failure into one UpstreamError (types.ts).
//
// Discovery: the document is fetched from the connection's discoveryUrl with
// a bounded timeout (timeoutMs, 5 s), its `issuer` must equal the connection's
// issuer (an Entra template: the template itself), and each endpoint must be
// https (http only on a loopback host, and then openid-client is told to allow
// it). The metadata is cached per connection id+version+issuer+discoveryUrl for
// discoveryTtlMs (1 h) and dropped when a callback fails on the network or the
// keys; a failed fetch is not cached.
//
// The flow: code + PKCE (S256), state and nonce, response_type=code with the
// default (query) response mode. The callback runs openid-client's
// authorizationCodeGrant, which checks the RFC 9207 `iss` response parameter
// (required when the discovery document says the upstream sends it; compared
// whenever it is present), `error=`, state, then exchanges the code and checks
// the ID token's iss, aud, azp, exp/iat, nonce; enableNonRepudiationChecks
// makes it verify the ID token's signature against the upstream's JWKS too (the
// code flow alone would trust TLS).
//
// JWKS: openid-client (oauth4webapi) keeps the key set per Configuration and
// refetches it when it is 300 s old, or when a token names an unknown `kid`
// and the set is at least 60 s old; within those 60 s an unknown kid fails
// (OAUTH_KEY_SELECTION_FAILED). We share one key set per connection across
// calls (setJwksCache/getJwksCache), and on an unknown kid we drop it and
// validate the same token response again with a fresh key set, at most once
// per jwksRefetchMinMs (10 s) per connection, so a rotated key is picked up at
// once and a stream of unknown kids cannot make us hammer the upstream.
//
// The token response is captured by a customFetch on its way in, so a second
// validation (a fresh key set, or an Entra tenant, below) replays it instead of
// redeeming the code again: the code is used once.
//
// Entra ID multi-tenant (issuer https://login.microsoftonline.com/{tenantid}/v2.0
// or any issuer with {tenantid}): openid-client fills the template only for
// login.microsoftonline.com, so we do it ourselves. An `iss` response
// parameter, when present, must be the template filled with an allowed tenant
// before the code leaves. The first pass checks state and `error=` and
// exchanges the code; the (unverified) `tid` of the captured ID token must be
// a GUID in the connection's tenants (UpstreamError 'tenant'); the second pass
// replays the response through a Configuration whose issuer is the template
// with that tid, where openid-client checks everything, signature included.
// The identity key of Entra is (tid, oid): issuer = the tenant's issuer,
// subject = "<tid>:<oid>". Entra's `email` is verified only when `xms_edov`
// (the domain is verified by the tenant) is true.
//
// Google: `hd` is sent as a hint when hostedDomain is set, and the validated
// ID token's `hd` must equal it (UpstreamError 'hosted_domain').
//
// private_key_jwt: the connection's own RS256 key (connections.ts), the
// assertion's `aud` the upstream's token endpoint.
import * as client from 'openid-client';
import { decodeJwt, importJWK } from 'jose';
import { isLoopbackHost, isTemplateIssuer } from './connections.ts';
import {
  MAPPABLE_ATTRIBUTES, TENANT_PLACEHOLDER, UpstreamError,
  type Connection, type UpstreamErrorReason, type UpstreamIdentity, type UpstreamProfile,
} from './types.ts';

export interface UpstreamClientOptions {
  /** every request to an upstream (discovery, token, JWKS): abort after this (default 5000) */
  timeoutMs?: number;
  /** discovery documents are reused this long (default 1 h) */
  discoveryTtlMs?: number;
  /** at most one forced JWKS refetch per connection in this time (default 10 s) */
  jwksRefetchMinMs?: number;
  /** the fetch used for every upstream request (default: global fetch) */
  fetch?: typeof fetch;
}

export interface AuthorizationParams {
  redirectUri: string;
  state: string;
  nonce: string;
  codeVerifier: string;
  loginHint?: string;
}

export interface CallbackChecks {
  state: string;
  nonce: string;
  codeVerifier: string;
  /** the redirect URI the authorization request carried (sent again to the token endpoint) */
  redirectUri: string;
}

export interface CallbackResult {
  /** the validated ID token claims */
  claims: Record<string, unknown>;
  /** the ID token as received (e.g. id_token_hint for upstream logout) */
  idToken: string;
  tokens: client.TokenEndpointResponse;
}

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** fresh random state, nonce and PKCE verifier for one authorization request */
export function newChecks(): { state: string; nonce: string; codeVerifier: string } {
  return { state: client.randomState(), nonce: client.randomNonce(), codeVerifier: client.randomPKCECodeVerifier() };
}

interface Discovered {
  key: string;
  as: client.ServerMetadata;
  /** some endpoint is http (on a loopback host) */
  insecure: boolean;
  at: number;
  jwks?: client.ExportedJWKSCache;
  jwksForcedAt?: number;
}

/** what one call's requests did, for telling failures apart */
interface CallLog {
  failedUrl?: string;
  failedStatus?: number;
  networkError?: unknown;
}

interface Captured {
  status: number;
  headers: Array<[string, string]>;
  body: string;
}

/** thrown by the capturing fetch to stop the first Entra pass once the token response is in */
class CapturedResponse extends Error {}

const cacheKey = (c: Connection) => `${c.version}|${c.issuer}|${c.discoveryUrl}|${c.updatedAt}`;

export class UpstreamClient {
  private readonly timeoutMs: number;
  private readonly discoveryTtlMs: number;
  private readonly jwksRefetchMinMs: number;
  private readonly fetchImpl: typeof fetch;
  private readonly discovered = new Map<string, Discovered>();
  private readonly pending = new Map<string, Promise<Discovered>>();

  constructor(opts: UpstreamClientOptions = {}) {
    this.timeoutMs = opts.timeoutMs ?? 5000;
    this.discoveryTtlMs = opts.discoveryTtlMs ?? 3600_000;
    this.jwksRefetchMinMs = opts.jwksRefetchMinMs ?? 10_000;
    this.fetchImpl = opts.fetch ?? ((...args) => fetch(...args));
  }

  /** drop what is cached for a connection (all of them without an id) */
  forget(id?: string): void {
    if (id === undefined) this.discovered.clear();
    else this.discovered.delete(id);
  }

  /** the openid-client Configuration of a connection, from its (cached) discovery document */
  async discover(connection: Connection): Promise<client.Configuration> {
    const d = await this.metadata(connection);
    return this.configuration(connection, d, { issuer: d.as.issuer, fetch: this.fetchImpl as client.CustomFetch });
  }

  /** the upstream's authorization request URL (code, PKCE S256, state, nonce) */
  async authorizationUrl(connection: Connection, p: AuthorizationParams): Promise<URL> {
    const cfg = await this.discover(connection);
    const params: Record<string, string> = {
      redirect_uri: p.redirectUri,
      response_type: 'code',
      scope: connection.scopes.join(' '),
      state: p.state,
      nonce: p.nonce,
      code_challenge: await client.calculatePKCECodeChallenge(p.codeVerifier),
      code_challenge_method: 'S256',
    };
    if (p.loginHint) params.login_hint = p.loginHint;
    if (connection.kind === 'google' && connection.hostedDomain) params.hd = connection.hostedDomain;
    return client.buildAuthorizationUrl(cfg, params);
  }

  /** the upstream's end-session URL, or undefined when it has none */
  async endSessionUrl(connection: Connection, p: { idTokenHint?: string; postLogoutRedirectUri?: string; state?: string } = {}): Promise<URL | undefined> {
    const cfg = await this.discover(connection);
    if (!cfg.serverMetadata().end_session_endpoint) return undefined;
    const params: Record<string, string> = { client_id: connection.clientId };
    if (p.idTokenHint) params.id_token_hint = p.idTokenHint;
    if (p.postLogoutRedirectUri) params.post_logout_redirect_uri = p.postLogoutRedirectUri;
    if (p.state) params.state = p.state;
    return client.buildEndSessionUrl(cfg, params);
  }

  /**
   * Validates the upstream's answer at our callback (`currentUrl`: the URL it
   * arrived on, only its query is read) and redeems the code. Throws UpstreamError.
   */
  async callback(connection: Connection, currentUrl: URL, checks: CallbackChecks): Promise<CallbackResult> {
    const d = await this.metadata(connection);
    // the redirect URI exactly as the authorization request had it, whatever host the request came in on
    const url = new URL(checks.redirectUri);
    url.search = currentUrl.search;
    const log: CallLog = {};
    let captured: Captured | undefined;
    const tokenEndpoint = d.as.token_endpoint;
    const fetcher = (stopAfterCapture: boolean): client.CustomFetch => async (input, init) => {
      if (init.method === 'POST' && input === tokenEndpoint) {
        if (!captured) {
          const res = await this.recordedFetch(log, input, init);
          captured = { status: res.status, headers: [...res.headers], body: await res.text() };
          if (stopAfterCapture) throw new CapturedResponse();
        }
        return new Response(captured.body, { status: captured.status, headers: captured.headers });
      }
      return this.recordedFetch(log, input, init);
    };
    const grant = async (issuer: string, target: URL, stopAfterCapture = false) => {
      const cfg = this.configuration(connection, d, { issuer, fetch: fetcher(stopAfterCapture) });
      try {
        const tokens = await client.authorizationCodeGrant(cfg, target, {
          pkceCodeVerifier: checks.codeVerifier, expectedState: checks.state, expectedNonce: checks.nonce, idTokenExpected: true,
        });
        return tokens;
      } finally {
        const jwks = client.getJwksCache(cfg);
        if (jwks) d.jwks = jwks;
      }
    };

    try {
      let { issuer, target } = { issuer: d.as.issuer, target: url };
      if (isTemplateIssuer(connection.issuer)) ({ issuer, target } = await this.entraFirstPass(connection, url, grant, () => captured));
      let tokens: client.TokenEndpointResponse & client.TokenEndpointResponseHelpers;
      try {
        tokens = await grant(issuer, target);
      } catch (err) {
        // an unknown kid within openid-client's 60 s: one more try with a fresh key set, on the same response
        if (!captured || !isUnknownKid(err) || Date.now() - (d.jwksForcedAt ?? 0) < this.jwksRefetchMinMs) throw err;
        d.jwksForcedAt = Date.now();
        d.jwks = undefined;
        tokens = await grant(issuer, target);
      }
      const claims = tokens.claims() as Record<string, unknown> | undefined;
      if (!claims || !tokens.id_token) throw new UpstreamError('missing_claim', 'token response without an ID token', { connection: connection.id });
      this.checkKind(connection, claims);
      return { claims, idToken: tokens.id_token, tokens };
    } catch (err) {
      const e = toUpstreamError(err, connection, log, d);
      if (e.reason === 'unreachable' || e.reason === 'jwks' || e.reason === 'discovery') this.discovered.delete(connection.id);
      throw e;
    }
  }

  /**
   * Entra multi-tenant, first pass: state, `error=` and the code exchange,
   * stopped once the token response is captured; returns the tenant's issuer
   * and the answer to validate against it.
   */
  private async entraFirstPass(
    connection: Connection, url: URL,
    grant: (issuer: string, target: URL, stopAfterCapture?: boolean) => Promise<unknown>,
    captured: () => Captured | undefined,
  ): Promise<{ issuer: string; target: URL }> {
    const allowed = connection.tenants ?? [];
    const fill = (tid: string) => connection.issuer.replace(TENANT_PLACEHOLDER, tid);
    const iss = url.searchParams.get('iss');
    if (iss !== null && !allowed.some((t) => fill(t) === iss)) {
      throw new UpstreamError(allowed.length && iss.startsWith(connection.issuer.split(TENANT_PLACEHOLDER)[0]) ? 'tenant' : 'issuer', `authorization response iss "${iss}" is not ${connection.issuer} with an allowed tenant`, { connection: connection.id });
    }
    const first = new URL(url);
    first.searchParams.delete('iss');
    try {
      await grant(connection.issuer, first, true);
    } catch (err) {
      if (!(err instanceof CapturedResponse) && !(err instanceof client.ClientError && err.cause instanceof CapturedResponse)) throw err;
    }
    const c = captured();
    if (!c) throw new UpstreamError('invalid_token', 'no token response captured', { connection: connection.id });
    if (c.status !== 200) return { issuer: connection.issuer, target: first }; // the second pass reports the upstream's error
    let tid: unknown;
    try {
      const body = JSON.parse(c.body) as { id_token?: unknown };
      tid = typeof body.id_token === 'string' ? decodeJwt(body.id_token).tid : undefined;
    } catch {
      throw new UpstreamError('invalid_token', 'token response or ID token is not readable', { connection: connection.id });
    }
    if (tid === undefined) throw new UpstreamError('missing_claim', 'Entra ID token without tid', { connection: connection.id });
    if (typeof tid !== 'string' || !GUID.test(tid)) throw new UpstreamError('invalid_token', 'Entra ID token with a malformed tid', { connection: connection.id });
    if (!allowed.includes(tid)) throw new UpstreamError('tenant', `tenant ${tid} is not allowed`, { connection: connection.id });
    return { issuer: fill(tid), target: url };
  }

  /** the checks of each kind on the validated claims */
  private checkKind(connection: Connection, claims: Record<string, unknown>): void {
    if (connection.kind === 'entra' && connection.tenants) {
      if (typeof claims.tid !== 'string') throw new UpstreamError('missing_claim', 'Entra ID token without tid', { connection: connection.id });
      if (!connection.tenants.includes(claims.tid)) throw new UpstreamError('tenant', `tenant ${claims.tid} is not allowed`, { connection: connection.id });
    }
    if (connection.kind === 'google' && connection.hostedDomain && claims.hd !== connection.hostedDomain) {
      throw new UpstreamError('hosted_domain', `hd is ${claims.hd === undefined ? 'absent' : `"${String(claims.hd)}"`}, expected "${connection.hostedDomain}"`, { connection: connection.id });
    }
  }

  private async recordedFetch(log: CallLog, input: string, init: client.CustomFetchOptions): Promise<Response> {
    let res: Response;
    try {
      res = await this.fetchImpl(input, init as RequestInit);
    } catch (err) {
      log.failedUrl = input;
      log.networkError = err;
      throw err;
    }
    if (res.status !== 200) {
      log.failedUrl = input;
      log.failedStatus = res.status;
    }
    return res;
  }

  private configuration(connection: Connection, d: Discovered, o: { issuer: string; fetch: client.CustomFetch }): client.Configuration {
    const as = { ...d.as, issuer: o.issuer };
    // an Entra template first pass has no issuer to compare an `iss` parameter with (it was checked before)
    if (isTemplateIssuer(o.issuer)) delete as.authorization_response_iss_parameter_supported;
    const metadata: Partial<client.ClientMetadata> = connection.clientSecret !== undefined ? { client_secret: connection.clientSecret } : {};
    const cfg = new client.Configuration(as, connection.clientId, metadata, this.clientAuth(connection, d));
    if (d.insecure) client.allowInsecureRequests(cfg);
    cfg.timeout = this.timeoutMs / 1000;
    cfg[client.customFetch] = o.fetch;
    client.enableNonRepudiationChecks(cfg);
    if (d.jwks) client.setJwksCache(cfg, d.jwks);
    return cfg;
  }

  private clientAuth(connection: Connection, d: Discovered): client.ClientAuth {
    switch (connection.clientAuth) {
      case 'client_secret_post':
        return client.ClientSecretPost(connection.clientSecret);
      case 'private_key_jwt': {
        const key = connection.signingKey?.privateJwk;
        if (!key) {
          return () => {
            throw new UpstreamError('invalid_token', `connection ${connection.id} has no signing key for private_key_jwt`, { connection: connection.id });
          };
        }
        const kid = connection.signingKey!.kid;
        const tokenEndpoint = d.as.token_endpoint!;
        let sign: Promise<client.ClientAuth> | undefined;
        return async (as, c, body, headers) => {
          sign ??= importJWK(key, 'RS256').then((k) => client.PrivateKeyJwt({ key: k as never, kid }, {
            // the token endpoint as audience: what Entra, Okta and oidc-provider all accept
            [client.modifyAssertion]: (_header, payload) => { payload.aud = tokenEndpoint; },
          }));
          return (await sign)(as, c, body, headers);
        };
      }
      default:
        return client.ClientSecretBasic(connection.clientSecret);
    }
  }

  private async metadata(connection: Connection): Promise<Discovered> {
    const key = cacheKey(connection);
    const have = this.discovered.get(connection.id);
    if (have && have.key === key && Date.now() - have.at < this.discoveryTtlMs) return have;
    const inflight = this.pending.get(`${connection.id}\n${key}`);
    if (inflight) return inflight;
    const p = this.fetchMetadata(connection, key).finally(() => this.pending.delete(`${connection.id}\n${key}`));
    this.pending.set(`${connection.id}\n${key}`, p);
    return p;
  }

  private async fetchMetadata(connection: Connection, key: string): Promise<Discovered> {
    const url = new URL(connection.discoveryUrl);
    const log: CallLog = {};
    let as: client.ServerMetadata;
    try {
      const cfg = await client.discovery(url, connection.clientId, undefined, undefined, {
        timeout: this.timeoutMs / 1000,
        [client.customFetch]: (input, init) => this.recordedFetch(log, input, init),
        execute: url.protocol === 'http:' ? [client.allowInsecureRequests] : [],
      });
      as = cfg.serverMetadata();
    } catch (err) {
      const e = toUpstreamError(err, connection, log);
      throw e.reason === 'unreachable' ? e : new UpstreamError('discovery', `discovery document at ${connection.discoveryUrl}: ${e.detail}`, { connection: connection.id, cause: err });
    }
    if (as.issuer !== connection.issuer) {
      throw new UpstreamError('discovery', `discovery document at ${connection.discoveryUrl} names issuer "${as.issuer}", expected "${connection.issuer}"`, { connection: connection.id });
    }
    let insecure = false;
    for (const name of ['authorization_endpoint', 'token_endpoint', 'jwks_uri', 'end_session_endpoint'] as const) {
      const v = as[name];
      if (v === undefined) {
        if (name === 'end_session_endpoint') continue;
        throw new UpstreamError('discovery', `discovery document has no ${name}`, { connection: connection.id });
      }
      let u: URL;
      try {
        u = new URL(String(v));
      } catch {
        throw new UpstreamError('discovery', `discovery document: ${name} is not a URL`, { connection: connection.id });
      }
      if (u.protocol === 'http:' && isLoopbackHost(u.hostname)) insecure = true;
      else if (u.protocol !== 'https:') throw new UpstreamError('discovery', `discovery document: ${name} must be https, got ${u.protocol}`, { connection: connection.id });
    }
    const d: Discovered = { key, as: structuredClone({ ...as }), insecure, at: Date.now() };
    this.discovered.set(connection.id, d);
    return d;
  }
}

function isUnknownKid(err: unknown): boolean {
  return err instanceof client.ClientError && err.code === 'OAUTH_KEY_SELECTION_FAILED';
}

const DENIED = new Set(['access_denied']);
const LOGIN_REQUIRED = new Set(['login_required', 'interaction_required', 'consent_required', 'account_selection_required']);

function isTimeout(err: unknown): boolean {
  for (let e = err, i = 0; e && i < 5; e = (e as { cause?: unknown }).cause, i++) {
    const name = (e as { name?: string }).name;
    const code = (e as { code?: string }).code;
    if (name === 'TimeoutError' || name === 'AbortError' || code === 'OAUTH_TIMEOUT' || code === 'OAUTH_ABORT' || code === 'UND_ERR_CONNECT_TIMEOUT') return true;
  }
  return false;
}

/** maps whatever openid-client (or fetch) threw onto an UpstreamError */
export function toUpstreamError(err: unknown, connection: Pick<Connection, 'id'>, log: CallLog = {}, d?: Pick<Discovered, 'as'>): UpstreamError {
  const opts = { connection: connection.id, cause: err };
  if (err instanceof UpstreamError) return err;
  const jwksFailed = d !== undefined && log.failedUrl === d.as.jwks_uri;
  if (isTimeout(err)) return new UpstreamError(jwksFailed ? 'jwks' : 'unreachable', `no answer within the timeout${log.failedUrl ? ` from ${log.failedUrl}` : ''}`, opts);
  if (log.networkError !== undefined && (err === log.networkError || err instanceof TypeError || (err as Error)?.cause === log.networkError)) {
    const why = (log.networkError as { cause?: { code?: string } })?.cause?.code ?? (log.networkError as Error)?.message;
    return new UpstreamError(jwksFailed ? 'jwks' : 'unreachable', `request to ${log.failedUrl} failed (${why})`, opts);
  }
  if (err instanceof client.AuthorizationResponseError) {
    const code = String(err.error);
    const reason: UpstreamErrorReason = DENIED.has(code) ? 'denied' : LOGIN_REQUIRED.has(code) ? 'login_required' : 'upstream_error';
    return new UpstreamError(reason, `upstream answered error=${code}${err.error_description ? ` (${err.error_description})` : ''}`, { ...opts, upstreamError: code });
  }
  if (err instanceof client.ResponseBodyError) {
    return new UpstreamError('upstream_error', `token endpoint answered ${err.status} error=${err.error}${err.error_description ? ` (${err.error_description})` : ''}`, { ...opts, upstreamError: err.error });
  }
  if (err instanceof client.WWWAuthenticateChallengeError) {
    const code = err.cause[0]?.parameters?.error ?? 'invalid_client';
    return new UpstreamError('upstream_error', `token endpoint answered ${err.status} with a ${err.cause[0]?.scheme ?? ''} challenge, error=${code}`, { ...opts, upstreamError: code });
  }
  if (err instanceof client.ClientError) {
    const inner = err.cause as { message?: string; cause?: { claim?: string } } | undefined;
    const what = inner?.message ?? err.message;
    switch (err.code) {
      case 'OAUTH_KEY_SELECTION_FAILED':
        return new UpstreamError('jwks', `no key of the upstream's key set verifies the ID token (${what})`, opts);
      case 'OAUTH_JWT_CLAIM_COMPARISON_FAILED': {
        const claim = inner?.cause?.claim;
        const reason: UpstreamErrorReason = claim === 'iss' ? 'issuer' : claim === 'aud' || claim === 'azp' ? 'audience' : claim === 'nonce' ? 'nonce' : 'invalid_token';
        return new UpstreamError(reason, what, opts);
      }
      case 'OAUTH_INVALID_RESPONSE': {
        if (/"iss"/.test(what)) return new UpstreamError('issuer', what, opts);
        if (/"state"/.test(what)) return new UpstreamError('state', what, opts);
        if (/"sub"|"id_token"/.test(what)) return new UpstreamError('missing_claim', what, opts);
        return new UpstreamError(jwksFailed ? 'jwks' : 'invalid_token', what, opts);
      }
      case 'OAUTH_RESPONSE_IS_NOT_CONFORM':
      case 'OAUTH_RESPONSE_IS_NOT_JSON':
      case 'OAUTH_PARSE_ERROR': {
        if (jwksFailed) return new UpstreamError('jwks', `key set at ${log.failedUrl}: ${what}`, opts);
        if ((log.failedStatus ?? 0) >= 500) return new UpstreamError('unreachable', `${log.failedUrl} answered ${log.failedStatus}`, opts);
        return new UpstreamError(d ? 'invalid_token' : 'discovery', `${what}${log.failedStatus ? ` (${log.failedUrl} answered ${log.failedStatus})` : ''}`, opts);
      }
      case 'OAUTH_JWT_TIMESTAMP_CHECK_FAILED':
        return new UpstreamError('invalid_token', what, opts);
      case 'OAUTH_MISSING_SERVER_METADATA':
      case 'OAUTH_INVALID_SERVER_METADATA':
        return new UpstreamError('discovery', what, opts);
      default:
        return new UpstreamError(jwksFailed ? 'jwks' : 'invalid_token', `${err.code ?? 'error'}: ${what}`, opts);
    }
  }
  return new UpstreamError('invalid_token', (err as Error)?.message ?? String(err), opts);
}

/** the value at a dotted path of plain objects (own properties only) */
function at(claims: Record<string, unknown>, path: string): unknown {
  let v: unknown = claims;
  for (const seg of path.split('.')) {
    if (v === null || typeof v !== 'object' || Array.isArray(v) || !Object.hasOwn(v, seg)) return undefined;
    v = (v as Record<string, unknown>)[seg];
  }
  return v;
}

const KNOWLEDGE = new Set(['pwd', 'pin', 'kba']);
const POSSESSION = new Set(['otp', 'sms', 'tel', 'hwk', 'swk', 'sc', 'pop', 'mca']);
const INHERENCE = new Set(['fpt', 'face', 'iris', 'retina', 'vbm', 'bio', 'user']);

/** amr shows more than one factor: "mfa", or methods of two kinds (knowledge, possession, inherence; RFC 8176) */
export function isMultiFactor(amr: readonly string[] | undefined): boolean {
  if (!amr) return false;
  if (amr.includes('mfa')) return true;
  const kinds = [KNOWLEDGE, POSSESSION, INHERENCE].filter((k) => amr.some((m) => k.has(m)));
  return kinds.length >= 2;
}

const EMAIL = /^[^\s@<>()[\]\\,;:"]+@[^\s@<>()[\]\\,;:"]+\.[^\s@<>()[\]\\,;:"]+$/;

/**
 * The identity in validated claims. Key: generic and Google (iss, sub); Entra
 * (tid, oid) as issuer = the tenant's issuer (the token's iss) and subject =
 * "<tid>:<oid>". `email` and `preferred_username` are never keys. The e-mail
 * counts as verified only from the kind's own claim (`email` mapped to
 * `email`): generic/Google email_verified === true, Entra xms_edov === true.
 */
export function identityOf(connection: Connection, claims: Record<string, unknown>): UpstreamIdentity {
  const need = (name: string): string => {
    const v = claims[name];
    if (typeof v !== 'string' || v === '') throw new UpstreamError('missing_claim', `ID token without ${name}`, { connection: connection.id });
    return v;
  };
  const issuer = need('iss');
  let subject: string;
  let tenant: string | undefined;
  if (connection.kind === 'entra') {
    tenant = need('tid');
    const oid = need('oid');
    if (!GUID.test(tenant) || !GUID.test(oid)) throw new UpstreamError('invalid_token', 'Entra tid or oid is not a GUID', { connection: connection.id });
    if (connection.tenants && !connection.tenants.includes(tenant)) throw new UpstreamError('tenant', `tenant ${tenant} is not allowed`, { connection: connection.id });
    subject = `${tenant}:${oid}`;
  } else {
    subject = need('sub');
    if (connection.kind === 'google' && connection.hostedDomain && claims.hd !== connection.hostedDomain) {
      throw new UpstreamError('hosted_domain', `hd is not "${connection.hostedDomain}"`, { connection: connection.id });
    }
  }

  const mapped: Record<string, unknown> = {};
  for (const attr of MAPPABLE_ATTRIBUTES) {
    const path = connection.claimMapping[attr];
    if (!path) continue;
    const v = at(claims, path);
    if (typeof v === 'string' ? v.trim() !== '' : v !== undefined && v !== null && typeof v !== 'object') mapped[attr] = typeof v === 'string' ? v.trim() : v;
  }
  const rawEmail = typeof mapped.email === 'string' ? mapped.email.toLowerCase() : undefined;
  const email = rawEmail && rawEmail.length <= 254 && EMAIL.test(rawEmail) ? rawEmail : undefined;
  const ownClaim = connection.claimMapping.email === 'email';
  const emailVerified = email !== undefined && ownClaim && (connection.kind === 'entra' ? claims.xms_edov === true : claims.email_verified === true);

  const profile: UpstreamProfile = {};
  const extra: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(mapped)) {
    if (k === 'email') continue;
    if (k === 'name' || k === 'givenName' || k === 'familyName' || k === 'phone') {
      if (typeof v === 'string') profile[k] = v;
    } else extra[k] = v;
  }
  if (Object.keys(extra).length) profile.extra = extra;
  const amr = Array.isArray(claims.amr) && claims.amr.every((m) => typeof m === 'string') ? claims.amr as string[] : undefined;
  return {
    issuer, subject, ...(email ? { email } : {}), emailVerified, profile,
    ...(amr ? { amr } : {}), upstreamMfa: isMultiFactor(amr), ...(tenant ? { tenant } : {}),
  };
}

/** one client for the process (discovery and key sets shared by every caller) */
let shared: UpstreamClient | undefined;
export function upstreamClient(opts?: UpstreamClientOptions): UpstreamClient {
  if (opts) shared = new UpstreamClient(opts);
  return (shared ??= new UpstreamClient());
}
