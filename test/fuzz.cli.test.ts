// Fuzzing the CLI's import lines (`idp users import FILE.jsonl`, issue 14
// item 13) with fast-check:
//
//   one line    parseImportLine on random text, on random JSON objects shaped
//               like rows (hostile values, unknown and dangerous keys, wrong
//               types) and on mutations of the fixture's real rows: it returns
//               a row or throws ImportRejected, never anything else; a reason
//               quotes no value of the line; a row it returns is well-formed
//               (normalized e-mail, E.164 phone, bounded strings, no
//               prototype keys) and nothing is polluted
//   the file    `idp users import` in-process against a running IdP, on files
//               of fuzzed lines (blank lines, CRLF, a BOM, over-long lines,
//               invalid UTF-8): the command completes (never "import stopped",
//               i.e. no storage or other unexpected error), read = non-blank
//               lines, every line is counted once, errors name real line
//               numbers and quote no value, a second run changes nothing new
//
// Personal values (and text that may land in a key) carry the token
// VALUE_TOKEN, so a reason that quotes one is seen. Credential parameters
// (scheme, the name of an HMAC key, encodings) are configuration, not
// personal data: reasons may name them (e.g. "unknown scheme 'rot13'"), so
// they carry another token. Budget and seed as in test/support/fuzz.ts.
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import fc from 'fast-check';
import { startTestIdp, tempDir, type TestIdp } from './support/idp.ts';
import { LONG, fuzzTarget, nasty, runs } from './support/fuzz.ts';
import { legacyLines, writeSecretsFile } from './support/accounts-fixture.ts';
import { MAX_LINE_BYTES, parseImportLine } from '../src/accounts/import.ts';
import { ImportRejected } from '../src/accounts/dynamo-store.ts';

const VALUE_TOKEN = 'Qv9z';
const PARAM_TOKEN = 'Pk4w';
const FIELDS = ['source', 'sourceUserId', 'status', 'password', 'email', 'emailVerified', 'phone', 'phoneVerified', 'name', 'givenName', 'familyName'];
const KEYS = [...FIELDS, 'nickname', 'locale', '__proto__', 'constructor', 'prototype', 'toString', '', ' ', 'a.b', 'x'.repeat(70), 'é', '1abc'];

/** a value of the line, marked with the token when it is a string */
const value: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: nasty.map((s) => `${VALUE_TOKEN}${s}`) },
  { weight: 1, arbitrary: fc.constantFrom(`${VALUE_TOKEN}@example.com`, `+1415${VALUE_TOKEN}`, 'shop-ng', 'local', 'active', 'disabled', `${VALUE_TOKEN}-1`) },
  { weight: 1, arbitrary: fc.oneof(fc.integer(), fc.double(), fc.boolean(), fc.constant(null), fc.constant(Number.MAX_SAFE_INTEGER + 2)) },
  { weight: 1, arbitrary: fc.array(nasty.map((s) => `${VALUE_TOKEN}${s}`), { maxLength: 2 }) },
  { weight: 1, arbitrary: fc.dictionary(fc.constantFrom('hash', 'salt', 'x', '__proto__'), nasty.map((s) => `${VALUE_TOKEN}${s}`), { maxKeys: 2 }) },
);

/** a legacy credential: its secret parts are values; its parameters are configuration */
const credential = fc.record({
  hash: fc.oneof(nasty.map((s) => `${VALUE_TOKEN}${s}`), fc.constantFrom('$2b$10$abcdefghijklmnopqrstuu', '5f4dcc3b5aa765d61d8327deb882cf99')),
  salt: nasty.map((s) => `${VALUE_TOKEN}${s}`),
  scheme: fc.oneof(nasty.map((s) => `${PARAM_TOKEN}${s}`), fc.constantFrom('md5', 'sha256', 'hmac-sha256', 'bcrypt', 'pbkdf2-sha256', 'md5-crypt')),
  key: nasty.map((s) => `${PARAM_TOKEN}${s}`),
  saltPosition: fc.constantFrom('prefix', 'suffix', `${PARAM_TOKEN}x`),
  encoding: fc.constantFrom('hex', 'base64', `${PARAM_TOKEN}x`),
  saltEncoding: fc.constantFrom('hex', 'base64', 'utf8', `${PARAM_TOKEN}x`),
  iterations: fc.oneof(fc.integer(), fc.constant(1e12)),
  keyLength: fc.integer(),
}, { requiredKeys: [] });

/** a row-shaped object: a plausible base with some keys replaced, removed or added */
const rowObject = fc.record({
  base: fc.constantFrom(...legacyLines().map((l) => { try { return JSON.parse(l) as Record<string, unknown>; } catch { return {}; } })),
  set: fc.array(fc.oneof(fc.tuple(fc.constantFrom(...KEYS), value), fc.tuple(fc.constant('password'), credential)), { maxLength: 4 }),
  drop: fc.array(fc.constantFrom(...FIELDS), { maxLength: 2 }),
}).map(({ base, set, drop }) => {
  const o: Record<string, unknown> = { ...base };
  for (const k of drop) delete o[k];
  for (const [k, v] of set) Object.defineProperty(o, k, { value: v, enumerable: true, configurable: true, writable: true });
  return o;
});

/** a line: random text, a row object as JSON, or a real line cut or spliced */
const line: fc.Arbitrary<string> = fc.oneof(
  { weight: 5, arbitrary: rowObject.map((o) => JSON.stringify(o)) },
  { weight: 1, arbitrary: nasty.map((s) => `${VALUE_TOKEN}${s}`) },
  { weight: 1, arbitrary: fc.tuple(fc.constantFrom(...legacyLines()), fc.nat(), fc.nat(), nasty).map(([l, a, b, s]) => `${l.slice(0, a % (l.length + 1))}${VALUE_TOKEN}${s}${l.slice(b % (l.length + 1))}`) },
  { weight: 1, arbitrary: fc.constantFrom('{}', '[]', 'null', '"x"', '1', '{"source":{}}', `{"__proto__":{"polluted":"${VALUE_TOKEN}"},"source":"a","sourceUserId":"1"}`, `{"source":"s","sourceUserId":"1","name":"${'n'.repeat(MAX_LINE_BYTES)}"}`) },
);

