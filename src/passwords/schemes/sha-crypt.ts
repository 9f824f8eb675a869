/**
 * SHA-crypt: $5$ (sha256crypt) and $6$ (sha512crypt), glibc / libxcrypt crypt(3).
 *
 * Composed from node:crypto's SHA-256 / SHA-512 exactly as Ulrich Drepper's
 * specification "Unix crypt using SHA-256 and SHA-512" (version 0.6,
 * 2016-08-31, https://www.akkadia.org/drepper/SHA-crypt.txt) describes; the
 * step numbers below are the spec's. No maintained npm package does this
 * without blocking: the ones that exist loop synchronously, and `rounds=` may
 * legally be up to 999,999,999, so the rounds loop here yields to the event
 * loop every few milliseconds (see Yielder).
 */
import { createHash } from 'node:crypto';
import type { SchemeHandler } from '../types.ts';
import { constantTimeEqualString, CRYPT64, parsePositiveInt, Yielder } from '../util.ts';

type ShaAlg = 'sha256' | 'sha512';

const ROUNDS_DEFAULT = 5000;
const ROUNDS_MIN = 1000;
const ROUNDS_MAX = 999_999_999;
const SALT_MAX = 16;

/** Byte permutation of the final base-64 step (spec step 22), as triples written by b64_from_24bit(B2, B1, B0). */
const ORDER: Record<ShaAlg, { groups: readonly (readonly [number, number, number])[]; tail: readonly number[]; tailChars: number }> = {
  sha256: {
    groups: [
      [0, 10, 20], [21, 1, 11], [12, 22, 2], [3, 13, 23], [24, 4, 14],
      [15, 25, 5], [6, 16, 26], [27, 7, 17], [18, 28, 8], [9, 19, 29],
    ],
    tail: [31, 30], // b64_from_24bit(0, B31, B30, 3)
    tailChars: 3,
  },
  sha512: {
    groups: [
      [0, 21, 42], [22, 43, 1], [44, 2, 23], [3, 24, 45], [25, 46, 4],
      [47, 5, 26], [6, 27, 48], [28, 49, 7], [50, 8, 29], [9, 30, 51],
      [31, 52, 10], [53, 11, 32], [12, 33, 54], [34, 55, 13], [56, 14, 35],
      [15, 36, 57], [37, 58, 16], [59, 17, 38], [18, 39, 60], [40, 61, 19],
      [62, 20, 41],
    ],
    tail: [63], // b64_from_24bit(0, 0, B63, 2)
    tailChars: 2,
  },
};

function b64From24(w: number, n: number): string {
  let out = '';
  for (let i = 0; i < n; i++) {
    out += CRYPT64[w & 63];
    w >>>= 6;
  }
  return out;
}

function encode(alg: ShaAlg, c: Buffer): string {
  const { groups, tail, tailChars } = ORDER[alg];
  let out = '';
  for (const [b2, b1, b0] of groups) out += b64From24((c[b2] << 16) | (c[b1] << 8) | c[b0], 4);
  const w = tail.length === 2 ? (c[tail[0]] << 8) | c[tail[1]] : c[tail[0]];
  return out + b64From24(w, tailChars);
}

/** `length` bytes of `block` repeated (spec steps 16 and 20: P and S sequences). */
function repeatTo(block: Buffer, length: number): Buffer {
  const out = Buffer.alloc(length);
  for (let i = 0; i < length; i += block.length) block.copy(out, i, 0, Math.min(block.length, length - i));
  return out;
}

