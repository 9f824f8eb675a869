// Federation in a real browser (Debian's Chromium, driven by playwright-core):
// the login page with its connection buttons, the upstream IdP (a second
// oidc-provider on 127.0.0.2), the linking step, consent, and back at the
// app with a code the app redeems for OUR account. Proves the pages, the
// CSP (a form that redirects to an upstream is a form-action), the cookies
// (the state cookie must survive the cross-site return) and the redirects
// work together. Screenshots go to SCREENSHOT_DIR (default .test-data/screenshots).
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { expect } from 'chai';
import { type Browser, type Page } from 'playwright-core';
import * as oidc from 'openid-client';
import { launchChromium } from './support/browser.ts';
import { startTestIdp, type TestIdp } from './support/idp.ts';
import { startUpstream, type Upstream } from './support/upstream.ts';
import { redirectUriFor } from '../src/federation/connections.ts';

const SHOTS = process.env.SCREENSHOT_DIR ?? path.resolve('.test-data/screenshots');
const SECRET = 'browser-secret-0123456789abcdefghij';
const PASSWORD = 'browser passphrase 77';

describe('federation in a real browser', function () {
  this.timeout(90_000);
  let idp: TestIdp;
  let corp: Upstream;
  let browser: Browser;
  let rpServer: http.Server;
  let callbackUrl: string;
  let rp: oidc.Configuration;

  before(async () => {
    fs.mkdirSync(SHOTS, { recursive: true });
    rpServer = http.createServer((_req, res) => {
      res.setHeader('content-type', 'text/html');
      res.end('<!doctype html><title>RP</title><h1>back at the app</h1>');
    });
    await new Promise<void>((r) => rpServer.listen(0, '127.0.0.1', () => r()));
    callbackUrl = `http://127.0.0.1:${(rpServer.address() as AddressInfo).port}/cb`;
    idp = await startTestIdp({ MFA_POLICY: 'off' });
    corp = await startUpstream({
      kind: 'oidc',
      clients: [{ client_id: 'our-idp', client_secret: 'upstream-secret-0123456789abcdef', redirect_uris: [redirectUriFor(idp.issuer, 'corp')] }],
      users: [
        { email: 'lin@corp.example', email_verified: true, name: 'Lin' },
        { email: 'sam@corp.example', email_verified: true, name: 'Sam' },
      ],
    });
    await idp.federation.connections.add({
      id: 'corp', name: 'Corp', clientId: 'our-idp', clientSecret: 'upstream-secret-0123456789abcdef', kind: 'oidc',
      issuer: corp.issuer, discoveryUrl: corp.discoveryUrl, domains: ['corp.example'], allowSignup: true, linking: 'prove',
    });
    await idp.cli('clients', 'add', '--id', 'browser-app', '--secret', SECRET, '--name', 'Browser App', '--redirect-uri', callbackUrl);
    await idp.cli('users', 'add', '--email', 'lin@corp.example', '--password', PASSWORD, '--name', 'Lin', '--email-verified');
    rp = await oidc.discovery(new URL(idp.issuer), 'browser-app', SECRET, undefined, { execute: [oidc.allowInsecureRequests] });
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
    await corp?.close();
    await idp?.close();
    rpServer?.close();
  });

  async function start(): Promise<{ page: Page; verifier: string; state: string; violations: string[] }> {
    const verifier = oidc.randomPKCECodeVerifier();
    const state = oidc.randomState();
    const url = oidc.buildAuthorizationUrl(rp, {
      redirect_uri: callbackUrl, scope: 'openid email profile', state,
      code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256',
    });
    const context = await browser.newContext();
    const page = await context.newPage();
    const violations: string[] = [];
    page.on('console', (m) => { if (/Content Security Policy|Refused/i.test(m.text())) violations.push(m.text()); });
    await page.goto(url.href);
    return { page, verifier, state, violations };
  }

  async function atUpstream(page: Page, email: string) {
    await page.waitForURL((u) => u.origin === corp.origin);
    await page.getByLabel('E-mail').fill(email);
    await page.getByRole('button', { name: 'Sign in' }).click();
  }

  async function backAtApp(page: Page, verifier: string, state: string) {
    await page.waitForURL((u) => u.href.startsWith(callbackUrl));
    const tokens = await oidc.authorizationCodeGrant(rp, new URL(page.url()), { pkceCodeVerifier: verifier, expectedState: state });
    return tokens.claims()!;
  }

  it('links an existing account through the upstream: button → upstream → prove with the password → consent → the app', async () => {
    const { page, verifier, state, violations } = await start();
    const button = page.getByRole('button', { name: 'Continue with Corp' });
    expect(await button.isVisible()).to.equal(true);
    await page.screenshot({ path: path.join(SHOTS, 'federation-login.png'), fullPage: true });
    await button.click();
    await atUpstream(page, 'lin@corp.example');
    await page.waitForSelector('text=Link your account');
    expect(await page.content()).to.contain('l•••@corp.example');
    await page.screenshot({ path: path.join(SHOTS, 'federation-link.png'), fullPage: true });
    await page.getByLabel('Password of this account').fill('wrong password 1234');
    await page.getByRole('button', { name: 'Link with password' }).click();
    expect(await page.getByRole('alert').textContent()).to.match(/not right/);
    await page.getByLabel('Password of this account').fill(PASSWORD);
    await page.getByRole('button', { name: 'Link with password' }).click();
    await page.waitForSelector('text=wants to');
    await page.getByRole('button', { name: 'Allow' }).click();
    const claims = await backAtApp(page, verifier, state);
    const lin = (await idp.cli('users', 'list') as Array<{ sub: string; hasPassword: boolean }>).find((u) => u.hasPassword);
    expect(claims.sub).to.equal(lin!.sub);
    expect(claims.amr).to.include('fed');
    expect(violations).to.deep.equal([]);
  });

  it('home-realm discovery: an e-mail of the served domain and no password goes to the upstream, and a new account signs in', async () => {
    const { page, verifier, state, violations } = await start();
    await page.getByLabel('Email or phone').fill('sam@corp.example');
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await atUpstream(page, 'sam@corp.example');
    await page.waitForSelector('text=wants to');
    await page.getByRole('button', { name: 'Allow' }).click();
    const claims = await backAtApp(page, verifier, state);
    expect(claims.sub).to.match(/^[0-9a-f-]{36}$/);
    expect(violations).to.deep.equal([]);
  });
});
