// Accounts after an import, through the real IdP: openid-client signs in
// with legacy passwords through the login form; the first login upgrades to
// argon2id and drops every legacy credential in one conditional write;
// unverified duplicates never unlock the verified account; sunsets; admin
// merge and undo; erasure; optimistic concurrency; the data-key cache; and no
// plaintext personal data in any table, log line or event.
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import * as oidc from 'openid-client';
import { GetCommand, ScanCommand } from '@aws-sdk/lib-dynamodb';
import { readDelivered, startTestIdp, tempDir, type DeliveredEvent, type TestIdp } from './support/idp.ts';
import {
  BCRYPT, BCRYPT_DAN, DRUPAL, HMAC, MD5, SHA256, SHA512, dumpTables, expectNoPii, firstPartyRp, signIn,
  writeLegacyFile, writeSecretsFile,
} from './support/accounts-fixture.ts';
import { DynamoAccountStore } from '../src/accounts/dynamo-store.ts';
import { argon2Hasher } from '../src/accounts/hasher.ts';
import { ConcurrentUpdate } from '../src/accounts/types.ts';
import { open } from '../src/accounts/crypto.ts';
import { verifyArgon2 } from '../src/passwords/index.ts';
import { LegacyPasswordRetired, LoginFailed } from '../src/interactions/errors.ts';
import type { Keyring } from '../src/keys/types.ts';
import { keys as lockoutKeys } from '../src/lockout/counters.ts';

interface Listed { sub: string; status: string; pendingReason?: string; sources: string[]; password: string; email?: string; name?: string; merges: string[]; version: number }
interface Shown {
  sub: string; status: string; pendingReason?: string; password: string; merges: string[];
  identities: Array<{ source: string; sourceUserId: string; via: string; verifiedLink: boolean; mergeId?: string; legacyScheme?: string }>;
  provenance: Record<string, string>;
}