/** string values (≥ 4 characters with the token) of a line that a reason must not quote */
function tokens(text: string): string[] {
  return [...text.matchAll(new RegExp(`${VALUE_TOKEN}[^"\\\\]{0,12}`, 'g'))].map((m) => m[0]).filter((t) => t.length >= VALUE_TOKEN.length);
}

describe('fuzzing the CLI\'s import lines (fast-check)', function () {
  this.timeout(LONG ? 0 : 120_000);
  let idp: TestIdp;
  let dir: string;

  before(async () => {
    dir = tempDir('idp-fuzz-import-');
    idp = await startTestIdp({ LEGACY_SECRETS_FILE: writeSecretsFile(dir), LOG_LEVEL: 'warn', ARGON2_MEMORY_KIB: '4096', ARGON2_TIME_COST: '1' });
  });

  after(async () => {
    await idp?.close();
  });

  it('fuzz one import line: a row or ImportRejected, a reason that quotes no value, a well-formed row, nothing polluted', async () => {
    await fuzzTarget('import line (parseImportLine)', runs(400), line, async (text) => {
      let row;
      try {
        row = parseImportLine(text);
      } catch (err) {
        expect(err, `not ImportRejected: ${(err as Error)?.stack}`).to.be.instanceOf(ImportRejected);
        const reason = (err as Error).message;
        expect(reason).to.be.a('string').with.length.within(1, 300);
        expect(reason, 'a reason quotes no value').to.not.include(VALUE_TOKEN);
        return;
      } finally {
        expect(({} as Record<string, unknown>).polluted, 'no prototype pollution').to.equal(undefined);
      }
      expect(row.source).to.match(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/).and.not.equal('local');
      expect(row.sourceUserId).to.be.a('string').with.length.within(1, 256);
      if (row.profile.email !== undefined) expect(row.profile.email).to.equal(row.profile.email.trim().toLowerCase()).and.match(/^[^@\s]+@[^@\s]+$/);
      if (row.profile.phone !== undefined) expect(row.profile.phone).to.match(/^\+[1-9]\d{6,14}$/);
      for (const f of ['name', 'givenName', 'familyName'] as const) if (row.profile[f] !== undefined) expect(row.profile[f]).to.be.a('string').with.length.within(1, 512);
      for (const k of Object.keys(row.profile.extra ?? {})) expect(k).to.match(/^[A-Za-z][A-Za-z0-9_]{0,63}$/).and.not.oneOf(['__proto__', 'constructor', 'prototype']);
    });
  });

  it('fuzz `idp users import` on files of fuzzed lines: it completes, counts every line once, and its errors quote no value', async () => {
    const lineArb = fc.oneof(
      { weight: 8, arbitrary: line },
      { weight: 1, arbitrary: fc.constantFrom('', '   ', '\t') },
      { weight: 1, arbitrary: fc.constantFrom(...legacyLines()) },
    );
    const fileArb = fc.record({
      lines: fc.array(lineArb, { minLength: 1, maxLength: 12 }),
      crlf: fc.boolean(), bom: fc.boolean(), badUtf8: fc.boolean(), dryRun: fc.boolean(),
    });
    let n = 0;
    await fuzzTarget('users import (CLI)', runs(12), fileArb, async (f, tally) => {
      const file = path.join(dir, `fuzz-${n++}.jsonl`);
      const parts = f.lines.map((l) => Buffer.from(l, 'utf8'));
      if (f.badUtf8) parts.splice(parts.length >> 1, 0, Buffer.from([0xc3, 0x28, 0xff, 0xfe, 0x7b]));
      const sep = Buffer.from(f.crlf ? '\r\n' : '\n');
      const body = Buffer.concat([...(f.bom ? [Buffer.from('\ufeff')] : []), ...parts.flatMap((p) => [p, sep])]);
      fs.writeFileSync(file, body);
      const expectedRead = body.toString('utf8').split(/\r?\n/).filter((l) => l.trim() !== '').length;
      const run = () => idp.cli('users', 'import', file, ...(f.dryRun ? ['--dry-run'] : [])) as Promise<{ read: number; created: number; merged: number; updated: number; unchanged: number; rejected: number; errors: Array<{ line: number; reason: string }> }>;
      const summary = await run();
      tally.requests++;
      expect(summary.read, 'every non-blank line read').to.equal(expectedRead);
      expect(summary.created + summary.merged + summary.updated + summary.unchanged + summary.rejected, 'every line counted once').to.equal(summary.read);
      expect(summary.errors).to.have.length(summary.rejected);
      const allLines = body.toString('utf8').split(/\r?\n/).length;
      for (const e of summary.errors) {
        expect(e.line).to.be.within(1, allLines);
        expect(e.reason, 'a reason quotes no value').to.not.include(VALUE_TOKEN);
        for (const t of tokens(body.toString('utf8'))) expect(e.reason).to.not.include(t);
      }
      if (!f.dryRun) {
        // the same file again: nothing new is created
        const again = await run();
        tally.requests++;
        expect(again.created, 'a second import creates nothing').to.equal(0);
      }
    });
    expect(idp.logs.filter((l) => /"level":(50|60)\b/.test(l)), 'nothing logged at error level').to.deep.equal([]);
  });
});
