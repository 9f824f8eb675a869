/**
 * Small helpers shared by the hashers: constant-time comparison, strict
 * decoding of hex / base64 / crypt-base64, salt handling, and cooperative
 * yielding for the pure-JS iteration loops so they never hold the event loop.
 */
import { pbkdf2, scrypt, timingSafeEqual } from 'node:crypto';
import type { ScryptOptions } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { DigestEncoding, LegacyCredential, SaltPosition } from './types.ts';

/**
 * Constant-time equality of two byte strings. Lengths are not secret (they are
 * fixed by the scheme and visible in the stored hash), so a length mismatch
 * returns false at once.
 */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  return timingSafeEqual(a, b);
}

/** Constant-time equality of two strings, compared as their UTF-8 bytes. */
export function constantTimeEqualString(a: string, b: string): boolean {
  return constantTimeEqual(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

const HEX_RE = /^(?:[0-9a-fA-F]{2})*$/;
const BASE64_RE = /^[A-Za-z0-9+/]*={0,2}$/;

/** Strict hex decoding: undefined unless the whole string is hex of even length. */
export function decodeHex(s: string): Buffer | undefined {
  return HEX_RE.test(s) ? Buffer.from(s, 'hex') : undefined;
}

/** Strict standard-alphabet base64 decoding, padding optional. */
export function decodeBase64(s: string): Buffer | undefined {
  if (!BASE64_RE.test(s)) return undefined;
  const body = s.replace(/=+$/, '');
  if (body.length % 4 === 1) return undefined;
  if (s.length !== body.length && s.length % 4 !== 0) return undefined;
  return Buffer.from(body, 'base64');
}

/**
 * Decodes passlib's "adapted base64" (ab64: '.' instead of '+', no padding),
 * which also accepts the plain PHC base64 that passlib's scrypt and others use.
 */
export function decodeAb64(s: string): Buffer | undefined {
  if (s.includes('=')) return undefined;
  return decodeBase64(s.replace(/\./g, '+'));
}

/**
 * Decodes a bare digest in the given encoding, or, when none is given, in hex
 * if it has the shape of a hex digest of `expectedLength` bytes and base64
 * otherwise. Returns undefined unless it decodes to `expectedLength` bytes.
 */
export function decodeDigest(s: string, encoding: DigestEncoding | undefined, expectedLength: number): Buffer | undefined {
  let out: Buffer | undefined;
  if (encoding === 'hex') out = decodeHex(s);
  else if (encoding === 'base64') out = decodeBase64(s);
  else out = s.length === expectedLength * 2 && HEX_RE.test(s) ? decodeHex(s) : decodeBase64(s);
  return out !== undefined && out.length === expectedLength ? out : undefined;
}

/** Decodes a digest of any length (for PBKDF2, whose key length is a parameter). */
export function decodeAnyDigest(s: string, encoding: DigestEncoding | undefined): Buffer | undefined {
  if (encoding === 'hex') return decodeHex(s);
  if (encoding === 'base64') return decodeBase64(s);
  // Without an explicit encoding, an even-length all-hex string is hex.
  return HEX_RE.test(s) && s.length > 0 ? decodeHex(s) : decodeBase64(s);
}

/** The credential's salt as bytes (empty when absent), or undefined when it does not decode. */
export function saltBytes(cred: LegacyCredential): Buffer | undefined {
  const salt = cred.salt ?? '';
  switch (cred.saltEncoding ?? 'utf8') {
    case 'utf8':
      return Buffer.from(salt, 'utf8');
    case 'hex':
      return decodeHex(salt);
    case 'base64':
      return decodeBase64(salt);
    default:
      return undefined;
  }
}

/** password + salt or salt + password. */
export function affix(password: Uint8Array, salt: Uint8Array, position: SaltPosition | undefined): Buffer {
  if (salt.length === 0) return Buffer.from(password);
  return position === 'prefix' ? Buffer.concat([salt, password]) : Buffer.concat([password, salt]);
}

/** The crypt(3) / phpass base-64 alphabet. */
export const CRYPT64 = './0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/** Index of `ch` in the crypt base-64 alphabet, or -1. */
export function crypt64Index(ch: string): number {
  return ch.length === 1 ? CRYPT64.indexOf(ch) : -1;
}

/**
 * Little-endian crypt base-64, as phpass's encode64(), Drupal 7's
 * _password_base64_encode() and yescrypt/scrypt's encode64() define it: each
 * group of up to 3 bytes is read as a little-endian integer and written six
 * bits at a time, least significant first.
 */
export function encodeCrypt64LE(bytes: Uint8Array): string {
  let out = '';
  for (let i = 0; i < bytes.length; i += 3) {
    let value = 0;
    let bits = 0;
    for (let j = i; j < i + 3 && j < bytes.length; j++) {
      value |= bytes[j] << bits;
      bits += 8;
    }
    for (let b = 0; b < bits; b += 6) out += CRYPT64[(value >>> b) & 63];
  }
  return out;
}

/**
 * Cooperative yielding for long synchronous loops (sha-crypt rounds, phpass
 * iterations): call `tick()` every iteration; after about `sliceMs` of work it
 * awaits a macrotask so the event loop can serve other requests.
 */
export class Yielder {
  #last = performance.now();
  #count = 0;
  readonly #sliceMs: number;

  constructor(sliceMs = 4) {
    this.#sliceMs = sliceMs;
  }

  /** Returns a promise only when it is time to yield, so the hot path stays synchronous. */
  tick(): Promise<void> | undefined {
    if ((++this.#count & 255) !== 0) return undefined;
    const now = performance.now();
    if (now - this.#last < this.#sliceMs) return undefined;
    return new Promise<void>((resolve) => {
      setImmediate(() => {
        this.#last = performance.now();
        resolve();
      });
    });
  }
}

/** node:crypto pbkdf2, on libuv's thread pool. */
export function pbkdf2Async(password: Uint8Array, salt: Uint8Array, iterations: number, keyLength: number, digest: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    pbkdf2(password, salt, iterations, keyLength, digest, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

/** node:crypto scrypt, on libuv's thread pool. */
export function scryptAsync(password: Uint8Array, salt: Uint8Array, keyLength: number, options: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(password, salt, keyLength, options, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

/** Largest scrypt working set (128 * N * r bytes, plus p's share) we will allocate for one verification. */
export const MAX_SCRYPT_MEMORY = 512 * 1024 * 1024;

/** scrypt options with a `maxmem` just above what N, r, p need. */
export function scryptOptions(N: number, r: number, p: number): ScryptOptions {
  return { N, r, p, maxmem: 128 * N * r + 128 * r * p + 1024 * 1024 };
}

/** Whether scrypt(N, r, p) is well formed and fits our memory cap; a reason otherwise. */
export function scryptParamsProblem(N: number, r: number, p: number): string | undefined {
  if (!Number.isSafeInteger(N) || N < 2 || (N & (N - 1)) !== 0) return `scrypt N must be a power of two >= 2 (got ${N})`;
  if (!Number.isSafeInteger(r) || r < 1) return `scrypt r must be a positive integer (got ${r})`;
  if (!Number.isSafeInteger(p) || p < 1) return `scrypt p must be a positive integer (got ${p})`;
  if (r * p >= 2 ** 30) return 'scrypt r * p must be below 2^30';
  if (128 * N * r + 128 * r * p > MAX_SCRYPT_MEMORY) {
    return `scrypt parameters need more than ${MAX_SCRYPT_MEMORY / 1024 / 1024} MiB`;
  }
  return undefined;
}

/** A positive safe integer parsed from decimal digits only, or undefined. */
export function parsePositiveInt(s: string | undefined): number | undefined {
  if (s === undefined || !/^[0-9]{1,15}$/.test(s)) return undefined;
  const n = Number(s);
  return n > 0 ? n : undefined;
}
