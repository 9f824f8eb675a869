// Cancel / Deny on the interaction pages (login, consent, MFA) against the
// running IdP: the abort is a form POST carrying the interaction's CSRF
// token. With the right token the RP gets error=access_denied; without it, or
// with a wrong one, nothing is cancelled and the sign-in goes on; a GET on the
// abort URL (a link or an image on another site) cancels nothing either.
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { startTestIdp, tempDir, type TestIdp } from './support/idp.ts';
import { UserAgent, readForm } from './support/user-agent.ts';

const REDIRECT = 'https://rp.example.test/cb';
const EMAIL = 'abe@example.com';
const PASSWORD = 'correct horse battery staple 42';

describe('Cancel and Deny: a POST with the CSRF token', function () {
  this.timeout(60_000);
  let idp: TestIdp;

  before(async () => {
    // `strict` asks for a second factor on every login (its mfa_policy), to reach the MFA page
    const seed = path.join(tempDir('idp-abort-seed-'), 'seed.json');
    fs.writeFileSync(seed, JSON.stringify({
      clients: [{
        client_id: 'strict', token_endpoint_auth_method: 'none', redirect_uris: [REDIRECT], grant_types: ['authorization_code'],
        response_types: ['code'], first_party: true, mfa_policy: 'required',
      }],
    }));
    idp = await startTestIdp({ SEED_FILE: seed });
    await idp.cli('clients', 'add', '--id', 'app', '--public', '--redirect-uri', REDIRECT, '--grant-types', 'authorization_code');
    await idp.cli('users', 'add', '--email', EMAIL, '--password', PASSWORD, '--email-verified');
  });

  after(async () => {
    await idp?.close();
  });

  function authorizeUrl(clientId = 'app', state = 'st-' + Math.random().toString(36).slice(2)): { url: string; state: string } {
    const u = new URL('/auth', idp.issuer);
    u.search = new URLSearchParams({
      client_id: clientId, response_type: 'code', redirect_uri: REDIRECT, scope: 'openid email', state, prompt: 'consent',
      code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuX_tkOKj8M', code_challenge_method: 'S256',
    }).toString();
    return { url: u.href, state };
  }

  /** opens an authorization: the login page's html, with its sign-in form */
  async function loginPage(ua: UserAgent, clientId?: string) {
    const a = authorizeUrl(clientId);
    const step = await ua.navigate(a.url);
    expect(step.res.status).to.equal(200);
    const html = await step.res.text();
    expect(html).to.contain('name="password"');
    return { ...a, html, uid: /\/interaction\/([^/]+)\//.exec(readForm(html).action)![1] };
  }

  function expectDenied(offsite: string | undefined, state: string) {
    expect(offsite, 'back at the RP').to.be.a('string');
    const cb = new URL(offsite!);
    expect(cb.origin + cb.pathname).to.equal(REDIRECT);
    expect(cb.searchParams.get('error')).to.equal('access_denied');
    expect(cb.searchParams.get('state')).to.equal(state);
    expect(cb.searchParams.get('code')).to.equal(null);
  }

  /** completes the sign-in from the login page: password, then consent; returns the RP's callback */
  async function completeLogin(ua: UserAgent, html: string): Promise<URL> {
    const login = readForm(html);
    let step = await ua.navigate(login.action, { form: { ...login.fields, login: EMAIL, password: PASSWORD } });
    const consentHtml = await step.res.text();
    expect(consentHtml, 'consent page').to.contain('wants to');
    const consent = readForm(consentHtml);
    step = await ua.navigate(consent.action, { form: consent.fields });
    expect(step.offsite, 'back at the RP').to.be.a('string');
    return new URL(step.offsite!);
  }

  it('Cancel on the login page, with the token, sends the RP error=access_denied', async () => {
    const ua = new UserAgent(idp.issuer);
    const p = await loginPage(ua);
    const abort = readForm(p.html, 'abort');
    expect(abort.action).to.equal(`/interaction/${p.uid}/abort`);
    expect(abort.fields).to.deep.equal({ csrf: readForm(p.html).fields.csrf });
    const res = await ua.request(abort.action, { form: abort.fields });
    expect(res.status).to.equal(303);
    const step = await ua.navigate(res.headers.get('location')!);
    expectDenied(step.offsite, p.state);
  });

  it('Deny on the consent page, with the token, sends the RP error=access_denied', async () => {
    const ua = new UserAgent(idp.issuer);
    const p = await loginPage(ua);
    const login = readForm(p.html);
    const step = await ua.navigate(login.action, { form: { ...login.fields, login: EMAIL, password: PASSWORD } });
    const html = await step.res.text();
    expect(html).to.contain('wants to').and.contain('>Deny</button>');
    const deny = readForm(html, 'abort');
    const denied = await ua.navigate(deny.action, { form: deny.fields });
    expectDenied(denied.offsite, p.state);
  });

  it('Cancel sign-in on the MFA page, with the token, sends the RP error=access_denied', async () => {
    const ua = new UserAgent(idp.issuer);
    const p = await loginPage(ua, 'strict');
    const login = readForm(p.html);
    const step = await ua.navigate(login.action, { form: { ...login.fields, login: EMAIL, password: PASSWORD } });
    const html = await step.res.text();
    expect(html).to.contain('id="mfa-enrol"').and.contain('>Cancel sign-in</button>');
    const cancel = readForm(html, 'abort');
    expect(cancel.action).to.equal(`/interaction/${p.uid}/abort`);
    const denied = await ua.navigate(cancel.action, { form: cancel.fields });
    expectDenied(denied.offsite, p.state);
  });

  it('refuses a POST without the token or with a wrong one, and the sign-in still works afterwards', async () => {
    const ua = new UserAgent(idp.issuer);
    const p = await loginPage(ua);
    const abort = readForm(p.html, 'abort');
    const right = abort.fields.csrf;
    const forged = right.slice(0, -2) + (right.endsWith('AA') ? 'BB' : 'AA');
    const forms: Array<Record<string, string>> = [{}, { csrf: '' }, { csrf: 'forged' }, { csrf: forged }];
    for (const form of forms) {
      const res = await ua.request(abort.action, { method: 'POST', form });
      expect(res.status, JSON.stringify(form)).to.equal(403);
      expect(res.headers.get('location')).to.equal(null);
      const html = await res.text();
      expect(html).to.contain('This form has expired. Go back and try again.');
      expect(html).to.not.match(/at \w+ \(|node_modules|access_denied/);
    }
    // another browser, holding the page's token but not its cookies, cannot cancel it either
    const stranger = await new UserAgent(idp.issuer).request(abort.action, { form: abort.fields });
    expect(stranger.status).to.be.within(400, 499);
    expect(stranger.headers.get('location')).to.equal(null);
    // nothing was cancelled: the same interaction signs in and the RP gets a code
    const cb = await completeLogin(ua, p.html);
    expect(cb.searchParams.get('error')).to.equal(null);
    expect(cb.searchParams.get('code')).to.be.a('string');
    expect(cb.searchParams.get('state')).to.equal(p.state);
  });

  it('a GET on the abort URL cancels nothing: 405, no stack trace, and the login still completes', async () => {
    const ua = new UserAgent(idp.issuer);
    const p = await loginPage(ua);
    for (const accept of ['text/html', 'application/json']) {
      const res = await ua.request(`/interaction/${p.uid}/abort`, { headers: { accept } });
      expect(res.status).to.equal(405);
      expect(res.headers.get('allow')).to.equal('POST');
      expect(res.headers.get('location')).to.equal(null);
      const body = await res.text();
      expect(body).to.contain('To cancel, use the Cancel button on the sign-in page.');
      expect(body).to.not.match(/at \w+ \(|node_modules|access_denied/);
    }
    const cb = await completeLogin(ua, p.html);
    expect(cb.searchParams.get('error')).to.equal(null);
    expect(cb.searchParams.get('code')).to.be.a('string');
  });
});
