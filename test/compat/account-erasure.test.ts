// Erasure of an account takes its lockout and MFA items with it: counters,
// known devices, unlock codes, the TOTP secret, recovery codes, pending
// enrolments, remembered devices, the counters of its identifiers from before
// the account had them, and the items of an account merged into it. Another
// account's items are untouched. An erasure that fails at any step is
// finished by running it again. Lockout and MFA take part through their
// erasure hooks (src/erasure-hooks.ts): a store built without them erases the
// account and its pointers only, and leaves a sweep it cannot do to a store
// with them. The tables are read directly (Scan).
//
// Runs on dynalite in `mocha`, and on DynamoDB Local in `npm run test:compat`.
import { expect } from 'chai';
import { generate } from 'otplib';
import { PutCommand, UpdateCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { DynamoAccountStore } from '../../src/accounts/dynamo-store.ts';
import { erasureHooks } from '../../src/erasure-hooks.ts';
import type { ErasureHook } from '../../src/accounts/erasure.ts';
import { StorageUnavailable } from '../../src/storage/errors.ts';
import { identifierHash, keys } from '../../src/lockout/counters.ts';
import type { Attempt } from '../../src/lockout/types.ts';
import { flowPk } from '../../src/mfa/store.ts';
import { startBackend, type TestBackend } from '../support/dynamo.ts';
import { openStores, type Stores } from '../support/stores.ts';

type Item = Record<string, unknown> & { pk: string; sk: string };

const PASSWORD = 'a long and right passphrase 42';
const UA = 'Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0';

interface Person {
  label: string;
  sub: string;
  email: string;
  phone: string;
}

describe('account erasure removes the lockout and MFA items of the account', function () {
  this.timeout(180_000);
  let backend: TestBackend;
  let s: Stores;
  let bystander: Person;
  let seq = 0;

  before(async function () {
    this.timeout(180_000);
    backend = await startBackend();
    s = await openStores(backend, { LOCKOUT_MAX_FAILURES: '50', LOCKOUT_ACCOUNT_IP_MAX_FAILURES: '50', LOCKOUT_MFA_MAX_FAILURES: '50' });
    bystander = await person('bystander');
  });

  after(async () => {
    await s?.close();
    await backend?.close();
  });

  /** one wrong secret: counted by check(), reported by failed() */
  async function fail(a: Attempt) {
    expect((await s.guard.check(a)).allowed).to.equal(true);
    await s.guard.failed(a);
  }

  /** an account with every kind of lockout and MFA item there is */
  async function person(label: string): Promise<Person> {
    const n = ++seq;
    const email = `${label}-${n}@example.com`;
    const phone = `+4915112${String(n).padStart(6, '0')}`;
    // tries on the e-mail address before any account had it: counters of an unknown identifier
    await fail({ kind: 'password', ip: `192.0.2.${n}`, login: email });
    await fail({ kind: 'password', ip: `192.0.2.${n}`, login: phone });
    const { sub } = await s.accounts.create({ email, password: PASSWORD, emailVerified: true, phone, phoneVerified: true, name: `${label} person` });
    // a right password from the owner's browser: the device becomes known for passwords
    const ok: Attempt = { kind: 'password', ip: `203.0.113.${n}`, login: email, deviceId: `${label}-${n}-browser` };
    expect((await s.guard.check(ok)).allowed).to.equal(true);
    await s.guard.succeeded(ok);
    // then failed logins (account, account+IP counters) and a wrong MFA code
    for (let i = 0; i < 3; i++) await fail({ kind: 'password', ip: `198.51.100.${n}`, login: email });
    await fail({ kind: 'mfa', ip: `198.51.100.${n}`, accountId: sub });
    // an e-mailed unlock code (and the count of codes sent this hour)
    expect(await s.codes.issue(keys.account(sub), 'unlock')).to.be.a('string');
    // an authenticator app with its recovery codes
    const setup = await s.mfa.totpSetup(sub, `login:${label}-${n}`, email);
    const codes = await s.mfa.confirmTotp(sub, `login:${label}-${n}`, await generate({ secret: setup.secret, epoch: Math.floor(Date.now() / 1000) }), { replace: false, via: 'login' });
    expect(codes).to.have.length(10);
    // an enrolment started on the account page and never confirmed
    await s.mfa.totpSetup(sub, `account:${label}-${n}`, email);
    // a remembered device
    await s.mfa.rememberDevice(sub, `${label}-${n}-browser`, UA);
    // the second step of a login in progress (keyed by its interaction)
    const now = Math.floor(Date.now() / 1000);
    await s.mfaStore.putFlow({
      pk: flowPk(`uid-${label}-${n}`), sk: '_', uid: `uid-${label}-${n}`, sub, amr: ['pwd'], clientId: 'app', policy: 'required',
      stepUp: false, offerRemember: false, sends: 0, createdAt: new Date().toISOString(), expiresAt: now + 3600,
    });
    return { label, sub, email, phone };
  }

  /** the partitions of a person's items, by kind, as they are in the table */
  function itemsOf(all: Item[], p: Person) {
    const idKeys = [p.email, p.phone].map((i) => keys.identifier(identifierHash(s.keyring.blindIndexKey(), i)));
    return {
      account: all.filter((i) => i.pk === `user#${p.sub}`),
      lockout: all.filter((i) => i.pk === keys.account(p.sub)).map((i) => i.sk.replace(/#[^#]{20,}$/, '#<hash>').replace(/#ip#.*$/, '#ip#<ip>')).sort(),
      identifiers: all.filter((i) => idKeys.includes(i.pk)),
      mfa: all.filter((i) => i.pk === `mfa#${p.sub}`).map((i) => i.sk.replace(/#.*$/, '#')).sort(),
    };
  }

  const EVERY_KIND = {
    lockout: ['c#mfa', 'c#mfa#ip#<ip>', 'c#password', 'c#password#ip#<ip>', 'code#unlock', 'known#password#<hash>', 'sends#unlock'],
    mfa: ['_', 'device#', 'pending#'],
  };

  function expectEveryKind(all: Item[], p: Person, hasAccount = true) {
    const mine = itemsOf(all, p);
    expect(mine.account, `${p.label}: account`).to.have.length(hasAccount ? 1 : 0);
    expect(mine.lockout, `${p.label}: lockout items`).to.deep.equal(EVERY_KIND.lockout);
    expect(mine.mfa, `${p.label}: MFA items`).to.deep.equal(EVERY_KIND.mfa);
    // per identifier (e-mail, phone): its counter and its (identifier, IP) counter
    expect(mine.identifiers, `${p.label}: identifier counters`).to.have.length(4);
  }

  /**
   * After the erasure of `gone` (and of anything merged into it): nothing that
   * names them is left but the tombstone, merge records without their undo
   * snapshot, and the login flow item (keyed by its interaction: left to its
   * TTL); every other item is exactly as it was.
   */
  function expectErased(before: Item[], after: Item[], gone: Person[]) {
    const needles = gone.flatMap((p) => [p.sub, ...[p.email, p.phone].map((i) => keys.identifier(identifierHash(s.keyring.blindIndexKey(), i)))]);
    const names = (i: Item) => needles.some((n) => JSON.stringify(i).includes(n));
    const left = after.filter(names);
    for (const i of left) {
      if (i.pk.startsWith('erased#')) {
        expect(gone.map((p) => `erased#${p.sub}`)).to.include(i.pk);
        expect(Object.keys(i).sort(), 'a finished tombstone').to.deep.equal(['erasedAt', 'pk', 'sk', 'sub']);
      } else if (i.pk.startsWith('merge#')) {
        expect(i, 'merge record').to.not.have.property('fromItem');
      } else {
        expect(i.pk, `left behind: ${i.pk} ${i.sk}`).to.match(/^mfaflow#/);
      }
    }
    expect(left.filter((i) => i.pk.startsWith('mfaflow#')), 'login flows left to their TTL').to.have.length(gone.length);
    const afterByKey = new Map(after.map((i) => [`${i.pk}|${i.sk}`, i]));
    for (const i of before.filter((x) => !names(x))) expect(afterByKey.get(`${i.pk}|${i.sk}`), `${i.pk} ${i.sk}`).to.deep.equal(i);
  }

  it("an account with TOTP, recovery codes, a remembered device and failed-login counters: nothing of it remains; another account's items are untouched", async () => {
    const victim = await person('victim');
    // an account merged into the victim by an admin keeps its own lockout and MFA items under its old sub
    const merged = await person('merged');
    await s.accounts.merge(victim.sub, merged.sub);
    const before = await s.scanAccounts();
    expectEveryKind(before, victim);
    expectEveryKind(before, merged, false);
    expectEveryKind(before, bystander);

    expect(await s.accounts.erase(victim.sub)).to.equal(true);
    const after = await s.scanAccounts();
    expectErased(before, after, [victim, merged]);
    expectEveryKind(after, bystander);
    expect(await s.accounts.findByLogin(victim.email)).to.equal(undefined);
    expect(await s.accounts.findByLogin(merged.email)).to.equal(undefined);
    expect(await s.mfa.status(victim.sub)).to.deep.equal({ recoveryRemaining: 0, devices: [] });

    // erased already: nothing to do, nothing touched
    expect(await s.accounts.erase(victim.sub)).to.equal(false);
    expect(await s.scanAccounts()).to.deep.equal(after);
  });

  it('an erasure that fails at any step is finished by running it again', async () => {
    // how many storage commands a whole erasure sends
    const probe = await person('probe');
    let total = 0;
    const counting = new DynamoAccountStore({ ...s.storage, doc: { send: (cmd: never) => { total++; return s.storage.doc.send(cmd); } } as unknown as DynamoDBDocumentClient }, s.hasher, s.keyring, { erasureHooks: erasureHooks() });
    expect(await counting.erase(probe.sub)).to.equal(true);
    expect(total).to.be.greaterThan(10);

    for (let k = 1; k <= total; k++) {
      const victim = await person(`cut${k}`);
      const before = await s.scanAccounts();
      let sent = 0;
      const faulty = new DynamoAccountStore({
        ...s.storage,
        doc: {
          send: (cmd: never) => (++sent === k ? Promise.reject(Object.assign(new Error('connection reset'), { name: 'TimeoutError' })) : s.storage.doc.send(cmd)),
        } as unknown as DynamoDBDocumentClient,
      }, s.hasher, s.keyring, { erasureHooks: erasureHooks() });
      const err = await faulty.erase(victim.sub).then(() => undefined, (e: unknown) => e);
      expect(err, `cut at command ${k}`).to.be.instanceOf(StorageUnavailable);
      expect(await s.accounts.erase(victim.sub), `re-run after a cut at command ${k}`).to.equal(true);
      const after = await s.scanAccounts();
      expectErased(before, after, [victim]);
      expectEveryKind(after, bystander);
      expect(await s.accounts.erase(victim.sub)).to.equal(false);
    }
  });

  it('without erasure hooks the account and its pointers go but no other item; a sweep it cannot do is left for a store with the hooks', async () => {
    const bare = new DynamoAccountStore(s.storage, s.hasher, s.keyring);
    const victim = await person('bare');
    expect(await bare.erase(victim.sub)).to.equal(true);
    let mine = itemsOf(await s.scanAccounts(), victim);
    expect(mine.account).to.deep.equal([]);
    expect(await s.accounts.findByLogin(victim.email)).to.equal(undefined);
    expect(mine.lockout).to.deep.equal(EVERY_KIND.lockout);
    expect(mine.mfa).to.deep.equal(EVERY_KIND.mfa);
    expect(await bare.erase(victim.sub)).to.equal(false);

    // a store with the hooks cut off right after it wrote the tombstone with its sweep
    const other = await person('unfinished');
    const before = await s.scanAccounts();
    let tombstoneWritten = false;
    const cut = new DynamoAccountStore({
      ...s.storage,
      doc: {
        send: (cmd: never) => {
          if (tombstoneWritten) return Promise.reject(Object.assign(new Error('connection reset'), { name: 'TimeoutError' }));
          tombstoneWritten = (cmd as object) instanceof PutCommand;
          return s.storage.doc.send(cmd);
        },
      } as unknown as DynamoDBDocumentClient,
    }, s.hasher, s.keyring, { erasureHooks: erasureHooks() });
    expect(await cut.erase(other.sub).then(() => undefined, (e: unknown) => e)).to.be.instanceOf(StorageUnavailable);
    // the store without hooks finishes the account but keeps the partitions it has no hook for in `sweep`
    expect(await bare.erase(other.sub)).to.equal(true);
    const tomb = (await s.scanAccounts()).find((i) => i.pk === `erased#${other.sub}`);
    // lockout: the account and its e-mail and phone counters; MFA and consent: the account
    expect(tomb?.sweep).to.have.length(5);
    mine = itemsOf(await s.scanAccounts(), other);
    expect(mine.account).to.deep.equal([]);
    expect(mine.mfa).to.deep.equal(EVERY_KIND.mfa);
    // the store with the hooks empties them and completes the tombstone
    expect(await s.accounts.erase(other.sub)).to.equal(true);
    expectErased(before, await s.scanAccounts(), [other]);
  });

  it('a hook whose prefix could reach the store\'s own items is refused', () => {
    const hook = (prefixes: string[]): ErasureHook => ({ name: 'bad', prefixes, partitions: () => [] });
    for (const p of ['', 'e', 'user#', 'email#x', 'merge']) {
      expect(() => new DynamoAccountStore(s.storage, s.hasher, s.keyring, { erasureHooks: [hook([p])] }), p).to.throw(/erasure hook bad/);
    }
    expect(() => new DynamoAccountStore(s.storage, s.hasher, s.keyring, { erasureHooks: [...erasureHooks(), hook(['other#'])] })).to.not.throw();
  });

  it('a record that no longer opens is erased all the same (its identifier counters are left to their TTL)', async () => {
    const victim = await person('broken');
    await s.storage.doc.send(new UpdateCommand({
      TableName: s.storage.tables.accounts, Key: { pk: `user#${victim.sub}`, sk: '_' },
      UpdateExpression: 'SET #b = :b', ExpressionAttributeNames: { '#b': 'blob' }, ExpressionAttributeValues: { ':b': 'v1.AAAA.AAAA.AAAA' },
    }));
    expect(await s.accounts.erase(victim.sub)).to.equal(true);
    const mine = itemsOf(await s.scanAccounts(), victim);
    expect(mine.account).to.deep.equal([]);
    expect(mine.lockout).to.deep.equal([]);
    expect(mine.mfa).to.deep.equal([]);
    expect(mine.identifiers).to.have.length(4);
  });
});
