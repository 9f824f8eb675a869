// Two-step verification end to end: a real relying party (openid-client)
// against the running IdP, through the real forms (UserAgent), with the
// policies set per client in a seed file.
//
//  - step-up: acr_values urn:idp:acr:mfa → password → TOTP enrolment (secret
//    read from the page, codes from otplib) → recovery codes → ID token with
//    acr urn:idp:acr:mfa and amr [pwd, otp, mfa]; the next authorization in
//    the same session with acr_values asks again; without it, SSO;
//  - a TOTP code is accepted once; codes outside ±1 step are refused;
//  - a recovery code works once;
//  - e-mail codes from the embedded outbox: wrong, expired and sixth try
//    refused, a right one completes (amr [pwd, email, mfa]);
//  - new_device policy: a remembered device skips MFA (acr pwd), not after
//    revocation (CLI, and the account page);
//  - admin: mfa status / recovery-codes / reset, each with its event;
//  - nothing secret in plaintext in any table, nor in the events;
//  - failed MFA codes count towards the lockout (LoginGuard).
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import * as oidc from 'openid-client';
import { generate } from 'otplib';
import { ScanCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { startTestIdp, tempDir, type TestIdp } from './support/idp.ts';
import { UserAgent, readForm } from './support/user-agent.ts';
import { readOutbox } from '../src/events/messages.ts';

const REDIRECT = 'https://rp.example.test/cb';
const SECRET = 'rp-secret-0123456789abcdef0123456789';
const ACR_MFA = 'urn:idp:acr:mfa';
const ACR_PWD = 'urn:idp:acr:pwd';
const PASSWORD = 'correct horse battery staple 42';

function client(id: string, mfaPolicy?: string) {
  return {
    client_id: id, client_secret: SECRET, client_name: `App ${id}`, redirect_uris: [REDIRECT],
    grant_types: ['authorization_code'], response_types: ['code'], token_endpoint_auth_method: 'client_secret_basic',
    first_party: true, ...(mfaPolicy ? { mfa_policy: mfaPolicy } : {}),
  };
}

const nowStep = () => Math.floor(Date.now() / 1000 / 30);
const totpAt = (secret: string, step: number) => generate({ secret, epoch: step * 30 + 1 });
function base32Decode(s: string): Buffer {
  const A = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const ch of s) bits += A.indexOf(ch).toString(2).padStart(5, '0');
  return Buffer.from(bits.match(/.{8}/g)!.map((b) => parseInt(b, 2)));
}
const secretIn = (html: string) => /id="totp-secret">([A-Z2-7 ]+)</.exec(html)?.[1].replace(/ /g, '');

