import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import ejs from 'ejs';
import { expect } from 'chai';
import { describeClaims, describeScopes } from '../src/interactions/describe.ts';
import { viewLocals } from '../src/http/views.ts';

const viewsDir = fileURLToPath(new URL('../views/', import.meta.url));

const XSS = '<script>alert(1)</script>';
const XSS_ESCAPED = '&lt;script&gt;alert(1)&lt;/script&gt;';

/** the helpers every page gets (translation in English, no branding), then the test's locals */
const helpers = viewLocals('en');

async function renderView(view: string, locals: Record<string, unknown>): Promise<string> {
  return ejs.renderFile(path.join(viewsDir, `${view}.ejs`), { ...helpers, ...locals });
}

async function renderPage(
  view: string,
  locals: Record<string, unknown>,
  layout: Record<string, unknown> = { title: 'Test page' },
): Promise<string> {
  const body = await renderView(view, locals);
  return ejs.renderFile(path.join(viewsDir, 'layout.ejs'), { ...helpers, ...layout, body });
}

/** Renders with strict mode (no `with`), the other way an app may configure ejs. */
async function renderStrict(view: string, locals: Record<string, unknown>): Promise<string> {
  return ejs.renderFile(path.join(viewsDir, `${view}.ejs`), { ...helpers, ...locals }, { strict: true });
}

function loginLocals(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    action: '/interaction/abc/login',
    csrf: 'csrf-token-123',
    login: '',
    error: undefined,
    client: { name: 'Example App' },
    abortUrl: '/interaction/abc/abort',
    ...overrides,
  };
}

function consentLocals(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    action: '/interaction/abc/confirm',
    csrf: 'csrf-token-456',
    client: { name: 'Example App' },
    account: { display: 'alice@example.com' },
    scopes: describeScopes(['openid', 'profile', 'email', 'offline_access', 'api:read']),
    claims: describeClaims(['email_verified', 'birthdate']),
    resources: [],
    abortUrl: '/interaction/abc/abort',
    ...overrides,
  };
}

/** Cancel / Deny: a button of the page's button row that submits its own POST form #abort, carrying the CSRF token; no GET link */
function expectAbortButton(html: string, label: string, csrf: string): void {
  expect(html).to.match(new RegExp(`<button type="submit" class="button secondary" form="abort">${label}</button>`));
  const form = /<form method="post" action="\/interaction\/abc\/abort" id="abort"[^>]*>([\s\S]*?)<\/form>/.exec(html);
  expect(form, 'the abort form').to.not.equal(null);
  expect(form![1]).to.match(new RegExp(`<input type="hidden" name="csrf" value="${csrf}">`));
  expect(html).to.not.match(/<a [^>]*href="[^"]*abort/);
}

function inputTag(html: string, name: string): string {
  const match = html.match(new RegExp(`<input[^>]*\\bname="${name}"[^>]*>`));
  expect(match, `input named ${name}`).to.not.equal(null);
  return match![0];
}

