// MFA building blocks without a server: the TOTP window (±1 step, replay
// floor), the acr/amr vocabulary, policy resolution, sealing of secrets
// under the record's data key, and the pages (escaping, strict mode).
import crypto from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ejs from 'ejs';
import { expect } from 'chai';
import { generate, generateSecret } from 'otplib';
import { totpStep, deviceLabel } from '../src/mfa/service.ts';
import { codeHash, newRecoveryCode, normalizeRecoveryCode, openSecret, sealSecret } from '../src/mfa/crypto.ts';
import { ACR_MFA, ACR_PWD, effectivePolicy, mfaAmr, requestsMfa } from '../src/mfa/types.ts';
import { loadConfig, ConfigError } from '../src/config/index.ts';
import { viewLocals } from '../src/http/views.ts';

describe('MFA units', () => {
  describe('TOTP window', () => {
    const secret = generateSecret();
    const T = 1_800_000_015; // 15 s into a step
    const step = Math.floor(T / 30);
    const at = (offset: number) => generate({ secret, epoch: T + offset * 30 });

    it('accepts the current step and one step either side, and says which step matched', async () => {
      expect(await totpStep(secret, await at(0), T)).to.equal(step);
      expect(await totpStep(secret, await at(-1), T)).to.equal(step - 1);
      expect(await totpStep(secret, await at(1), T)).to.equal(step + 1);
    });

    it('refuses codes two or more steps away', async () => {
      for (const off of [-3, -2, 2, 3]) expect(await totpStep(secret, await at(off), T), `offset ${off}`).to.equal(undefined);
    });

    it('refuses a step at or below the last accepted one (replay), and anything that is not 6 digits', async () => {
      expect(await totpStep(secret, await at(0), T, step)).to.equal(undefined);
      expect(await totpStep(secret, await at(-1), T, step - 1)).to.equal(undefined);
      expect(await totpStep(secret, await at(1), T, step)).to.equal(step + 1);
      expect(await totpStep(secret, '12345', T)).to.equal(undefined);
      expect(await totpStep(secret, 'abcdef', T)).to.equal(undefined);
    });
  });

  describe('acr / amr and policies', () => {
    it('maps each second factor to RFC 8176 amr values, with pwd and mfa', () => {
      expect(mfaAmr(['pwd'], 'totp')).to.deep.equal(['pwd', 'otp', 'mfa']);
      expect(mfaAmr(['pwd'], 'sms')).to.deep.equal(['pwd', 'sms', 'mfa']);
      expect(mfaAmr(['pwd'], 'email')).to.deep.equal(['pwd', 'email', 'mfa']);
      expect(mfaAmr(['pwd'], 'recovery')).to.deep.equal(['pwd', 'rc', 'mfa']);
    });

    it('reads a request for MFA from acr_values or an essential acr claim', () => {
      expect(requestsMfa({ acr_values: ACR_MFA })).to.equal(true);
      expect(requestsMfa({ acr_values: `urn:other ${ACR_MFA}` })).to.equal(true);
      expect(requestsMfa({ acr_values: `${ACR_MFA} ${ACR_PWD}` }), 'a list that accepts a password').to.equal(false);
      expect(requestsMfa({ acr_values: ACR_PWD })).to.equal(false);
      expect(requestsMfa({ acr_values: 'urn:unknown' })).to.equal(false);
      expect(requestsMfa({})).to.equal(false);
      expect(requestsMfa({ claims: JSON.stringify({ id_token: { acr: { essential: true, values: [ACR_MFA] } } }) })).to.equal(true);
      expect(requestsMfa({ claims: JSON.stringify({ id_token: { acr: { essential: true, value: ACR_MFA } } }) })).to.equal(true);
      expect(requestsMfa({ claims: JSON.stringify({ id_token: { acr: { values: [ACR_MFA] } } }) }), 'not essential').to.equal(false);
    });

    it('a client policy wins over the global one; unknown values fall back', () => {
      expect(effectivePolicy('required', 'off')).to.equal('required');
      expect(effectivePolicy(undefined, 'new_device')).to.equal('new_device');
      expect(effectivePolicy('sometimes', 'optional')).to.equal('optional');
    });

    it('configuration: MFA_* defaults and validation', () => {
      const c = loadConfig({ ISSUER: 'https://id.example.com' }).mfa;
      expect(c).to.deep.equal({ policy: 'optional', rememberDays: 30, methods: ['totp', 'email', 'sms'], totpIssuer: 'id.example.com', codeTtlSeconds: 300, reauthSeconds: 600 });
      expect(loadConfig({ MFA_POLICY: 'new_device', MFA_METHODS: 'totp,email', MFA_REMEMBER_DAYS: '0' }).mfa).to.include({ policy: 'new_device', rememberDays: 0 });
      expect(() => loadConfig({ MFA_POLICY: 'always' })).to.throw(ConfigError, /MFA_POLICY/);
      expect(() => loadConfig({ MFA_METHODS: 'totp,fax' })).to.throw(ConfigError, /MFA_METHODS/);
    });
  });

  describe('secrets at rest', () => {
    const key = crypto.randomBytes(32);

    it('seals a TOTP secret for one record and one purpose', () => {
      const blob = sealSecret(key, 'sub-1', 'totp', 'JBSWY3DPEHPK3PXPJBSWY3DP');
      expect(blob).to.not.contain('JBSWY3DP');
      expect(openSecret(key, 'sub-1', 'totp', blob)).to.equal('JBSWY3DPEHPK3PXPJBSWY3DP');
      expect(() => openSecret(key, 'sub-2', 'totp', blob)).to.throw(/does not authenticate/);
      expect(() => openSecret(key, 'sub-1', 'totp-pending', blob)).to.throw(/does not authenticate/);
      expect(() => openSecret(crypto.randomBytes(32), 'sub-1', 'totp', blob)).to.throw(/does not authenticate/);
    });

    it('recovery codes: 10 characters, typed in any case and with or without the dash; keyed hashes', () => {
      const code = newRecoveryCode();
      expect(code).to.match(/^[a-z2-9]{5}-[a-z2-9]{5}$/);
      expect(normalizeRecoveryCode(` ${code.toUpperCase()} `)).to.equal(code.replace('-', ''));
      const h = codeHash(key, 'recovery', normalizeRecoveryCode(code));
      expect(h).to.equal(codeHash(key, 'recovery', code.replace('-', '')));
      expect(h).to.not.equal(codeHash(crypto.randomBytes(32), 'recovery', code.replace('-', '')));
      expect(h).to.not.equal(codeHash(key, 'message', code.replace('-', '')));
    });

    it('device labels name the browser and system only', () => {
      expect(deviceLabel('Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0')).to.equal('Firefox on Linux');
      expect(deviceLabel(undefined)).to.equal('Browser on unknown system');
    });
  });

  describe('views', () => {
    const viewsDir = fileURLToPath(new URL('../views/', import.meta.url));
    const XSS = '<script>alert(1)</script>';
    // the pages' translation helpers (English), as the views get them in the app
    const render = (view: string, locals: Record<string, unknown>) => ejs.renderFile(path.join(viewsDir, `${view}.ejs`), { ...viewLocals('en'), ...locals }, { strict: true }) as Promise<string>;
    const qr = 'data:image/svg+xml;base64,PHN2Zz48L3N2Zz4=';

    it('mfa: the app form, the alternatives, every value escaped, every code field named otp', async () => {
      const html = await render('mfa', {
        base: '/interaction/u1/mfa', csrf: `c${XSS}`, clientName: XSS, abortUrl: '/interaction/u1/abort', totp: true,
        email: `a${XSS}@example.com`, sms: '••• 42', minutes: 5, offerRemember: true, rememberDays: 30, error: XSS,
      });
      expect(html).to.not.contain('<script>');
      expect(html).to.contain('id="mfa-totp"').and.contain('id="mfa-recovery"').and.contain('id="mfa-send-email"').and.contain('id="mfa-send-sms"');
      expect(html).to.contain('role="alert"').and.contain('aria-describedby="form-error"');
      expect(html).to.contain('Remember this device for 30 days');
      for (const m of html.matchAll(/<input\b[^>]*type="(?:text|password)"[^>]*>/g)) expect(m[0]).to.contain('name="otp"');
      expect(html).to.not.contain('undefined');
      // "Cancel sign-in" posts its own form with the CSRF token; it is not a link
      const abort = /<form method="post" action="\/interaction\/u1\/abort" id="abort"[^>]*>([\s\S]*?)<\/form>/.exec(html);
      expect(abort, 'the abort form').to.not.equal(null);
      expect(abort![1]).to.contain('name="csrf" value="c&lt;script&gt;').and.contain('>Cancel sign-in</button>');
      expect(html).to.not.match(/href="[^"]*abort/);
    });

    it('mfa: enrolment shows the QR code as an image with a text alternative and the key in groups', async () => {
      const html = await render('mfa', { base: '/i/u/mfa', csrf: 'c', clientName: 'App', abortUrl: '/a', setup: { secret: 'ABCDEFGHIJKLMNOP', qr }, email: 'a•••@example.com' });
      expect(html).to.contain(`<img src="${qr}" alt="`);
      expect(html).to.contain('<code class="secret" id="totp-secret">ABCD EFGH IJKL MNOP</code>');
      expect(html).to.contain('id="mfa-enrol"').and.not.contain('id="mfa-totp"').and.not.contain('name="remember"');
    });

    it('mfa: after sending a code, the code form names where it went', async () => {
      const html = await render('mfa', { base: '/i/u/mfa', csrf: 'c', clientName: 'App', abortUrl: '/a', totp: false, email: 'a•••@example.com', sent: { channel: 'email', to: `a${XSS}` }, minutes: 5 });
      expect(html).to.contain('id="mfa-code"').and.contain('expires in 5 minutes').and.not.contain('<script>');
    });

    it('recovery codes, the account page and the app set-up page escape what they show', async () => {
      const codes = await render('mfa-recovery-codes', { codes: ['abcde-fghjk', XSS], action: '/i/u/mfa/continue', csrf: 'c' });
      expect(codes).to.contain('<li><code>abcde-fghjk</code></li>').and.contain('id="mfa-continue"').and.not.contain('<script>');
      const back = await render('mfa-recovery-codes', { codes: [], backUrl: '/account', regenerated: true });
      expect(back).to.contain('href="/account"').and.contain('no longer work');
      const account = await render('account', {
        display: XSS, csrf: 'c', totp: { enrolledAt: '2026-01-02T03:04:05Z' }, recoveryRemaining: 9,
        devices: [{ id: 'dev1', label: XSS, createdAt: '2026-01-02', expiresAt: '2026-02-01', current: true }], notice: XSS,
      });
      expect(account).to.not.contain('<script>');
      expect(account).to.contain('id="account-recovery"').and.contain('id="device-revoke-dev1"').and.contain('this device').and.contain('9 of 10');
      expect(await render('account', { signedOut: true })).to.contain('href="/account/login"');
      const setup = await render('account-totp', { action: '/account/totp', csrf: 'c', secret: 'ABCDEFGH', qr, replacing: true, error: XSS });
      expect(setup).to.contain('id="account-totp"').and.contain('stop working').and.not.contain('<script>');
    });
  });
});
