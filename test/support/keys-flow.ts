// Shared steps of the keyring tests: register RPs, a service client, JWT
// resource servers and a user through the CLI; log in through the real login
// (and consent) form with openid-client; get JWT access tokens with
// client_credentials; verify tokens against /jwks; dump every table.
import { expect } from 'chai';
import * as oidc from 'openid-client';
import { createRemoteJWKSet, createLocalJWKSet, jwtVerify, decodeProtectedHeader, decodeJwt, type JWK } from 'jose';
import { ScanCommand } from '@aws-sdk/lib-dynamodb';
import type { Storage } from '../../src/storage/index.ts';
import { validateClient } from '../../src/cli/validate-client.ts';
import { Registry } from '../../src/provider/registry.ts';
import type { TestIdp } from './idp.ts';
import { UserAgent, readForm } from './user-agent.ts';

export const REDIRECT = 'https://rp.example.test/cb';
export const API = 'https://api.example.test';
export const API_ED = 'https://api-ed.example.test';
export const API_PS = 'https://api-ps.example.test';
/** a relying party whose ID tokens are PS256 */
export const WEBAPP_PS = 'webapp-ps';
export const EMAIL = 'kim@example.com';
export const PASSWORD = 'correct horse battery staple 42';
export const SECRET = 'rp-secret-0123456789abcdef0123456789';

const insecure = { execute: [oidc.allowInsecureRequests] };

/**
 * clients webapp (code, RS256 ID tokens), webapp-ps (code, PS256 ID tokens) and
 * svc (client_credentials), resource servers API (JWT, ES256) and API_PS (JWT,
 * PS256), API_ED (JWT, EdDSA) when asked, a user
 */
export async function registerFixtures(idp: TestIdp, opts: { eddsa?: boolean } = {}): Promise<void> {
  await idp.cli('clients', 'add', '--id', 'webapp', '--secret', SECRET, '--redirect-uri', REDIRECT, '--grant-types', 'authorization_code,refresh_token', '--first-party');
  await addClient(idp, {
    client_id: WEBAPP_PS, client_secret: SECRET, redirect_uris: [REDIRECT], grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'], token_endpoint_auth_method: 'client_secret_basic', first_party: true, id_token_signed_response_alg: 'PS256',
  });
  await idp.cli('clients', 'add', '--id', 'svc', '--secret', SECRET, '--grant-types', 'client_credentials');
  await idp.cli('resources', 'add', '--id', API, '--scope', 'api:read', '--format', 'jwt', '--alg', 'ES256');
  await idp.cli('resources', 'add', '--id', API_PS, '--scope', 'api:read', '--format', 'jwt', '--alg', 'PS256');
  if (opts.eddsa) await idp.cli('resources', 'add', '--id', API_ED, '--scope', 'api:read', '--format', 'jwt', '--alg', 'EdDSA');
  await idp.cli('users', 'add', '--email', EMAIL, '--password', PASSWORD, '--name', 'Kim Lee', '--email-verified');
}

/**
 * a client with metadata `idp clients add` has no option for (e.g.
 * id_token_signed_response_alg), validated as the CLI validates it: by an
 * oidc-provider instance built on the server's keyring
 */
export async function addClient(idp: TestIdp, metadata: Record<string, unknown>): Promise<void> {
  await validateClient(idp.config, idp.storage, metadata, idp.keyring);
  await new Registry(idp.storage, { keyring: idp.keyring }).putClient(metadata as never);
}

/** webapp (RS256 ID tokens), or WEBAPP_PS (PS256 ID tokens: openid-client then accepts nothing else) */
export async function relyingParty(idp: TestIdp, clientId = 'webapp'): Promise<oidc.Configuration> {
  const metadata = clientId === WEBAPP_PS ? { client_secret: SECRET, id_token_signed_response_alg: 'PS256' } : SECRET;
  return oidc.discovery(new URL(idp.issuer), clientId, metadata, undefined, insecure);
}

export async function serviceClient(idp: TestIdp): Promise<oidc.Configuration> {
  return oidc.discovery(new URL(idp.issuer), 'svc', SECRET, undefined, insecure);
}

/** code + PKCE through the login form (webapp is first-party: no consent page); returns the tokens and the browser */
export async function login(idp: TestIdp, rp: oidc.Configuration, ua = new UserAgent(idp.issuer)): Promise<{ tokens: oidc.TokenEndpointResponse; ua: UserAgent; nonce: string }> {
  const verifier = oidc.randomPKCECodeVerifier();
  const nonce = oidc.randomNonce();
  const state = oidc.randomState();
  const url = oidc.buildAuthorizationUrl(rp, {
    redirect_uri: REDIRECT, scope: 'openid email profile', nonce, state,
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256',
  });
  let step = await ua.navigate(url.href);
  if (!step.offsite) {
    expect(step.res.status, 'login page').to.equal(200);
    const html = await step.res.text();
    const form = readForm(html);
    step = await ua.navigate(form.action, { form: { ...form.fields, login: EMAIL, password: PASSWORD } });
    if (!step.offsite) {
      const consent = readForm(await step.res.text());
      step = await ua.navigate(consent.action, { form: consent.fields });
    }
  }
  expect(step.offsite, 'redirect back to the RP').to.be.a('string');
  const tokens = await oidc.authorizationCodeGrant(rp, new URL(step.offsite!), { pkceCodeVerifier: verifier, expectedNonce: nonce, expectedState: state, idTokenExpected: true });
  return { tokens, ua, nonce };
}