describe('views', () => {
  describe('layout', () => {
    it('is an HTML5 page with lang, viewport, title, stylesheet and the body', async () => {
      const html = await renderPage('message', { heading: 'Hello', text: 'World' }, { title: 'Greeting', productName: 'Acme ID' });
      expect(html.startsWith('<!DOCTYPE html>')).to.equal(true);
      expect(html).to.include('<html lang="en" dir="ltr">');
      expect(html).to.match(/<meta name="viewport" content="[^"]+">/);
      expect(html).to.include('<title>Greeting · Acme ID</title>');
      expect(html).to.include('<link rel="stylesheet" href="/assets/idp.css">');
      expect(html).to.match(/<header[^>]*>[\s\S]*Acme ID[\s\S]*<\/header>/);
      expect(html).to.match(/<main[^>]*>[\s\S]*<h1>Hello<\/h1>[\s\S]*<\/main>/);
      expect(html).to.include('<footer');
    });

    it('defaults the product name to "Sign in" and escapes title and product name', async () => {
      const plain = await renderPage('message', { heading: 'x' }, {});
      expect(plain).to.include('<title>Sign in</title>');
      expect(plain).to.match(/<p class="product">Sign in<\/p>/);

      const html = await renderPage('message', { heading: 'x' }, { title: XSS, productName: XSS });
      expect(html).to.not.include(XSS);
      expect(html).to.include(XSS_ESCAPED);
    });

    it('loads nothing from other origins', async () => {
      const html = await renderPage('consent', consentLocals({
        client: { name: 'X', uri: 'https://client.example/', policyUri: 'https://client.example/p' },
      }));
      // Only links (<a href>) may point elsewhere; no src=, no external stylesheet or font.
      expect(html).to.not.match(/\ssrc=/);
      expect(html).to.not.match(/<link[^>]+href="https?:/);
      expect(html).to.not.match(/<script/i);
      expect(html).to.not.match(/style=/);
      const css = await readFile(path.join(viewsDir, 'assets', 'idp.css'), 'utf8');
      expect(css).to.not.match(/url\(|@import|@font-face/);
    });
  });

  describe('login', () => {
    it('has the login, password and csrf inputs and a submit button', async () => {
      const html = await renderPage('login', loginLocals());
      expect(html).to.match(/<form method="post" action="\/interaction\/abc\/login"/);
      const login = inputTag(html, 'login');
      expect(login).to.include('type="text"');
      expect(login).to.include('autocomplete="username"');
      expect(login).to.include('inputmode="email"');
      expect(login).to.include(' required');
      expect(login).to.include(' autofocus');
      const password = inputTag(html, 'password');
      expect(password).to.include('type="password"');
      expect(password).to.include('autocomplete="current-password"');
      expect(password).to.include(' required');
      const csrf = inputTag(html, 'csrf');
      expect(csrf).to.include('type="hidden"');
      expect(csrf).to.include('value="csrf-token-123"');
      expect(html).to.match(/<label for="login">Email or phone<\/label>/);
      expect(html).to.match(/<label for="password">Password<\/label>/);
      expect(html).to.match(/<button type="submit"[^>]*>Sign in<\/button>/);
      expectAbortButton(html, 'Cancel', 'csrf-token-123');
      expect(html.replace(/<[^>]+>/g, '')).to.include('Sign in to continue to Example App');
      expect(html).to.not.include('role="alert"');
    });

    it('shows the error in an alert above the form and prefills the login', async () => {
      const html = await renderPage('login', loginLocals({ error: 'Invalid email or password.', login: 'bob@example.com' }));
      const alertAt = html.indexOf('role="alert"');
      expect(alertAt).to.be.greaterThan(-1);
      expect(alertAt).to.be.lessThan(html.indexOf('<form'));
      expect(html).to.include('Invalid email or password.');
      expect(inputTag(html, 'login')).to.include('value="bob@example.com"');
      // With the login known, focus goes to the password field.
      expect(inputTag(html, 'login')).to.not.include('autofocus');
      expect(inputTag(html, 'password')).to.include('autofocus');
    });

    it('escapes the client name, login, error, csrf and URLs', async () => {
      const html = await renderPage('login', loginLocals({
        client: { name: XSS, logoUri: `javascript:${XSS}`, uri: XSS },
        login: `"><script>alert(2)</script>`,
        error: XSS,
        csrf: `"><script>alert(3)</script>`,
        action: `"><script>alert(4)</script>`,
        abortUrl: `"><script>alert(5)</script>`,
      }));
      expect(html).to.not.match(/<script/i);
      expect(html).to.include(XSS_ESCAPED);
      expect(html).to.include('&#34;&gt;&lt;script&gt;alert(2)');
    });

    it('renders without optional locals and in strict mode', async () => {
      const html = await renderStrict('login', { action: '/a', csrf: 'c', client: { name: 'App' }, abortUrl: '/b' });
      expect(inputTag(html, 'login')).to.include('value=""');
      expect(html).to.not.include('undefined');
    });
  });

  describe('consent', () => {
    it('lists every scope description, the account and the buttons', async () => {
      const locals = consentLocals();
      const html = await renderPage('consent', locals);
      const text = html.replace(/<[^>]+>/g, '');
      expect(text).to.include('Example App wants to:');
      for (const { description } of locals.scopes as Array<{ description: string }>) {
        expect(html).to.include(`>${description}</li>`);
      }
      expect(html).to.include('>Access api:read</li>');
      expect(html).to.include('>See whether your email address is verified</li>');
      expect(html).to.include('>See your date of birth</li>');
      expect(text).to.include('Signed in as alice@example.com');
      expect(inputTag(html, 'csrf')).to.include('value="csrf-token-456"');
      expect(html).to.match(/<form method="post" action="\/interaction\/abc\/confirm"/);
      expect(html).to.match(/<button type="submit"[^>]*>Allow<\/button>/);
      expectAbortButton(html, 'Deny', 'csrf-token-456');
    });

    it('does not repeat a claim already described by a scope', async () => {
      const html = await renderView('consent', consentLocals({
        scopes: describeScopes(['openid', 'email']),
        claims: describeClaims(['email', 'email_verified']),
      }));
      expect(html.split('>See your email address</li>').length - 1).to.equal(1);
      expect(html).to.include('>See whether your email address is verified</li>');
    });

    it('links the privacy policy and terms with rel="noopener noreferrer" only when present', async () => {
      const none = await renderView('consent', consentLocals());
      expect(none).to.not.include('Privacy policy');
      expect(none).to.not.include('Terms of service');

      const html = await renderView('consent', consentLocals({
        client: {
          name: 'Example App',
          uri: 'https://app.example/',
          policyUri: 'https://app.example/privacy',
          tosUri: 'https://app.example/terms',
        },
      }));
      for (const href of ['https://app.example/', 'https://app.example/privacy', 'https://app.example/terms']) {
        expect(html).to.match(new RegExp(`<a href="${href}"[^>]*rel="noopener noreferrer"`));
      }
      expect(html).to.include('Privacy policy');
      expect(html).to.include('Terms of service');
    });

    it('never links non-http(s) client URLs', async () => {
      const html = await renderView('consent', consentLocals({
        client: { name: 'X', uri: 'javascript:alert(1)', policyUri: 'data:text/html,hi', tosUri: 'JAVASCRIPT:alert(2)' },
      }));
      expect(html).to.not.match(/javascript:|data:/i);
    });

    it('lists resources with their scopes', async () => {
      const html = await renderView('consent', consentLocals({
        resources: [{ indicator: 'https://api.example/', scopes: ['api:read', 'api:write'] }],
      }));
      expect(html).to.include('https://api.example/');
      expect(html).to.include('<code>api:read</code>');
      expect(html).to.include('<code>api:write</code>');
    });

    it('escapes client-supplied values', async () => {
      const html = await renderPage('consent', consentLocals({
        client: { name: XSS, uri: `https://x.example/"><script>alert(1)</script>` },
        account: { display: XSS },
        scopes: [{ name: XSS, description: XSS }],
        claims: [{ name: 'c', description: `<img src=x onerror=alert(1)>` }],
        resources: [{ indicator: XSS, scopes: [XSS] }],
      }));
      expect(html).to.not.match(/<script/i);
      expect(html).to.not.include('<img');
      expect(html).to.include(XSS_ESCAPED);
    });

    it('renders in strict mode', async () => {
      const html = await renderStrict('consent', consentLocals());
      expect(html).to.include('Allow');
    });
  });

  describe('error', () => {
    it('shows the description, the error code and the request id, and no stack trace', async () => {
      const err = new Error('database exploded');
      const html = await renderPage('error', {
        error: 'invalid_request',
        description: 'The redirect_uri is not registered for this client.',
        requestId: 'req-7f3a9c',
        status: 400,
        // Things a careless caller might pass along; none of them may be printed.
        stack: err.stack,
        err,
      });
      const text = html.replace(/<[^>]+>/g, '');
      expect(html).to.include('<h1>Something went wrong</h1>');
      expect(html).to.include('The redirect_uri is not registered for this client.');
      expect(html).to.include('<code>invalid_request</code>');
      expect(text).to.include('Reference: req-7f3a9c');
      expect(html).to.not.include('database exploded');
      expect(html).to.not.match(/\bat .+:\d+:\d+/);
      expect(html).to.not.include('views.test.ts');
    });

    it('has a specific heading for 503 and works without optional locals', async () => {
      const html = await renderPage('error', { error: 'temporarily_unavailable', status: 503 });
      expect(html).to.include('The service is temporarily unavailable — please try again in a moment');
      expect(html).to.not.include('Something went wrong');
      expect(html).to.not.include('Reference:');
      expect(html).to.not.include('undefined');
    });

    it('escapes every value', async () => {
      const html = await renderView('error', { error: XSS, description: XSS, requestId: XSS, status: 500 });
      expect(html).to.not.match(/<script/i);
      expect(html.split(XSS_ESCAPED).length - 1).to.equal(3);
    });

    it('renders in strict mode', async () => {
      const html = await renderStrict('error', { error: 'server_error', status: 500 });
      expect(html).to.include('<code>server_error</code>');
    });
  });

  describe('message', () => {
    it('shows the heading and text, escaped', async () => {
      const html = await renderPage('message', { heading: 'You are signed out', text: XSS });
      expect(html).to.include('<h1>You are signed out</h1>');
      expect(html).to.include(XSS_ESCAPED);
      expect(html).to.not.include(XSS);
    });
  });

  describe('logout', () => {
    const form = '<form id="op.logoutForm" method="post" action="/session/end/confirm"><input type="hidden" name="xsrf" value="s3cr3t"/></form>';

    it('includes the oidc-provider form and the two buttons', async () => {
      const html = await renderPage('logout', { form, clientName: 'Example App' });
      expect(html).to.include(form);
      expect(html.replace(/<[^>]+>/g, '')).to.include('Do you want to sign out of Example App?');
      expect(html).to.match(/<button type="submit" form="op\.logoutForm" value="yes" name="logout"[^>]*>Yes, sign me out<\/button>/);
      expect(html).to.match(/<button type="submit" form="op\.logoutForm"(?![^>]*name=)[^>]*>Stay signed in<\/button>/);
    });

    it('works without a client name and escapes it when given', async () => {
      const plain = await renderView('logout', { form });
      expect(plain).to.include('Do you want to sign out?');
      expect(plain).to.not.include('undefined');

      const html = await renderView('logout', { form, clientName: XSS });
      expect(html).to.not.include(XSS);
      expect(html).to.include(XSS_ESCAPED);
    });
  });
});

describe('describe', () => {
  describe('describeScopes', () => {
    it('describes the standard OIDC scopes in plain words', () => {
      expect(describeScopes(['openid', 'profile', 'email', 'phone', 'address', 'offline_access'])).to.deep.equal([
        { name: 'openid', description: 'Confirm your identity' },
        { name: 'profile', description: 'See your name and basic profile' },
        { name: 'email', description: 'See your email address' },
        { name: 'phone', description: 'See your phone number' },
        { name: 'address', description: 'See your postal address' },
        { name: 'offline_access', description: 'Stay signed in and access your data when you are not using the app' },
      ]);
    });

    it('keeps every requested scope, in order, and names unknown ones', () => {
      const out = describeScopes(['api:write', 'openid', 'api:write', 'constructor', '__proto__']);
      expect(out.map((s) => s.name)).to.deep.equal(['api:write', 'openid', 'constructor', '__proto__']);
      expect(out[0].description).to.equal('Access api:write');
      expect(out[2].description).to.equal('Access constructor');
      expect(out[3].description).to.equal('Access __proto__');
    });

    it('returns an empty list for no scopes', () => {
      expect(describeScopes([])).to.deep.equal([]);
    });
  });

  describe('describeClaims', () => {
    it('describes the standard claims', () => {
      const names = [
        'sub', 'name', 'given_name', 'family_name', 'middle_name', 'nickname', 'preferred_username',
        'profile', 'picture', 'website', 'email', 'email_verified', 'gender', 'birthdate', 'zoneinfo',
        'locale', 'phone_number', 'phone_number_verified', 'address', 'updated_at',
      ];
      const out = describeClaims(names);
      expect(out.map((c) => c.name)).to.deep.equal(names);
      for (const c of out) {
        expect(c.description, c.name).to.not.match(/^Access /);
        expect(c.description, c.name).to.match(/^[A-Z]/);
      }
      expect(out.find((c) => c.name === 'email')!.description).to.equal('See your email address');
      expect(out.find((c) => c.name === 'email_verified')!.description).to.equal('See whether your email address is verified');
    });

    it('names unknown claims', () => {
      expect(describeClaims(['https://example.com/claims/groups'])).to.deep.equal([
        { name: 'https://example.com/claims/groups', description: 'Access https://example.com/claims/groups' },
      ]);
    });
  });
});
