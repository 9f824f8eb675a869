// The OpenID Foundation's logout plans for an OP against the running IdP:
// RP-Initiated Logout (oidcc-rp-initiated-logout-certification-test-plan) and
// Back-Channel Logout (oidcc-backchannel-rp-initiated-logout-certification-test-plan),
// each test named after the module it mirrors. As in the suite, every module
// signs in first, then sends the browser to the end_session_endpoint; the
// modules that expect a logout end with prompt=none, which must come back
// with an error that needs a user interface. The back-channel RP is an HTTP
// server on loopback that records what it receives. (The session-management
// and front-channel plans do not apply: plans.ts.)
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect } from 'chai';
import * as oidc from 'openid-client';
import { SignJWT, createRemoteJWKSet, decodeJwt, generateKeyPair, jwtVerify } from 'jose';
import { UserAgent } from '../support/user-agent.ts';
import { pageForms } from '../support/forms.ts';
import { recordModules } from './plans.ts';
import { POST_LOGOUT, authorization, expectErrorResponse, happyFlow, startOp, type Op } from './op.ts';

describe('conformance: RP-Initiated and Back-Channel Logout OP', function () {
  this.timeout(60_000);
  recordModules();
  let op: Op;
  let rpServer: http.Server;
  const received: Array<{ method?: string; contentType?: string; body: string }> = [];

  before(async () => {
    rpServer = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c) => { body += c; });
      req.on('end', () => {
        received.push({ method: req.method, contentType: req.headers['content-type'], body });
        res.setHeader('cache-control', 'no-store');
        res.end();
      });
    });
    await new Promise<void>((r) => rpServer.listen(0, '127.0.0.1', () => r()));
    const backchannel = `http://127.0.0.1:${(rpServer.address() as AddressInfo).port}/test/a/idp/backchannel_logout`;
    // oidc-provider's SSRF guard refuses loopback; OUTBOUND_ALLOW_LOOPBACK relaxes it, for loopback only (tests)
    op = await startOp([{ id: 'client1' }, { id: 'client-bc', backchannelLogoutUri: backchannel }], { OUTBOUND_ALLOW_LOOPBACK: 'true' });
  });

  after(async () => {
    await op?.close();
    rpServer?.close();
  });

  /** the suite's state for logout: 128 characters, to check the OP does not corrupt it */
  const longState = () => oidc.randomState().repeat(4).slice(0, 128);

  /**
   * Sends the browser to the end_session_endpoint and, when the OP asks the
   * user to confirm, confirms. Returns where the browser ended: back at the
   * RP (offsite), or on an OP page (status and HTML).
   */
  async function endSession(ua: UserAgent, params: Record<string, string>) {
    const url = new URL(op.rp('client1').serverMetadata().end_session_endpoint!);
    for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
    let step = await ua.navigate(url.href);
    let confirmed = false;
    if (!step.offsite) {
      const html = await step.res.text();
      const confirm = pageForms(html).find((f) => f.id === 'op.logoutForm');
      if (!confirm) return { status: step.res.status, html, confirmed };
      confirmed = true;
      step = await ua.navigate(confirm.action, { form: { ...Object.fromEntries(confirm.fields), logout: 'yes' } });
    }
    if (step.offsite) return { offsite: step.offsite, status: step.res.status, confirmed };
    return { status: step.res.status, html: await step.res.text(), confirmed };
  }

  /** prompt=none must now fail with an error that needs a user interface (CheckErrorFromAuthorizationEndpointIsOneThatRequiredAUserInterface) */
  async function expectLoggedOut(ua: UserAgent, clientId = 'client1') {
    const a = await authorization(op.rp(clientId), { prompt: 'none' });
    const step = await ua.navigate(a.url.href);
    expect(step.offsite, 'prompt=none comes straight back').to.be.a('string');
    const error = expectErrorResponse(new URL(step.offsite!), a, op.idp.issuer);
    expect(['login_required', 'interaction_required', 'consent_required', 'account_selection_required']).to.include(error);
  }

  /** prompt=none still succeeds: the session was not ended */
  async function expectStillLoggedIn(ua: UserAgent) {
    const a = await authorization(op.rp('client1'), { prompt: 'none' });
    const step = await ua.navigate(a.url.href);
    expect(new URL(step.offsite!).searchParams.get('code'), 'the session is still there').to.be.a('string');
  }

  /** an OP page that is an error or a question, and no redirect to the RP */
  function expectNoRedirect(r: Awaited<ReturnType<typeof endSession>>) {
    expect(r.offsite, 'the OP must not redirect back').to.equal(undefined);
    expect(r.html).to.match(/<main/);
  }

  describe('RP-Initiated OP', () => {
    it('oidcc-rp-initiated-logout-discovery-endpoint-verification: end_session_endpoint is published under the issuer', () => {
      expect(op.rp('client1').serverMetadata().end_session_endpoint).to.equal(`${op.idp.issuer}/session/end`);
    });

    it('oidcc-rp-initiated-logout: id_token_hint, post_logout_redirect_uri and a 128-character state: back to the RP with exactly that state; logged out', async () => {
      const { ua, tokens } = await happyFlow(op, 'client1');
      const state = longState();
      const r = await endSession(ua, { id_token_hint: tokens.id_token!, post_logout_redirect_uri: POST_LOGOUT, state });
      const back = new URL(r.offsite!);
      expect(back.origin + back.pathname).to.equal(POST_LOGOUT);
      // CheckPostLogoutState and CheckForUnexpectedParametersInPostLogoutRedirect
      expect([...back.searchParams]).to.deep.equal([['state', state]]);
      await expectLoggedOut(ua);
    });

    it('oidcc-rp-initiated-logout-bad-post-logout-redirect-uri: an unregistered post_logout_redirect_uri is never redirected to', async () => {
      const { ua, tokens } = await happyFlow(op, 'client1');
      const r = await endSession(ua, { id_token_hint: tokens.id_token!, post_logout_redirect_uri: `${POST_LOGOUT}/unregistered`, state: longState() });
      expectNoRedirect(r);
      expect(r.status).to.equal(400);
      expect(r.html).to.contain('post_logout_redirect_uri');
      await expectStillLoggedIn(ua);
    });

    it('oidcc-rp-initiated-logout-modified-id-token-hint: an id_token_hint changed to alg none is refused, no redirect', async () => {
      const { ua, tokens } = await happyFlow(op, 'client1');
      const [, payload] = tokens.id_token!.split('.');
      const modified = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${payload}.`;
      const r = await endSession(ua, { id_token_hint: modified, post_logout_redirect_uri: POST_LOGOUT, state: longState() });
      expectNoRedirect(r);
      expect(r.status).to.equal(400);
      expect(r.html).to.contain('id_token_hint');
      await expectStillLoggedIn(ua);
    });

    it('oidcc-rp-initiated-logout-no-id-token-hint: post_logout_redirect_uri without id_token_hint: the OP asks the user, and never redirects back', async () => {
      const { ua } = await happyFlow(op, 'client1');
      const r = await endSession(ua, { post_logout_redirect_uri: POST_LOGOUT, state: longState() });
      expectNoRedirect(r);
      expect(r.confirmed, 'the user confirmed the logout').to.equal(true);
      await expectLoggedOut(ua);
    });

    it('oidcc-rp-initiated-logout-no-params: no parameters: the user confirms and is logged out, on the OP\'s "signed out" page', async () => {
      const { ua } = await happyFlow(op, 'client1');
      const r = await endSession(ua, {});
      expectNoRedirect(r);
      expect(r.confirmed).to.equal(true);
      expect(r.status).to.equal(200);
      await expectLoggedOut(ua);
    });

    it('oidcc-rp-initiated-logout-no-post-logout-redirect-uri: id_token_hint and state only: logged out, on the OP\'s page', async () => {
      const { ua, tokens } = await happyFlow(op, 'client1');
      const r = await endSession(ua, { id_token_hint: tokens.id_token!, state: longState() });
      expectNoRedirect(r);
      expect(r.status).to.equal(200);
      await expectLoggedOut(ua);
    });

    it('oidcc-rp-initiated-logout-no-state: without state, back to the post_logout_redirect_uri with no parameters; logged out', async () => {
      const { ua, tokens } = await happyFlow(op, 'client1');
      const r = await endSession(ua, { id_token_hint: tokens.id_token!, post_logout_redirect_uri: POST_LOGOUT });
      expect(r.offsite).to.equal(POST_LOGOUT);
      await expectLoggedOut(ua);
    });

    it('oidcc-rp-initiated-logout-only-state: state only: logged out on the OP\'s page, no redirect', async () => {
      const { ua } = await happyFlow(op, 'client1');
      const r = await endSession(ua, { state: longState() });
      expectNoRedirect(r);
      expect(r.status).to.equal(200);
      await expectLoggedOut(ua);
    });

    it('oidcc-rp-initiated-logout-query-added-to-post-logout-redirect-uri: the registered URI plus ?foo=bar is not a registered URI: no redirect', async () => {
      const { ua, tokens } = await happyFlow(op, 'client1');
      const r = await endSession(ua, { id_token_hint: tokens.id_token!, post_logout_redirect_uri: `${POST_LOGOUT}?foo=bar`, state: longState() });
      expectNoRedirect(r);
      expect(r.status).to.equal(400);
      await expectStillLoggedIn(ua);
    });

    it('oidcc-rp-initiated-logout-bad-id-token-hint: an id_token_hint signed by someone else\'s key is refused, no redirect', async () => {
      const { ua, idToken } = await happyFlow(op, 'client1');
      const { privateKey } = await generateKeyPair('RS256');
      const forged = await new SignJWT({ sub: idToken.sub, aud: 'client1', iss: op.idp.issuer, sid: idToken.sid })
        .setProtectedHeader({ alg: 'RS256', kid: 'the-suite' }).setIssuedAt().setExpirationTime('5m').sign(privateKey);
      const r = await endSession(ua, { id_token_hint: forged, post_logout_redirect_uri: POST_LOGOUT, state: longState() });
      expectNoRedirect(r);
      expect(r.status).to.equal(400);
      await expectStillLoggedIn(ua);
    });
  });

  describe('Back-Channel OP', () => {
    it('oidcc-backchannel-logout-discovery-endpoint-verification: backchannel_logout_supported, backchannel_logout_session_supported and end_session_endpoint', () => {
      const md = op.rp('client-bc').serverMetadata();
      expect(md.backchannel_logout_supported).to.equal(true);
      expect(md.backchannel_logout_session_supported).to.equal(true);
      expect(md.end_session_endpoint).to.be.a('string');
    });

    it('oidcc-backchannel-rp-initiated-logout: the RP\'s backchannel_logout_uri receives a valid logout_token (signature, iss, aud, iat, jti, events, sid and sub of the ID token, no nonce); back to the RP with the state; logged out', async () => {
      received.length = 0;
      const { ua, tokens, idToken } = await happyFlow(op, 'client-bc');
      expect(idToken.sid, 'sid in the ID token (backchannel_logout_session_required)').to.be.a('string');
      const state = longState();
      const url = new URL(op.rp('client-bc').serverMetadata().end_session_endpoint!);
      url.search = new URLSearchParams({ id_token_hint: tokens.id_token!, post_logout_redirect_uri: POST_LOGOUT, state }).toString();
      let step = await ua.navigate(url.href);
      const confirm = pageForms(await step.res.text()).find((f) => f.id === 'op.logoutForm')!;
      step = await ua.navigate(confirm.action, { form: { ...Object.fromEntries(confirm.fields), logout: 'yes' } });
      expect([...new URL(step.offsite!).searchParams]).to.deep.equal([['state', state]]);
      for (let i = 0; i < 100 && received.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
      expect(received, 'one back-channel request').to.have.length(1);
      const req = received[0];
      expect(req.method).to.equal('POST');
      expect(req.contentType).to.match(/^application\/x-www-form-urlencoded/);
      const form = new URLSearchParams(req.body);
      // ExtractLogoutTokenFromBackchannelLogoutRequest, CheckForUnexpectedParametersInBackchannelLogoutRequest
      expect([...form.keys()]).to.deep.equal(['logout_token']);
      const logoutToken = form.get('logout_token')!;
      // ValidateLogoutTokenSignature, ValidateLogoutTokenClaims
      const jwks = createRemoteJWKSet(new URL(op.rp('client-bc').serverMetadata().jwks_uri!));
      const { payload } = await jwtVerify(logoutToken, jwks, { issuer: op.idp.issuer, audience: 'client-bc' });
      const now = Math.floor(Date.now() / 1000);
      expect(payload.iat).to.be.a('number').within(now - 86_400, now + 5);
      expect(payload.jti).to.be.a('string').with.length.greaterThan(0);
      expect(payload.events).to.deep.equal({ 'http://schemas.openid.net/event/backchannel-logout': {} });
      // CheckIdTokenSidMatchesLogoutToken, CheckIdTokenSubMatchesLogoutToken, CheckLogoutTokenNoNonce, CheckLogoutTokenHasSubOrSid
      expect(payload.sid).to.equal(idToken.sid);
      if (payload.sub !== undefined) expect(payload.sub).to.equal(idToken.sub);
      expect(payload.nonce).to.equal(undefined);
      expect(decodeJwt(logoutToken).sid ?? decodeJwt(logoutToken).sub).to.be.a('string');
      await expectLoggedOut(ua, 'client-bc');
    });
  });
});
