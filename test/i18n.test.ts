// Translations: English, French and Arabic (right to left), one catalogue per
// language (views/locales). No page may show an untranslated string:
//   - the catalogues hold the same keys, with the same placeholders;
//   - no template has text outside a translation call (nor in alt, title,
//     aria-label, placeholder), and every text a template translates is a key;
//   - every user-facing message made in code is a key, or a sentence made
//     from one (its pattern);
//   - every page, rendered in fr and ar, asks for no text the catalogues lack
//     and shows no English sentence of the catalogue;
//   - the language is ui_locales, then Accept-Language, then DEFAULT_LOCALE.
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { CATALOGUES, LOCALES, findKey, onMissingTranslation, pickLocale, translate, withRequestLanguage, type Locale } from '../src/http/i18n.ts';
import { createViews, VIEWS_DIR } from '../src/http/views.ts';
import { errorText } from '../src/http/error-text.ts';
import { describeClaims, describeScopes } from '../src/interactions/describe.ts';
import { startTestIdp, type TestIdp } from './support/idp.ts';
import { UserAgent, readForm } from './support/user-agent.ts';
import { authorizeUrl } from './support/lockout.ts';

const EN = CATALOGUES.en;
const placeholders = (s: string) => (s.match(/\{\w+\}/g) ?? []).sort();

