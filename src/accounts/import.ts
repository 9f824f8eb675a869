// `idp users import FILE.jsonl`: one legacy account per line (docs/accounts.md
// has the format). The file is streamed with readline and rows run with a
// bounded concurrency; rows that share a key (source identity, e-mail, phone)
// run one after the other in file order, so "first imported wins" holds and
// two rows of one person never race. A bad line is reported with its number
// and a reason that quotes nothing of the line, and the import goes on.
import fs from 'node:fs';
import readline from 'node:readline';
import { detectScheme, validateCredential, type LegacyCredential, type LegacySecrets } from '../passwords/index.ts';
import {
  ACCOUNT_STATUSES, AccountNotFound, ConcurrentUpdate, isValidEmail, normalizeEmail, normalizePhone,
  type AccountAdmin, type AccountStatus, type ImportOutcome, type ImportRow, type ImportRowResult, type Profile,
} from './types.ts';
import { ImportRejected } from './dynamo-store.ts';

export const MAX_LINE_BYTES = 64 * 1024;
/** per-line errors kept for the summary; beyond this they are only counted */
export const MAX_REPORTED_ERRORS = 10_000;

const CONTROL = new Set(['source', 'sourceUserId', 'status', 'password', 'email', 'emailVerified', 'phone', 'phoneVerified', 'name', 'givenName', 'familyName']);
const FORBIDDEN = new Set(['__proto__', 'constructor', 'prototype']);
const CRED_FIELDS = ['scheme', 'hash', 'salt', 'saltPosition', 'encoding', 'saltEncoding', 'iterations', 'keyLength', 'key'] as const;
const NAME_FIELDS = ['scheme', 'saltPosition', 'encoding', 'saltEncoding', 'key'] as const;
const SOURCE_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

function reject(reason: string): never {
  throw new ImportRejected(reason);
}

function optString(o: Record<string, unknown>, field: string, max = 512): string | undefined {
  const v = o[field];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string' || v.length > max) reject(`${field} must be a string of at most ${max} characters`);
  const t = v.trim();
  return t === '' ? undefined : t;
}

function optBool(o: Record<string, unknown>, field: string): boolean | undefined {
  const v = o[field];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') reject(`${field} must be true or false`);
  return v;
}