describe('accounts: legacy sign-in, upgrade, merge, erasure', function () {
  this.timeout(120_000);
  let idp: TestIdp;
  let rp: oidc.Configuration;
  let dir: string;
  let file: string;
  let adaSub: string;
  let eveSub: string;

  const list = async () => (await idp.cli('users', 'list', '--reveal')) as Listed[];
  const show = async (sub: string) => (await idp.cli('users', 'show', '--sub', sub)) as Shown;
  const subOf = async (email: string, status = 'active') => (await list()).find((r) => r.email === email && r.status === status)!.sub;
  const store = (keyring: Keyring = idp.keyring) => new DynamoAccountStore(idp.storage, argon2Hasher(idp.config.argon2), keyring);

  before(async () => {
    dir = tempDir('idp-accounts-');
    // the fixtures' legacy passwords are short: here they sign in as they are (test/legacy-policy.test.ts: the change they get by default)
    idp = await startTestIdp({ LEGACY_SECRETS_FILE: writeSecretsFile(dir), LEGACY_SUNSET: 'old-forum=2000-01-01,shop-ng=2999-01-01', LEGACY_PASSWORD_POLICY: '*=allow' });
    file = writeLegacyFile(dir);
    const s = await idp.cli('users', 'import', file) as { created: number; merged: number };
    expect([s.created, s.merged]).to.deep.equal([6, 2]);
    rp = await firstPartyRp(idp);
    adaSub = await subOf('ada@example.com');
    eveSub = await subOf('ada@example.com', 'pending');
  });

  after(async () => {
    await idp?.close();
  });

  it('wrong password, unknown identifier and a malformed one all get the same message', async () => {
    const wrong = await signIn(idp, rp, 'ada@example.com', 'not the password');
    const unknown = await signIn(idp, rp, 'nobody@example.com', BCRYPT.password);
    const junk = await signIn(idp, rp, 'not an identifier', BCRYPT.password);
    for (const r of [wrong, unknown, junk]) expect(r).to.deep.equal({ ok: false, error: LoginFailed.MESSAGE });
  });

  it("an unverified duplicate's legacy password never unlocks the verified account", async () => {
    expect(await signIn(idp, rp, 'ada@example.com', DRUPAL.password)).to.deep.equal({ ok: false, error: LoginFailed.MESSAGE });
    expect((await show(eveSub)).status).to.equal('pending');
    expect((await show(adaSub)).password).to.equal('legacy');
  });

  it('first login with a legacy bcrypt password through the login form upgrades the account to argon2id', async () => {
    const r = await signIn(idp, rp, '  Ada@Example.COM ', BCRYPT.password);
    expect(r.ok, r.error).to.equal(true);
    expect(r.sub).to.equal(adaSub);
    // claims come out of the encrypted record
    expect(r.claims).to.include({ sub: adaSub, email: 'ada@example.com', email_verified: true, name: 'Ada Obi', phone_number: '+2348030000001' });

    const a = await show(adaSub);
    expect(a.password).to.equal('argon2id');
    expect(a.identities.filter((i) => i.legacyScheme)).to.deep.equal([]);
    const full = await store().findBySub(adaSub);
    expect(await verifyArgon2(full!.passwordHash!, BCRYPT.password)).to.equal(true);
    expect(full!.identities.every((i) => i.legacy === undefined)).to.equal(true);

    // the event: source and scheme, never the password
    const line = idp.logs.find((l) => l.includes('"event":"password.migrated"'));
    expect(line, 'password.migrated log line').to.be.a('string');
    expect(JSON.parse(line!)).to.include({ subject: adaSub });
    await idp.events.settled();
    const events = readDelivered(idp.config.dataDir);
    expect(events.filter((e) => e.type === 'password.migrated').map((e) => [e.sub, e.data])).to.deep.equal([[adaSub, { source: 'shop-ng', scheme: 'bcrypt' }]]);
    expect(idp.logs.join('') + JSON.stringify(events)).to.not.include(BCRYPT.password);
    // recorded in the same conditional write as the upgrade
    const item = (await idp.storage.doc.send(new GetCommand({ TableName: idp.storage.tables.accounts, Key: { pk: `user#${adaSub}`, sk: '_' } }))).Item!;
    expect(item.passwordMigrated).to.include({ source: 'shop-ng', scheme: 'bcrypt' });
    expect(item.hasPassword).to.equal(true);
    expect(item.legacySources).to.deep.equal([]);

    const status = await idp.cli('migration', 'status') as Array<{ source: string; argon2id: number; legacy: number; lastLegacyLogin?: string }>;
    const shop = status.find((s) => s.source === 'shop-ng')!;
    expect([shop.argon2id, shop.legacy]).to.deep.equal([1, 1]);
    expect(shop.lastLegacyLogin).to.be.a('string');
  });

  it('afterwards the old hashes of the other sources no longer work; the password does, by e-mail or phone', async () => {
    expect(await signIn(idp, rp, 'ada@example.com', SHA512.password)).to.deep.equal({ ok: false, error: LoginFailed.MESSAGE });
    expect(await signIn(idp, rp, '+234 803 000 0001', MD5.password)).to.deep.equal({ ok: false, error: LoginFailed.MESSAGE });
    const again = await signIn(idp, rp, '+234 803 000 0001', BCRYPT.password);
    expect(again.ok, again.error).to.equal(true);
    expect(again.sub).to.equal(adaSub);
    expect(idp.logs.filter((l) => l.includes('"event":"password.migrated"'))).to.have.length(1);
  });

  it('a scheme keyed by configuration (HMAC) signs in; the key never came from the file', async () => {
    const r = await signIn(idp, rp, 'gus@example.com', HMAC.password);
    expect(r.ok, r.error).to.equal(true);
    expect(r.claims).to.include({ email: 'gus@example.com', phone_number: '+447700900123', phone_number_verified: false });
  });

  it('after a sunset a matching legacy password is refused with a reset message; a wrong one gets the usual one', async () => {
    expect(await signIn(idp, rp, 'dan@example.com', BCRYPT_DAN.password)).to.deep.equal({ ok: false, error: LegacyPasswordRetired.RETIRED_MESSAGE });
    expect(await signIn(idp, rp, 'dan@example.com', 'wrong password')).to.deep.equal({ ok: false, error: LoginFailed.MESSAGE });
    const dan = (await list()).find((r) => r.email === 'dan@example.com')!;
    expect(dan.password).to.equal('legacy');
    // shop-ng's sunset is in the future: Bob's legacy sha256-crypt still works
    const bob = await signIn(idp, rp, 'bob@example.com', SHA256.password);
    expect(bob.ok, bob.error).to.equal(true);
  });

  it('concurrent first logins with two different legacy passwords leave exactly one secret', async () => {
    const frank = path.join(dir, 'frank.jsonl');
    fs.writeFileSync(frank, [
      JSON.stringify({ source: 'shop-ng', sourceUserId: '2001', email: 'frank@example.com', emailVerified: true, name: 'Frank Fox', password: BCRYPT.credential }),
      JSON.stringify({ source: 'forum', sourceUserId: '2002', email: 'FRANK@example.com', emailVerified: true, phone: '+15550100777', phoneVerified: true, password: SHA512.credential }),
    ].join('\n'));
    const s = await idp.cli('users', 'import', frank) as { created: number; merged: number };
    expect([s.created, s.merged]).to.deep.equal([1, 1]);
    const results = await Promise.all([
      signIn(idp, rp, 'frank@example.com', BCRYPT.password),
      signIn(idp, rp, '+15550100777', SHA512.password),
    ]);
    const account = await store().findByLogin('frank@example.com');
    const okBcrypt = await verifyArgon2(account!.passwordHash!, BCRYPT.password);
    const okSha = await verifyArgon2(account!.passwordHash!, SHA512.password);
    expect([okBcrypt, okSha].filter(Boolean)).to.have.length(1);
    // each login succeeded exactly when its password is the stored one (the loser, if it raced, failed)
    expect(results[0].ok).to.equal(okBcrypt);
    expect(results[1].ok || !okSha).to.equal(true);
    expect(account!.identities.every((i) => !i.legacy)).to.equal(true);
  });

  it('every write is conditional on the version: a stale copy loses', async () => {
    const st = store();
    const erin1 = (await st.findByLogin('erin@example.com'))!;
    const erin2 = (await st.findByLogin('erin@example.com'))!;
    expect(erin1.version).to.equal(erin2.version);
    const hash = await argon2Hasher(idp.config.argon2).hash('first writer wins');
    await st.completeLegacyLogin(erin1, hash, { source: 'forum', scheme: 'md5-crypt' });
    let lost: unknown;
    try {
      await st.completeLegacyLogin(erin2, await argon2Hasher(idp.config.argon2).hash('second writer'), { source: 'forum', scheme: 'md5-crypt' });
    } catch (err) {
      lost = err;
    }
    expect(lost).to.be.instanceOf(ConcurrentUpdate);
    const now = (await st.findByLogin('erin@example.com'))!;
    expect(now.passwordHash).to.equal(hash);
    expect(now.version).to.equal(erin1.version + 1);
    // through the form: the legacy password no longer works, the new one does
    expect((await signIn(idp, rp, 'erin@example.com', MD5.password)).ok).to.equal(false);
    expect((await signIn(idp, rp, 'erin@example.com', 'first writer wins')).ok).to.equal(true);
  });

  it('a login opens the record with no keyring call once its data key is cached', async () => {
    let opens = 0;
    const counting = new Proxy(idp.keyring, {
      get(target, prop) {
        if (prop === 'openDataKey') return (w: string, c: string) => { opens++; return target.openDataKey(w, c); };
        const v = Reflect.get(target, prop) as unknown;
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
    const st = store(counting);
    await st.findByLogin('bob@example.com');
    expect(opens).to.equal(1);
    for (let i = 0; i < 5; i++) await st.findByLogin('bob@example.com');
    await st.findBySub((await st.findByLogin('bob@example.com'))!.sub);
    expect(opens).to.equal(1);
    expect(st.cache.hits).to.be.greaterThanOrEqual(6);
  });

  describe('merge and unmerge', () => {
    it('an admin merges the pending duplicate into the person, and undoes it', async () => {
      const before = await show(adaSub);
      const rec = await idp.cli('users', 'merge', '--into', adaSub, '--from', eveSub) as { id: string; kind: string; into: string; from: string; sources: string[] };
      expect(rec).to.include({ kind: 'admin', into: adaSub, from: eveSub });
      expect(rec.sources).to.deep.equal(['forum']);
      const merged = await show(adaSub);
      expect(merged.identities.map((i) => `${i.source}:${i.sourceUserId}:${i.via}`)).to.deep.equal([
        ...before.identities.map((i) => `${i.source}:${i.sourceUserId}:${i.via}`), 'forum:78:admin-merge',
      ]);
      expect(merged.merges).to.include(rec.id);
      // the first-linked identity still gives the name
      expect(merged.provenance.name).to.equal('shop-ng:1001');
      await expectCliError(['users', 'show', '--sub', eveSub], /no account/);
      // the merged-in identity's source pointer now leads to the person: a re-import changes nothing
      const again = await idp.cli('users', 'import', file) as { unchanged: number; created: number; updated: number };
      expect([again.created, again.updated]).to.deep.equal([0, 0]);

      const undone = await idp.cli('users', 'unmerge', '--merge-id', rec.id) as { undoneAt?: string; restoredSub: string };
      expect(undone.restoredSub).to.equal(eveSub);
      expect(undone.undoneAt).to.be.a('string');
      const eve = await show(eveSub);
      expect(eve.status).to.equal('pending');
      expect(eve.identities.map((i) => `${i.source}:${i.sourceUserId}`)).to.deep.equal(['forum:78']);
      expect((await show(adaSub)).identities.map((i) => `${i.source}:${i.sourceUserId}`)).to.deep.equal(before.identities.map((i) => `${i.source}:${i.sourceUserId}`));
      await expectCliError(['users', 'unmerge', '--merge-id', rec.id], /already undone/);
      // both operator actions are lifecycle events, with subs and ids only
      // both name the merge record, so the undo can be found from the merge
      const merges = lifecycle().filter((e) => e.data?.mergeId === rec.id);
      expect(merges.map((e) => [e.type, e.sub, e.data.actor])).to.deep.equal([
        ['user.merged', adaSub, 'cli'], ['user.unmerged', eveSub, 'cli'],
      ]);
      // and the person still signs in as before
      expect((await signIn(idp, rp, 'ada@example.com', BCRYPT.password)).sub).to.equal(adaSub);
    });

    it('an automatic (import) merge can be undone too: the source identity becomes its own held account', async () => {
      const a = await store().findBySub(adaSub);
      const crm = a!.identities.find((i) => i.source === 'crm')!;
      expect(crm.via).to.equal('import-merge');
      const undone = await idp.cli('users', 'unmerge', '--merge-id', crm.mergeId!) as { restoredSub: string };
      const split = await show(undone.restoredSub);
      expect(split.identities.map((i) => `${i.source}:${i.sourceUserId}`)).to.deep.equal(['crm:c-5']);
      expect(split.status).to.equal('pending');
      expect(split.pendingReason).to.equal('unmerged');
      expect((await show(adaSub)).identities.map((i) => i.source)).to.deep.equal(['shop-ng', 'forum']);
      // a re-import keeps the split: the crm row now belongs to the new account
      const again = await idp.cli('users', 'import', file) as { created: number; merged: number; updated: number };
      expect([again.created, again.merged, again.updated]).to.deep.equal([0, 0, 0]);
      expect((await show(undone.restoredSub)).identities).to.have.length(1);
    });

    it('refuses unknown accounts and merges', async () => {
      await expectCliError(['users', 'merge', '--into', adaSub, '--from', adaSub], /must differ/);
      await expectCliError(['users', 'merge', '--into', adaSub, '--from', '00000000-0000-4000-8000-000000000000'], /no account/);
      await expectCliError(['users', 'unmerge', '--merge-id', 'nope'], /no merge/);
    });
  });

  /** the account lifecycle events written to the file sink so far */
  function lifecycle(): DeliveredEvent[] {
    return readDelivered(idp.config.dataDir).filter((e) => e.type.startsWith('account.') || e.type.startsWith('user.'));
  }

  async function expectCliError(argv: string[], message: RegExp) {
    try {
      await idp.cli(...argv);
      expect.fail(`no error from ${argv.join(' ')}`);
    } catch (err) {
      expect((err as Error).message).to.match(message);
    }
  }

  it('idp users delete --erase destroys the data key, the pointers and the lockout items', async () => {
    const bobSub = await subOf('bob@example.com');
    const table = idp.storage.tables.accounts;
    // a failed sign-in leaves lockout counters under the account: the CLI's erasure takes them too
    expect(await signIn(idp, rp, 'bob@example.com', 'not the password')).to.deep.equal({ ok: false, error: LoginFailed.MESSAGE });
    const lockoutItems = async () => (await idp.storage.doc.send(new ScanCommand({
      TableName: table, FilterExpression: 'pk = :p', ExpressionAttributeValues: { ':p': lockoutKeys.account(bobSub) }, ConsistentRead: true,
    }))).Items ?? [];
    expect(await lockoutItems()).to.not.deep.equal([]);
    const item = (await idp.storage.doc.send(new GetCommand({ TableName: table, Key: { pk: `user#${bobSub}`, sk: '_' } }))).Item as { dk: string; blob: string; ptrs: string[] };
    // the wrapped data key is apart from the record (table datakeys)
    expect(item.dk).to.equal(undefined);
    item.dk = ((await idp.storage.doc.send(new GetCommand({ TableName: idp.storage.tables.datakeys, Key: { pk: `account#${bobSub}`, sk: '_' } }))).Item as { dk: string }).dk;
    expect(item.dk).to.be.a('string');
    const blobCopy = item.blob;
    const res = await idp.cli('users', 'delete', '--erase', bobSub) as { erased: boolean };
    expect(res.erased).to.equal(true);
    expect(lifecycle().filter((e) => e.type === 'user.deleted').map((e) => e.sub)).to.deep.equal([bobSub]);
    expect(await lockoutItems()).to.deep.equal([]);

    const dump = await dumpTables(idp);
    expect(dump).to.not.include(item.dk);
    expect(dump).to.not.include(blobCopy);
    for (const p of item.ptrs) {
      const [pk, sk] = p.split('|');
      const left = (await idp.storage.doc.send(new GetCommand({ TableName: table, Key: { pk, sk } }))).Item;
      // the marker: a hash, no data (and, written with the user.deleted event, the event's marker _ev: src/storage/write-scope.ts)
      const { _ev: _marker, ...marker } = (left ?? {}) as Record<string, unknown>;
      if (pk.startsWith('source#')) expect(marker).to.deep.equal({ pk, sk, erased: true });
      else expect(left, p).to.equal(undefined);
    }
    // the copy of the blob opens with no remaining data key
    const st = store();
    const ada = (await idp.storage.doc.send(new GetCommand({ TableName: idp.storage.tables.datakeys, Key: { pk: `account#${adaSub}`, sk: '_' } }))).Item as { dk: string };
    const someKey = await idp.keyring.openDataKey(ada.dk, `account:${adaSub}`);
    expect(() => open(someKey, bobSub, blobCopy)).to.throw(/does not authenticate/);
    expect(await st.findByLogin('bob@example.com')).to.equal(undefined);
    expect(await signIn(idp, rp, 'bob@example.com', 'Tr0ub4dor&3')).to.deep.equal({ ok: false, error: LoginFailed.MESSAGE });
    await expectCliError(['users', 'show', '--sub', bobSub], /no account/);
    await expectCliError(['users', 'delete', '--erase', bobSub], /no account/);
    const tomb = (await idp.storage.doc.send(new ScanCommand({ TableName: table, FilterExpression: 'pk = :p', ExpressionAttributeValues: { ':p': `erased#${bobSub}` } }))).Items;
    expect(tomb).to.have.length(1);
    // a re-import does not bring the person back
    const again = await idp.cli('users', 'import', file) as { created: number; errors: Array<{ line: number; reason: string }> };
    expect(again.created).to.equal(0);
    expect(again.errors.find((e) => e.line === 5)?.reason).to.match(/erased/);
  });

  it('idp users add and list still work; list shows no personal data unless asked', async () => {
    const added = await idp.cli('users', 'add', '--email', 'Zoe@Example.net', '--password', 'a long enough password 9', '--name', 'Zoe Zed', '--email-verified') as { sub: string };
    await expectCliError(['users', 'add', '--email', 'zoe@example.net', '--password', 'another long passphrase 8'], /already exists/);
    // one user.created for the one account made, none for the refused duplicate
    expect(lifecycle().filter((e) => e.type === 'user.created' && e.reason !== 'import').map((e) => e.sub)).to.deep.equal([added.sub]);
    // the imported accounts were announced too, one user.created each (reason import)
    expect(lifecycle().filter((e) => e.type === 'user.created' && e.reason === 'import').length).to.be.greaterThan(0);
    const plain = await idp.cli('users', 'list') as Array<Record<string, unknown>>;
    expect(JSON.stringify(plain)).to.not.match(/zoe@|@example\.(com|net)|Ada Obi|Frank Fox|Zoe Zed/i);
    expect(plain.find((u) => u.sub === added.sub)).to.include({ status: 'active', password: 'argon2id' });
    const revealed = await list();
    expect(revealed.find((u) => u.sub === added.sub)).to.include({ email: 'zoe@example.net', name: 'Zoe Zed' });
    const r = await signIn(idp, rp, 'zoe@example.net', 'a long enough password 9');
    expect(r.ok, r.error).to.equal(true);
    expect(r.claims).to.include({ email: 'zoe@example.net', name: 'Zoe Zed' });
  });

  it('no table, log line or event holds an e-mail, phone or name in plaintext', async () => {
    await idp.events.settled();
    expectNoPii(await dumpTables(idp), 'tables');
    expectNoPii(idp.logs.join(''), 'logs');
    const eventsFile = path.join(idp.config.dataDir, 'events.jsonl');
    if (fs.existsSync(eventsFile)) expectNoPii(fs.readFileSync(eventsFile, 'utf8'), 'events');
    // (random token ids may contain any short string: look for the whole values)
    expect(await dumpTables(idp)).to.not.match(/zoe@example\.net|zoe zed/i);
  });
});
