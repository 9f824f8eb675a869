// The pages in a real browser (Debian's Chromium through playwright-core):
// the login page in French and in Arabic (right to left), and the branded
// landing page (product name, logo, primary colour through the generated
// stylesheet, with the strict CSP: no inline style, no CSP violation).
// Screenshots go to SCREENSHOT_DIR (default .test-data/screenshots).
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { type Browser, type Locator, type Page } from 'playwright-core';
import { launchChromium } from './support/browser.ts';
import { startTestIdp, type TestIdp } from './support/idp.ts';
import { authorizeUrl } from './support/lockout.ts';
import { translate } from '../src/http/i18n.ts';

const SHOTS = process.env.SCREENSHOT_DIR ?? path.resolve('.test-data/screenshots');
/** the browser's globals, in functions that run in the page (this project's TypeScript has no DOM types) */
interface Win {
  getComputedStyle(el: unknown): Record<string, string>;
  document: { createRange(): { selectNodeContents(n: unknown): void; getBoundingClientRect(): { x: number; width: number } } };
}
/** a computed style of the locator's element */
const style = (l: Locator, prop: string) => l.evaluate((el, p) => (globalThis as unknown as Win).getComputedStyle(el)[p], prop);

const LOGO = `data:image/svg+xml;base64,${Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><rect width="64" height="64" rx="14" fill="#0f766e"/><path d="M18 44 32 16l14 28z" fill="#fff"/></svg>').toString('base64')}`;

describe('pages in a real browser: languages and branding', function () {
  this.timeout(120_000);
  let idp: TestIdp;
  let browser: Browser;

  before(async () => {
    fs.mkdirSync(SHOTS, { recursive: true });
    idp = await startTestIdp({ BRAND_NAME: 'Acme ID', BRAND_PRIMARY_COLOR: '#0f766e', BRAND_LOGO_URL: LOGO });
    await idp.cli('clients', 'add', '--id', 'app', '--public', '--first-party', '--name', 'Acme Portal', '--redirect-uri', 'https://rp.example.test/cb', '--grant-types', 'authorization_code');
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
    await idp?.close();
  });

  async function open(url: string, locale?: string): Promise<{ page: Page; violations: string[] }> {
    const context = await browser.newContext({ ...(locale ? { locale } : {}), viewport: { width: 560, height: 900 } });
    const page = await context.newPage();
    const violations: string[] = [];
    page.on('console', (m) => { if (/Content Security Policy|Refused/i.test(m.text())) violations.push(m.text()); });
    await page.goto(url);
    return { page, violations };
  }

  const primaryButton = (page: Page) => style(page.locator('.button.primary').first(), 'backgroundColor');

  it('the login page in French (ui_locales)', async () => {
    const { page, violations } = await open(authorizeUrl(idp, { ui_locales: 'fr' }));
    expect(await page.getAttribute('html', 'lang')).to.equal('fr');
    await page.getByLabel(translate('fr', 'Email or phone')).waitFor();
    expect((await page.locator('h1').innerText()).replace(/\s+/g, ' ')).to.equal(`Se connecter ${translate('fr', 'to continue to {client}', { client: 'Acme Portal' })}`);
    expect(await page.getByRole('button', { name: 'Se connecter' }).isVisible()).to.equal(true);
    expect(await page.getByRole('link', { name: translate('fr', 'Forgot your password?') }).isVisible()).to.equal(true);
    expect(await primaryButton(page)).to.equal('rgb(15, 118, 110)');
    await page.screenshot({ path: path.join(SHOTS, 'login-fr.png'), fullPage: true });
    expect(violations).to.deep.equal([]);
    await page.context().close();
  });

  it('the login page in Arabic, right to left (the browser\'s language)', async () => {
    const { page, violations } = await open(authorizeUrl(idp), 'ar');
    expect(await page.getAttribute('html', 'dir')).to.equal('rtl');
    const label = page.getByText(translate('ar', 'Email or phone'), { exact: true });
    await label.waitFor();
    expect(await style(label, 'direction')).to.equal('rtl');
    // right to left: the label's text ends at the right edge of the form, far from its left edge
    const text = await label.evaluate((el) => {
      const range = (globalThis as unknown as Win).document.createRange();
      range.selectNodeContents(el);
      const r = range.getBoundingClientRect();
      return { x: r.x, width: r.width };
    });
    const formBox = (await page.locator('form.form').boundingBox())!;
    expect(formBox.x + formBox.width - (text.x + text.width)).to.be.below(2);
    expect(text.x - formBox.x).to.be.above(40);
    // the e-mail address typed stays readable: the field keeps its value
    await page.getByLabel(translate('ar', 'Email or phone')).fill('nour@example.com');
    await page.getByLabel(translate('ar', 'Password')).fill('wrong password here');
    await page.getByRole('button', { name: translate('ar', 'Sign in') }).click();
    const alert = page.locator('.alert');
    await alert.waitFor();
    expect(await alert.innerText()).to.equal(translate('ar', 'The email or password is incorrect.'));
    // the alert's thick border is on the right
    expect([await style(alert, 'borderRightWidth'), await style(alert, 'borderLeftWidth')]).to.deep.equal(['4px', '1px']);
    await page.screenshot({ path: path.join(SHOTS, 'login-ar.png'), fullPage: true });
    expect(violations).to.deep.equal([]);
    await page.context().close();
  });

  it('the branded landing page: product name, logo, primary colour, issuer and links', async () => {
    const { page, violations } = await open(`${idp.issuer}/`, 'en-GB');
    expect(await page.title()).to.equal('Sign-in service · Acme ID');
    expect(await page.locator('.site-header .product').innerText()).to.equal('Acme ID');
    const logo = page.locator('.site-header img.logo');
    expect(await logo.evaluate((img) => (img as { naturalWidth: number }).naturalWidth)).to.be.above(0);
    expect(await page.locator('#issuer').innerText()).to.equal(idp.issuer);
    expect(await page.getByRole('link', { name: `${idp.issuer}/.well-known/openid-configuration` }).getAttribute('href')).to.equal('/.well-known/openid-configuration');
    expect(await page.getByRole('link', { name: 'How to connect an application' }).getAttribute('href')).to.equal('/docs/openid-configuration.md');
    expect(await primaryButton(page)).to.equal('rgb(15, 118, 110)');
    // no inline style anywhere: the colour came from /assets/brand.css
    expect(await page.locator('[style]').count()).to.equal(0);
    expect(await page.locator('link[rel=stylesheet]').evaluateAll((ls) => ls.map((l) => new URL((l as unknown as { href: string }).href).pathname))).to.deep.equal(['/assets/idp.css', '/assets/brand.css']);
    await page.screenshot({ path: path.join(SHOTS, 'landing-branded.png'), fullPage: true });
    // the integrator guide behind the docs link
    const guide = await page.request.get(`${idp.issuer}/docs/openid-configuration.md`);
    expect(guide.status()).to.equal(200);
    expect(await guide.text()).to.match(/^# /);
    // an unknown address: the styled 404, with the way back
    await page.goto(`${idp.issuer}/nowhere`);
    expect(await page.locator('h1').innerText()).to.equal('Page not found');
    expect(await page.getByRole('link', { name: 'Go to the start page' }).getAttribute('href')).to.equal('/');
    await page.screenshot({ path: path.join(SHOTS, 'not-found.png'), fullPage: true });
    expect(violations).to.deep.equal([]);
    await page.context().close();
  });
});
