// The lockout stores (src/lockout: CounterStore, DynamoLoginGuard,
// OneTimeCodes) called directly, without HTTP, with the concurrency they must
// withstand: every guarantee here rests on one conditional UpdateItem per
// attempt, so parallel attempts must never count past a limit.
//
// Runs on dynalite in `mocha`, and on DynamoDB Local in `npm run test:compat`.
import { expect } from 'chai';
import { GetCommand } from '@aws-sdk/lib-dynamodb';
import { CounterStore, keys, lockSeconds, type AdmitResult, type Backoff, type CounterKey, type CounterSpec } from '../../src/lockout/counters.ts';
import { OneTimeCodes, type CodeOptions } from '../../src/lockout/codes.ts';
import type { Attempt } from '../../src/lockout/types.ts';
import { backendKind, startBackend, type TestBackend } from '../support/dynamo.ts';
import { openStores, type Stores } from '../support/stores.ts';

const PASSWORD = 'a long and right passphrase 42';
const BACKOFF: Backoff = { waitSeconds: 60, backoff: 'exponential', maxWaitSeconds: 900 };
const SPEC: CounterSpec = { reason: 'account_threshold', limit: 5, resetSeconds: 3600, permanentAfter: 2 };
const FOREVER_SECONDS = 10 * 365 * 86400;

const parallel = <T>(n: number, f: (i: number) => Promise<T>) => Promise.all(Array.from({ length: n }, (_, i) => f(i)));
type Allowed = Extract<AdmitResult, { allowed: true }>;
type Refused = Extract<AdmitResult, { allowed: false }>;
const allowed = (rs: AdmitResult[]) => rs.filter((r): r is Allowed => r.allowed);
const refused = (rs: AdmitResult[]) => rs.filter((r): r is Refused => !r.allowed);

