// The conformance harness: the OP under test (the real IdP, in-process on
// embedded dynalite, test/support/idp.ts) with static clients registered as
// the OpenID Foundation suite's OP plans expect them (client_secret_basic,
// a second client, client_secret_post, a post_logout_redirect_uri, and,
// for the back-channel plan, a backchannel_logout_uri on a loopback RP), a
// relying party on openid-client v6 per client, and a browser
// (test/support/user-agent.ts) that signs in and consents on our pages the
// way the suite's tester does by hand.
//
// One deviation from the suite's defaults, on purpose: every authorization
// request carries PKCE (S256), because this OP requires it of every client
// (oidc.flow.test.ts); the suite's own oidcc-ensure-request-with-valid-pkce-succeeds
// is the module that sends it.
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import * as oidc from 'openid-client';
import { createRemoteJWKSet, jwtVerify, decodeProtectedHeader, type JWTPayload } from 'jose';
import { startTestIdp, tempDir, type TestIdp } from '../support/idp.ts';
import { UserAgent } from '../support/user-agent.ts';
import { formEndingWith } from '../support/forms.ts';

/** the suite's callback and post-logout URLs (https://<suite>/test/a/<alias>/callback and /post_logout_redirect) */
export const REDIRECT = 'https://rp.conformance.test/test/a/idp/callback';
export const POST_LOGOUT = 'https://rp.conformance.test/test/a/idp/post_logout_redirect';
export const SECRET = 'conformance-secret-0123456789abcdefghij';
export const USER = { email: 'buffy@conformance.test', password: 'vampire slayer passphrase 42', name: 'Buffy Summers', phone: '+14155550100' };

export interface Op {
  idp: TestIdp;
  /** openid-client configuration of a registered client (client_secret_basic unless registered otherwise) */
  rp(clientId: string): oidc.Configuration;
  close(): Promise<void>;
}

interface ClientSpec { id: string; auth?: 'client_secret_basic' | 'client_secret_post'; backchannelLogoutUri?: string }

export async function startOp(clients: ClientSpec[], env: Record<string, string> = {}): Promise<Op> {
  const seed = path.join(tempDir('idp-conformance-'), 'seed.json');
  fs.writeFileSync(seed, JSON.stringify({
    clients: clients.map((c) => ({
      client_id: c.id, client_secret: SECRET, client_name: `Conformance ${c.id}`,
      redirect_uris: [REDIRECT], post_logout_redirect_uris: [POST_LOGOUT],
      grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'],
      token_endpoint_auth_method: c.auth ?? 'client_secret_basic',
      ...(c.backchannelLogoutUri ? { backchannel_logout_uri: c.backchannelLogoutUri, backchannel_logout_session_required: true } : {}),
    })),
  }));
  // a cheaper argon2id: conformance is not about the hash (oidcc modules sign in some fifty times)
  const idp = await startTestIdp({ SEED_FILE: seed, LOG_LEVEL: 'warn', ARGON2_MEMORY_KIB: '4096', ARGON2_TIME_COST: '1', ...env });
  await idp.cli('users', 'add', '--email', USER.email, '--password', USER.password, '--name', USER.name, '--email-verified', '--phone', USER.phone, '--phone-verified');
  const rps = new Map<string, oidc.Configuration>();
  for (const c of clients) {
    const auth = c.auth === 'client_secret_post' ? oidc.ClientSecretPost(SECRET) : oidc.ClientSecretBasic(SECRET);
    rps.set(c.id, await oidc.discovery(new URL(idp.issuer), c.id, undefined, auth, { execute: [oidc.allowInsecureRequests] }));
  }
  return {
    idp,
    rp: (id) => rps.get(id) ?? expect.fail(`no client ${id}`),
    close: () => idp.close(),
  };
}

/** one authorization request of the suite: state, nonce and PKCE, plus the module's own parameters */
export interface Authorization { url: URL; state: string; nonce?: string; verifier: string; params: Record<string, string> }

export async function authorization(rp: oidc.Configuration, extra: Record<string, string | undefined> = {}): Promise<Authorization> {
  const verifier = oidc.randomPKCECodeVerifier();
  const params: Record<string, string> = {
    redirect_uri: REDIRECT, scope: 'openid', state: oidc.randomState(), nonce: oidc.randomNonce(),
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256',
  };
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined) delete params[k];
    else params[k] = v;
  }
  return { url: oidc.buildAuthorizationUrl(rp, params), state: params.state, nonce: params.nonce, verifier, params };
}

export interface SignedIn {
  /** where the OP sent the browser back to the RP */
  callback: URL;
  /** the login form was shown (the OP asked the user to authenticate) */
  loginShown: boolean;
  consentShown: boolean;
  /** the login page's HTML, when it was shown */
  loginPage?: string;
}

/**
 * Follows the authorization in the browser; signs in on the login page and
 * allows on the consent page when they come; returns the redirect to the RP.
 * `start` is a URL (GET) or a form POST to the authorization endpoint.
 */
