// Crypto-shredding (docs/accounts.md, Erasure and backups): the accounts'
// data keys live in their own table, so erasing one makes every copy of the
// record unreadable. A "backup" of the accounts table (every item, Scanned
// into memory) made before `idp users delete --erase` is put back after it:
// the erased account still does not read (not found, its blob opens under no
// key that is left) while other accounts read fine. Erasure also takes the
// user's session, grant, tokens (signed in through the real IdP with
// openid-client) and outbox lines; the bystander keeps theirs. Migration 2
// moves data keys out of items written before it, can be cut at any command
// and run again, and accounts read throughout.
//
// Runs on dynalite in `mocha`, and on DynamoDB Local with
// DYNAMODB_COMPAT=local npx mocha --no-config --exit --extension ts test/compat/crypto-shredding.test.ts
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import * as oidc from 'openid-client';
import { DeleteCommand, GetCommand, PutCommand, ScanCommand, UpdateCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { DynamoAccountStore } from '../../src/accounts/dynamo-store.ts';
import { argon2Hasher } from '../../src/accounts/hasher.ts';
import { open } from '../../src/accounts/crypto.ts';
import { readOutbox } from '../../src/events/messages.ts';
import { moveDataKeys } from '../../migrations/index.ts';
import { openKeyring } from '../../src/keys/index.ts';
import { startBackend, openTestStorage, type TestBackend, type TestStorage } from '../support/dynamo.ts';
import { startTestIdp, type TestIdp } from '../support/idp.ts';
import { UserAgent, readForm } from '../support/user-agent.ts';
import { openStores, type Stores } from '../support/stores.ts';

type Item = Record<string, unknown> & { pk: string; sk: string };

const REDIRECT = 'https://rp.example.test/cb';
const SECRET = 'shred-secret-0123456789abcdef0123';
const PASSWORD = 'a long and right passphrase 42';

async function scan(doc: DynamoDBDocumentClient, table: string): Promise<Item[]> {
  const out: Item[] = [];
  let ExclusiveStartKey: Record<string, unknown> | undefined;
  do {
    const r = await doc.send(new ScanCommand({ TableName: table, ConsistentRead: true, ExclusiveStartKey }));
    out.push(...((r.Items ?? []) as Item[]));
    ExclusiveStartKey = r.LastEvaluatedKey;
  } while (ExclusiveStartKey);
  return out;
}

describe('crypto-shredding: erased data keys, restored backups, and what else erasure takes', function () {
  this.timeout(180_000);
  let backend: TestBackend;
  let storage: TestStorage;
  let idp: TestIdp;
  let rp: oidc.Configuration;
  const people: Record<'victim' | 'bystander', { email: string; sub: string; refresh?: string; access?: string }> = {
    victim: { email: 'victim@example.com', sub: '' },
    bystander: { email: 'bystander@example.com', sub: '' },
  };

  before(async function () {
    this.timeout(180_000);
    backend = await startBackend();
    storage = await openTestStorage(backend);
    idp = await startTestIdp({
      DYNAMODB_ENDPOINT: backend.endpoint, AWS_REGION: backend.region, TABLE_PREFIX: storage.prefix, LOG_LEVEL: 'warn',
      ARGON2_MEMORY_KIB: '1024', ARGON2_TIME_COST: '1',
    });
    await idp.cli('clients', 'add', '--id', 'webapp', '--secret', SECRET, '--name', 'Web App', '--redirect-uri', REDIRECT, '--grant-types', 'authorization_code,refresh_token');
    for (const p of Object.values(people)) {
      p.sub = (await idp.cli('users', 'add', '--email', p.email, '--password', PASSWORD, '--name', `Person ${p.email}`, '--email-verified') as { sub: string }).sub;
    }
    rp = await oidc.discovery(new URL(idp.issuer), 'webapp', SECRET, undefined, { execute: [oidc.allowInsecureRequests] });
  });

  after(async () => {
    await idp?.close();
    await storage?.close();
    await backend?.close();
  });

  /** a full sign-in through the IdP: login, consent, code exchange; the user agent keeps the session cookie */
  async function signIn(email: string, ua = new UserAgent(idp.issuer)): Promise<oidc.TokenEndpointResponse> {
    const verifier = oidc.randomPKCECodeVerifier();
    const state = oidc.randomState();
    const url = oidc.buildAuthorizationUrl(rp, {
      redirect_uri: REDIRECT, scope: 'openid email offline_access', state, prompt: 'consent',
      code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256',
    });
    let step = await ua.navigate(url.href);
    const login = readForm(await step.res.text());
    step = await ua.navigate(login.action, { form: { ...login.fields, login: email, password: PASSWORD } });
    if (!step.offsite) {
      const html = await step.res.text();
      expect(html, 'consent page').to.contain('wants to');
      const consent = readForm(html);
      step = await ua.navigate(consent.action, { form: consent.fields });
    }
    expect(step.offsite, `redirect to the RP for ${email}`).to.be.a('string');
    return oidc.authorizationCodeGrant(rp, new URL(step.offsite!), { pkceCodeVerifier: verifier, expectedState: state });
  }

  /** an authorization request whose login page is all we want */
  const loginUrl = async () => oidc.buildAuthorizationUrl(rp, {
    redirect_uri: REDIRECT, scope: 'openid', state: oidc.randomState(),
    code_challenge: await oidc.calculatePKCECodeChallenge(oidc.randomPKCECodeVerifier()), code_challenge_method: 'S256',
  });

  /** a password-reset request through the login page: a code to the address goes to the outbox */
  async function requestReset(email: string): Promise<void> {
    const ua = new UserAgent(idp.issuer);
    const url = await loginUrl();
    const step = await ua.navigate(url.href);
    const uid = new URL(step.url).pathname.split('/')[2];
    const page = readForm(await (await ua.navigate(`${idp.issuer}/interaction/${uid}/reset`)).res.text());
    await ua.navigate(page.action, { form: { ...page.fields, email } });
  }

  const outboxFile = () => path.join(idp.config.dataDir, 'outbox.jsonl');
  const outboxOf = (p: { sub: string; email: string }) => readOutbox(outboxFile()).filter((m) => m.sub === p.sub || m.data.to === p.email);
  const oidcItemsOf = async (sub: string) => (await scan(storage.doc, storage.tables.oidc))
    .filter((i) => i.pk === `account#${sub}` || (typeof i.payload === 'string' && (JSON.parse(i.payload) as { accountId?: string }).accountId === sub));

  it('a backup of the accounts table from before the erasure does not open the erased account; sessions, grants, tokens and outbox lines are gone', async () => {
    for (const p of Object.values(people)) {
      const t = await signIn(p.email);
      p.refresh = t.refresh_token;
      p.access = t.access_token;
      expect(p.refresh).to.be.a('string');
      await requestReset(p.email);
    }
    // the codes are sent after the answer: wait for both
    for (let i = 0; i < 100 && !(outboxOf(people.victim).length && outboxOf(people.bystander).length); i++) await new Promise((r) => setTimeout(r, 50));
    expect(outboxOf(people.victim)).to.have.length(1);
    expect(outboxOf(people.bystander)).to.have.length(1);
    const victimOidc = await oidcItemsOf(people.victim.sub);
    for (const kind of ['Session#', 'Grant#', 'AccessToken#', 'RefreshToken#', 'account#']) {
      expect(victimOidc.some((i) => i.pk.startsWith(kind)), kind).to.equal(true);
    }
    // the record does not carry its key: that is in datakeys
    const record = (await storage.doc.send(new GetCommand({ TableName: storage.tables.accounts, Key: { pk: `user#${people.victim.sub}`, sk: '_' } }))).Item!;
    expect(record.blob).to.be.a('string');
    expect(record).to.not.have.property('dk');

    // the backup
    const backup = await scan(storage.doc, storage.tables.accounts);
    expect(backup.some((i) => i.pk === `user#${people.victim.sub}`)).to.equal(true);

    const out = await idp.cli('users', 'delete', '--erase', people.victim.sub) as { erased: boolean };
    expect(out.erased).to.equal(true);

    // sessions, grants, tokens and the index: none of the victim's; the bystander's stay
    expect(await oidcItemsOf(people.victim.sub)).to.deep.equal([]);
    expect((await oidcItemsOf(people.bystander.sub)).map((i) => i.pk.split('#')[0]).sort()).to.include.members(['Session', 'Grant', 'RefreshToken', 'account']);
    const refresh = (p: { refresh?: string }) => oidc.refreshTokenGrant(rp, p.refresh!).then(() => 'ok', (e: { error?: string }) => e.error);
    expect(await refresh(people.victim)).to.equal('invalid_grant');
    expect(await refresh(people.bystander)).to.equal('ok');
    // outbox: the victim's lines went, the bystander's stayed
    expect(outboxOf(people.victim)).to.deep.equal([]);
    expect(outboxOf(people.bystander)).to.have.length(1);
    expect(fs.readFileSync(outboxFile(), 'utf8')).to.not.include(people.victim.email);

    // the restore: every item of the backup put back
    for (const item of backup) await storage.doc.send(new PutCommand({ TableName: storage.tables.accounts, Item: item }));
    const restored = (await storage.doc.send(new GetCommand({ TableName: storage.tables.accounts, Key: { pk: `user#${people.victim.sub}`, sk: '_' } }))).Item!;
    expect(restored.blob).to.equal(record.blob);

    // a fresh store (no cached keys) and the running IdP: the victim is not found, the bystander reads fine
    const keyring = await openKeyring(idp.config, storage);
    try {
      const fresh = new DynamoAccountStore(storage, argon2Hasher(idp.config.argon2), keyring);
      expect(await fresh.findBySub(people.victim.sub)).to.equal(undefined);
      expect(await fresh.findByLogin(people.victim.email)).to.equal(undefined);
      expect(await fresh.recordKey(people.victim.sub)).to.equal(undefined);
      expect((await fresh.findBySub(people.bystander.sub))?.email).to.equal(people.bystander.email);
      // no key left opens the restored blob
      const keys = await scan(storage.doc, storage.tables.datakeys);
      expect(keys.map((k) => k.sub)).to.not.include(people.victim.sub);
      for (const k of keys) {
        const key = await keyring.openDataKey(k.dk as string, `account:${k.sub as string}`);
        expect(() => open(key, people.victim.sub, restored.blob as string)).to.throw(/does not authenticate/);
      }
    } finally {
      (keyring as { close?: () => void }).close?.();
    }
    const shown = await idp.cli('users', 'show', '--sub', people.victim.sub).then((v) => JSON.stringify(v), (e: Error) => e.message);
    expect(shown).to.match(/no account/).and.not.include(people.victim.email);
    const ua = new UserAgent(idp.issuer);
    const url = await loginUrl();
    const login = readForm(await (await ua.navigate(url.href)).res.text());
    const failed = await ua.navigate(login.action, { form: { ...login.fields, login: people.victim.email, password: PASSWORD } });
    expect(failed.offsite).to.equal(undefined);
    expect(await signIn(people.bystander.email)).to.have.property('access_token');
    // erasing again finishes on the restored item: the pointers of the backup go again
    expect(await idp.cli('users', 'delete', '--erase', people.victim.sub)).to.deep.include({ erased: true });
  });
});

describe('migration 2 moves data keys out of the account items', function () {
  this.timeout(180_000);
  let backend: TestBackend;
  let s: Stores;

  before(async function () {
    this.timeout(180_000);
    backend = await startBackend();
    s = await openStores(backend);
  });

  after(async () => {
    await s?.close();
    await backend?.close();
  });

  const keyItem = async (sub: string) => (await s.storage.doc.send(new GetCommand({ TableName: s.storage.tables.datakeys, Key: { pk: `account#${sub}`, sk: '_' } }))).Item;

  /** turns an account into one written before migration 2: its key in the item, no key item */
  async function legacy(sub: string): Promise<void> {
    const k = await keyItem(sub);
    await s.storage.doc.send(new UpdateCommand({
      TableName: s.storage.tables.accounts, Key: { pk: `user#${sub}`, sk: '_' }, UpdateExpression: 'SET dk = :dk', ExpressionAttributeValues: { ':dk': k!.dk },
    }));
    await s.storage.doc.send(new DeleteCommand({ TableName: s.storage.tables.datakeys, Key: { pk: `account#${sub}`, sk: '_' } }));
  }

  it('is idempotent, can be cut at any command and run again, and accounts read throughout', async () => {
    const make = async (label: string) => (await s.accounts.create({ email: `${label}@example.com`, password: PASSWORD, emailVerified: true, name: label })).sub;
    // an admin merge whose undo snapshot carries the merged-away account's key (as merges before migration 2 did)
    const into = await make('into');
    const from = await make('from');
    const merge = await s.accounts.merge(into, from);
    const fromKey = (await keyItem(from))!.dk;
    await s.storage.doc.send(new UpdateCommand({
      TableName: s.storage.tables.accounts, Key: { pk: `merge#${merge.id}`, sk: '_' }, UpdateExpression: 'SET fromItem.dk = :dk', ExpressionAttributeValues: { ':dk': fromKey },
    }));
    await s.storage.doc.send(new DeleteCommand({ TableName: s.storage.tables.datakeys, Key: { pk: `account#${from}`, sk: '_' } }));
    const subs = [into, await make('one'), await make('two')];
    for (const sub of subs) await legacy(sub);

    const readsFine = async () => {
      for (const sub of subs) expect((await new DynamoAccountStore(s.storage, s.hasher, s.keyring).findBySub(sub))?.sub, sub).to.equal(sub);
    };
    await readsFine();
    // count the commands of a whole run, on a copy of the state
    let total = 0;
    const counting = { ...s.storage, doc: { send: (c: never) => { total++; return s.storage.doc.send(c); } } as unknown as DynamoDBDocumentClient };
    expect(await moveDataKeys(counting)).to.equal(4);
    expect(total).to.be.greaterThan(8);
    for (let k = 1; k <= total; k++) {
      for (const sub of subs) await legacy(sub);
      await s.storage.doc.send(new UpdateCommand({
        TableName: s.storage.tables.accounts, Key: { pk: `merge#${merge.id}`, sk: '_' }, UpdateExpression: 'SET fromItem.dk = :dk', ExpressionAttributeValues: { ':dk': fromKey },
      }));
      let sent = 0;
      const faulty = { ...s.storage, doc: { send: (c: never) => (++sent === k ? Promise.reject(new Error('crash')) : s.storage.doc.send(c)) } as unknown as DynamoDBDocumentClient };
      expect(await moveDataKeys(faulty).then(() => 'finished', (e: Error) => e.message), `cut at ${k}`).to.equal('crash');
      await readsFine();
      await moveDataKeys(s.storage);
      await readsFine();
    }
    const items = await scan(s.storage.doc, s.storage.tables.accounts);
    expect(items.filter((i) => 'dk' in i || (i.fromItem as { dk?: string } | undefined)?.dk)).to.deep.equal([]);
    for (const sub of [...subs, from]) expect(await keyItem(sub), sub).to.not.equal(undefined);
    expect(await moveDataKeys(s.storage)).to.equal(0);
    // the merge can still be undone: the merged-away account's key is in datakeys
    await s.accounts.unmerge(merge.id);
    expect((await s.accounts.findBySub(from))?.sub).to.equal(from);
  });

  it('a write of an account not yet migrated moves its key first', async () => {
    const { sub } = await s.accounts.create({ email: 'writer@example.com', password: PASSWORD, emailVerified: true });
    await legacy(sub);
    const fresh = new DynamoAccountStore(s.storage, s.hasher, s.keyring);
    await fresh.changePassword(sub, await s.hasher.hash('another long passphrase 77'), { keepHistory: 3 });
    const item = (await s.storage.doc.send(new GetCommand({ TableName: s.storage.tables.accounts, Key: { pk: `user#${sub}`, sk: '_' } }))).Item!;
    expect(item).to.not.have.property('dk');
    expect(await keyItem(sub)).to.not.equal(undefined);
    expect((await fresh.findBySub(sub))?.sub).to.equal(sub);
  });
});
