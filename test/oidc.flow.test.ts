// The core flow with a real relying party (openid-client v6) over real HTTP
// against the running IdP on embedded dynalite: discovery → code + PKCE →
// login form → consent form → code exchange → ID token checked against
// /jwks → userinfo → refresh rotation and reuse detection → introspection →
// revocation → RP-initiated logout. Plus the protocol rules around it.
import { expect } from 'chai';
import * as oidc from 'openid-client';
import { createRemoteJWKSet, jwtVerify, decodeProtectedHeader } from 'jose';
import { startTestIdp, type TestIdp } from './support/idp.ts';
import { UserAgent, readForm } from './support/user-agent.ts';

const REDIRECT = 'https://rp.example.test/cb';
const POST_LOGOUT = 'https://rp.example.test/bye';
const API = 'https://api.example.test';
const EMAIL = 'ada@example.com';
const PASSWORD = 'correct horse battery staple 42';

describe('OIDC flow with openid-client against the running IdP', function () {
  this.timeout(60_000);
  let idp: TestIdp;
  let rp: oidc.Configuration;
  let publicRp: oidc.Configuration;
  const secret = 'rp-secret-0123456789abcdef0123456789';

  before(async () => {
    // no refresh reuse grace here: reuse detection is what this flow checks (test/refresh-grace.test.ts has the grace)
    idp = await startTestIdp({ REFRESH_REUSE_GRACE_SECONDS: '0' });
    await idp.cli('clients', 'add', '--id', 'webapp', '--secret', secret, '--name', 'Web App',
      '--redirect-uri', REDIRECT, '--post-logout-redirect-uri', POST_LOGOUT, '--grant-types', 'authorization_code,refresh_token');
    await idp.cli('clients', 'add', '--id', 'spa', '--public', '--redirect-uri', REDIRECT, '--grant-types', 'authorization_code');
    await idp.cli('clients', 'add', '--id', 'svc', '--secret', secret, '--grant-types', 'client_credentials');
    await idp.cli('resources', 'add', '--id', API, '--scope', 'api:read api:write', '--format', 'jwt', '--alg', 'ES256');
    await idp.cli('users', 'add', '--email', EMAIL, '--password', PASSWORD, '--name', 'Ada Obi', '--email-verified');
    const opts = { execute: [oidc.allowInsecureRequests] };
    rp = await oidc.discovery(new URL(idp.issuer), 'webapp', secret, undefined, opts);
    publicRp = await oidc.discovery(new URL(idp.issuer), 'spa', undefined, oidc.None(), opts);
  });

  after(async () => {
    await idp?.close();
  });

  async function authorize(config: oidc.Configuration, extra: Record<string, string> = {}) {
    const verifier = oidc.randomPKCECodeVerifier();
    const nonce = oidc.randomNonce();
    const state = oidc.randomState();
    const url = oidc.buildAuthorizationUrl(config, {
      redirect_uri: REDIRECT, scope: 'openid email profile offline_access', nonce, state,
      code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256',
      prompt: 'consent', ...extra,
    });
    return { url, verifier, nonce, state };
  }

  /** drives the login and consent pages; returns the redirect to the RP */
  async function loginAndConsent(ua: UserAgent, url: URL, password = PASSWORD): Promise<string> {
    let step = await ua.navigate(url.href);
    expect(step.res.status).to.equal(200);
    let html = await step.res.text();
    expect(html).to.contain('name="login"').and.contain('name="password"');
    const login = readForm(html);
    expect(login.fields.csrf).to.be.a('string').with.length.greaterThan(20);
    step = await ua.navigate(login.action, { form: { ...login.fields, login: EMAIL, password } });
    if (step.offsite) return step.offsite;
    html = await step.res.text();
    expect(html, "consent page").to.contain("wants to");
    const consent = readForm(html);
    step = await ua.navigate(consent.action, { form: consent.fields });
    expect(step.offsite, 'redirect to the RP').to.be.a('string');
    return step.offsite!;
  }

  it('discovery names the endpoints and what they support', async () => {
    const md = rp.serverMetadata();
    expect(md.issuer).to.equal(idp.issuer);
    expect(md.code_challenge_methods_supported).to.deep.equal(['S256']);
    expect(md.authorization_response_iss_parameter_supported).to.equal(true);
    expect(md.introspection_endpoint).to.be.a('string');
    expect(md.revocation_endpoint).to.be.a('string');
    expect(md.end_session_endpoint).to.be.a('string');
    expect(md.backchannel_logout_supported).to.equal(true);
    expect(md.grant_types_supported).to.include.members(['authorization_code', 'refresh_token', 'client_credentials']);
  });

  it('logs in end to end: code + PKCE, ID token, userinfo, refresh, introspection, revocation, logout', async () => {
    const ua = new UserAgent(idp.issuer);
    const a = await authorize(rp);
    const callback = await loginAndConsent(ua, a.url);
    const cb = new URL(callback);
    expect(cb.searchParams.get('iss')).to.equal(idp.issuer);

    const tokens = await oidc.authorizationCodeGrant(rp, cb, { pkceCodeVerifier: a.verifier, expectedNonce: a.nonce, expectedState: a.state, idTokenExpected: true });
    expect(tokens.refresh_token).to.be.a('string');

    // ID token: signature against /jwks, iss, aud, nonce
    const jwks = createRemoteJWKSet(new URL(rp.serverMetadata().jwks_uri!));
    const { payload, protectedHeader } = await jwtVerify(tokens.id_token!, jwks, { issuer: idp.issuer, audience: 'webapp' });
    expect(payload.nonce).to.equal(a.nonce);
    expect(protectedHeader.alg).to.equal('RS256');
    expect(protectedHeader.kid).to.be.a('string');
    const sub = payload.sub!;

    const info = await oidc.fetchUserInfo(rp, tokens.access_token, sub);
    expect(info.email).to.equal(EMAIL);
    expect(info.email_verified).to.equal(true);
    expect(info.name).to.equal('Ada Obi');

    // refresh rotation: the new one works, the old one is refused
    const refreshed = await oidc.refreshTokenGrant(rp, tokens.refresh_token!);
    expect(refreshed.refresh_token).to.be.a('string').and.not.equal(tokens.refresh_token);
    expect((await oidc.tokenIntrospection(rp, refreshed.access_token)).active).to.equal(true);

    const reuse = await oidc.refreshTokenGrant(rp, tokens.refresh_token!).then(() => null, (e) => e);
    expect(reuse?.error).to.equal('invalid_grant');
    // presenting the old one revoked the whole grant: the rotated token is dead too
    expect((await oidc.tokenIntrospection(rp, refreshed.refresh_token!)).active).to.equal(false);
    expect((await oidc.tokenIntrospection(rp, refreshed.access_token)).active).to.equal(false);

    // a fresh login for introspection → revocation
    const b = await authorize(rp, { prompt: 'login' });
    const cb2 = new URL(await loginAndConsent(new UserAgent(idp.issuer), b.url));
    const t2 = await oidc.authorizationCodeGrant(rp, cb2, { pkceCodeVerifier: b.verifier, expectedNonce: b.nonce, expectedState: b.state });
    const active = await oidc.tokenIntrospection(rp, t2.access_token);
    expect(active.active).to.equal(true);
    expect(active.sub).to.equal(sub);
    await oidc.tokenRevocation(rp, t2.access_token);
    expect((await oidc.tokenIntrospection(rp, t2.access_token)).active).to.equal(false);

    // RP-initiated logout ends the session
    const logoutUrl = oidc.buildEndSessionUrl(rp, { id_token_hint: t2.id_token!, post_logout_redirect_uri: POST_LOGOUT, state: 'bye1' });
    const ua2 = ua;
    let step = await ua2.navigate(logoutUrl.href);
    expect(step.res.status).to.equal(200);
    const html = await step.res.text();
    const form = readForm(html, 'op.logoutForm');
    step = await ua2.navigate(form.action, { form: { ...form.fields, logout: 'yes' } });
    expect(step.offsite).to.equal(`${POST_LOGOUT}?state=bye1`);
    // the session is gone: a new authorization asks for the login again
    const c = await authorize(rp, { prompt: '' });
    const again = await ua2.navigate(c.url.href);
    expect(await again.res.text()).to.contain('name="password"');
  });

  it('refuses a reused authorization code and deactivates what it issued', async () => {
    const a = await authorize(rp);
    const cb = new URL(await loginAndConsent(new UserAgent(idp.issuer), a.url));
    const tokens = await oidc.authorizationCodeGrant(rp, cb, { pkceCodeVerifier: a.verifier, expectedNonce: a.nonce, expectedState: a.state });
    expect((await oidc.tokenIntrospection(rp, tokens.access_token)).active).to.equal(true);
    const second = await oidc.authorizationCodeGrant(rp, cb, { pkceCodeVerifier: a.verifier, expectedNonce: a.nonce, expectedState: a.state }).then(() => null, (e) => e);
    expect(second?.error).to.equal('invalid_grant');
    expect((await oidc.tokenIntrospection(rp, tokens.access_token)).active).to.equal(false);
    expect((await oidc.tokenIntrospection(rp, tokens.refresh_token!)).active).to.equal(false);
  });

  it('gives exactly one token response to two concurrent redemptions of one code', async () => {
    const a = await authorize(rp);
    const cb = new URL(await loginAndConsent(new UserAgent(idp.issuer), a.url));
    const code = cb.searchParams.get('code')!;
    const tokenEndpoint = rp.serverMetadata().token_endpoint!;
    const redeem = () => fetch(tokenEndpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`webapp:${secret}`).toString('base64')}` },
      body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: REDIRECT, code_verifier: a.verifier }),
    }).then(async (r) => ({ status: r.status, body: await r.json() as Record<string, string> }));
    const results = await Promise.all([redeem(), redeem(), redeem(), redeem()]);
    const ok = results.filter((r) => r.status === 200);
    expect(ok, JSON.stringify(results)).to.have.length(1);
    for (const r of results.filter((x) => x.status !== 200)) expect(r.body.error).to.equal('invalid_grant');
  });

  it('requires PKCE S256 (plain and missing are refused) and exact redirect URIs', async () => {
    const ua = new UserAgent(idp.issuer);
    const base = { client_id: 'spa', response_type: 'code', scope: 'openid', redirect_uri: REDIRECT, state: 's' };
    const plain = await ua.request(`/auth?${new URLSearchParams({ ...base, code_challenge: 'a'.repeat(43), code_challenge_method: 'plain' })}`);
    expect(plain.status).to.equal(303);
    expect(new URL(plain.headers.get('location')!).searchParams.get('error')).to.equal('invalid_request');
    const missing = await ua.request(`/auth?${new URLSearchParams(base)}`);
    expect(new URL(missing.headers.get('location')!).searchParams.get('error')).to.equal('invalid_request');
    // a redirect_uri that differs in any way is never redirected to
    for (const uri of [`${REDIRECT}/`, `${REDIRECT}?x=1`, 'https://rp.example.test/CB', 'https://evil.example/cb']) {
      const r = await ua.request(`/auth?${new URLSearchParams({ ...base, redirect_uri: uri, code_challenge: 'a'.repeat(43), code_challenge_method: 'S256' })}`);
      expect(r.status, uri).to.equal(400);
      expect(r.headers.get('location')).to.equal(null);
    }
  });

  it('lets a public client log in with PKCE', async () => {
    const a = await authorize(publicRp, { scope: 'openid email' });
    const cb = new URL(await loginAndConsent(new UserAgent(idp.issuer), a.url));
    const tokens = await oidc.authorizationCodeGrant(publicRp, cb, { pkceCodeVerifier: a.verifier, expectedNonce: a.nonce, expectedState: a.state });
    expect(tokens.id_token).to.be.a('string');
  });

  it('issues RFC 9068 JWT access tokens for a resource server, and opaque ones by default', async () => {
    const svc = await oidc.discovery(new URL(idp.issuer), 'svc', secret, undefined, { execute: [oidc.allowInsecureRequests] });
    const jwt = await oidc.clientCredentialsGrant(svc, { resource: API, scope: 'api:read' });
    expect(decodeProtectedHeader(jwt.access_token).typ).to.equal('at+jwt');
    const jwks = createRemoteJWKSet(new URL(svc.serverMetadata().jwks_uri!));
    const { payload, protectedHeader } = await jwtVerify(jwt.access_token, jwks, { issuer: idp.issuer, audience: API, typ: 'at+jwt' });
    expect(protectedHeader.alg).to.equal('ES256');
    expect(payload.client_id).to.equal('svc');
    expect(payload.scope).to.equal('api:read');
    const unknown = await oidc.clientCredentialsGrant(svc, { resource: 'https://unknown.example.test', scope: 'x' }).then(() => null, (e) => e);
    expect(unknown?.error).to.equal('invalid_target');
  });

  it('shows one generic message for a wrong password and for an unknown user', async () => {
    const messages: string[] = [];
    for (const [login, password] of [[EMAIL, 'wrong password'], ['nobody@example.com', PASSWORD]]) {
      const ua = new UserAgent(idp.issuer);
      const a = await authorize(rp);
      const page = await ua.navigate(a.url.href);
      const form = readForm(await page.res.text());
      const res = await ua.request(form.action, { form: { ...form.fields, login, password } });
      expect(res.status).to.equal(401);
      const html = await res.text();
      const msg = /role="alert"[^>]*>([\s\S]*?)<\//.exec(html)?.[1]?.trim();
      messages.push(msg ?? '');
    }
    expect(messages[0]).to.be.a('string').and.not.equal('');
    expect(messages[0]).to.equal(messages[1]);
  });

  it('refuses a login form post without the CSRF token', async () => {
    const ua = new UserAgent(idp.issuer);
    const a = await authorize(rp);
    const page = await ua.navigate(a.url.href);
    const form = readForm(await page.res.text());
    const res = await ua.request(form.action, { form: { login: EMAIL, password: PASSWORD, csrf: 'forged' } });
    expect(res.status).to.equal(403);
    const html = await res.text();
    expect(html).to.not.match(/at \w+ \(|node_modules/);
  });

  it('sets httpOnly cookies and security headers on the pages', async () => {
    const ua = new UserAgent(idp.issuer);
    const a = await authorize(rp);
    const first = await ua.request(a.url.href);
    const cookies = first.headers.getSetCookie();
    expect(cookies.length).to.be.greaterThan(0);
    for (const c of cookies) expect(c.toLowerCase()).to.contain('httponly');
    const page = await ua.navigate(a.url.href);
    expect(page.res.headers.get('content-security-policy')).to.contain("frame-ancestors 'none'");
    expect(page.res.headers.get('cache-control')).to.contain('no-store');
  });
});
