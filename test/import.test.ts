// `idp users import`: a multi-source JSON Lines export with verified
// duplicates, an unverified duplicate and bad lines gives exactly the
// expected accounts, links, provenance, per-line errors and summary; a second
// import changes nothing; nothing personal reaches a table or a log.
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { startTestIdp, tempDir, type TestIdp } from './support/idp.ts';
import { run } from '../src/cli/main.ts';
import { KeyedQueue, parseImportLine } from '../src/accounts/import.ts';
import {
  EXPECTED_ERRORS, dumpTables, expectNoPii, legacyLines, writeLegacyFile, writeSecretsFile,
} from './support/accounts-fixture.ts';

interface Summary { read: number; created: number; merged: number; updated: number; unchanged: number; rejected: number; errors: Array<{ line: number; reason: string }>; dryRun: boolean }
interface Listed { sub: string; status: string; pendingReason?: string; sources: string[]; password: string; email?: string; name?: string; merges: string[] }
interface Shown {
  sub: string; status: string; pendingReason?: string; password: string; merges: string[];
  identities: Array<{ source: string; sourceUserId: string; via: string; verifiedLink: boolean; mergeId?: string; legacyScheme?: string }>;
  provenance: Record<string, string>;
  profile?: Record<string, unknown>;
}

describe('idp users import (JSON Lines from legacy systems)', function () {
  this.timeout(120_000);
  let idp: TestIdp;
  let dir: string;
  let file: string;

  before(async () => {
    dir = tempDir('idp-import-');
    idp = await startTestIdp({ LEGACY_SECRETS_FILE: writeSecretsFile(dir), LEGACY_SUNSET: 'old-forum=2000-01-01' });
    file = writeLegacyFile(dir);
  });

  after(async () => {
    await idp?.close();
  });

  const list = async () => (await idp.cli('users', 'list', '--reveal')) as Listed[];
  const show = async (sub: string) => (await idp.cli('users', 'show', '--sub', sub, '--reveal')) as Shown;
  const byEmail = (rows: Listed[], email: string) => rows.filter((r) => r.email === email);

  describe('parsing one line', () => {
    it('normalizes e-mail and phone, keeps other profile fields, resolves the scheme', () => {
      const row = parseImportLine(legacyLines()[2]);
      expect(row).to.deep.include({ source: 'crm', sourceUserId: 'c-5', status: 'active' });
      expect(row.profile).to.deep.equal({ phone: '+2348030000001', phoneVerified: true, givenName: 'Adaeze', familyName: 'Obi-Okafor' });
      expect(row.legacy?.scheme).to.equal('md5-crypt');
      const forum = parseImportLine(legacyLines()[1]);
      expect(forum.sourceUserId).to.equal('77');
      expect(forum.profile.email).to.equal('ada@example.com');
      expect(forum.profile.extra).to.deep.equal({ nickname: 'ada', locale: 'en-NG' });
    });

    it('gives reasons that quote nothing of the line', () => {
      const reasons: string[] = [];
      for (const bad of [
        '{"source":"shop-ng","sourceUserId":"1","email":"carol@exa',
        '{"source":"shop-ng","sourceUserId":"1","email":"carol.secret@example"}',
        '{"source":"shop-ng","sourceUserId":"1","phone":"carol 555 0101"}',
        '{"source":"shop-ng","sourceUserId":"1","name":42}',
        '{"source":"shop-ng","sourceUserId":"1","status":"zombie"}',
        '{"source":"shop-ng","sourceUserId":"1","password":{"hash":"carolhash"}}',
        '["carol"]',
      ]) {
        try {
          parseImportLine(bad);
          expect.fail(`accepted ${bad}`);
        } catch (err) {
          reasons.push((err as Error).message);
        }
      }
      expect(reasons.join('\n')).to.not.match(/carol/i);
      expect(reasons[0]).to.match(/^malformed JSON \(at character \d+\)$/);
    });

    it('takes HMAC keys from configuration only', () => {
      const line = legacyLines()[12];
      expect(() => parseImportLine(line, {})).to.throw(/legacy-app/);
      expect(parseImportLine(line, { hmacKeys: { 'legacy-app': 'hmac-key-from-config-1' } }).legacy?.scheme).to.equal('hmac-sha256');
    });
  });

  it('KeyedQueue runs tasks that share a key one after the other, in order', async () => {
    const q = new KeyedQueue();
    const log: string[] = [];
    const task = (name: string, ms: number) => async () => {
      log.push(`${name}+`);
      await new Promise((r) => setTimeout(r, ms));
      log.push(`${name}-`);
    };
    await Promise.all([q.run(['a'], task('1', 30)), q.run(['b'], task('2', 5)), q.run(['a', 'b'], task('3', 1)), q.run(['c'], task('4', 1))]);
    expect(log.indexOf('3+')).to.be.greaterThan(log.indexOf('1-'));
    expect(log.indexOf('3+')).to.be.greaterThan(log.indexOf('2-'));
    expect(log.indexOf('4+')).to.be.lessThan(log.indexOf('1-'));
    expect(q.size).to.equal(0);
  });

  it('a dry run validates every line and writes nothing', async () => {
    const s = await idp.cli('users', 'import', file, '--dry-run') as Summary;
    expect(s.dryRun).to.equal(true);
    expect(s.read).to.equal(14);
    expect(s.rejected).to.equal(6);
    expect(await list()).to.deep.equal([]);
  });

  it('imports: one account per person, verified duplicates merged, line-numbered errors', async () => {
    const s = await idp.cli('users', 'import', file, '--concurrency', '4') as Summary;
    expect({ read: s.read, created: s.created, merged: s.merged, updated: s.updated, unchanged: s.unchanged, rejected: s.rejected })
      .to.deep.equal({ read: 14, created: 6, merged: 2, updated: 0, unchanged: 0, rejected: 6 });
    expect(s.errors.map((e) => e.line)).to.deep.equal(EXPECTED_ERRORS.map((e) => e.line));
    for (const [i, e] of EXPECTED_ERRORS.entries()) expect(s.errors[i].reason, `line ${e.line}`).to.match(e.reason);

    const rows = await list();
    expect(rows).to.have.length(6);
    const ada = byEmail(rows, 'ada@example.com');
    // the verified person and the unverified duplicate: two accounts
    expect(ada).to.have.length(2);
    const person = ada.find((r) => r.status === 'active')!;
    const dup = ada.find((r) => r.status === 'pending')!;
    expect(person.sources).to.deep.equal(['crm', 'forum', 'shop-ng']);
    expect(person.password).to.equal('legacy');
    expect(dup.pendingReason).to.equal('unverified-duplicate');
    expect(dup.sources).to.deep.equal(['forum']);
    expect(dup.name).to.equal('Eve Impostor');

    const a = await show(person.sub);
    const ids = a.identities.map((i) => [i.source, i.sourceUserId, i.via, i.verifiedLink, i.legacyScheme]);
    // the identity that created the account comes first; rows merged into it
    // are imported concurrently, so their order between themselves may vary
    expect(ids[0]).to.deep.equal(['shop-ng', '1001', 'import', true, 'bcrypt']);
    expect(ids.slice(1)).to.have.deep.members([
      ['forum', '77', 'import-merge', true, 'sha512-crypt'],
      ['crm', 'c-5', 'import-merge', true, 'md5-crypt'],
    ]);
    expect(ids).to.have.length(3);
    expect(a.merges).to.have.length(2);
    // conflict rule: the first linked identity wins; later ones fill gaps
    expect(a.profile).to.deep.equal({
      email: 'ada@example.com', emailVerified: true, phone: '+2348030000001', phoneVerified: true,
      name: 'Ada Obi', givenName: 'Ada', familyName: 'Obi', nickname: 'ada', locale: 'en-NG',
    });
    expect(a.provenance).to.deep.equal({
      email: 'shop-ng:1001', phone: 'shop-ng:1001', name: 'shop-ng:1001', givenName: 'shop-ng:1001', familyName: 'shop-ng:1001',
      nickname: 'forum:77', locale: 'forum:77',
    });

    const others: Record<string, Listed> = Object.fromEntries(rows.filter((r) => r.email !== 'ada@example.com').map((r) => [r.email!, r]));
    expect(Object.keys(others).sort()).to.deep.equal(['bob@example.com', 'dan@example.com', 'erin@example.com', 'gus@example.com']);
    for (const r of Object.values(others)) expect(r.status, r.email).to.equal('active');
    expect(others['erin@example.com'].sources).to.deep.equal(['forum']);
  });

  it('a second import of the same file changes nothing', async () => {
    const before = await list();
    const s = await idp.cli('users', 'import', file) as Summary;
    expect({ created: s.created, merged: s.merged, updated: s.updated, unchanged: s.unchanged, rejected: s.rejected })
      .to.deep.equal({ created: 0, merged: 0, updated: 0, unchanged: 8, rejected: 6 });
    const after = await list();
    expect(after.map((r) => [r.sub, r.status])).to.deep.equal(before.map((r) => [r.sub, r.status]));
    expect(after.map((r) => (r as unknown as { version: number }).version)).to.deep.equal(before.map((r) => (r as unknown as { version: number }).version));
  });

  it('a changed row updates its account (and only that)', async () => {
    const lines = legacyLines();
    lines[4] = lines[4].replace('Bob Bello', 'Bob B. Bello');
    const changed = path.join(dir, 'changed.jsonl');
    fs.writeFileSync(changed, lines.join('\n'));
    const dry = await idp.cli('users', 'import', changed, '--dry-run') as Summary;
    expect([dry.updated, dry.unchanged]).to.deep.equal([1, 7]);
    expect(byEmail(await list(), 'bob@example.com')[0].name).to.equal('Bob Bello');
    const s = await idp.cli('users', 'import', changed) as Summary;
    expect([s.created, s.merged, s.updated, s.unchanged]).to.deep.equal([0, 0, 1, 7]);
    expect(byEmail(await list(), 'bob@example.com')[0].name).to.equal('Bob B. Bello');
    // back to the original file: one update, and the rest unchanged
    const back = await idp.cli('users', 'import', file) as Summary;
    expect([back.updated, back.unchanged]).to.deep.equal([1, 7]);
  });

  it('the CLI prints line-numbered errors and a summary; bad arguments are usage errors', async () => {
    const out = await run(['users', 'import', file], idp.env);
    expect(out.json).to.equal(false);
    expect(out.lines.slice(0, 6).map((l) => l.replace(/:.*/, ''))).to.deep.equal(EXPECTED_ERRORS.map((e) => `line ${e.line}`));
    expect(out.lines.at(-1)).to.equal('read 14, created 0, merged 0, updated 0, unchanged 8, rejected 6');
    await expectUsage(['users', 'import'], /missing FILE\.jsonl/);
    await expectUsage(['users', 'import', path.join(dir, 'nope.jsonl')], /no such file/);
    await expectUsage(['users', 'import', file, '--concurrency', '0'], /--concurrency/);
  });

  async function expectUsage(argv: string[], message: RegExp) {
    try {
      await run(argv, idp.env);
      expect.fail('no usage error');
    } catch (err) {
      expect((err as Error).constructor.name).to.equal('UsageError');
      expect((err as Error).message).to.match(message);
    }
  }

  it('idp migration status counts accounts per source', async () => {
    const rows = await idp.cli('migration', 'status') as Array<Record<string, unknown>>;
    expect(rows).to.deep.equal([
      { source: 'crm', accounts: 2, argon2id: 0, legacy: 2, noPassword: 0 },
      { source: 'forum', accounts: 3, argon2id: 0, legacy: 3, noPassword: 0 },
      { source: 'old-forum', accounts: 1, argon2id: 0, legacy: 1, noPassword: 0, sunset: '2000-01-01T00:00:00.000Z' },
      { source: 'shop-ng', accounts: 2, argon2id: 0, legacy: 2, noPassword: 0 },
    ]);
  });

  it('no table and no log line holds an e-mail, phone or name in plaintext', async () => {
    expectNoPii(await dumpTables(idp), 'tables');
    expectNoPii(idp.logs.join(''), 'logs');
    // what is stored is a blob and a wrapped key
    const dump = await dumpTables(idp);
    expect(dump).to.match(/"blob":"v1\./).and.match(/"dk":"/).and.match(/"pk":"email#[A-Za-z0-9_-]{43}"/);
  });

  it('streams a generated file of 2000 lines with bounded concurrency', async function () {
    this.timeout(300_000);
    const big = path.join(dir, 'big.jsonl');
    const fd = fs.openSync(big, 'w');
    // rows 2k and 2k+1 (k < 500) share a verified e-mail: 500 merges
    for (let i = 0; i < 2000; i++) {
      fs.writeSync(fd, `${JSON.stringify({ source: 'bulk', sourceUserId: i, ...(i < 1000 ? { email: `bulk${Math.floor(i / 2)}@example.org`, emailVerified: true } : {}) })}\n`);
    }
    fs.closeSync(fd);
    const s = await idp.cli('users', 'import', big, '--concurrency', '16') as Summary;
    expect([s.read, s.created, s.merged, s.rejected]).to.deep.equal([2000, 1500, 500, 0]);
    const again = await idp.cli('users', 'import', big, '--concurrency', '16') as Summary;
    expect(again.unchanged).to.equal(2000);
  });
});