/** visible text of a page: text nodes and the attributes people read, entities decoded */
function texts(html: string): string[] {
  const decode = (s: string) => s.replace(/&#(\d+);/g, (_, d) => String.fromCodePoint(Number(d))).replace(/&quot;/g, '"')
    .replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
  const body = html.replace(/<head>[\s\S]*?<\/head>/, '');
  const attrs = [...body.matchAll(/\s(?:alt|title|aria-label|placeholder)="([^"]*)"/g)].map((m) => m[1]);
  const nodes = body.replace(/<[^>]+>/g, '\n').split('\n');
  return [...attrs, ...nodes].map((s) => decode(s).replace(/\s+/g, ' ').trim()).filter(Boolean);
}

/** English sentences of the catalogue that a page in `locale` must not show (those that differ in it) */
function englishLeft(html: string, locale: Locale): string[] {
  const english = new Set(Object.keys(EN).filter((k) => !/\{\w+\}/.test(k) && CATALOGUES[locale][k] !== EN[k]).map((k) => EN[k]));
  return texts(html).filter((t) => english.has(t));
}

describe('translations', () => {
  describe('catalogues', () => {
    it('en, fr and ar hold the same keys, every value filled, with the same placeholders', () => {
      const keys = Object.keys(EN).sort();
      expect(keys.length).to.be.above(150);
      for (const l of LOCALES) {
        expect(Object.keys(CATALOGUES[l]).sort(), l).to.deep.equal(keys);
        for (const k of keys) {
          expect(CATALOGUES[l][k].trim(), `${l}: ${k}`).to.not.equal('');
          expect(placeholders(CATALOGUES[l][k]), `${l}: ${k}`).to.deep.equal(placeholders(k));
        }
      }
      for (const k of keys) expect(EN[k], k).to.equal(k);
      // Arabic is Arabic: every value has Arabic letters
      for (const k of keys) expect(CATALOGUES.ar[k], k).to.match(/\p{Script=Arabic}/u);
    });

    it('translates sentences made from a key by their pattern, the most specific first', () => {
      expect(translate('fr', 'Use at least 24 characters.')).to.equal('Utilisez au moins 24 caractères.');
      expect(translate('ar', 'Too many attempts. Try again in 3 minutes.')).to.equal('محاولات كثيرة جدًا. حاول مرة أخرى بعد 3 دقيقة.');
      expect(translate('fr', 'Linked 2026-01-02, last used 2026-03-04 — your only way to sign in'))
        .to.equal('Associée le 2026-01-02, dernière utilisation le 2026-03-04 — votre seul moyen de connexion');
      expect(translate('fr', 'Linked 2026-01-02')).to.equal('Associée le 2026-01-02');
      expect(translate('fr', 'Continue with {name}', { name: 'Corp' })).to.equal('Continuer avec Corp');
    });
  });

  describe('templates', () => {
    const views = fs.readdirSync(VIEWS_DIR).filter((f) => f.endsWith('.ejs'));

    it('have no text outside a translation call', () => {
      for (const f of views) {
        const src = fs.readFileSync(path.join(VIEWS_DIR, f), 'utf8').replace(/<%#[\s\S]*?%>/g, '').replace(/<%[\s\S]*?%>/g, '');
        for (const m of src.matchAll(/\s(alt|title|aria-label|placeholder)="([^"]*)"/g)) expect(m[2], `${f}: ${m[0]}`).to.not.match(/\p{L}/u);
        const left = src.replace(/<!DOCTYPE[^>]*>/i, '').replace(/<[^>]*>/g, '\n').split('\n').map((s) => s.trim()).filter((s) => /\p{L}/u.test(s));
        expect(left, f).to.deep.equal([]);
      }
    });

    it('translate only catalogue texts', () => {
      for (const f of views) {
        const src = fs.readFileSync(path.join(VIEWS_DIR, f), 'utf8').replace(/<%#[\s\S]*?%>/g, '');
        // the literal right after t( or th(, or a branch of a ternary inside one
        for (const m of src.matchAll(/(?<![\w.])th?\(\s*([^)]*)/g)) {
          for (const lit of m[1].matchAll(/(?:^|\?\s*|:\s*)(['"])((?:\\.|(?!\1).)*)\1/g)) {
            const text = lit[2].replace(/\\'/g, "'");
            expect(Object.hasOwn(EN, text), `${f}: "${text}"`).to.equal(true);
          }
        }
      }
    });
  });

  describe('messages made in code', () => {
    // files whose string literals include what people read
    const SOURCES = [
      'src/interactions/errors.ts', 'src/interactions/guard.ts', 'src/interactions/describe.ts', 'src/interactions/routes.ts',
      'src/lockout/self-service.ts', 'src/passwords/policy.ts', 'src/mfa/interaction.ts', 'src/mfa/account.ts',
      'src/federation/types.ts', 'src/federation/login.ts', 'src/federation/link-step.ts', 'src/federation/account-links.ts',
      'src/federation/logout.ts', 'src/http/errors.ts', 'src/http/error-text.ts', 'src/http/site.ts', 'src/provider/configuration.ts',
    ];
    // sentences there that no page shows as the message for people (protocol wording: the page says it in plain words, and shows it to developers as it is)
    const NOT_SHOWN = new Set([
      'End-User aborted interaction', 'Unsupported Content-Encoding', 'The request body is in an encoding we do not accept.',
      'The request body is in a character set we do not accept.', 'The request body is too large.', 'The request body could not be read.',
    ]);

    it('every sentence, and every page text (title, heading, label, button...), is in the catalogue', () => {
      let checked = 0;
      for (const file of SOURCES) {
        const code = fs.readFileSync(file, 'utf8').replace(/^\s*(\/\/|\*|\/\*).*$/gm, '');
        const literals = [...code.matchAll(/(\b(?:title|heading|text|label|submit|button|notice|empty|error|hint|detail|message)\s*:\s*)?(['`])((?:\\.|(?!\2)[^\\])*)\2/g)];
        for (const [, key, , body] of literals) {
          const text = body.replace(/\\'/g, "'").replace(/\$\{[^}]*\}/g, '7');
          const sentence = /^[A-Z][a-z']*(?: [^\s]+)+/.test(text) && /[a-z]/.test(text) && !/^[A-Z_]+ /.test(text) && !/[{}]|=>/.test(text);
          if (!(sentence || (key && /^[A-Z][\w' -]*$/.test(text)))) continue;
          if (NOT_SHOWN.has(text) || /log|Cache-Control|SET |Error\b/.test(text) && !findKey(text)) continue;
          checked++;
          expect(findKey(text), `${file}: "${text}"`).to.not.equal(undefined);
        }
      }
      expect(checked).to.be.above(100);
    });

    it('error pages say every protocol error in plain words', () => {
      for (const code of ['invalid_client', 'invalid_redirect_uri', 'invalid_request', 'invalid_scope', 'access_denied', 'login_required', 'server_error', 'temporarily_unavailable', 'not_found', 'nonsense']) {
        for (const status of [400, 404, 500, 503]) {
          const w = errorText(code, 'interaction session id cookie not found', status);
          for (const s of [w.heading, w.message]) expect(findKey(s), `${code} ${status}: ${s}`).to.not.equal(undefined);
        }
      }
      expect(errorText('invalid_request', 'interaction session id cookie not found', 400).message).to.match(/^This sign-in page has expired/);
      expect(errorText('invalid_client', 'client is invalid', 400)).to.deep.include({ message: EN['This application is not registered here, or its sign-in settings are wrong. Please tell the people who run the application.'], protocol: 'client is invalid' });
    });
  });

  describe('choosing the language', () => {
    it('ui_locales, then Accept-Language, then the default', () => {
      expect(pickLocale({ uiLocales: 'ar fr', acceptLanguage: 'fr', fallback: 'en' })).to.equal('ar');
      expect(pickLocale({ uiLocales: 'de-DE fr-CA', fallback: 'en' })).to.equal('fr');
      expect(pickLocale({ uiLocales: 'de', acceptLanguage: 'de-CH, fr;q=0.8, ar;q=0.9', fallback: 'en' })).to.equal('ar');
      expect(pickLocale({ acceptLanguage: 'fr;q=0, en;q=0.1', fallback: 'ar' })).to.equal('en');
      expect(pickLocale({ acceptLanguage: 'de, *', fallback: 'fr' })).to.equal('fr');
      expect(pickLocale({ fallback: 'en' })).to.equal('en');
    });
  });

  describe('every page in fr and ar', function () {
    this.timeout(120_000);
    let idp: TestIdp;
    const misses: string[] = [];
    let stop: () => void;

    before(async () => {
      stop = onMissingTranslation((text, locale) => misses.push(`${locale}: ${text}`));
      idp = await startTestIdp({ TRUST_PROXY_HOPS: '1', BRAND_NAME: 'Acme ID', BRAND_PRIMARY_COLOR: '#0f766e' });
      await idp.cli('clients', 'add', '--id', 'app', '--public', '--first-party', '--redirect-uri', 'https://rp.example.test/cb', '--grant-types', 'authorization_code', '--mfa-policy', 'required');
      await idp.cli('users', 'add', '--email', 'nour@example.com', '--password', 'a long enough passphrase 5', '--name', 'Nour', '--email-verified');
    });
    after(async () => {
      stop?.();
      await idp?.close();
    });

    const expectTranslated = (html: string, locale: Locale, what: string) => {
      expect(html, what).to.match(new RegExp(`<html lang="${locale}" dir="${locale === 'ar' ? 'rtl' : 'ltr'}">`));
      expect(englishLeft(html, locale), `${locale} ${what}: English left`).to.deep.equal([]);
      expect(misses, `${locale} ${what}: not in the catalogues`).to.deep.equal([]);
    };

    for (const locale of ['fr', 'ar'] as const) {
      it(`${locale}: the sign-in pages of an interaction (ui_locales), the self-service pages, MFA set-up, errors`, async () => {
        const ua = new UserAgent(idp.issuer);
        const first = await ua.navigate(authorizeUrl(idp, { ui_locales: `${locale} en` }));
        const login = await first.res.text();
        expectTranslated(login, locale, 'login');
        const form = readForm(login);
        const uid = /\/interaction\/([^/]+)\/login$/.exec(form.action)![1];

        // wrong password: the error in the page's language
        const wrong = await ua.navigate(form.action, { form: { ...form.fields, login: 'nour@example.com', password: 'not it at all' } });
        const wrongHtml = await wrong.res.text();
        expect(texts(wrongHtml)).to.include(translate(locale, EN['The email or password is incorrect.']));
        expectTranslated(wrongHtml, locale, 'login error');

        for (const p of ['reset', 'reset/code', 'unlock', 'change']) expectTranslated(await (await ua.navigate(`${idp.issuer}/interaction/${uid}/${p}`)).res.text(), locale, p);
        const resetForm = readForm(await (await ua.navigate(`${idp.issuer}/interaction/${uid}/reset`)).res.text());
        expectTranslated(await (await ua.navigate(resetForm.action, { form: { ...resetForm.fields, email: 'not an address' } })).res.text(), locale, 'reset refused');
        const sent = await (await ua.navigate(resetForm.action, { form: { ...resetForm.fields, email: 'nour@example.com' } })).res.text();
        expectTranslated(sent, locale, 'reset code sent');
        expect(texts(sent)).to.include(translate(locale, 'The code expires 10 minutes after it was sent.'));

        // the right password: MFA is required for this client, so the set-up page
        const again = readForm(await (await ua.navigate(`${idp.issuer}/interaction/${uid}`)).res.text());
        const mfa = await (await ua.navigate(again.action, { form: { ...again.fields, login: 'nour@example.com', password: 'a long enough passphrase 5' } })).res.text();
        expect(mfa).to.contain('name="otp"');
        expectTranslated(mfa, locale, 'mfa set-up');

        // protocol errors (ui_locales on the request) and an expired interaction
        const badClient = await ua.request(`${idp.issuer}/auth?client_id=nope&response_type=code&scope=openid&ui_locales=${locale}`);
        const badHtml = await badClient.text();
        expect(badHtml).to.contain('<code>invalid_client</code>');
        expect(texts(badHtml)).to.include(translate(locale, EN['This application is not registered here, or its sign-in settings are wrong. Please tell the people who run the application.']));
        expectTranslated(badHtml, locale, 'invalid_client');
        const gone = await new UserAgent(idp.issuer).request(`${idp.issuer}/interaction/${uid}`, { headers: { 'accept-language': locale } });
        const goneHtml = await gone.text();
        expect(texts(goneHtml)).to.include(translate(locale, EN['This sign-in page has expired, or was opened in another browser. Go back to the application and start again.']));
        expectTranslated(goneHtml, locale, 'interaction gone');
      });

      it(`${locale}: the landing page, the 404 and the account page (Accept-Language)`, async () => {
        const get = async (p: string) => {
          const r = await fetch(`${idp.issuer}${p}`, { headers: { 'accept-language': `${locale}, en;q=0.5`, accept: 'text/html' } });
          return { status: r.status, html: await r.text() };
        };
        const home = await get('/');
        expect(home.status).to.equal(200);
        expect(home.html).to.contain(idp.issuer).and.contain('href="/.well-known/openid-configuration"').and.contain('Acme ID');
        expectTranslated(home.html, locale, 'landing');
        const missing = await get('/no/such/page');
        expect(missing.status).to.equal(404);
        expect(texts(missing.html)).to.include(translate(locale, 'Page not found'));
        expectTranslated(missing.html, locale, '404');
        expectTranslated((await get('/account')).html, locale, 'account (signed out)');
        // signing in to the account page: its own client's name in the page's language too
        const ua = new (class extends UserAgent {
          override request(url: string, init: Parameters<UserAgent['request']>[1] = {}) {
            return super.request(url, { ...init, headers: { 'accept-language': locale, ...init.headers } });
          }
        })(idp.issuer);
        const accountLogin = await (await ua.navigate(`${idp.issuer}/account/login`)).res.text();
        const h1 = /<h1>([\s\S]*?)<\/h1>/.exec(accountLogin)![1].replace(/<[^>]+>/g, '').replace(/\s+/g, ' ').trim();
        expect(h1).to.equal(`${translate(locale, 'Sign in')} ${translate(locale, 'to continue to {client}', { client: translate(locale, 'Your account') })}`);
        expectTranslated(accountLogin, locale, 'account sign-in');
        // the languages are in the discovery document
        const discovery = await (await fetch(`${idp.issuer}/.well-known/openid-configuration`)).json() as Record<string, unknown>;
        expect(discovery.ui_locales_supported).to.deep.equal(['en', 'fr', 'ar']);
        expect(discovery.service_documentation).to.equal(`${idp.issuer}/docs/openid-configuration.md`);
      });
    }

    it('the pages no flow above reached, from their templates, with every option on', async () => {
      const views = createViews({ brand: { productName: 'Acme ID', logoUrl: 'https://acme.example/logo.svg' } });
      const pages: Array<[string, Record<string, unknown>]> = [
        ['federation-link', { title: 'Link your account', base: '/b', csrf: 'c', abortUrl: '/a', connectionName: 'Corp', email: 'n***@example.com', canSendCode: true, sent: true, minutes: 10, error: 'That code is not right, or it has expired.' }],
        ['federation-link', { title: 'Link your account', base: '/b', csrf: 'c', abortUrl: '/a', connectionName: 'Corp', canSendCode: false }],
        ['account-totp', { title: 'Set up an authenticator app', action: '/a', csrf: 'c', secret: 'JBSWY3DPEHPK3PXP', qr: 'data:image/svg+xml,x', replacing: true, error: 'That code is not right. Check the time on your phone and enter the current code.' }],
        ['mfa-recovery-codes', { title: 'Save your recovery codes', codes: ['a', 'b'], regenerated: true, backUrl: '/account' }],
        ['mfa-recovery-codes', { title: 'Save your recovery codes', codes: ['a'], action: '/a', csrf: 'c' }],
        ['mfa', { title: 'Two-step verification', base: '/m', csrf: 'c', clientName: 'App', abortUrl: '/a', totp: true, email: 'n***@example.com', sms: '+1 *** 99', sent: { channel: 'sms', to: '+1 *** 99' }, minutes: 5, offerRemember: true, rememberDays: 30, error: 'Too many attempts. Try again in 4 minutes.' }],
        ['mfa', { title: 'Set up two-step verification', base: '/m', csrf: 'c', abortUrl: '/a', setup: { secret: 'JBSWY3DPEHPK3PXP', qr: 'data:x' }, email: 'n***@example.com', offerRemember: true, rememberDays: 30 }],
        ['error', { title: 'Temporarily unavailable', error: 'temporarily_unavailable', status: 503, requestId: 'r1' }],
        ['error', { title: 'Error', error: 'access_denied', description: 'This way of signing in is not available.', human: true, links: [{ href: '/', text: 'Back to sign-in' }] }],
        ['message', { title: 'Signed out', heading: 'You are signed out', text: 'You can close this window.' }],
        ['consent', {
          title: 'Allow access', action: '/c', csrf: 'c', abortUrl: '/a', switchAction: '/s',
          client: { name: 'App', uri: 'https://app.example/', policyUri: 'https://app.example/p', tosUri: 'https://app.example/t' }, account: { display: 'nour@example.com' },
          scopes: describeScopes(['openid', 'profile', 'email', 'offline_access', 'roles', 'api:read']), claims: describeClaims(['birthdate', 'permissions']),
          resources: [{ indicator: 'https://api.example', scopes: ['read', 'write'] }], optional: ['email', 'write'], granted: describeScopes(['phone']),
        }],
        ['consent', { title: 'Allow access', action: '/c', csrf: 'c', abortUrl: '/a', client: {}, account: { display: 'x' }, scopes: [], claims: [], resources: [], granted: [] }],
        ['account', {
          title: 'Your account', display: 'nour@example.com', csrf: 'c', notice: 'The app no longer has access to your account. It will ask again the next time you use it.',
          totp: { enrolledAt: '2026-01-02T03:04:05Z' }, recoveryRemaining: 7,
          devices: [{ id: 'd1', label: 'Firefox on Linux', createdAt: '2026-01-02', expiresAt: '2026-02-01', current: true }],
          sections: [
            { id: 'links', title: 'Sign-ins from other services', empty: 'None. You sign in here with your password.', items: [{ text: 'Corp', detail: 'Linked 2026-01-02, last used 2026-01-03 — your only way to sign in' }, { text: 'Other', detail: 'Linked 2026-01-02', action: { url: '/r', fields: { link: 'x' }, button: 'Remove' } }] },
            { id: 'apps', title: 'Connected apps', empty: 'None. Apps you allow to use your account show here.', items: [{ text: 'App', lines: ['See your email address', 'Use https://api.example for you (read, write)'], detail: 'Allowed 2026-01-02, last signed in 2026-01-05', action: { url: '/r', fields: { client: 'app' }, button: 'Remove access' } }] },
            { id: 'none', title: 'Connected apps', empty: 'None. Apps you allow to use your account show here.', items: [] },
          ],
        }],
        ['account', { title: 'Your account', signedOut: true, notice: 'The sign-in was cancelled.' }],
        ['logout', { title: 'Sign out', form: '<form id="op.logoutForm"></form>', clientName: 'App' }],
        ['form', { heading: 'Choose a new password', notice: 'Your password does not meet our password rules any more. Choose a new one to continue.', errors: ['Use at least 12 characters.', 'The two passwords do not match.'], action: '/p', csrf: 'c', fields: [{ name: 'password', label: 'New password', type: 'password', hint: 'At least 12 characters. Long passphrases are good; common passwords and your e-mail address or name are refused.' }], submit: 'Change password and continue', abortUrl: '/a', links: [{ href: '/x', text: 'Send a new code' }] }],
      ];
      for (const locale of ['fr', 'ar'] as const) {
        for (const [name, locals] of pages) {
          const html = await withRequestLanguage({ acceptLanguage: locale }, () => views.page(name, locals));
          expectTranslated(html, locale, name);
        }
      }
    });
  });
});