/** Parses and validates one line. Throws ImportRejected with a reason that contains no value of the line. */
export function parseImportLine(text: string, secrets: LegacySecrets = {}): ImportRow {
  if (Buffer.byteLength(text, 'utf8') > MAX_LINE_BYTES) reject(`line is longer than ${MAX_LINE_BYTES} bytes`);
  let o: unknown;
  try {
    o = JSON.parse(text);
  } catch (err) {
    // the parser's message quotes the line: keep only the position
    const pos = /position (\d+)/.exec((err as Error).message)?.[1];
    reject(`malformed JSON${pos !== undefined ? ` (at character ${Number(pos) + 1})` : ''}`);
  }
  if (o === null || typeof o !== 'object' || Array.isArray(o)) reject('not a JSON object');
  const r = o as Record<string, unknown>;

  if (r.source === undefined || r.source === null || r.source === '') reject('source is missing');
  if (typeof r.source !== 'string' || !SOURCE_RE.test(r.source) || r.source === 'local') {
    reject('source must be 1 to 64 letters, digits, ".", "_" or "-" (and not "local")');
  }
  const source = r.source;
  if (r.sourceUserId === undefined || r.sourceUserId === null || r.sourceUserId === '') reject('sourceUserId is missing');
  if (!(typeof r.sourceUserId === 'string' || (typeof r.sourceUserId === 'number' && Number.isSafeInteger(r.sourceUserId)))) {
    reject('sourceUserId must be a string or a whole number');
  }
  const sourceUserId = String(r.sourceUserId).trim();
  if (sourceUserId === '' || sourceUserId.length > 256) reject('sourceUserId must be 1 to 256 characters');

  const profile: Profile = {};
  const email = optString(r, 'email', 254);
  if (email !== undefined) {
    if (!isValidEmail(email)) reject('email is not a valid e-mail address');
    profile.email = normalizeEmail(email);
    profile.emailVerified = optBool(r, 'emailVerified') ?? false;
  } else optBool(r, 'emailVerified');
  const phoneRaw = optString(r, 'phone', 32);
  if (phoneRaw !== undefined) {
    const phone = normalizePhone(phoneRaw);
    if (!phone) reject('phone is not an E.164 number (+, country code, number)');
    profile.phone = phone;
    profile.phoneVerified = optBool(r, 'phoneVerified') ?? false;
  } else optBool(r, 'phoneVerified');
  for (const f of ['name', 'givenName', 'familyName'] as const) {
    const v = optString(r, f);
    if (v !== undefined) profile[f] = v;
  }
  const extra: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(r)) {
    if (CONTROL.has(k) || v === null || v === undefined) continue;
    // the name itself is not quoted: in a broken line it can be someone's data
    if (FORBIDDEN.has(k) || !/^[A-Za-z][A-Za-z0-9_]{0,63}$/.test(k)) reject('a field name is not allowed (1 to 64 letters, digits or "_", starting with a letter; not __proto__, constructor or prototype)');
    extra[k] = v;
  }
  if (Object.keys(extra).length) profile.extra = extra;

  let status: AccountStatus = 'active';
  if (r.status !== undefined && r.status !== null) {
    if (typeof r.status !== 'string' || !(ACCOUNT_STATUSES as readonly string[]).includes(r.status)) {
      reject(`status must be one of ${ACCOUNT_STATUSES.join(', ')}`);
    }
    status = r.status as AccountStatus;
  }

  let legacy: LegacyCredential | undefined;
  if (r.password !== undefined && r.password !== null) {
    const p = r.password;
    if (typeof p !== 'object' || Array.isArray(p)) reject('password must be an object with a hash');
    const po = p as Record<string, unknown>;
    for (const k of Object.keys(po)) {
      if (!(CRED_FIELDS as readonly string[]).includes(k)) reject(`password has a field other than ${CRED_FIELDS.join(', ')}`);
    }
    const cred: Record<string, unknown> = {};
    for (const k of CRED_FIELDS) if (po[k] !== undefined && po[k] !== null) cred[k] = po[k];
    // the parameters that reasons name (scheme, key, encodings) must be names, so a reason never carries data
    for (const k of NAME_FIELDS) {
      const v = typeof cred[k] === 'string' ? (cred[k] as string).trim() : '';
      if (v !== '' && !/^[A-Za-z0-9][A-Za-z0-9._{}$:-]{0,63}$/.test(v)) reject(`password.${k} must be a name (letters, digits, ".", "_", "-"; at most 64)`);
    }
    const why = validateCredential(cred as unknown as LegacyCredential, secrets);
    if (why !== undefined) reject(`password: ${why}`);
    const scheme = typeof cred.scheme === 'string' && cred.scheme.trim() !== '' ? cred.scheme.trim().toLowerCase() : detectScheme(cred.hash as string);
    legacy = { ...(cred as unknown as LegacyCredential), scheme };
    if (validateCredential(legacy, secrets) !== undefined) legacy = cred as unknown as LegacyCredential;
  }

  return { source, sourceUserId, status, profile, ...(legacy ? { legacy } : {}) };
}

/** Runs tasks so that two tasks sharing a key never overlap, in the order they were queued. */
export class KeyedQueue {
  private readonly tails = new Map<string, Promise<void>>();

  async run<T>(keys: string[], fn: () => Promise<T>): Promise<T> {
    const before = keys.map((k) => this.tails.get(k)).filter((p): p is Promise<void> => p !== undefined);
    let release!: () => void;
    const done = new Promise<void>((r) => { release = r; });
    for (const k of keys) this.tails.set(k, done);
    try {
      await Promise.all(before);
      return await fn();
    } finally {
      release();
      for (const k of keys) if (this.tails.get(k) === done) this.tails.delete(k);
    }
  }