/** Computes the SHA-crypt checksum (the part after the last '$'). */
export async function shaCryptChecksum(alg: ShaAlg, key: Buffer, salt: Buffer, rounds: number): Promise<string> {
  const h = () => createHash(alg);
  const hlen = alg === 'sha256' ? 32 : 64;

  // Steps 4-8: digest B = H(key || salt || key).
  const B = h().update(key).update(salt).update(key).digest();

  // Steps 1-3, 9-12: digest A.
  const a = h().update(key).update(salt);
  for (let n = key.length; n > 0; n -= hlen) a.update(n > hlen ? B : B.subarray(0, n));
  for (let n = key.length; n > 0; n >>>= 1) a.update((n & 1) !== 0 ? B : key);
  const A = a.digest();

  // Steps 13-16: DP = H(key repeated key.length times); P = DP stretched to key.length.
  const dp = h();
  for (let i = 0; i < key.length; i++) dp.update(key);
  const P = repeatTo(dp.digest(), key.length);

  // Steps 17-20: DS = H(salt repeated 16 + A[0] times); S = DS stretched to salt.length.
  const ds = h();
  for (let i = 0; i < 16 + A[0]; i++) ds.update(salt);
  const S = repeatTo(ds.digest(), salt.length);

  // Step 21: the rounds loop.
  const yielder = new Yielder();
  let C = A;
  for (let i = 0; i < rounds; i++) {
    const c = h();
    if (i & 1) c.update(P);
    else c.update(C);
    if (i % 3 !== 0) c.update(S);
    if (i % 7 !== 0) c.update(P);
    if (i & 1) c.update(C);
    else c.update(P);
    C = c.digest();
    const pause = yielder.tick();
    if (pause) await pause;
  }

  // Step 22: base-64 with the spec's byte permutation.
  return encode(alg, C);
}

interface ParsedShaCrypt {
  alg: ShaAlg;
  rounds: number;
  salt: string;
  checksum: string;
}

const SHA_CRYPT_RE = /^\$([56])\$(?:rounds=([0-9]+)\$)?([^$]*)\$([./0-9A-Za-z]+)$/;

function parse(hash: string): ParsedShaCrypt | string {
  const m = SHA_CRYPT_RE.exec(hash);
  if (!m) return 'not a well-formed sha-crypt hash ($5$ or $6$, optional rounds=N$, salt$, checksum)';
  const alg: ShaAlg = m[1] === '5' ? 'sha256' : 'sha512';
  let rounds = ROUNDS_DEFAULT;
  if (m[2] !== undefined) {
    const r = parsePositiveInt(m[2]);
    if (r === undefined) return 'sha-crypt rounds= is not a valid number';
    // The spec clamps out-of-range counts; a hash stored with such a count was made by something else.
    if (r < ROUNDS_MIN || r > ROUNDS_MAX) return `sha-crypt rounds=${r} is outside ${ROUNDS_MIN}..${ROUNDS_MAX}`;
    rounds = r;
  }
  if (m[3].length > SALT_MAX) return `sha-crypt salt is longer than ${SALT_MAX} characters`;
  const want = alg === 'sha256' ? 43 : 86;
  if (m[4].length !== want) return `sha-crypt checksum must be ${want} characters`;
  return { alg, rounds, salt: m[3], checksum: m[4] };
}

export function shaCryptHashProblem(hash: string): string | undefined {
  const p = parse(hash);
  return typeof p === 'string' ? p : undefined;
}

/** Verifies a $5$ / $6$ hash; false when malformed. */
export async function shaCryptVerify(hash: string, password: string | Buffer): Promise<boolean> {
  const p = parse(hash);
  if (typeof p === 'string') return false;
  const key = typeof password === 'string' ? Buffer.from(password, 'utf8') : password;
  const checksum = await shaCryptChecksum(p.alg, key, Buffer.from(p.salt, 'utf8'), p.rounds);
  return constantTimeEqualString(checksum, p.checksum);
}

export const shaCryptScheme: SchemeHandler = {
  schemes: ['sha256-crypt', 'sha512-crypt'],
  selfDescribing: true,
  detect: (hash) => (hash.startsWith('$5$') ? 'sha256-crypt' : hash.startsWith('$6$') ? 'sha512-crypt' : undefined),
  validate: (cred, scheme) => {
    const problem = shaCryptHashProblem(cred.hash);
    if (problem) return problem;
    if ((scheme === 'sha256-crypt') !== cred.hash.startsWith('$5$')) return `hash is not a ${scheme} hash`;
    return undefined;
  },
  verify: (cred, _scheme, password) => shaCryptVerify(cred.hash, password),
};