export async function signIn(ua: UserAgent, start: URL | { action: string; form: Record<string, string> }, user = USER): Promise<SignedIn> {
  let step = start instanceof URL ? await ua.navigate(start.href) : await ua.navigate(start.action, { form: start.form });
  let loginShown = false;
  let consentShown = false;
  let loginPage: string | undefined;
  for (let i = 0; i < 4 && !step.offsite; i++) {
    const html = await step.res.text();
    const login = formEndingWith(html, '/login');
    const consent = formEndingWith(html, '/consent');
    if (login && !loginShown) {
      loginShown = true;
      loginPage = html;
      step = await ua.navigate(login.action, { form: { ...Object.fromEntries(login.fields), login: user.email, password: user.password } });
    } else if (consent && !consentShown) {
      consentShown = true;
      step = await ua.navigate(consent.action, { form: Object.fromEntries(consent.fields) });
    } else {
      expect.fail(`no way on from ${step.url} (status ${step.res.status}): ${html.slice(0, 600)}`);
    }
  }
  expect(step.offsite, 'the OP sends the browser back to the RP').to.be.a('string');
  return { callback: new URL(step.offsite!), loginShown, consentShown, loginPage };
}

/** the authorization response is an error (OIDCC-3.1.2.6) with state, iss and no code; returns the error code */
export function expectErrorResponse(callback: URL, a: Authorization, issuer: string): string {
  expect(callback.href.startsWith(`${REDIRECT}?`), callback.href).to.equal(true);
  expect(callback.searchParams.get('code'), 'no code with an error').to.equal(null);
  expect(callback.searchParams.get('state')).to.equal(a.state);
  expect(callback.searchParams.get('iss')).to.equal(issuer);
  const error = callback.searchParams.get('error');
  expect(error).to.be.a('string').and.match(/^[\x20-\x21\x23-\x5B\x5D-\x7E]+$/);
  return error!;
}

/** the suite's ID token checks (OIDCC-3.1.3.7, 2): signature by a published key with a kid, iss, aud, azp, exp, iat, nonce, sub */
export async function checkIdToken(op: Op, rp: oidc.Configuration, idToken: string, nonce: string | undefined): Promise<JWTPayload> {
  const header = decodeProtectedHeader(idToken);
  expect(header.kid, 'ID token kid (OIDCC-10.1)').to.be.a('string');
  expect(header.alg).to.not.equal('none');
  const jwks = createRemoteJWKSet(new URL(rp.serverMetadata().jwks_uri!));
  const clientId = rp.clientMetadata().client_id;
  const { payload } = await jwtVerify(idToken, jwks, { issuer: op.idp.issuer, audience: clientId });
  expect(payload.sub).to.be.a('string').with.length.within(1, 255);
  const now = Math.floor(Date.now() / 1000);
  expect(payload.iat).to.be.a('number').within(now - 300, now + 5);
  expect(payload.exp).to.be.a('number').greaterThan(now);
  if (Array.isArray(payload.aud) && payload.aud.length > 1) expect(payload.azp).to.equal(clientId);
  if (nonce === undefined) expect(payload.nonce).to.equal(undefined);
  else expect(payload.nonce).to.equal(nonce);
  return payload;
}

export interface Tokens {
  tokens: Awaited<ReturnType<typeof oidc.authorizationCodeGrant>>;
  idToken: JWTPayload;
}

/** the code exchange, with the suite's checks of the authorization and token responses */
export async function redeem(op: Op, rp: oidc.Configuration, a: Authorization, callback: URL, checks: { maxAge?: number } = {}): Promise<Tokens> {
  // the authorization response: code, the same state, iss (RFC 9207, advertised in discovery)
  expect(callback.searchParams.get('error'), callback.href).to.equal(null);
  expect(callback.searchParams.get('code')).to.be.a('string');
  expect(callback.searchParams.get('state')).to.equal(a.state);
  expect(callback.searchParams.get('iss')).to.equal(op.idp.issuer);
  const tokens = await oidc.authorizationCodeGrant(rp, callback, {
    pkceCodeVerifier: a.verifier, expectedState: a.state, expectedNonce: a.nonce, idTokenExpected: true, ...checks,
  });
  expect(tokens.token_type.toLowerCase()).to.equal('bearer');
  expect(tokens.access_token).to.match(/^[\x20-\x7E]+$/);
  expect(tokens.expires_in).to.be.a('number').greaterThan(0);
  return { tokens, idToken: await checkIdToken(op, rp, tokens.id_token!, a.nonce) };
}

/**
 * Runs fn with the process clock (Date.now, which oidc-provider, the storage
 * adapter's expiry checks and openid-client all read) moved ahead by ms: the
 * suite's waits without sleeping. Anything fn creates carries the moved
 * time, so fn should use a browser and tokens of its own.
 */
export async function withClockAhead<T>(ms: number, fn: () => Promise<T>): Promise<T> {
  const realNow = Date.now;
  Date.now = () => realNow() + ms;
  try {
    return await fn();
  } finally {
    Date.now = realNow;
  }
}

/** the whole happy flow of oidcc-server: a fresh browser, sign in, consent, redeem */
export async function happyFlow(op: Op, clientId: string, extra: Record<string, string | undefined> = {}, ua = new UserAgent(op.idp.issuer)) {
  const rp = op.rp(clientId);
  const a = await authorization(rp, extra);
  const signed = await signIn(ua, a.url);
  return { ua, rp, a, signed, ...(await redeem(op, rp, a, signed.callback)) };
}
