// The pages' Content-Security-Policy against the three pages oidc-provider
// auto-submits with an inline script, in a real browser (Debian's Chromium):
// response_mode=form_post, signing in as someone else (the old session's
// logout is confirmed by an auto-submitted form), and end_session when the
// session is already gone. Each must reach the app; none may be blocked by
// our CSP, and no other script may run.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect } from 'chai';
import { type Browser, type Page } from 'playwright-core';
import * as oidc from 'openid-client';
import { launchChromium } from './support/browser.ts';
import { startTestIdp, type TestIdp } from './support/idp.ts';

const SECRET = 'csp-secret-0123456789abcdefghijklmn';

describe('CSP and oidc-provider\'s auto-submitted pages, in a real browser', function () {
  this.timeout(90_000);
  let idp: TestIdp;
  let browser: Browser;
  let rpServer: http.Server;
  let base: string;
  let rp: oidc.Configuration;
  const posts: Array<{ path: string; body: string }> = [];

  before(async () => {
    rpServer = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c) => { body += c; });
      req.on('end', () => {
        if (req.method === 'POST') posts.push({ path: req.url!, body });
        res.setHeader('content-type', 'text/html');
        res.end('<!doctype html><title>RP</title><h1>back at the app</h1>');
      });
    });
    await new Promise<void>((r) => rpServer.listen(0, '127.0.0.1', () => r()));
    base = `http://127.0.0.1:${(rpServer.address() as AddressInfo).port}`;
    idp = await startTestIdp({ MFA_POLICY: 'off' });
    await idp.cli('clients', 'add', '--id', 'csp-app', '--secret', SECRET, '--name', 'CSP App', '--first-party',
      '--redirect-uri', `${base}/cb`, '--post-logout-redirect-uri', `${base}/bye`);
    await idp.cli('users', 'add', '--email', 'a@example.com', '--password', 'csp passphrase one 1', '--email-verified');
    await idp.cli('users', 'add', '--email', 'b@example.com', '--password', 'csp passphrase two 2', '--email-verified');
    rp = await oidc.discovery(new URL(idp.issuer), 'csp-app', SECRET, undefined, { execute: [oidc.allowInsecureRequests] });
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
    await idp?.close();
    rpServer?.close();
  });

  async function newPage(): Promise<{ page: Page; violations: string[] }> {
    const page = await (await browser.newContext()).newPage();
    const violations: string[] = [];
    page.on('console', (m) => { if (/Content Security Policy|Refused/i.test(m.text())) violations.push(m.text()); });
    return { page, violations };
  }

  async function authorizeUrl(extra: Record<string, string> = {}) {
    const verifier = oidc.randomPKCECodeVerifier();
    const state = oidc.randomState();
    const url = oidc.buildAuthorizationUrl(rp, {
      redirect_uri: `${base}/cb`, scope: 'openid email', state,
      code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256', ...extra,
    });
    return { url: url.href, verifier, state };
  }

  async function signIn(page: Page, email: string, password: string) {
    await page.getByLabel('Email or phone').fill(email);
    await page.getByLabel('Password').fill(password);
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  }

  it('response_mode=form_post: the app receives its code by POST', async () => {
    const { page, violations } = await newPage();
    const a = await authorizeUrl({ response_mode: 'form_post' });
    await page.goto(a.url);
    await signIn(page, 'a@example.com', 'csp passphrase one 1');
    await page.waitForURL(`${base}/cb`);
    const got = new URLSearchParams(posts.at(-1)!.body);
    expect(posts.at(-1)!.path).to.equal('/cb');
    expect(got.get('state')).to.equal(a.state);
    expect(got.get('code')).to.be.a('string');
    expect(violations).to.deep.equal([]);
  });

  it('signing in as someone else (prompt=login): the old session\'s logout submits itself and the app gets the new user\'s code', async () => {
    const { page, violations } = await newPage();
    const first = await authorizeUrl();
    await page.goto(first.url);
    await signIn(page, 'a@example.com', 'csp passphrase one 1');
    await page.waitForURL((u) => u.href.startsWith(`${base}/cb`));
    const second = await authorizeUrl({ prompt: 'login' });
    await page.goto(second.url);
    await signIn(page, 'b@example.com', 'csp passphrase two 2');
    await page.waitForURL((u) => u.href.startsWith(`${base}/cb`), { timeout: 15_000 });
    const tokens = await oidc.authorizationCodeGrant(rp, new URL(page.url()), { pkceCodeVerifier: second.verifier, expectedState: second.state });
    const me = await oidc.fetchUserInfo(rp, tokens.access_token, tokens.claims()!.sub);
    expect(me.email).to.equal('b@example.com');
    expect(violations).to.deep.equal([]);
  });

  it('end_session with an id_token_hint when the session is already gone: back at the app\'s post-logout URI', async () => {
    const { page, violations } = await newPage();
    const a = await authorizeUrl();
    await page.goto(a.url);
    await signIn(page, 'a@example.com', 'csp passphrase one 1');
    await page.waitForURL((u) => u.href.startsWith(`${base}/cb`));
    const tokens = await oidc.authorizationCodeGrant(rp, new URL(page.url()), { pkceCodeVerifier: a.verifier, expectedState: a.state });
    await page.context().clearCookies();
    const end = oidc.buildEndSessionUrl(rp, { id_token_hint: tokens.id_token!, post_logout_redirect_uri: `${base}/bye`, state: 'gone' });
    await page.goto(end.href);
    await page.waitForURL((u) => u.href.startsWith(`${base}/bye`), { timeout: 15_000 });
    expect(new URL(page.url()).searchParams.get('state')).to.equal('gone');
    expect(violations).to.deep.equal([]);
  });

  it('every page forbids scripts except the exact hashes oidc-provider adds to its own', async () => {
    const res = await fetch(`${idp.issuer}/account`);
    const policy = res.headers.get('content-security-policy')!;
    expect(policy).to.contain("script-src 'none'").and.contain("default-src 'none'").and.contain("frame-ancestors 'none'");
    const json = await fetch(`${idp.issuer}/jwks`);
    expect(json.headers.get('content-security-policy')).to.equal(null);
  });
});
