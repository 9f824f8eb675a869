/**
 * scrypt hashes, computed with node:crypto's async scrypt (libuv thread pool):
 *
 * - PHC "$scrypt$ln=<log2 N>,r=<r>,p=<p>$<salt b64>$<hash b64>" as passlib
 *   writes it (unpadded base64; passlib's '.'-for-'+' variant also accepted).
 *   Kratos writes the same shape with N itself in `ln`; a value above 31 that
 *   is a power of two is read as N.
 * - libxcrypt / yescrypt classic scrypt "$7$": '$7$', one crypt64 character
 *   for log2 N, five for r and five for p (30-bit little-endian), the salt,
 *   '$', and the 32-byte hash in little-endian crypt64 (43 characters). As in
 *   Colin Percival's and libxcrypt's crypt-scrypt.c, the salt is used as the
 *   characters stored, not decoded.
 */
import type { SchemeHandler } from '../types.ts';
import {
  constantTimeEqual,
  constantTimeEqualString,
  crypt64Index,
  decodeAb64,
  encodeCrypt64LE,
  parsePositiveInt,
  scryptAsync,
  scryptOptions,
  scryptParamsProblem,
} from '../util.ts';

interface ScryptParams {
  N: number;
  r: number;
  p: number;
  salt: Buffer;
}

interface PhcScrypt extends ScryptParams {
  hash: Buffer;
}

const PHC_RE = /^\$scrypt\$ln=(\d+),r=(\d+),p=(\d+)\$([A-Za-z0-9+/.]*)\$([A-Za-z0-9+/.]+)$/;

function parsePhc(hash: string): PhcScrypt | string {
  const m = PHC_RE.exec(hash);
  if (!m) return 'not a well-formed PHC scrypt hash ($scrypt$ln=..,r=..,p=..$salt$hash)';
  const ln = parsePositiveInt(m[1]);
  const r = parsePositiveInt(m[2]);
  const p = parsePositiveInt(m[3]);
  if (ln === undefined || r === undefined || p === undefined) return 'scrypt parameters must be positive integers';
  const N = ln <= 31 ? 2 ** ln : ln;
  const problem = scryptParamsProblem(N, r, p);
  if (problem) return problem;
  const salt = decodeAb64(m[4]);
  const digest = decodeAb64(m[5]);
  if (!salt || !digest) return 'scrypt salt or hash is not valid base64';
  if (digest.length < 16 || digest.length > 256) return 'scrypt hash length is implausible';
  return { N, r, p, salt, hash: digest };
}

interface CryptScrypt extends ScryptParams {
  checksum: string;
}

const CRYPT7_RE = /^\$7\$([./0-9A-Za-z])([./0-9A-Za-z]{5})([./0-9A-Za-z]{5})([^$]*)\$([./0-9A-Za-z]{43})$/;

function decode30(s: string): number {
  let v = 0;
  for (let i = 0; i < 5; i++) v += crypt64Index(s[i]) * 2 ** (6 * i);
  return v;
}

function parseCrypt7(hash: string): CryptScrypt | string {
  const m = CRYPT7_RE.exec(hash);
  if (!m) return 'not a well-formed $7$ scrypt hash';
  const log2 = crypt64Index(m[1]);
  if (log2 < 1 || log2 > 63) return `$7$ scrypt log2(N)=${log2} is out of range`;
  const N = 2 ** log2;
  const r = decode30(m[2]);
  const p = decode30(m[3]);
  const problem = scryptParamsProblem(N, r, p);
  if (problem) return problem;
  return { N, r, p, salt: Buffer.from(m[4], 'utf8'), checksum: m[5] };
}

export function scryptHashProblem(hash: string): string | undefined {
  const parsed = hash.startsWith('$7$') ? parseCrypt7(hash) : parsePhc(hash);
  return typeof parsed === 'string' ? parsed : undefined;
}

/** Verifies a $7$ hash; false when malformed. */
export async function crypt7Verify(hash: string, password: string | Buffer): Promise<boolean> {
  const c = parseCrypt7(hash);
  if (typeof c === 'string') return false;
  const pw = typeof password === 'string' ? Buffer.from(password, 'utf8') : password;
  const dk = await scryptAsync(pw, c.salt, 32, scryptOptions(c.N, c.r, c.p));
  return constantTimeEqualString(encodeCrypt64LE(dk), c.checksum);
}

async function phcVerify(hash: string, password: string): Promise<boolean> {
  const c = parsePhc(hash);
  if (typeof c === 'string') return false;
  const dk = await scryptAsync(Buffer.from(password, 'utf8'), c.salt, c.hash.length, scryptOptions(c.N, c.r, c.p));
  return constantTimeEqual(dk, c.hash);
}

export const scryptScheme: SchemeHandler = {
  schemes: ['scrypt', 'scrypt-crypt'],
  selfDescribing: true,
  detect: (hash) => (hash.startsWith('$scrypt$') ? 'scrypt' : hash.startsWith('$7$') ? 'scrypt-crypt' : undefined),
  validate: (cred, scheme) => {
    const isCrypt = cred.hash.startsWith('$7$');
    if (scheme === 'scrypt-crypt' && !isCrypt) return 'hash is not a $7$ scrypt hash';
    if (scheme === 'scrypt' && !cred.hash.startsWith('$scrypt$')) return 'hash is not a $scrypt$ PHC hash';
    return scryptHashProblem(cred.hash);
  },
  verify: (cred, scheme, password) => (scheme === 'scrypt-crypt' ? crypt7Verify(cred.hash, password) : phcVerify(cred.hash, password)),
};
