// Consent in a real browser (Debian's Chromium, driven by playwright-core):
// the consent screen with the client's logo (served over https to the
// browser by a route), its policy and terms links, a new scope beside what
// was allowed before, and an optional scope left unticked; then the account
// page's connected apps and "Remove access". Proves the pages work under the
// CSP (the logo is an https image) and without JavaScript. Screenshots of the
// consent screen and the connected-apps page go to SCREENSHOT_DIR (default
// .test-data/screenshots).
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { expect } from 'chai';
import { type Browser } from 'playwright-core';
import * as oidc from 'openid-client';
import { launchChromium } from './support/browser.ts';
import { startTestIdp, tempDir, type TestIdp } from './support/idp.ts';

const SHOTS = process.env.SCREENSHOT_DIR ?? path.resolve('.test-data/screenshots');
const SECRET = 'browser-secret-0123456789abcdefghij';
const PASSWORD = 'browser passphrase 77';
const LOGO = 'https://notes.example.test/logo.svg';
const LOGO_SVG = '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 64"><rect width="64" height="64" rx="14" fill="#0f766e"/>'
  + '<path d="M18 16h20l8 8v24H18z" fill="#fff"/><path d="M23 30h18M23 36h18M23 42h12" stroke="#0f766e" stroke-width="3"/></svg>';

describe('consent and connected apps in a real browser', function () {
  this.timeout(90_000);
  let idp: TestIdp;
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
    const seed = path.join(tempDir('idp-consent-browser-'), 'seed.json');
    fs.writeFileSync(seed, JSON.stringify({
      clients: [{
        client_id: 'notes', client_secret: SECRET, client_name: 'Notes', redirect_uris: [callbackUrl],
        grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'], token_endpoint_auth_method: 'client_secret_basic',
        logo_uri: LOGO, policy_uri: 'https://notes.example.test/privacy', tos_uri: 'https://notes.example.test/terms', optional_scopes: 'phone',
      }],
    }));
    idp = await startTestIdp({ SEED_FILE: seed, MFA_POLICY: 'off' });
    await idp.cli('users', 'add', '--email', 'lin@example.com', '--password', PASSWORD, '--name', 'Lin', '--email-verified', '--phone', '+14155550123');
    rp = await oidc.discovery(new URL(idp.issuer), 'notes', SECRET, undefined, { execute: [oidc.allowInsecureRequests] });
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
    await idp?.close();
    rpServer?.close();
  });

  it('shows the logo, links and only the new scope, leaves an optional one unticked, then lists and removes the app on the account page', async () => {
    const authorize = async (scope: string, state: string) => oidc.buildAuthorizationUrl(rp, {
      redirect_uri: callbackUrl, scope, state,
      code_challenge: await oidc.calculatePKCECodeChallenge(oidc.randomPKCECodeVerifier()), code_challenge_method: 'S256',
    }).href;
    const context = await browser.newContext({ viewport: { width: 520, height: 900 } });
    // the client's logo, as its https host would serve it
    await context.route(LOGO, (route) => route.fulfill({ status: 200, contentType: 'image/svg+xml', body: LOGO_SVG }));
    const page = await context.newPage();
    const violations: string[] = [];
    page.on('console', (m) => { if (/Content Security Policy|Refused/i.test(m.text())) violations.push(m.text()); });

    // first: sign in and allow e-mail
    await page.goto(await authorize('openid email', 's1'));
    await page.getByLabel('Email or phone').fill('lin@example.com');
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForSelector('text=wants to');
    await page.getByRole('button', { name: 'Allow' }).click();
    await page.waitForURL((u) => u.href.startsWith(callbackUrl));

    // then the app asks for more: only the new scopes, the optional one with a box
    await page.goto(await authorize('openid email profile phone', 's2'));
    await page.waitForSelector('text=wants to');
    const logo = page.locator('img.client-logo');
    expect(await logo.getAttribute('src')).to.equal(LOGO);
    expect(await logo.evaluate((img) => { const i = img as unknown as { complete: boolean; naturalWidth: number }; return i.complete && i.naturalWidth > 0; }), 'the logo loaded').to.equal(true);
    expect(await page.getByRole('link', { name: /Privacy policy/ }).getAttribute('href')).to.equal('https://notes.example.test/privacy');
    expect(await page.getByRole('link', { name: /Terms of service/ }).getAttribute('href')).to.equal('https://notes.example.test/terms');
    const asked = await page.locator('ul.permissions:not(.granted) li').allTextContents();
    expect(asked.map((t) => t.trim())).to.deep.equal(['See your name and basic profile', 'See your phone number optional']);
    expect((await page.locator('ul.granted li').allTextContents()).map((t) => t.trim())).to.deep.equal(['Confirm your identity', 'See your email address']);
    expect(await page.getByText('Signed in as').textContent()).to.contain('lin@example.com');
    await page.getByRole('button', { name: 'Not you?' }).waitFor();
    await page.screenshot({ path: path.join(SHOTS, 'consent-new-scope.png'), fullPage: true });
    await page.getByRole('checkbox').uncheck();
    await page.getByRole('button', { name: 'Allow' }).click();
    await page.waitForURL((u) => u.href.startsWith(callbackUrl));

    // the account page: the app, what it can see, Remove access
    await page.goto(`${idp.issuer}/account/login`);
    await page.waitForSelector('text=Connected apps');
    const app = page.locator('#apps li').first();
    expect(await app.locator('.device-label').textContent()).to.equal('Notes');
    expect((await app.locator('.app-access li').allTextContents())).to.deep.equal(['Confirm your identity', 'See your email address', 'See your name and basic profile']);
    expect(await app.locator('img.app-logo').evaluate((img) => { const i = img as unknown as { complete: boolean; naturalWidth: number }; return i.complete && i.naturalWidth > 0; })).to.equal(true);
    await page.screenshot({ path: path.join(SHOTS, 'connected-apps.png'), fullPage: true });
    await page.getByRole('button', { name: 'Remove access Notes' }).click();
    await page.waitForSelector('text=no longer has access');
    expect(await page.locator('#apps').textContent()).to.contain('None. Apps you allow');

    // the next sign-in to the app asks again
    await page.goto(await authorize('openid email', 's3'));
    await page.waitForSelector('text=wants to');
    expect(violations).to.deep.equal([]);
    for (const f of ['consent-new-scope.png', 'connected-apps.png']) expect(fs.statSync(path.join(SHOTS, f)).size).to.be.greaterThan(5000);
    await context.close();
  });
});
