/**
 * PBKDF2 (RFC 8018) with an explicit scheme name: pbkdf2-sha1, pbkdf2-sha256,
 * pbkdf2-sha512. The import names the iterations, the salt and the hash
 * (hex or base64); keyLength, when given, must match the decoded hash.
 * Computed with node:crypto's async pbkdf2 on libuv's thread pool.
 *
 * The shared pbkdf2Compare() is also what the Django, passlib and Werkzeug
 * PBKDF2 formats use.
 */
import type { LegacyCredential, SchemeHandler } from '../types.ts';
import { constantTimeEqual, decodeAnyDigest, decodeDigest, pbkdf2Async, saltBytes } from '../util.ts';

/** Upper bound on iterations we will run for one verification (Django 5 uses about 10^6). */
export const MAX_PBKDF2_ITERATIONS = 10_000_000;

export type Pbkdf2Digest = 'sha1' | 'sha256' | 'sha512';

export function iterationsProblem(iterations: number | undefined): string | undefined {
  if (iterations === undefined) return 'iterations are required';
  if (!Number.isSafeInteger(iterations) || iterations < 1) return `iterations must be a positive integer (got ${iterations})`;
  if (iterations > MAX_PBKDF2_ITERATIONS) return `iterations ${iterations} exceed the limit of ${MAX_PBKDF2_ITERATIONS}`;
  return undefined;
}

/** PBKDF2-HMAC(digest) of `password` and compares it in constant time with `expected`. */
export async function pbkdf2Compare(
  password: Uint8Array,
  salt: Uint8Array,
  iterations: number,
  digest: Pbkdf2Digest,
  expected: Uint8Array,
): Promise<boolean> {
  if (iterationsProblem(iterations) || expected.length === 0) return false;
  const dk = await pbkdf2Async(password, salt, iterations, expected.length, digest);
  return constantTimeEqual(dk, expected);
}

function expectedKey(cred: LegacyCredential): Buffer | undefined {
  return cred.keyLength !== undefined ? decodeDigest(cred.hash, cred.encoding, cred.keyLength) : decodeAnyDigest(cred.hash, cred.encoding);
}

export const pbkdf2Scheme: SchemeHandler = {
  schemes: ['pbkdf2-sha1', 'pbkdf2-sha256', 'pbkdf2-sha512'],
  selfDescribing: false,
  validate: (cred, scheme) => {
    const problem = iterationsProblem(cred.iterations);
    if (problem) return `${scheme}: ${problem}`;
    if (cred.saltPosition !== undefined) return `${scheme}: saltPosition does not apply (the salt is PBKDF2's own input)`;
    if (cred.key !== undefined) return `${scheme}: key does not apply`;
    if (cred.keyLength !== undefined && (!Number.isSafeInteger(cred.keyLength) || cred.keyLength < 1 || cred.keyLength > 1024)) {
      return `${scheme}: keyLength must be an integer in 1..1024`;
    }
    if (saltBytes(cred) === undefined) return `${scheme}: salt is not valid ${cred.saltEncoding}`;
    const key = expectedKey(cred);
    if (!key || key.length === 0) {
      return cred.keyLength !== undefined
        ? `${scheme}: hash does not decode to keyLength=${cred.keyLength} bytes`
        : `${scheme}: hash is not valid ${cred.encoding ?? 'hex or base64'}`;
    }
    return undefined;
  },
  verify: async (cred, scheme, password) => {
    const key = expectedKey(cred);
    const salt = saltBytes(cred);
    if (!key || !salt || cred.iterations === undefined) return false;
    return pbkdf2Compare(Buffer.from(password, 'utf8'), salt, cred.iterations, scheme.slice('pbkdf2-'.length) as Pbkdf2Digest, key);
  },
};
