// The MFA stores (src/mfa: MfaStore under MfaService) called directly,
// without HTTP, with concurrent use: a TOTP code is accepted once, an
// enrolment is confirmed once, a recovery code works once, an e-mail/SMS code
// allows 5 tries and works once, a login flow sends at most 5 codes. Each of
// these is one conditional write, which parallel requests must not get past.
//
// Runs on dynalite in `mocha`, and on DynamoDB Local in `npm run test:compat`.
import { expect } from 'chai';
import { generate } from 'otplib';
import { CODE_MAX_SENDS, CODE_MAX_TRIES, RECOVERY_CODE_COUNT } from '../../src/mfa/service.ts';
import { factorPk, flowPk, type FlowItem } from '../../src/mfa/store.ts';
import { MfaCodeRejected } from '../../src/mfa/types.ts';
import { backendKind, startBackend, type TestBackend } from '../support/dynamo.ts';
import { openStores, type Stores } from '../support/stores.ts';

const PASSWORD = 'a long and right passphrase 42';
const parallel = <T>(n: number, f: (i: number) => Promise<T>) => Promise.all(Array.from({ length: n }, (_, i) => f(i)));
const settle = <T>(p: Promise<T>) => p.then((value) => ({ ok: true as const, value }), (err: unknown) => ({ ok: false as const, err }));
const reasonOf = (r: { ok: boolean; err?: unknown }) => (r.ok ? 'ok' : r.err instanceof MfaCodeRejected ? r.err.reason : String(r.err));

