// Back-channel logout (OpenID Connect Back-Channel Logout 1.0): on
// RP-initiated logout, a relying party's backchannel_logout_uri (a test RP on
// loopback) receives a logout_token that verifies against our JWKS with the
// claims the spec requires; a delivery that fails is logged with its reason.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect } from 'chai';
import * as oidc from 'openid-client';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { startTestIdp, type TestIdp } from './support/idp.ts';
import { UserAgent, readForm } from './support/user-agent.ts';

const REDIRECT = 'https://rp.example.test/cb';
const SECRET = 'bc-secret-0123456789abcdefghijklmnop';
const PASSWORD = 'back channel passphrase 9';

describe('back-channel logout', function () {
  this.timeout(30_000);
  let idp: TestIdp;
  let rpServer: http.Server;
  let bcUrl: string;
  const received: Array<{ contentType?: string; body: string }> = [];

  before(async () => {
    rpServer = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c) => { body += c; });
      req.on('end', () => {
        received.push({ contentType: req.headers['content-type'], body });
        res.statusCode = 200;
        res.end();
      });
    });
    await new Promise<void>((r) => rpServer.listen(0, '127.0.0.1', () => r()));
    bcUrl = `http://127.0.0.1:${(rpServer.address() as AddressInfo).port}/backchannel`;
    // oidc-provider refuses to send to loopback (its SSRF guard): relaxed here, for loopback only
    idp = await startTestIdp({ MFA_POLICY: 'off', OUTBOUND_ALLOW_LOOPBACK: 'true' });
    await idp.cli('clients', 'add', '--id', 'bc-app', '--secret', SECRET, '--first-party', '--redirect-uri', REDIRECT,
      '--post-logout-redirect-uri', 'https://rp.example.test/bye', '--backchannel-logout-uri', bcUrl);
    await idp.cli('clients', 'add', '--id', 'bc-broken', '--secret', SECRET, '--first-party', '--redirect-uri', REDIRECT,
      '--backchannel-logout-uri', 'http://127.0.0.1:9/closed');
    await idp.cli('users', 'add', '--email', 'bc@example.com', '--password', PASSWORD, '--email-verified');
  });

  after(async () => {
    await idp?.close();
    rpServer?.close();
  });

  async function signIn(ua: UserAgent, clientId: string) {
    const rp = await oidc.discovery(new URL(idp.issuer), clientId, SECRET, undefined, { execute: [oidc.allowInsecureRequests] });
    const verifier = oidc.randomPKCECodeVerifier();
    const url = oidc.buildAuthorizationUrl(rp, { redirect_uri: REDIRECT, scope: 'openid', code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256' });
    const page = await ua.navigate(url.href);
    const form = readForm(await page.res.text());
    const done = await ua.navigate(form.action, { form: { ...form.fields, login: 'bc@example.com', password: PASSWORD } });
    const tokens = await oidc.authorizationCodeGrant(rp, new URL(done.offsite!), { pkceCodeVerifier: verifier, idTokenExpected: true });
    return { rp, tokens };
  }

  async function logout(ua: UserAgent, rp: oidc.Configuration, idToken: string) {
    const end = oidc.buildEndSessionUrl(rp, { id_token_hint: idToken });
    const confirm = await ua.navigate(end.href);
    const form = readForm(await confirm.res.text());
    await ua.navigate(form.action, { form: { ...form.fields, logout: 'yes' } });
  }

  it('delivers a logout_token that verifies against /jwks, with iss, aud, sub, sid, iat, jti and the logout event, and no nonce', async () => {
    const ua = new UserAgent(idp.issuer);
    const { rp, tokens } = await signIn(ua, 'bc-app');
    const sid = tokens.claims()!.sid;
    await logout(ua, rp, tokens.id_token!);
    for (let i = 0; i < 50 && received.length === 0; i++) await new Promise((r) => setTimeout(r, 50));
    expect(received).to.have.length(1);
    expect(received[0].contentType).to.match(/^application\/x-www-form-urlencoded/);
    const logoutToken = new URLSearchParams(received[0].body).get('logout_token')!;
    const { payload, protectedHeader } = await jwtVerify(logoutToken, createRemoteJWKSet(new URL(`${idp.issuer}/jwks`)), { issuer: idp.issuer, audience: 'bc-app' });
    expect(protectedHeader.typ).to.equal('logout+jwt');
    expect(payload.sub).to.equal(tokens.claims()!.sub);
    expect(payload.sid).to.equal(sid);
    expect(payload.events).to.deep.equal({ 'http://schemas.openid.net/event/backchannel-logout': {} });
    expect(payload.jti).to.be.a('string');
    expect(payload.iat).to.be.a('number');
    expect(payload).to.not.have.property('nonce');
  });

  it('without OUTBOUND_ALLOW_LOOPBACK the SSRF guard refuses a loopback back-channel URI (and says why in the log)', async () => {
    const guarded = await startTestIdp({ MFA_POLICY: 'off' });
    try {
      await guarded.cli('clients', 'add', '--id', 'bc-app', '--secret', SECRET, '--first-party', '--redirect-uri', REDIRECT, '--backchannel-logout-uri', bcUrl);
      await guarded.cli('users', 'add', '--email', 'bc@example.com', '--password', PASSWORD, '--email-verified');
      const before = received.length;
      const saved = idp;
      idp = guarded;
      try {
        const ua = new UserAgent(guarded.issuer);
        const { rp, tokens } = await signIn(ua, 'bc-app');
        await logout(ua, rp, tokens.id_token!);
      } finally {
        idp = saved;
      }
      let line: string | undefined;
      for (let i = 0; i < 60 && !line; i++) {
        line = guarded.logs.find((l) => /"event":"backchannel.error"/.test(l));
        if (!line) await new Promise((r) => setTimeout(r, 50));
      }
      expect(received.length).to.equal(before);
      expect(line).to.match(/special-use IP address/);
    } finally {
      await guarded.close();
    }
  });

  it('a delivery that fails is logged with the client and its reason', async () => {
    const ua = new UserAgent(idp.issuer);
    const { rp, tokens } = await signIn(ua, 'bc-broken');
    await logout(ua, rp, tokens.id_token!);
    let line: string | undefined;
    for (let i = 0; i < 60 && !line; i++) {
      line = idp.logs.find((l) => /"event":"backchannel.error"/.test(l));
      if (!line) await new Promise((r) => setTimeout(r, 50));
    }
    expect(line, 'a backchannel.error log line').to.be.a('string');
    const entry = JSON.parse(line!) as { clientId?: string; description?: string; cause?: string };
    expect(entry.clientId).to.equal('bc-broken');
    expect(`${entry.description} ${entry.cause ?? ''}`).to.match(/ECONNREFUSED|fetch failed|connect/i);
  });
});