describe(`lockout stores under concurrency (${backendKind()})`, function () {
  this.timeout(180_000);
  let backend: TestBackend;
  let s: Stores;
  let clock = Date.now();
  let counters: CounterStore;
  let seq = 0;
  const fresh = (label: string): CounterKey => ({ pk: keys.account(`${label}-${++seq}`), sk: 'c#password' });

  before(async function () {
    this.timeout(180_000);
    backend = await startBackend();
    s = await openStores(backend, {
      LOCKOUT_MAX_FAILURES: '5', LOCKOUT_ACCOUNT_IP_MAX_FAILURES: '3', LOCKOUT_IP_MAX_FAILURES: '20', LOCKOUT_WAIT_SECONDS: '600',
    });
    counters = new CounterStore(s.storage, BACKOFF, () => clock);
  });

  after(async () => {
    await s?.close();
    await backend?.close();
  });

  describe('counters', () => {
    it('50 parallel attempts on one counter with limit 5: exactly 5 are admitted (n = 1..5, the 5th the last), 45 see the lock', async () => {
      const key = fresh('par');
      const rs = await parallel(50, () => counters.admit(key, SPEC));
      expect(allowed(rs).map((r) => r.n).sort()).to.deep.equal([1, 2, 3, 4, 5]);
      expect(allowed(rs).filter((r) => r.last).map((r) => r.n)).to.deep.equal([5]);
      expect(refused(rs)).to.have.length(45);
      for (const r of refused(rs)) expect(r).to.include({ lockNumber: 1, permanent: false }).and.satisfy((x: Refused) => x.retryAfterSeconds > 0 && x.retryAfterSeconds <= 60);
      expect(await counters.peek(key, SPEC)).to.include({ n: 5, lockNumber: 1, locked: true, permanent: false });
    });

    it('when the lock is over, 50 parallel attempts start the next cycle once: exactly 5 more, then the longer second lock; then a permanent one', async () => {
      const key = fresh('cycles');
      clock = Date.now();
      await parallel(50, () => counters.admit(key, SPEC));
      clock += 61_000;
      let rs = await parallel(50, () => counters.admit(key, SPEC));
      expect(allowed(rs).map((r) => r.n).sort(), 'second cycle').to.deep.equal([1, 2, 3, 4, 5]);
      expect(allowed(rs).every((r) => r.lockNumber === 2 && r.lockSeconds === lockSeconds(BACKOFF, 2) && !r.permanent)).to.equal(true);
      expect(refused(rs).every((r) => r.lockNumber === 2 && r.retryAfterSeconds > 60 && r.retryAfterSeconds <= 120)).to.equal(true);
      // the third cycle ends in the permanent lock (permanentAfter: 2)
      clock += 121_000;
      rs = await parallel(50, () => counters.admit(key, SPEC));
      expect(allowed(rs).map((r) => r.n).sort(), 'third cycle').to.deep.equal([1, 2, 3, 4, 5]);
      expect(allowed(rs).every((r) => r.lockNumber === 3 && r.permanent)).to.equal(true);
      expect(refused(rs).every((r) => r.permanent && r.retryAfterSeconds === FOREVER_SECONDS)).to.equal(true);
      clock += 30 * 86400_000;
      const later = await parallel(10, () => counters.admit(key, SPEC));
      expect(allowed(later), 'a permanent lock does not wear off').to.deep.equal([]);
      expect(await counters.peek(key, SPEC)).to.include({ locked: true, permanent: true });
      clock = Date.now();
    });

    it('a counter forgotten after resetSeconds starts again from zero, once, under 50 parallel attempts', async () => {
      const key = fresh('expiry');
      clock = Date.now();
      await parallel(3, () => counters.admit(key, SPEC));
      clock += (SPEC.resetSeconds + 1) * 1000;
      const rs = await parallel(50, () => counters.admit(key, SPEC));
      expect(allowed(rs).map((r) => r.n).sort()).to.deep.equal([1, 2, 3, 4, 5]);
      expect(allowed(rs).every((r) => r.lockNumber === 1)).to.equal(true);
      clock = Date.now();
    });

    it('a stale delete of a forgotten counter never removes the counter that replaced it', async () => {
      // A finds the expired counter and is slow to delete it; meanwhile B deletes it and
      // counts 3 attempts on a new one, whose `ver` starts again at 1 and is 3 again by then
      const key = fresh('aba');
      clock = Date.now();
      await parallel(3, () => counters.admit(key, SPEC));
      clock += (SPEC.resetSeconds + 1) * 1000;
      let reached!: () => void;
      const atDelete = new Promise<void>((r) => { reached = r; });
      let release!: () => void;
      const gate = new Promise<void>((r) => { release = r; });
      const slowDoc = {
        send: async (cmd: { constructor: { name: string } }) => {
          if (cmd.constructor.name === 'DeleteCommand') {
            reached();
            await gate;
          }
          return s.storage.doc.send(cmd as never);
        },
      };
      const slow = new CounterStore({ ...s.storage, doc: slowDoc as unknown as typeof s.storage.doc }, BACKOFF, () => clock);
      const a = slow.admit(key, SPEC);
      await atDelete;
      const b = await Promise.all([0, 1, 2].map(() => counters.admit(key, SPEC)));
      expect(allowed(b).map((r) => r.n).sort()).to.deep.equal([1, 2, 3]);
      release();
      expect(await a).to.include({ allowed: true, n: 4 });
      const rest = await parallel(10, () => counters.admit(key, SPEC));
      expect(allowed(rest).map((r) => r.n), 'the cycle still ends at 5').to.deep.equal([5]);
      clock = Date.now();
    });

    it('a stale start of the next cycle never clears a lock that a new counter set', async () => {
      // A sees a lock that is over and is slow to start the next cycle; meanwhile a right
      // secret resets the counter and 5 new failures lock it again (with the same `ver`)
      const key = fresh('aba-cycle');
      clock = Date.now();
      await parallel(5, () => counters.admit(key, SPEC));
      clock += 61_000;
      let updates = 0;
      let reached!: () => void;
      const atReset = new Promise<void>((r) => { reached = r; });
      let release!: () => void;
      const gate = new Promise<void>((r) => { release = r; });
      const slowDoc = {
        send: async (cmd: { constructor: { name: string } }) => {
          if (cmd.constructor.name === 'UpdateCommand' && ++updates === 2) {
            reached();
            await gate;
          }
          return s.storage.doc.send(cmd as never);
        },
      };
      const slow = new CounterStore({ ...s.storage, doc: slowDoc as unknown as typeof s.storage.doc }, BACKOFF, () => clock);
      const a = slow.admit(key, SPEC);
      await atReset;
      await counters.reset(key);
      const b = await parallel(5, () => counters.admit(key, SPEC));
      expect(allowed(b).map((r) => r.n).sort()).to.deep.equal([1, 2, 3, 4, 5]);
      release();
      expect(await a, 'the new lock holds').to.include({ allowed: false, lockNumber: 1 });
      expect(await counters.peek(key, SPEC)).to.include({ n: 5, locked: true });
      clock = Date.now();
    });

    it('giving attempts back in parallel never takes a counter below zero', async () => {
      const key = fresh('giveback');
      await parallel(3, () => counters.admit(key, SPEC));
      await parallel(10, () => counters.giveBack(key));
      expect((await counters.peek(key, SPEC)).n).to.equal(0);
      const rs = await parallel(20, () => counters.admit(key, SPEC));
      expect(allowed(rs)).to.have.length(5);
    });

    it('a right secret resets; clear() removes every counter of an account but not its known devices', async () => {
      const pk = keys.account(`clear-${++seq}`);
      await parallel(5, () => counters.admit({ pk, sk: 'c#password' }, SPEC));
      await counters.admit({ pk, sk: 'c#mfa' }, SPEC);
      await counters.rememberDevice(pk, 'devhash', 'password', 30);
      expect(await counters.clear(pk)).to.equal(2);
      expect((await counters.list(pk)).map((i) => i.sk)).to.deep.equal(['known#password#devhash']);
      expect(await counters.isKnownDevice(pk, 'devhash', 'password')).to.equal(true);
      expect(await counters.isKnownDevice(pk, 'devhash', 'mfa')).to.equal(false);
    });
  });

  describe('the guard: counted before the hash', () => {
    const ips = (label: number) => (i: number) => `10.${label}.${Math.floor(i / 250)}.${(i % 250) + 1}`;

    /**
     * One sign-in attempt as the login route makes it: check, then argon2 only
     * if admitted (a dummy verify for an unknown identifier), then failed or
     * succeeded. On an account locked by strangers (Decision.secondFactor) the
     * password is still checked: a wrong one is refused ('locked'), a right one
     * leads to a second factor ('second-factor'), and the guard hears of the
     * success only after that.
     */
    async function attempt(a: Attempt, hash: string | undefined, password: string): Promise<'refused' | 'wrong' | 'right' | 'locked' | 'second-factor'> {
      const decision = await s.guard.check(a);
      if (!decision.allowed) return 'refused';
      const locked = decision.secondFactor !== undefined;
      if (hash === undefined) {
        await s.hasher.dummyVerify(password);
      } else if (await s.hasher.verify(hash, password)) {
        if (locked) return 'second-factor';
        await s.guard.succeeded(a);
        return 'right';
      }
      await s.guard.failed(a);
      return locked ? 'locked' : 'wrong';
    }

    it('50 parallel wrong passwords from 50 addresses: exactly 5 count towards the lock, the rest are refused after their hash; the right one then needs a second factor; the known device still gets in', async () => {
      const email = `victim-${++seq}@example.com`;
      const account = await s.accounts.create({ email, password: PASSWORD, emailVerified: true });
      const hash = account.passwordHash!;
      // the owner's browser signed in before
      expect(await attempt({ kind: 'password', ip: '192.0.2.200', login: email, deviceId: 'owner-browser' }, hash, PASSWORD)).to.equal('right');

      const verifies = s.hasher.calls.verify;
      const ip = ips(seq);
      const results = await parallel(50, (i) => attempt({ kind: 'password', ip: ip(i), login: email }, hash, `wrong guess ${i}`));
      expect(results.filter((r) => r === 'wrong')).to.have.length(5);
      expect(results.filter((r) => r === 'locked')).to.have.length(45);
      // after the lock every password is still checked (a right one would lead to a second factor)
      expect(s.hasher.calls.verify - verifies, 'argon2 verifications').to.equal(50);
      const locked = s.events.filter((e) => e.type === 'account.locked' && e.sub === account.sub);
      expect(locked.map((e) => e.reason)).to.deep.equal(['account_threshold']);
      expect(await s.guard.state(account.sub)).to.include({ locked: true, failures: 5 });

      expect(await attempt({ kind: 'password', ip: '192.0.2.201', login: email }, hash, PASSWORD)).to.equal('second-factor');
      expect(await s.guard.state(account.sub), 'locked until the second factor').to.include({ locked: true });
      expect(await attempt({ kind: 'password', ip: '192.0.2.202', login: email, deviceId: 'owner-browser' }, hash, PASSWORD)).to.equal('right');
    });

    it('50 parallel wrong passwords from one address reach argon2 exactly 3 times (the account-and-IP limit)', async () => {
      const email = `one-ip-${++seq}@example.com`;
      const account = await s.accounts.create({ email, password: PASSWORD, emailVerified: true });
      const verifies = s.hasher.calls.verify;
      const results = await parallel(50, (i) => attempt({ kind: 'password', ip: `172.16.${seq}.1`, login: email }, account.passwordHash!, `guess ${i}`));
      expect(results.filter((r) => r === 'wrong')).to.have.length(3);
      expect(s.hasher.calls.verify - verifies).to.equal(3);
      // the other counters were not counted past what they judged: the account has 3 failures, not 50
      expect((await s.guard.state(account.sub)).failures).to.equal(3);
    });

    it('an unknown identifier locks after exactly 5 of 50 parallel tries, like an account', async () => {
      const ip = ips(++seq);
      const dummies = s.hasher.calls.dummyVerify;
      const results = await parallel(50, (i) => attempt({ kind: 'password', ip: ip(i), login: `nobody-${seq}@example.com` }, undefined, `guess ${i}`));
      expect(results.filter((r) => r === 'wrong')).to.have.length(5);
      // locked like an account: the rest still cost their (dummy) hash and are refused the same way
      expect(results.filter((r) => r === 'locked')).to.have.length(45);
      expect(s.hasher.calls.dummyVerify - dummies).to.equal(50);
    });

    it('unlock clears a lock set by parallel failures', async () => {
      const email = `unlock-${++seq}@example.com`;
      const account = await s.accounts.create({ email, password: PASSWORD, emailVerified: true });
      const ip = ips(seq);
      await parallel(20, (i) => attempt({ kind: 'password', ip: ip(i), login: email }, account.passwordHash!, 'nope'));
      expect((await s.guard.state(account.sub)).locked).to.equal(true);
      const r = await s.guard.unlock(account.sub, 'admin');
      expect(r.wasLocked).to.equal(true);
      expect(r.cleared).to.be.greaterThan(0);
      expect(await attempt({ kind: 'password', ip: '192.0.2.210', login: email }, account.passwordHash!, PASSWORD)).to.equal('right');
    });
  });

  describe('one-time codes (unlock, reset)', () => {
    const OPTS: CodeOptions = { digits: 8, ttlSeconds: 600, maxTries: 5, maxSends: 5 };
    let codes: OneTimeCodes;
    before(() => {
      codes = new OneTimeCodes(counters, () => s.keyring.blindIndexKey(), OPTS);
    });
    const item = async (pk: string, sk: string) => (await s.storage.doc.send(new GetCommand({ TableName: s.storage.tables.accounts, Key: { pk, sk }, ConsistentRead: true }))).Item;
    const wrong = (code: string, i: number) => String((Number(code) + 1 + i) % 1e8).padStart(8, '0');

    it('20 parallel wrong guesses count exactly 5 tries; the right code after them is refused', async () => {
      clock = Date.now();
      const pk = keys.account(`codes-${++seq}`);
      const code = (await codes.issue(pk, 'unlock'))!;
      const rs = await parallel(20, (i) => codes.verify(pk, 'unlock', wrong(code, i), true));
      expect(rs.every((r) => r === false)).to.equal(true);
      expect((await item(pk, 'code#unlock'))?.tries).to.equal(5);
      expect(await codes.verify(pk, 'unlock', code, true)).to.equal(false);
    });

    it('the right code sent 10 times in parallel works exactly once', async () => {
      const pk = keys.account(`codes-${++seq}`);
      const code = (await codes.issue(pk, 'reset'))!;
      const rs = await parallel(10, () => codes.verify(pk, 'reset', code, true));
      expect(rs.filter(Boolean)).to.have.length(1);
      expect(await codes.verify(pk, 'reset', code, true)).to.equal(false);
    });

    it('a right code checked without using it gives its try back (5 in parallel), and is then usable once', async () => {
      const pk = keys.account(`codes-${++seq}`);
      const code = (await codes.issue(pk, 'reset'))!;
      const rs = await parallel(5, () => codes.verify(pk, 'reset', code, false));
      expect(rs.every(Boolean)).to.equal(true);
      expect((await item(pk, 'code#reset'))?.tries).to.equal(0);
      expect(await parallel(5, () => codes.verify(pk, 'reset', code, true)).then((r) => r.filter(Boolean).length)).to.equal(1);
    });

    it('at most 5 codes an hour, even when 20 are asked for at once; a new hour allows more; a new code replaces the old one', async () => {
      clock = Date.now();
      const pk = keys.account(`codes-${++seq}`);
      const issued = await parallel(20, () => codes.issue(pk, 'unlock'));
      expect(issued.filter((c) => c !== undefined)).to.have.length(5);
      expect((await item(pk, 'sends#unlock'))?.n).to.equal(5);
      expect(await codes.issue(pk, 'unlock')).to.equal(undefined);
      clock += 3601_000;
      const next = await codes.issue(pk, 'unlock');
      expect(next).to.be.a('string');
      // (two of them: each wrong try counts against the new code's five)
      for (const old of issued.filter((c): c is string => c !== undefined && c !== next).slice(0, 2)) expect(await codes.verify(pk, 'unlock', old, true)).to.equal(false);
      expect(await codes.verify(pk, 'unlock', next!, true)).to.equal(true);
      clock = Date.now();
    });

    it('an expired code is refused', async () => {
      clock = Date.now();
      const pk = keys.account(`codes-${++seq}`);
      const code = (await codes.issue(pk, 'unlock'))!;
      clock += (OPTS.ttlSeconds + 1) * 1000;
      expect(await codes.verify(pk, 'unlock', code, true)).to.equal(false);
      clock = Date.now();
    });
  });
});
