// The file of the bench's `import` scenario: `idp users import` JSONL
// (docs/accounts.md), generated cheaply. Two legacy systems: a "shop" whose
// rows become accounts, and a "crm" holding some of the same people (the same
// verified e-mail), whose rows merge into those accounts. Passwords: a few
// distinct ones, each bcrypt-hashed once (cost 10) and reused, and the bulk as
// salted SHA-256 (a random salt per row, cheap to make); the import stores the
// legacy credential as it is (it checks its shape, it does not verify it), so
// the hash scheme changes what is stored, not the import's work. The file is
// written in chunks (a million lines is about 400 MB), and the byte offset
// where given lines end is noted (the import-at-scale run watches the import's
// read position against them).
import crypto from 'node:crypto';
import fs from 'node:fs';
import bcrypt from 'bcrypt';

export interface ImportFileInfo {
  file: string;
  bytes: number;
  rows: number;
  /** what a fresh store's import summary should say */
  expected: { created: number; merged: number };
  /** rows per password scheme */
  schemes: Record<string, number>;
  distinctPasswords: number;
  bcryptCost: number;
  /** every dupEvery-th row is a verified duplicate of an earlier row (another source, the same verified e-mail) */
  dupEvery: number;
  /** line number → byte offset just past that line, for the lines asked for in `offsetsAt` */
  offsets: Record<number, number>;
}

const PASSWORDS = ['bench import password 0', 'bench import password 1', 'bench import password 2', 'bench import password 3'];
const BCRYPT_COST = 10;

export async function writeImportFile(file: string, opts: { rows: number; dupEvery: number; bcryptEvery: number; offsetsAt?: number[] }): Promise<ImportFileInfo> {
  if (opts.dupEvery < 2) throw new Error('dupEvery must be at least 2');
  // one bcrypt hash per distinct password (about 60 ms each), reused by every bcrypt row
  const bcryptHashes = await Promise.all(PASSWORDS.map((p) => bcrypt.hash(p, BCRYPT_COST)));
  const schemes: Record<string, number> = {};
  const want = new Set(opts.offsetsAt ?? []);
  const offsets: Record<number, number> = {};
  const fd = fs.openSync(file, 'w', 0o600);
  let bytes = 0;
  let chunk: string[] = [];
  const flush = () => {
    fs.writeSync(fd, chunk.join(''));
    chunk = [];
  };
  let merged = 0;
  const back = Math.floor(opts.dupEvery / 2);
  for (let n = 0; n < opts.rows; n++) {
    // row n - back is never itself a duplicate, and comes earlier in the file
    const dup = n % opts.dupEvery === opts.dupEvery - 1;
    const person = dup ? n - back : n;
    const k = n % PASSWORDS.length;
    let password: Record<string, string>;
    if (n % opts.bcryptEvery === 0) {
      password = { scheme: 'bcrypt', hash: bcryptHashes[k] };
    } else {
      const salt = crypto.randomBytes(8).toString('hex');
      password = { scheme: 'sha256', salt, saltPosition: 'prefix', hash: crypto.createHash('sha256').update(salt + PASSWORDS[k]).digest('hex') };
    }
    const scheme = password.scheme === 'sha256' ? 'sha256 (salted, prefix)' : `bcrypt (cost ${BCRYPT_COST})`;
    schemes[scheme] = (schemes[scheme] ?? 0) + 1;
    if (dup) merged++;
    const line = `${JSON.stringify({
      source: dup ? 'bench-import-crm' : 'bench-import-shop', sourceUserId: String(n),
      email: `import.${person}@example.org`, emailVerified: true,
      name: `Import User ${person}`, givenName: 'Import', familyName: `User ${person}`, locale: 'en-GB',
      password,
    })}\n`;
    chunk.push(line);
    bytes += Buffer.byteLength(line);
    if (want.has(n + 1)) offsets[n + 1] = bytes;
    if (chunk.length >= 10_000) flush();
  }
  flush();
  fs.closeSync(fd);
  return {
    file, bytes, rows: opts.rows, expected: { created: opts.rows - merged, merged },
    schemes, distinctPasswords: PASSWORDS.length, bcryptCost: BCRYPT_COST, dupEvery: opts.dupEvery, offsets,
  };
}
