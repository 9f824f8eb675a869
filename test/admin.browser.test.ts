// The admin console in a real browser (Debian's Chromium, test/support/browser.ts):
// an admin signs in with TOTP (set up on the way, codes from otplib), registers a
// client, finds a user by e-mail, disables and unlocks them, revokes their
// session, and reads the audit log; then sends kim a password reset, which
// kim uses in her own browser ("I already have a code"); no CSP violation
// anywhere. A screenshot of
// each page goes to SCREENSHOT_DIR (default .test-data/screenshots/admin-*.png).
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { generate } from 'otplib';
import type { Browser, Page } from 'playwright-core';
import { launchChromium } from './support/browser.ts';
import { startTestIdp, type TestIdp } from './support/idp.ts';
import { UserAgent } from './support/user-agent.ts';
import { addClient, authorizeUrl, signIn, succeeded, waitForCode } from './support/lockout.ts';

const SHOTS = process.env.SCREENSHOT_DIR ?? path.resolve('.test-data/screenshots');
const PASSWORD = 'a long enough passphrase 33';

describe('admin console in a browser', function () {
  this.timeout(120_000);
  let idp: TestIdp;
  let browser: Browser;
  let page: Page;
  let kim: string;
  const violations: string[] = [];
  const shot = (name: string) => page.screenshot({ path: path.join(SHOTS, `admin-${name}.png`), fullPage: true });

  before(async () => {
    fs.mkdirSync(SHOTS, { recursive: true });
    idp = await startTestIdp({ LOCKOUT_MAX_FAILURES: '3', LOCKOUT_ACCOUNT_IP_MAX_FAILURES: '50', LOCKOUT_IP_MAX_FAILURES: '100' });
    await addClient(idp);
    const admin = (await idp.cli('users', 'add', '--email', 'ops@example.com', '--password', PASSWORD, '--email-verified') as { sub: string }).sub;
    await idp.cli('users', 'roles', 'add', '--sub', admin, '--role', 'admin');
    kim = (await idp.cli('users', 'add', '--email', 'kim@example.com', '--password', PASSWORD, '--email-verified') as { sub: string }).sub;
    // kim has a session (signed in to "app"), then gets locked out by three wrong passwords
    expect((await signIn(idp, new UserAgent(idp.issuer), 'kim@example.com', PASSWORD)).offsite).to.be.a('string');
    for (let i = 0; i < 3; i++) await signIn(idp, new UserAgent(idp.issuer), 'kim@example.com', 'not the password at all');
    expect((await idp.lockout.guard.state(kim)).locked).to.equal(true);
    browser = await launchChromium();
    page = await (await browser.newContext()).newPage();
    page.on('console', (m) => { if (/Content Security Policy|Refused/i.test(m.text())) violations.push(m.text()); });
  });

  after(async () => {
    await browser?.close();
    await idp?.close();
  });

  it('signs the admin in with TOTP (set up on the way)', async () => {
    await page.goto(`${idp.issuer}/admin`);
    await page.fill('input[name="login"]', 'ops@example.com');
    await page.fill('input[name="password"]', PASSWORD);
    await shot('1-login');
    await page.locator('form button[type="submit"]').first().click();
    await page.waitForSelector('#totp-secret');
    const secret = (await page.textContent('#totp-secret'))!.replace(/\s/g, '');
    await shot('2-totp');
    await page.fill('#mfa-enrol input[name="otp"]', await generate({ secret }));
    await page.locator('#mfa-enrol button[type="submit"]').click();
    await page.waitForSelector('#mfa-continue');
    await page.locator('#mfa-continue button[type="submit"]').click();
    await page.waitForURL(`${idp.issuer}/admin`);
    expect(await page.isVisible('nav.admin-nav')).to.equal(true);
    await shot('3-home');
  });

  it('registers a client; its secret is shown once', async () => {
    await page.goto(`${idp.issuer}/admin/clients/new`);
    await page.fill('#client_id', 'shop');
    await page.fill('#client_name', 'Shop');
    await page.fill('#redirect_uris', 'https://shop.example/cb');
    await shot('4-client-new');
    await page.locator('#client-form button[type="submit"]').click();
    await page.waitForSelector('#client-secret-value');
    expect((await page.textContent('#client-secret-value'))!.length).to.be.above(30);
    await shot('5-client-created');
    expect(await idp.admin.getClient('shop')).to.include({ client_name: 'Shop', has_secret: true });
    await page.goto(`${idp.issuer}/admin/clients`);
    expect(await page.textContent('#client-list')).to.contain('shop');
    await shot('6-clients');
  });

  it('finds the user by e-mail, disables and unlocks them, and revokes their session', async () => {
    await page.goto(`${idp.issuer}/admin/users`);
    await page.fill('#q', 'kim@example.com');
    await page.locator('#user-search button[type="submit"]').click();
    await page.waitForSelector(`#user-results a[href="/admin/users/${kim}"]`);
    await shot('7-user-search');
    await page.click(`#user-results a[href="/admin/users/${kim}"]`);
    await page.waitForSelector('#user-facts');
    expect(await page.textContent('#user-locked')).to.equal('Yes');
    await shot('8-user');

    await page.locator('#user-disable button').click();
    await page.waitForSelector('#admin-notice');
    expect(await page.textContent('#user-status')).to.equal('disabled');
    await shot('9-user-disabled');

    await page.locator('#user-unlock button').click();
    await page.waitForURL(/done=unlocked/);
    expect(await page.textContent('#user-locked')).to.equal('No');
    expect((await idp.lockout.guard.state(kim)).locked).to.equal(false);
    await shot('10-user-unlocked');

    const revoke = page.locator('form.session-revoke[id^="revoke-session-"] button');
    expect(await revoke.count()).to.equal(1);
    await revoke.click();
    await page.waitForURL(/done=revoked/);
    expect(await page.locator('form.session-revoke[id^="revoke-session-"]').count()).to.equal(0);
    await shot('11-session-revoked');
  });

  it('reads the audit log: every action above, newest first, with the admin as actor', async () => {
    await idp.events.settled();
    await page.goto(`${idp.issuer}/admin/audit`);
    await page.waitForSelector('#audit-events');
    const types = await page.locator('#audit-events tr.audit-event').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-type')));
    for (const t of ['client.created', 'user.disabled', 'account.unlocked', 'token.revoked']) expect(types, t).to.include(t);
    expect(types.indexOf('token.revoked')).to.be.below(types.indexOf('client.created'));
    await shot('12-audit');
    await page.fill('#subject', kim);
    await page.fill('#type', 'user.');
    await page.locator('#audit-filter button[type="submit"]').click();
    await page.waitForURL(/subject=/);
    const filtered = await page.locator('#audit-events tr.audit-event').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-type')));
    // newest first: the admin's disable, then the CLI's creation
    expect(filtered).to.deep.equal(['user.disabled', 'user.created']);
    await shot('13-audit-filtered');
  });

  it('sends kim a password reset; kim chooses a new password with the code in her own browser', async () => {
    await page.goto(`${idp.issuer}/admin/users/${kim}`);
    await page.locator('#user-enable button').click();
    await page.waitForURL(/done=enabled/);
    await page.locator('#user-password-reset button').click();
    await page.waitForURL(/done=reset-sent/);
    expect(await page.textContent('#admin-notice')).to.contain('reset code was sent');
    await shot('14-reset-sent');
    const code = await waitForCode(idp, 'kim@example.com', 'password-reset-admin');

    const kimsPage = await (await browser.newContext()).newPage();
    kimsPage.on('console', (m) => { if (/Content Security Policy|Refused/i.test(m.text())) violations.push(m.text()); });
    await kimsPage.goto(authorizeUrl(idp));
    await kimsPage.getByRole('link', { name: 'Forgot your password?' }).click();
    await kimsPage.getByRole('link', { name: 'I already have a code' }).click();
    await kimsPage.fill('input[name="email"]', 'kim@example.com');
    await kimsPage.fill('input[name="code"]', code);
    const NEW = 'she chose this passphrase herself';
    await kimsPage.fill('input[name="password"]', NEW);
    await kimsPage.fill('input[name="confirm"]', NEW);
    await kimsPage.screenshot({ path: path.join(SHOTS, 'admin-15-reset-code.png'), fullPage: true });
    await kimsPage.locator('form button[type="submit"]').first().click();
    await kimsPage.waitForLoadState();
    await kimsPage.screenshot({ path: path.join(SHOTS, 'admin-16-reset-done.png'), fullPage: true });
    expect(await kimsPage.textContent('h1')).to.equal('Password changed');
    await kimsPage.screenshot({ path: path.join(SHOTS, 'admin-16-reset-done.png'), fullPage: true });
    await kimsPage.context().close();
    expect(succeeded(await signIn(idp, new UserAgent(idp.issuer), 'kim@example.com', NEW))).to.equal(true);
    expect(violations).to.deep.equal([]);
  });
});
