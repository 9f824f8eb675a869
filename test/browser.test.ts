// A real browser (Debian's Chromium, driven by playwright-core) signs in
// through the login and consent pages and lands on the relying party's
// callback: proves the pages work without JavaScript tricks, that CSP and
// cookies let the redirect chain through, and that the RP can redeem the code.
import { expect } from 'chai';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { type Browser } from 'playwright-core';
import * as oidc from 'openid-client';
import { launchChromium } from './support/browser.ts';
import { startTestIdp, type TestIdp } from './support/idp.ts';


describe('sign-in in a real browser', function () {
  this.timeout(90_000);
  let idp: TestIdp;
  let browser: Browser;
  let rpServer: http.Server;
  let callbackUrl: string;
  const hits: string[] = [];

  before(async function () {
    rpServer = http.createServer((req, res) => {
      hits.push(req.url!);
      res.setHeader('content-type', 'text/html');
      res.end('<!doctype html><title>RP</title><h1>back at the app</h1>');
    });
    await new Promise<void>((r) => rpServer.listen(0, '127.0.0.1', () => r()));
    callbackUrl = `http://127.0.0.1:${(rpServer.address() as AddressInfo).port}/cb`;
    idp = await startTestIdp();
    await idp.cli('clients', 'add', '--id', 'browser-app', '--secret', 'browser-secret-0123456789abcdefghij', '--name', 'Browser App', '--redirect-uri', callbackUrl);
    await idp.cli('users', 'add', '--email', 'lin@example.com', '--password', 'browser passphrase 77', '--name', 'Lin', '--email-verified');
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
    await idp?.close();
    rpServer?.close();
  });

  it('logs in, consents, and returns to the app with a code the app can redeem', async () => {
    const rp = await oidc.discovery(new URL(idp.issuer), 'browser-app', 'browser-secret-0123456789abcdefghij', undefined, { execute: [oidc.allowInsecureRequests] });
    const verifier = oidc.randomPKCECodeVerifier();
    const state = oidc.randomState();
    const url = oidc.buildAuthorizationUrl(rp, {
      redirect_uri: callbackUrl, scope: 'openid email profile', state,
      code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256',
    });
    const page = await browser.newPage();
    const violations: string[] = [];
    page.on('console', (m) => { if (/Content Security Policy|Refused/i.test(m.text())) violations.push(m.text()); });

    await page.goto(url.href);
    await page.getByLabel('Email or phone').fill('lin@example.com');
    await page.getByLabel('Password').fill('wrong password');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expect(await page.getByRole('alert').textContent()).to.match(/incorrect/i);

    await page.getByLabel('Password').fill('browser passphrase 77');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForSelector('text=wants to');
    expect(await page.content()).to.contain('Browser App');
    await page.screenshot({ path: `${idp.env.DATA_DIR}/consent.png` });
    await page.getByRole('button', { name: 'Allow' }).click();
    await page.waitForURL((u) => u.href.startsWith(callbackUrl));

    expect(violations).to.deep.equal([]);
    const landed = new URL(page.url());
    expect(landed.searchParams.get('state')).to.equal(state);
    const tokens = await oidc.authorizationCodeGrant(rp, landed, { pkceCodeVerifier: verifier, expectedState: state });
    const me = await oidc.fetchUserInfo(rp, tokens.access_token, tokens.claims()!.sub);
    expect(me.email).to.equal('lin@example.com');

    // cookies the browser holds from the IdP are httpOnly
    const cookies = await page.context().cookies(idp.issuer);
    expect(cookies.length).to.be.greaterThan(0);
    for (const c of cookies) expect(c.httpOnly, c.name).to.equal(true);
  });

  it('Cancel (sign-in page, fields left empty) and Deny (consent page) post their forms and return access_denied to the app', async () => {
    const rp = await oidc.discovery(new URL(idp.issuer), 'browser-app', 'browser-secret-0123456789abcdefghij', undefined, { execute: [oidc.allowInsecureRequests] });
    // prompt=consent: lin's consent from the test above is remembered, and Deny needs the consent page
    const authorize = async (state: string) => oidc.buildAuthorizationUrl(rp, {
      redirect_uri: callbackUrl, scope: 'openid email', state, prompt: 'consent',
      code_challenge: await oidc.calculatePKCECodeChallenge(oidc.randomPKCECodeVerifier()), code_challenge_method: 'S256',
    }).href;
    const expectDenied = (url: string, state: string) => {
      const landed = new URL(url);
      expect(landed.searchParams.get('error')).to.equal('access_denied');
      expect(landed.searchParams.get('state')).to.equal(state);
      expect(landed.searchParams.get('code')).to.equal(null);
    };

    const page = await browser.newPage();
    const posts: string[] = [];
    page.on('request', (r) => { if (r.url().endsWith('/abort')) posts.push(r.method()); });
    await page.goto(await authorize('cancel-1'));
    await page.getByRole('button', { name: 'Cancel' }).click();
    await page.waitForURL((u) => u.href.startsWith(callbackUrl));
    expectDenied(page.url(), 'cancel-1');

    const consentPage = await browser.newPage();
    consentPage.on('request', (r) => { if (r.url().endsWith('/abort')) posts.push(r.method()); });
    await consentPage.goto(await authorize('deny-1'));
    await consentPage.getByLabel('Email or phone').fill('lin@example.com');
    await consentPage.getByLabel('Password').fill('browser passphrase 77');
    await consentPage.getByRole('button', { name: 'Sign in' }).click();
    await consentPage.waitForSelector('text=wants to');
    await consentPage.getByRole('button', { name: 'Deny' }).click();
    await consentPage.waitForURL((u) => u.href.startsWith(callbackUrl));
    expectDenied(consentPage.url(), 'deny-1');
    expect(posts).to.deep.equal(['POST', 'POST']);
  });
});