  get size(): number {
    return this.tails.size;
  }
}

export interface ImportSummary {
  file: string;
  dryRun: boolean;
  read: number;
  created: number;
  merged: number;
  updated: number;
  unchanged: number;
  rejected: number;
  errors: Array<{ line: number; reason: string }>;
  /** rejected lines beyond MAX_REPORTED_ERRORS (counted, not listed) */
  errorsOmitted: number;
}

export interface ImportOptions {
  dryRun?: boolean;
  concurrency?: number;
  secrets?: LegacySecrets;
  /** after each row that changed something (not in a dry run): its events go here */
  onChanged?: (outcome: Exclude<ImportOutcome, 'unchanged'>, sub: string, row: ImportRow, line: number, mergeId?: string) => Promise<void>;
  /** called at most every few hundred ms, and once at the end */
  onProgress?: (p: { bytes: number; totalBytes: number; read: number; rejected: number; done: boolean }) => void;
}

export async function importFile(file: string, admin: AccountAdmin, opts: ImportOptions = {}): Promise<ImportSummary> {
  const totalBytes = fs.statSync(file).size;
  const summary: ImportSummary = {
    file, dryRun: opts.dryRun === true, read: 0, created: 0, merged: 0, updated: 0, unchanged: 0, rejected: 0, errors: [], errorsOmitted: 0,
  };
  const fail = (line: number, reason: string) => {
    summary.rejected++;
    if (summary.errors.length < MAX_REPORTED_ERRORS) summary.errors.push({ line, reason });
    else summary.errorsOmitted++;
  };
  const concurrency = Math.max(1, Math.min(64, opts.concurrency ?? 8));
  const queue = new KeyedQueue();
  const inflight = new Set<Promise<void>>();
  let fatal: unknown;
  let bytes = 0;
  let lastProgress = 0;
  const progress = (done: boolean) => {
    if (!opts.onProgress) return;
    const now = Date.now();
    if (!done && now - lastProgress < 200) return;
    lastProgress = now;
    opts.onProgress({ bytes: Math.min(bytes, totalBytes), totalBytes, read: summary.read, rejected: summary.rejected, done });
  };

  const input = fs.createReadStream(file);
  const rl = readline.createInterface({ input, crlfDelay: Infinity });
  let lineNo = 0;
  try {
    for await (const text of rl) {
      lineNo++;
      bytes += Buffer.byteLength(text, 'utf8') + 1;
      progress(false);
      if (fatal) break;
      if (text.trim() === '') continue;
      summary.read++;
      const line = lineNo;
      let row: ImportRow;
      try {
        row = parseImportLine(lineNo === 1 ? text.replace(/^\uFEFF/, '') : text, opts.secrets);
      } catch (err) {
        fail(line, (err as Error).message);
        continue;
      }
      const task: Promise<void> = queue.run(admin.rowKeys(row), () => admin.importRow(row, { dryRun: opts.dryRun }))
        .then(async (r: ImportRowResult) => {
          summary[r.outcome]++;
          if (r.outcome !== 'unchanged' && r.sub && !opts.dryRun) await opts.onChanged?.(r.outcome, r.sub, row, line, r.mergeId);
        })
        .catch((err: unknown) => {
          if (err instanceof ImportRejected || err instanceof ConcurrentUpdate || err instanceof AccountNotFound) fail(line, err.message);
          else fatal ??= err;
        })
        .finally(() => { inflight.delete(task); });
      inflight.add(task);
      if (inflight.size >= concurrency) await Promise.race(inflight);
    }
  } finally {
    rl.close();
    input.destroy();
  }
  await Promise.all(inflight);
  if (fatal) {
    const e = fatal as Error;
    throw Object.assign(new Error(`import stopped at line ${lineNo}: ${e.message}`), { cause: fatal, summary });
  }
  summary.errors.sort((a, b) => a.line - b.line);
  progress(true);
  return summary;
}