describe(`MFA stores under concurrency (${backendKind()})`, function () {
  this.timeout(180_000);
  let backend: TestBackend;
  let s: Stores;
  /** the MFA service's clock (ms); the store's own expiry checks use the real time */
  let clock = Date.now();
  let seq = 0;
  const epoch = () => Math.floor(clock / 1000);
  const stepNow = () => Math.floor(epoch() / 30);
  const totpAt = (secret: string, step: number) => generate({ secret, epoch: step * 30 });

  before(async function () {
    this.timeout(180_000);
    backend = await startBackend();
    s = await openStores(backend, {}, { now: () => clock });
  });

  after(async () => {
    await s?.close();
    await backend?.close();
  });

  async function account(): Promise<{ sub: string; email: string }> {
    const email = `mfa-${++seq}@example.com`;
    const a = await s.accounts.create({ email, password: PASSWORD, emailVerified: true });
    return { sub: a.sub, email };
  }

  /** an account with an authenticator app, enrolled at the current step */
  async function enrolled(): Promise<{ sub: string; secret: string; recovery: string[]; step: number }> {
    clock = Date.now();
    const { sub, email } = await account();
    const setup = await s.mfa.totpSetup(sub, 'login:x', email);
    const step = stepNow();
    const recovery = await s.mfa.confirmTotp(sub, 'login:x', await totpAt(setup.secret, step), { replace: false, via: 'login' });
    expect(recovery).to.have.length(RECOVERY_CODE_COUNT);
    return { sub, secret: setup.secret, recovery: recovery!, step };
  }

  async function flow(sub: string): Promise<FlowItem> {
    const uid = `uid-${++seq}`;
    const f: FlowItem = {
      pk: flowPk(uid), sk: '_', uid, sub, amr: ['pwd'], clientId: 'app', policy: 'required', stepUp: false, offerRemember: false,
      sends: 0, createdAt: new Date().toISOString(), expiresAt: Math.floor(Date.now() / 1000) + 3600,
    };
    await s.mfaStore.putFlow(f);
    return f;
  }

  /** the code of the last message sent to the flow's account */
  const lastCode = () => s.outbox[s.outbox.length - 1].vars.code;

  describe('TOTP', () => {
    it('one code sent 20 times in parallel is accepted exactly once; an earlier step after it is refused; a later one works', async () => {
      const { sub, secret, step } = await enrolled();
      // two steps on: the window is now-1..now+1, all of them above the enrolment step
      clock += 60_000;
      const code = await totpAt(secret, step + 2);
      const rs = await parallel(20, () => s.mfa.verifyTotp(sub, code));
      expect(rs.filter(Boolean)).to.have.length(1);
      expect((await s.mfaStore.getFactors(sub))?.totpLastStep).to.equal(step + 2);
      expect(await s.mfa.verifyTotp(sub, await totpAt(secret, step + 1)), 'an earlier step, inside the window').to.equal(false);
      expect(await s.mfa.verifyTotp(sub, code), 'the same code again').to.equal(false);
      clock += 30_000;
      expect(await s.mfa.verifyTotp(sub, await totpAt(secret, step + 3))).to.equal(true);
      expect(await s.mfa.verifyTotp(sub, '000000')).to.equal(false);
    });

    it('an enrolment confirmed by 10 parallel requests with the right code is stored once, with one set of recovery codes', async () => {
      clock = Date.now();
      const { sub, email } = await account();
      const setup = await s.mfa.totpSetup(sub, 'account:y', email);
      // reloading the page shows the same secret
      expect((await s.mfa.totpSetup(sub, 'account:y', email)).secret).to.equal(setup.secret);
      const code = await totpAt(setup.secret, stepNow());
      const before = s.events.filter((e) => e.type === 'mfa.enrolled').length;
      const rs = await parallel(10, () => s.mfa.confirmTotp(sub, 'account:y', code, { replace: false, via: 'account' }));
      const winners = rs.filter((r) => r !== undefined);
      expect(winners).to.have.length(1);
      expect(s.events.filter((e) => e.type === 'mfa.enrolled').length - before).to.equal(1);
      const f = await s.mfaStore.getFactors(sub);
      expect(Object.keys(f?.recoveryCodes ?? {})).to.have.length(RECOVERY_CODE_COUNT);
      expect((await s.mfa.useRecoveryCode(sub, winners[0]![0])).ok).to.equal(true);
      expect(await s.mfaStore.getPending(sub, 'account:y'), 'the pending secret is used up').to.equal(undefined);
    });

    it('an enrolment at login never replaces an app set up meanwhile', async () => {
      const { sub, secret } = await enrolled();
      const setup = await s.mfa.totpSetup(sub, 'login:z', 'someone');
      expect(await s.mfa.confirmTotp(sub, 'login:z', await totpAt(setup.secret, stepNow()), { replace: false, via: 'login' })).to.equal(undefined);
      clock += 30_000;
      expect(await s.mfa.verifyTotp(sub, await totpAt(secret, stepNow())), 'the first app still works').to.equal(true);
    });
  });

  describe('recovery codes', () => {
    it('one recovery code tried 20 times in parallel works exactly once', async () => {
      const { sub, recovery } = await enrolled();
      const rs = await parallel(20, () => s.mfa.useRecoveryCode(sub, recovery[0]));
      expect(rs.filter((r) => r.ok)).to.have.length(1);
      expect((await s.mfa.status(sub)).recoveryRemaining).to.equal(RECOVERY_CODE_COUNT - 1);
      expect((await s.mfa.useRecoveryCode(sub, recovery[0].toUpperCase())).ok).to.equal(false);
    });

    it('all 10 codes used at once each work once: removing one does not disturb another', async () => {
      const { sub, recovery } = await enrolled();
      const rs = await parallel(RECOVERY_CODE_COUNT, (i) => s.mfa.useRecoveryCode(sub, recovery[i]));
      expect(rs.every((r) => r.ok)).to.equal(true);
      expect((await s.mfa.status(sub)).recoveryRemaining).to.equal(0);
      expect(s.events.filter((e) => e.type === 'mfa.recovery.used' && e.sub === sub)).to.have.length(RECOVERY_CODE_COUNT);
      for (const c of recovery) expect((await s.mfa.useRecoveryCode(sub, c)).ok).to.equal(false);
    });

    it('a new set replaces the old one entirely, also for a code being used at that moment', async () => {
      const { sub, recovery } = await enrolled();
      const [used, fresh] = await Promise.all([
        parallel(5, (i) => s.mfa.useRecoveryCode(sub, recovery[i])),
        s.mfa.regenerateRecoveryCodes(sub, 'admin'),
      ]);
      // whatever was used before the new set came in, no old code works after it
      expect(used.filter((r) => r.ok).length, 'uses counted').to.equal(s.events.filter((e) => e.type === 'mfa.recovery.used' && e.sub === sub).length);
      for (const c of recovery) expect((await s.mfa.useRecoveryCode(sub, c)).ok, c).to.equal(false);
      expect((await s.mfa.status(sub)).recoveryRemaining).to.equal(RECOVERY_CODE_COUNT);
      expect((await s.mfa.useRecoveryCode(sub, fresh[3])).ok).to.equal(true);
    });
  });

  describe('e-mail and SMS codes', () => {
    it(`20 parallel wrong codes count exactly ${CODE_MAX_TRIES} tries; the right code after them is refused`, async () => {
      clock = Date.now();
      const { sub, email } = await account();
      const f = await flow(sub);
      expect(await s.mfa.sendCode(f, 'email', email)).to.equal(true);
      const code = lastCode();
      const wrong = (i: number) => String((Number(code) + 1 + i) % 1e6).padStart(6, '0');
      const rs = await parallel(20, (i) => settle(s.mfa.verifyCode(f, wrong(i))));
      const reasons = rs.map(reasonOf);
      expect(reasons.filter((r) => r === 'invalid'), 'tries counted and compared').to.have.length(CODE_MAX_TRIES);
      expect(reasons.filter((r) => r === 'exhausted'), 'tries refused').to.have.length(20 - CODE_MAX_TRIES);
      expect((await s.mfaStore.getFlow(f.uid))?.code?.tries).to.equal(CODE_MAX_TRIES);
      expect(reasonOf(await settle(s.mfa.verifyCode(f, code)))).to.equal('exhausted');
    });

    it('the right code sent 10 times in parallel is accepted exactly once', async () => {
      clock = Date.now();
      const { sub } = await account();
      const f = await flow(sub);
      expect(await s.mfa.sendCode(f, 'sms', '+4915112999999')).to.equal(true);
      const code = lastCode();
      const rs = (await parallel(10, () => settle(s.mfa.verifyCode(f, code)))).map(reasonOf);
      expect(rs.filter((r) => r === 'ok')).to.have.length(1);
      expect(rs.filter((r) => r !== 'ok' && r !== 'used' && r !== 'exhausted'), 'the others: used (or out of tries)').to.deep.equal([]);
      expect(reasonOf(await settle(s.mfa.verifyCode(f, code)))).to.equal('used');
    });

    it(`a login flow sends at most ${CODE_MAX_SENDS} codes, even when 12 are asked for at once; a new code replaces the old one`, async () => {
      clock = Date.now();
      const { sub, email } = await account();
      const f = await flow(sub);
      const sentBefore = s.outbox.length;
      const rs = await parallel(12, () => s.mfa.sendCode(f, 'email', email));
      expect(rs.filter(Boolean)).to.have.length(CODE_MAX_SENDS);
      expect(s.outbox.length - sentBefore).to.equal(CODE_MAX_SENDS);
      expect((await s.mfaStore.getFlow(f.uid))?.sends).to.equal(CODE_MAX_SENDS);
      // one of the codes sent is the current one (the others count as wrong tries: 5 are enough)
      const results: string[] = [];
      for (const c of new Set(s.outbox.slice(sentBefore).map((m) => m.vars.code))) {
        results.push(reasonOf(await settle(s.mfa.verifyCode(f, c))));
        if (results[results.length - 1] === 'ok') break;
      }
      expect(results.filter((r) => r === 'ok')).to.have.length(1);
      expect(results.slice(0, -1).every((r) => r === 'invalid')).to.equal(true);
    });

    it('an expired code is refused; a code of another account is no code', async () => {
      const { sub, email } = await account();
      const f = await flow(sub);
      clock = Date.now() - 3_600_000;
      expect(await s.mfa.sendCode(f, 'email', email)).to.equal(true);
      clock = Date.now();
      expect(reasonOf(await settle(s.mfa.verifyCode(f, lastCode())))).to.equal('expired');
      const other = await account();
      expect(reasonOf(await settle(s.mfa.verifyCode({ ...f, sub: other.sub }, lastCode())))).to.equal('invalid');
    });
  });

  describe('remembered devices and reset', () => {
    it('devices: remembered per account, expired ones ignored, revoking all at once from two places counts each device once', async () => {
      const { sub } = await account();
      const other = await account();
      for (const d of ['laptop', 'phone', 'tablet']) await s.mfa.rememberDevice(sub, d, 'Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0');
      expect(await s.mfa.isRemembered(sub, 'laptop')).to.equal(true);
      expect(await s.mfa.isRemembered(other.sub, 'laptop'), 'bound to the account').to.equal(false);
      // a device item past its expiry does not count (DynamoDB's TTL deletes it later; dynalite never does)
      await s.mfaStore.putDevice(sub, 'f'.repeat(64), 'old', -1);
      expect((await s.mfa.listDevices(sub)).map((d) => d.label).sort()).to.deep.equal(['Firefox on Linux', 'Firefox on Linux', 'Firefox on Linux']);
      const [a, b] = await Promise.all([s.mfa.revokeAllDevices(sub, 'user'), s.mfa.revokeAllDevices(sub, 'admin')]);
      expect(a + b).to.equal(3);
      expect(await s.mfa.isRemembered(sub, 'laptop')).to.equal(false);
    });

    it('reset removes the app, the recovery codes, pending enrolments and devices of that account only', async () => {
      const one = await enrolled();
      const two = await enrolled();
      await s.mfa.totpSetup(one.sub, 'account:pending', 'x');
      await s.mfa.rememberDevice(one.sub, 'laptop', undefined);
      await s.mfa.rememberDevice(two.sub, 'laptop', undefined);
      expect(await s.mfa.reset(one.sub, 'admin')).to.deep.equal({ factors: true, devices: 1 });
      const left = (await s.scanAccounts()).filter((i) => i.pk === factorPk(one.sub));
      expect(left).to.deep.equal([]);
      expect(await s.mfa.hasTotp(two.sub)).to.equal(true);
      expect(await s.mfa.isRemembered(two.sub, 'laptop')).to.equal(true);
    });
  });
});