/** an authorization with prompt=none: resolves true when the browser's session (its signed cookies) is still accepted */
export async function sessionStillValid(idp: TestIdp, rp: oidc.Configuration, ua: UserAgent): Promise<boolean> {
  const url = oidc.buildAuthorizationUrl(rp, {
    redirect_uri: REDIRECT, scope: 'openid', state: 's', prompt: 'none',
    code_challenge: await oidc.calculatePKCECodeChallenge(oidc.randomPKCECodeVerifier()), code_challenge_method: 'S256',
  });
  const step = await ua.navigate(url.href);
  if (!step.offsite) return false;
  return new URL(step.offsite).searchParams.has('code');
}

export async function jwtAccessToken(svc: oidc.Configuration, resource = API): Promise<string> {
  const r = await oidc.clientCredentialsGrant(svc, { resource, scope: 'api:read' });
  expect(decodeProtectedHeader(r.access_token).typ).to.equal('at+jwt');
  return r.access_token;
}

/** raw token request (no client library): for status codes during faults */
export async function tokenRequest(idp: TestIdp, resource = API): Promise<{ status: number; body: Record<string, string> }> {
  const r = await fetch(`${idp.url}/token`, {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(`svc:${SECRET}`).toString('base64')}`,
      'content-type': 'application/x-www-form-urlencoded', accept: 'application/json',
    },
    body: new URLSearchParams({ grant_type: 'client_credentials', resource, scope: 'api:read' }),
  });
  return { status: r.status, body: await r.json() as Record<string, string> };
}

export async function jwks(idp: TestIdp): Promise<JWK[]> {
  return ((await (await fetch(`${idp.url}/jwks`)).json()) as { keys: JWK[] }).keys;
}

/** verify against the IdP's /jwks as an RP would (fresh fetch) */
export async function verifyAgainstJwks(idp: TestIdp, token: string, opts: { audience?: string; typ?: string } = {}) {
  return jwtVerify(token, createRemoteJWKSet(new URL(`${idp.issuer}/jwks`), { cooldownDuration: 0, cacheMaxAge: 0 }), { issuer: idp.issuer, ...opts });
}

/** verify against a /jwks document already fetched */
export async function verifyWith(keys: JWK[], token: string, opts: { audience?: string; issuer?: string } = {}) {
  return jwtVerify(token, createLocalJWKSet({ keys }), opts);
}

export function kidOf(token: string): string {
  return decodeProtectedHeader(token).kid!;
}

export function expOf(token: string): number {
  return decodeJwt(token).exp!;
}

/** the kid of the active signing key of `alg`, as the server has it loaded */
export function activeKid(idp: TestIdp, alg: string): string {
  const k = idp.keyring.keys().find((x) => x.kind === 'signing' && x.alg === alg && x.state === 'active');
  expect(k, `an active ${alg} key`).to.not.equal(undefined);
  return k!.kid;
}

/** every item of every table, as JSON text, one string per table */
export async function dumpTables(storage: Storage): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const [name, table] of Object.entries(storage.tables)) {
    const items: unknown[] = [];
    let ExclusiveStartKey: Record<string, unknown> | undefined;
    do {
      const r = await storage.doc.send(new ScanCommand({ TableName: table, ExclusiveStartKey }));
      items.push(...(r.Items ?? []));
      ExclusiveStartKey = r.LastEvaluatedKey;
    } while (ExclusiveStartKey);
    out[name] = JSON.stringify(items);
  }
  return out;
}

/** the forms a secret could take when stored carelessly */
export function encodings(secret: Buffer | string): string[] {
  const b = typeof secret === 'string' ? Buffer.from(secret) : secret;
  const forms = [b.toString('base64'), b.toString('base64url'), b.toString('hex')];
  if (typeof secret === 'string') forms.push(secret);
  // a long enough prefix catches a secret stored inside a larger encoding too
  return [...new Set(forms.map((f) => f.replace(/=+$/, '')).filter((f) => f.length >= 16))];
}

/** poll until fn resolves truthy (or fail after timeoutMs) */
export async function eventually<T>(fn: () => Promise<T | undefined | false>, timeoutMs: number, what: string, intervalMs = 200): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export function logEvents(idp: TestIdp, event: string): Array<Record<string, unknown>> {
  return idp.logs.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.event === event);
}