describe('MFA: TOTP, recovery codes, e-mail codes, remembered devices, step-up', function () {
  this.timeout(120_000);
  let idp: TestIdp;
  const rps: Record<string, oidc.Configuration> = {};

  before(async () => {
    const dir = tempDir('idp-mfa-seed-');
    const seed = path.join(dir, 'seed.json');
    fs.writeFileSync(seed, JSON.stringify({ clients: [client('app', 'off'), client('strict', 'required'), client('devices', 'new_device'), client('plain')] }));
    // lockout is exercised in its own test below: here, wrong codes must not lock anyone out
    idp = await startTestIdp({ SEED_FILE: seed, MFA_POLICY: 'optional', MFA_REMEMBER_DAYS: '30', LOCKOUT_MODE: 'dry-run' });
    for (const id of ['app', 'strict', 'devices', 'plain']) {
      rps[id] = await oidc.discovery(new URL(idp.issuer), id, SECRET, undefined, { execute: [oidc.allowInsecureRequests] });
    }
  });

  after(async () => {
    await idp?.close();
  });

  async function addUser(email: string, extra: string[] = []): Promise<string> {
    const r = await idp.cli('users', 'add', '--email', email, '--password', PASSWORD, '--email-verified', ...extra) as { sub: string };
    return r.sub;
  }

  async function authorize(id: string, extra: Record<string, string> = {}) {
    const verifier = oidc.randomPKCECodeVerifier();
    const nonce = oidc.randomNonce();
    const state = oidc.randomState();
    const url = oidc.buildAuthorizationUrl(rps[id], {
      redirect_uri: REDIRECT, scope: 'openid email', nonce, state,
      code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256', ...extra,
    });
    return { id, url, verifier, nonce, state };
  }

  type Auth = Awaited<ReturnType<typeof authorize>>;

  async function claimsOf(a: Auth, callback: string) {
    const tokens = await oidc.authorizationCodeGrant(rps[a.id], new URL(callback), { pkceCodeVerifier: a.verifier, expectedNonce: a.nonce, expectedState: a.state, idTokenExpected: true });
    return tokens.claims()!;
  }

  /** opens the authorization and submits the password; returns where that led */
  async function signIn(ua: UserAgent, a: Auth, email: string, password = PASSWORD) {
    let step = await ua.navigate(a.url.href);
    if (step.offsite) return step;
    const html = await step.res.text();
    expect(html, 'password form').to.contain('name="password"');
    const login = readForm(html);
    step = await ua.navigate(login.action, { form: { ...login.fields, login: email, password } });
    return step;
  }

  async function page(step: { res: Response; url: string; offsite?: string }) {
    expect(step.offsite, 'still on the IdP').to.equal(undefined);
    return { status: step.res.status, html: await step.res.text(), url: step.url };
  }

  /** submits a form of the page, minus the fields named in `drop` */
  async function submit(ua: UserAgent, html: string, formId: string, fields: Record<string, string>, drop: string[] = []) {
    const f = readForm(html, formId);
    const all: Record<string, string> = { ...f.fields, ...fields };
    for (const d of drop) delete all[d];
    return ua.navigate(f.action, { form: all });
  }

  function expectNoPlaintext(all: string, secrets: string[], codes: string[]) {
    for (const secret of secrets) {
      const raw = base32Decode(secret);
      expect(all).to.not.contain(secret);
      expect(all.toLowerCase()).to.not.contain(secret.toLowerCase());
      for (const enc of ['hex', 'base64', 'base64url'] as const) expect(all).to.not.contain(raw.toString(enc).replace(/=+$/, ''));
    }
    for (const c of codes) {
      expect(all).to.not.contain(c);
      expect(all).to.not.contain(c.replace('-', ''));
    }
  }

  /** every item of every table (oidc, accounts, keys, meta), as JSON */
  async function scanAll(): Promise<string> {
    const out: unknown[] = [];
    for (const table of Object.values(idp.storage.tables)) {
      let ExclusiveStartKey: Record<string, unknown> | undefined;
      do {
        const r = await idp.storage.doc.send(new ScanCommand({ TableName: table, ExclusiveStartKey }));
        out.push(...(r.Items ?? []));
        ExclusiveStartKey = r.LastEvaluatedKey;
      } while (ExclusiveStartKey);
    }
    return JSON.stringify(out);
  }

  function lastCodeTo(email: string): string {
    const msgs = readOutbox(path.join(idp.config.dataDir, 'outbox.jsonl')).filter((m) => m.data.to === email && m.data.template === 'login-code');
    const m = /\b(\d{6})\b/.exec(msgs[msgs.length - 1]?.data.text ?? '');
    expect(m, `a code was sent to ${email}`).to.not.equal(null);
    return m![1];
  }

  const events = () => idp.delivered();

  it('discovery declares the acr values', () => {
    expect(rps.app.serverMetadata().acr_values_supported).to.have.members([ACR_PWD, ACR_MFA]);
  });

  it('a password-only login says so: acr pwd, amr [pwd]; a client requiring MFA re-prompts inside that session', async () => {
    await addUser('pat@example.com');
    const ua = new UserAgent(idp.issuer);
    const a = await authorize('plain');
    const step = await signIn(ua, a, 'pat@example.com');
    const claims = await claimsOf(a, step.offsite!);
    expect(claims.acr).to.equal(ACR_PWD);
    expect(claims.amr).to.deep.equal(['pwd']);
    // the session is password-only: `strict` (mfa_policy required) sends it back through the login, to the enrolment
    const p = await page(await signIn(ua, await authorize('strict'), 'pat@example.com'));
    expect(p.html).to.contain('id="mfa-enrol"');
    // prompt=none cannot show that: login_required
    const none = await ua.navigate((await authorize('strict', { prompt: 'none' })).url.href);
    expect(new URL(none.offsite!).searchParams.get('error')).to.equal('login_required');
  });

  it('mfa_policy client metadata is validated', async () => {
    const bad = await idp.host.provider.Client.validate({ ...client('x', 'sometimes') } as never).then(() => undefined, (e: { error_description?: string }) => e);
    expect(bad?.error_description).to.match(/mfa_policy must be one of off, optional, required, new_device/);
    await idp.host.provider.Client.validate({ ...client('y', 'new_device') } as never);
  });

  it('a client registered with idp clients add --mfa-policy required asks for a second factor where the global optional policy does not', async () => {
    await idp.cli('clients', 'add', '--id', 'cli-strict', '--secret', SECRET, '--name', 'App cli-strict', '--redirect-uri', REDIRECT,
      '--grant-types', 'authorization_code', '--first-party', '--mfa-policy', 'required');
    const stored = (await idp.cli('clients', 'list') as Array<Record<string, unknown>>).find((c) => c.client_id === 'cli-strict');
    expect(stored).to.include({ mfa_policy: 'required', first_party: true });
    rps['cli-strict'] = await oidc.discovery(new URL(idp.issuer), 'cli-strict', SECRET, undefined, { execute: [oidc.allowInsecureRequests] });
    await addUser('cli@example.com');
    // the same account, no app: `plain` (MFA_POLICY optional) signs in with the password alone
    const a = await authorize('plain');
    const plain = await signIn(new UserAgent(idp.issuer), a, 'cli@example.com');
    expect((await claimsOf(a, plain.offsite!)).acr).to.equal(ACR_PWD);
    // `cli-strict` (--mfa-policy required) stops at the second step: enrolment, no code for the RP
    const p = await page(await signIn(new UserAgent(idp.issuer), await authorize('cli-strict'), 'cli@example.com'));
    expect(p.html).to.contain('id="mfa-enrol"');
  });

  describe('TOTP with step-up (acr_values), replay, window, recovery codes', () => {
    const email = 'ada@example.com';
    let sub: string;
    let secret: string;
    let recovery: string[];
    let regenerated: string[];
    let pendingSecret: string;
    let lastUsed: number;
    let ua: UserAgent;

    before(async () => {
      sub = await addUser(email);
      ua = new UserAgent(idp.issuer);
    });

    it('acr_values=mfa: password, then TOTP enrolment; the ID token has acr mfa and amr [pwd, otp, mfa]', async () => {
      const a = await authorize('app', { acr_values: ACR_MFA });
      let p = await page(await signIn(ua, a, email));
      expect(p.url).to.match(/\/interaction\/[^/]+\/mfa$/);
      expect(p.html).to.contain('id="mfa-enrol"').and.contain('name="otp"');
      expect(p.html).to.match(/<img src="data:image\/svg\+xml;base64,[A-Za-z0-9+/=]+" alt="[^"]+"/);
      secret = secretIn(p.html)!;
      expect(secret).to.match(/^[A-Z2-7]{32}$/);

      // a reload shows the same secret; a wrong code is refused and enrols nothing
      const again = await page(await ua.navigate(p.url));
      expect(secretIn(again.html)).to.equal(secret);
      let step = await submit(ua, p.html, 'mfa-enrol', { otp: '000000' });
      p = await page(step);
      expect(p.status).to.equal(401);
      expect(p.html).to.contain('role="alert"');
      expect(secretIn(p.html)).to.equal(secret);

      lastUsed = nowStep();
      step = await submit(ua, p.html, 'mfa-enrol', { otp: await totpAt(secret, lastUsed) });
      p = await page(step);
      expect(p.html).to.contain('id="recovery-codes"');
      recovery = [...p.html.matchAll(/<li><code>([a-z2-9]{5}-[a-z2-9]{5})<\/code><\/li>/g)].map((m) => m[1]);
      expect(recovery).to.have.length(10);
      expect(new Set(recovery).size).to.equal(10);
      step = await submit(ua, p.html, 'mfa-continue', {});
      expect(step.offsite, 'back to the RP').to.be.a('string');
      const claims = await claimsOf(a, step.offsite!);
      expect(claims.sub).to.equal(sub);
      expect(claims.acr).to.equal(ACR_MFA);
      expect(claims.amr).to.deep.equal(['pwd', 'otp', 'mfa']);
      expect((await events()).some((e) => e.type === 'mfa.enrolled' && e.sub === sub)).to.equal(true);
      // enrolled: the secret and the codes are stored, but never in plaintext
      expectNoPlaintext(await scanAll(), [secret], recovery);
    });

    it('without acr_values the same session signs in silently, still at acr mfa', async () => {
      const a = await authorize('app');
      const step = await ua.navigate(a.url.href);
      expect(step.offsite, 'no prompt').to.be.a('string');
      expect((await claimsOf(a, step.offsite!)).acr).to.equal(ACR_MFA);
    });

    it('acr_values=mfa again in the same session asks again (password and TOTP); a code of the next step works', async () => {
      const a = await authorize('app', { acr_values: ACR_MFA });
      const p = await page(await signIn(ua, a, email));
      expect(p.html).to.contain('id="mfa-totp"').and.not.contain('id="mfa-enrol"');
      lastUsed += 1;
      const step = await submit(ua, p.html, 'mfa-totp', { otp: await totpAt(secret, lastUsed) });
      const claims = await claimsOf(a, step.offsite!);
      expect(claims.acr).to.equal(ACR_MFA);
      expect(claims.amr).to.deep.equal(['pwd', 'otp', 'mfa']);
    });

    it('the same TOTP code twice: the second is refused; codes outside ±1 step are refused', async () => {
      const a = await authorize('app', { acr_values: ACR_MFA });
      const other = new UserAgent(idp.issuer);
      let p = await page(await signIn(other, a, email));
      const reused = await totpAt(secret, lastUsed);
      p = await page(await submit(other, p.html, 'mfa-totp', { otp: reused }));
      expect(p.status).to.equal(401);
      expect(p.html).to.contain('not right, or it was already used');
      // (±2 is the unit tests' job: here a step boundary during the request could move it into the window)
      for (const off of [3, -3]) {
        p = await page(await submit(other, p.html, 'mfa-totp', { otp: await totpAt(secret, nowStep() + off) }));
        expect(p.status, `offset ${off}`).to.equal(401);
      }
    });

    it('policies: a client with mfa_policy off does not ask; the global optional policy asks an account that has an app', async () => {
      const a = await authorize('app');
      const step = await signIn(new UserAgent(idp.issuer), a, email);
      expect((await claimsOf(a, step.offsite!)).acr).to.equal(ACR_PWD);
      const p = await page(await signIn(new UserAgent(idp.issuer), await authorize('plain'), email));
      expect(p.html).to.contain('id="mfa-totp"').and.contain('id="mfa-send-email"');
    });

    it('a recovery code works once, then never', async () => {
      const a = await authorize('app', { acr_values: ACR_MFA });
      const fresh = new UserAgent(idp.issuer);
      const p = await page(await signIn(fresh, a, email));
      expect(p.html).to.contain('id="mfa-recovery"');
      const step = await submit(fresh, p.html, 'mfa-recovery', { otp: recovery[0].toUpperCase() });
      const claims = await claimsOf(a, step.offsite!);
      expect(claims.acr).to.equal(ACR_MFA);
      expect(claims.amr).to.deep.equal(['pwd', 'rc', 'mfa']);

      const b = await authorize('app', { acr_values: ACR_MFA });
      const other = new UserAgent(idp.issuer);
      const q = await page(await signIn(other, b, email));
      const again = await page(await submit(other, q.html, 'mfa-recovery', { otp: recovery[0] }));
      expect(again.status).to.equal(401);
      expect(again.html).to.contain('recovery code is not right');
      expect((await idp.cli('users', 'mfa', 'status', '--sub', sub) as { recoveryRemaining: number }).recoveryRemaining).to.equal(9);
    });

    it('admin: new recovery codes (the old set stops working), then a reset (enrolment again)', async () => {
      const r = await idp.cli('users', 'mfa', 'recovery-codes', '--sub', sub) as { recoveryCodes: string[] };
      expect(r.recoveryCodes).to.have.length(10);
      regenerated = r.recoveryCodes;
      expectNoPlaintext(await scanAll(), [secret], [...recovery, ...regenerated]);
      const a = await authorize('app', { acr_values: ACR_MFA });
      const u = new UserAgent(idp.issuer);
      let p = await page(await signIn(u, a, email));
      p = await page(await submit(u, p.html, 'mfa-recovery', { otp: recovery[1] }));
      expect(p.status, 'an old code').to.equal(401);
      const step = await submit(u, p.html, 'mfa-recovery', { otp: r.recoveryCodes[0] });
      expect((await claimsOf(a, step.offsite!)).amr).to.include('rc');

      const reset = await idp.cli('users', 'mfa', 'reset', '--sub', sub) as { factors: boolean };
      expect(reset.factors).to.equal(true);
      const b = await authorize('app', { acr_values: ACR_MFA });
      const q = await page(await signIn(new UserAgent(idp.issuer), b, email));
      expect(q.html).to.contain('id="mfa-enrol"');
      pendingSecret = secretIn(q.html)!;
      expect(pendingSecret).to.not.equal(secret);
      const types = (await events()).filter((e) => e.sub === sub).map((e) => e.type);
      expect(types).to.include.members(['mfa.enrolled', 'mfa.recovery.regenerated', 'mfa.recovery.used', 'mfa.reset', 'mfa.failed', 'mfa.succeeded']);
    });

    it('the TOTP secret and the recovery codes are nowhere in plaintext: not in any table, not in the events', async () => {
      // after the reset, the secret being enrolled is stored (sealed) too
      expectNoPlaintext(await scanAll(), [secret, pendingSecret], [...recovery, ...regenerated]);
      const evs = fs.readFileSync(path.join(idp.config.dataDir, 'events.jsonl'), 'utf8');
      expect(evs).to.not.contain(secret);
      for (const c of recovery) expect(evs).to.not.contain(c.replace('-', ''));
      for (const line of idp.logs) expect(line).to.not.contain(secret);
    });
  });

  describe('e-mail codes', () => {
    const email = 'bea@example.com';
    let sub: string;

    before(async () => {
      sub = await addUser(email);
    });

    it('required policy: an e-mail code completes the login; wrong, expired and sixth-try codes are refused', async () => {
      const ua = new UserAgent(idp.issuer);
      const a = await authorize('strict');
      let p = await page(await signIn(ua, a, email));
      // no app yet: enrolment is offered, and an e-mail code instead
      expect(p.html).to.contain('id="mfa-enrol"').and.contain('id="mfa-send-email"').and.contain('b•••@example.com');
      const uid = /\/interaction\/([^/]+)\/mfa/.exec(p.url)![1];

      // a wrong code
      p = await page(await submit(ua, p.html, 'mfa-send-email', {}));
      expect(p.html).to.contain('id="mfa-code"');
      const first = lastCodeTo(email);
      const wrong = first === '123456' ? '654321' : '123456';
      p = await page(await submit(ua, p.html, 'mfa-code', { otp: wrong }));
      expect(p.status).to.equal(401);
      expect(p.html).to.contain('not right');

      // an expired code (its expiry moved into the past in storage)
      p = await page(await submit(ua, p.html, 'mfa-send-email', {}));
      const second = lastCodeTo(email);
      await idp.storage.doc.send(new UpdateCommand({
        TableName: idp.storage.tables.accounts, Key: { pk: `mfaflow#${uid}`, sk: '_' },
        UpdateExpression: 'SET code.#e = :past', ExpressionAttributeNames: { '#e': 'exp' }, ExpressionAttributeValues: { ':past': Math.floor(Date.now() / 1000) - 1 },
      }));
      p = await page(await submit(ua, p.html, 'mfa-code', { otp: second }));
      expect(p.status).to.equal(401);
      expect(p.html).to.contain('expired');

      // five wrong tries, then the right code is refused
      p = await page(await submit(ua, p.html, 'mfa-send-email', {}));
      const third = lastCodeTo(email);
      const bad = third === '000000' ? '111111' : '000000';
      for (let i = 0; i < 5; i++) p = await page(await submit(ua, p.html, 'mfa-code', { otp: bad }));
      p = await page(await submit(ua, p.html, 'mfa-code', { otp: third }));
      expect(p.status).to.equal(401);
      expect(p.html).to.contain('Too many wrong codes');

      // a new code completes the login
      p = await page(await submit(ua, p.html, 'mfa-send-email', {}));
      const fourth = lastCodeTo(email);
      const step = await submit(ua, p.html, 'mfa-code', { otp: fourth });
      const claims = await claimsOf(a, step.offsite!);
      expect(claims.sub).to.equal(sub);
      expect(claims.acr).to.equal(ACR_MFA);
      expect(claims.amr).to.deep.equal(['pwd', 'email', 'mfa']);

      // single use: the flow is gone, and the code is not in storage in clear
      const all = await scanAll();
      for (const c of [first, second, third, fourth]) expect(all).to.not.match(new RegExp(`"${c}"`));
    });
  });

  describe('SMS codes', () => {
    it('a verified phone gets a code by SMS: amr [pwd, sms, mfa]', async () => {
      await addUser('gus@example.com', ['--phone', '+44 7700 900123', '--phone-verified']);
      const ua = new UserAgent(idp.issuer);
      const a = await authorize('strict');
      let p = await page(await signIn(ua, a, 'gus@example.com'));
      expect(p.html).to.contain('id="mfa-send-sms"').and.contain('••• 23');
      p = await page(await submit(ua, p.html, 'mfa-send-sms', {}));
      expect(p.html).to.contain('Code from the text message');
      const msgs = readOutbox(path.join(idp.config.dataDir, 'outbox.jsonl')).filter((m) => m.data.to === '+447700900123');
      expect(msgs.at(-1)?.data.channel).to.equal('sms');
      const code = /\b(\d{6})\b/.exec(msgs.at(-1)!.data.text)![1];
      const step = await submit(ua, p.html, 'mfa-code', { otp: code });
      const claims = await claimsOf(a, step.offsite!);
      expect(claims.acr).to.equal(ACR_MFA);
      expect(claims.amr).to.deep.equal(['pwd', 'sms', 'mfa']);
    });
  });

  describe('remembered devices (new_device policy)', () => {
    const email = 'cy@example.com';
    let sub: string;

    before(async () => {
      sub = await addUser(email);
    });

    /** a browser that has only the device cookie of `ua` (no session) */
    const sameDevice = (ua: UserAgent) => {
      const next = new UserAgent(idp.issuer);
      for (const [k, v] of ua.jar) if (k.startsWith('idp.device')) next.jar.set(k, v);
      return next;
    };

    async function rememberWithEmailCode(ua: UserAgent) {
      const a = await authorize('devices');
      let p = await page(await signIn(ua, a, email));
      expect(p.html).to.contain('name="remember"');
      p = await page(await submit(ua, p.html, 'mfa-send-email', {}));
      const step = await submit(ua, p.html, 'mfa-code', { otp: lastCodeTo(email), remember: '1' });
      expect((await claimsOf(a, step.offsite!)).acr).to.equal(ACR_MFA);
    }

    it('a remembered device skips MFA; after revocation (CLI) it does not, even inside its session', async () => {
      const ua = new UserAgent(idp.issuer);
      // without "remember", the next login on this device asks again
      const a0 = await authorize('devices');
      let p = await page(await signIn(ua, a0, email));
      p = await page(await submit(ua, p.html, 'mfa-send-email', {}));
      expect((await submit(ua, p.html, 'mfa-code', { otp: lastCodeTo(email) }, ['remember'])).offsite).to.be.a('string');
      // a new session on this device: asked again, and this time "remember this device"
      await rememberWithEmailCode(sameDevice(ua));
      const devices = await idp.cli('users', 'devices', 'list', '--sub', sub) as Array<{ id: string; label: string }>;
      expect(devices).to.have.length(1);

      // a new session on the same device: the password only, and the token says so
      const ua2 = sameDevice(ua);
      const a = await authorize('devices');
      const step = await signIn(ua2, a, email);
      expect(step.offsite, 'no MFA step').to.be.a('string');
      const claims = await claimsOf(a, step.offsite!);
      expect(claims.acr).to.equal(ACR_PWD);
      expect(claims.amr).to.deep.equal(['pwd']);
      // another browser (no device cookie) is a new device
      p = await page(await signIn(new UserAgent(idp.issuer), await authorize('devices'), email));
      expect(p.html).to.contain('id="mfa-send-email"');

      const r = await idp.cli('users', 'devices', 'revoke', '--sub', sub, '--device', devices[0].id) as { revoked: number };
      expect(r.revoked).to.equal(1);
      // the session that skipped MFA is sent back to the login
      const inSession = await ua2.navigate((await authorize('devices')).url.href);
      expect(inSession.offsite).to.equal(undefined);
      expect(await inSession.res.text()).to.contain('name="password"');
      // and a new login on that device asks for the second factor again
      p = await page(await signIn(sameDevice(ua), await authorize('devices'), email));
      expect(p.html).to.contain('id="mfa-send-email"');
      expect((await events()).some((e) => e.type === 'device.revoked' && e.sub === sub && e.data?.by === 'admin')).to.equal(true);
    });

    it('the account page lists remembered devices and forgets them', async () => {
      const ua = new UserAgent(idp.issuer);
      await rememberWithEmailCode(ua);
      // the account page signs in through the built-in client, on the session just made
      let step = await ua.navigate('/account/login');
      expect(step.url).to.match(/\/account$/);
      let html = await step.res.text();
      expect(html).to.contain('Remembered devices').and.contain('this device');
      const form = /id="(device-revoke-[A-Za-z0-9_-]+)"/.exec(html.replace('id="device-revoke-all"', ''))![1];
      step = await submit(ua, html, form, {});
      html = await step.res.text();
      expect(html).to.contain('The device was forgotten');
      expect(html).to.not.contain('this device');
      const p = await page(await signIn(sameDevice(ua), await authorize('devices'), email));
      expect(p.html).to.contain('id="mfa-send-email"');
      expect((await events()).some((e) => e.type === 'device.revoked' && e.sub === sub && e.data?.by === 'user')).to.equal(true);
    });
  });

  describe('the account page', () => {
    const email = 'dee@example.com';

    it('sets up an authenticator app (after a fresh sign-in) and regenerates recovery codes', async () => {
      const sub = await addUser(email);
      const ua = new UserAgent(idp.issuer);
      let step = await ua.navigate('/account');
      expect(await step.res.text()).to.contain('href="/account/login"');
      // sign in from the account page
      step = await ua.navigate('/account/login');
      let html = await step.res.text();
      const login = readForm(html);
      step = await ua.navigate(login.action, { form: { ...login.fields, login: email, password: PASSWORD } });
      expect(step.url).to.match(/\/account$/);
      html = await step.res.text();
      expect(html).to.contain('Set up an authenticator app');

      step = await ua.navigate('/account/totp');
      html = await step.res.text();
      const secret = secretIn(html)!;
      expect(secret).to.match(/^[A-Z2-7]{32}$/);
      step = await submit(ua, html, 'account-totp', { otp: '000000' });
      expect(step.res.status).to.equal(400);
      html = await step.res.text();
      step = await submit(ua, html, 'account-totp', { otp: await totpAt(secret, nowStep()) });
      html = await step.res.text();
      const codes = [...html.matchAll(/<li><code>([a-z2-9-]{11})<\/code><\/li>/g)].map((m) => m[1]);
      expect(codes).to.have.length(10);
      expect((await idp.cli('users', 'mfa', 'status', '--sub', sub) as { totp: unknown }).totp).to.not.equal(null);

      // regenerating needs a sign-in with MFA now (the session's is password-only): it goes through the login
      step = await ua.navigate('/account');
      html = await step.res.text();
      step = await submit(ua, html, 'account-recovery', {});
      expect(step.url).to.match(/\/interaction\//);
      html = await step.res.text();
      const relogin = readForm(html);
      step = await ua.navigate(relogin.action, { form: { ...relogin.fields, login: email, password: PASSWORD } });
      html = await step.res.text();
      step = await submit(ua, html, 'mfa-recovery', { otp: codes[0] });
      expect(step.url).to.match(/\/account$/);
      html = await step.res.text();
      step = await submit(ua, html, 'account-recovery', {});
      html = await step.res.text();
      const fresh = [...html.matchAll(/<li><code>([a-z2-9-]{11})<\/code><\/li>/g)].map((m) => m[1]);
      expect(fresh).to.have.length(10);
      expect(html).to.contain('old recovery codes no longer work');
      expect(fresh).to.not.include(codes[1]);
    });

    it('signed out, it sends the browser to sign in; signed in, a form without its CSRF token is refused', async () => {
      const ua = new UserAgent(idp.issuer);
      const out = await ua.request('/account/devices/revoke', { form: { all: '1' } });
      expect(out.status).to.equal(303);
      expect(out.headers.get('location')).to.equal('/account/login');
      await addUser('flo@example.com');
      let step = await ua.navigate('/account/login');
      const login = readForm(await step.res.text());
      step = await ua.navigate(login.action, { form: { ...login.fields, login: 'flo@example.com', password: PASSWORD } });
      expect(step.url).to.match(/\/account$/);
      const r = await ua.request('/account/devices/revoke', { form: { all: '1' } });
      expect(r.status).to.equal(403);
      const forged = await ua.request('/account/devices/revoke', { form: { all: '1', csrf: 'x'.repeat(43) } });
      expect(forged.status).to.equal(403);
    });
  });

  describe('lockout', () => {
    let locked: TestIdp;

    after(async () => {
      await locked?.close();
    });

    it('failed MFA codes count towards the lockout policy (LoginGuard)', async function () {
      // after a right password the browser is a known device: its own counter judges the MFA codes
      locked = await startTestIdp({ MFA_POLICY: 'required', LOCKOUT_MFA_MAX_FAILURES: '3', LOCKOUT_DEVICE_MAX_FAILURES: '3' });
      if (!(locked as unknown as { lockout?: unknown }).lockout) this.skip();
      await locked.cli('clients', 'add', '--id', 'app', '--secret', SECRET, '--redirect-uri', REDIRECT, '--grant-types', 'authorization_code', '--first-party');
      await locked.cli('users', 'add', '--email', 'eve@example.com', '--password', PASSWORD, '--email-verified');
      const rp = await oidc.discovery(new URL(locked.issuer), 'app', SECRET, undefined, { execute: [oidc.allowInsecureRequests] });
      const url = oidc.buildAuthorizationUrl(rp, { redirect_uri: REDIRECT, scope: 'openid', code_challenge: await oidc.calculatePKCECodeChallenge(oidc.randomPKCECodeVerifier()), code_challenge_method: 'S256' });
      const ua = new UserAgent(locked.issuer);
      let step = await ua.navigate(url.href);
      const login = readForm(await step.res.text());
      step = await ua.navigate(login.action, { form: { ...login.fields, login: 'eve@example.com', password: PASSWORD } });
      let html = await step.res.text();
      const secret = secretIn(html)!;
      const statuses: number[] = [];
      for (let i = 0; i < 4; i++) {
        step = await submit(ua, html, 'mfa-enrol', { otp: '000000' });
        statuses.push(step.res.status);
        html = await step.res.text();
      }
      expect(statuses).to.include(429);
      // locked: even the right code is refused now
      step = await submit(ua, html, 'mfa-enrol', { otp: await totpAt(secret, nowStep()) });
      expect(step.res.status).to.equal(429);
    });
  });
});
