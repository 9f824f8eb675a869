/**
 * Django's password hashers (django.contrib.auth.hashers):
 *
 * - "pbkdf2_sha256$<iterations>$<salt>$<base64 hash>" and "pbkdf2_sha1$...":
 *   PBKDF2-HMAC with the salt's UTF-8 bytes and a key as long as the digest.
 * - "bcrypt_sha256$<bcrypt hash>": bcrypt of the lowercase hex SHA-256 of the
 *   password (BCryptSHA256PasswordHasher).
 * - "argon2$<argon2 PHC string without its leading $>" (Argon2PasswordHasher).
 */
import { createHash } from 'node:crypto';
import { argon2HashProblem, verifyArgon2 } from '../argon2id.ts';
import type { SchemeHandler } from '../types.ts';
import { decodeBase64, parsePositiveInt } from '../util.ts';
import { bcryptHashProblem, bcryptVerify } from './bcrypt.ts';
import { iterationsProblem, pbkdf2Compare } from './pbkdf2.ts';

const PBKDF2_RE = /^pbkdf2_(sha256|sha1)\$(\d+)\$([^$]*)\$([A-Za-z0-9+/]+={0,2})$/;
const DIGEST_LENGTH = { sha1: 20, sha256: 32 } as const;

function parsePbkdf2(hash: string): { digest: 'sha1' | 'sha256'; iterations: number; salt: string; key: Buffer } | string {
  const m = PBKDF2_RE.exec(hash);
  if (!m) return 'not a well-formed Django PBKDF2 hash (pbkdf2_sha256$iterations$salt$hash)';
  const digest = m[1] as 'sha1' | 'sha256';
  const iterations = parsePositiveInt(m[2]);
  const problem = iterationsProblem(iterations);
  if (problem || iterations === undefined) return `Django PBKDF2: ${problem}`;
  const key = decodeBase64(m[4]);
  if (!key || key.length !== DIGEST_LENGTH[digest]) return `Django PBKDF2: hash is not ${DIGEST_LENGTH[digest]} bytes of base64`;
  return { digest, iterations, salt: m[3], key };
}

function innerOf(hash: string, scheme: string): string {
  return scheme === 'django-bcrypt-sha256' ? hash.slice('bcrypt_sha256$'.length) : hash.slice('argon2'.length);
}

export const djangoScheme: SchemeHandler = {
  schemes: ['django-pbkdf2-sha256', 'django-pbkdf2-sha1', 'django-bcrypt-sha256', 'django-argon2'],
  selfDescribing: true,
  detect: (hash) => {
    if (hash.startsWith('pbkdf2_sha256$')) return 'django-pbkdf2-sha256';
    if (hash.startsWith('pbkdf2_sha1$')) return 'django-pbkdf2-sha1';
    if (hash.startsWith('bcrypt_sha256$')) return 'django-bcrypt-sha256';
    if (hash.startsWith('argon2$argon2')) return 'django-argon2';
    return undefined;
  },
  validate: (cred, scheme) => {
    if (djangoScheme.detect?.(cred.hash) !== scheme) return `hash is not a ${scheme} hash`;
    if (scheme === 'django-bcrypt-sha256') return bcryptHashProblem(innerOf(cred.hash, scheme));
    if (scheme === 'django-argon2') return argon2HashProblem(innerOf(cred.hash, scheme));
    const parsed = parsePbkdf2(cred.hash);
    return typeof parsed === 'string' ? parsed : undefined;
  },
  verify: async (cred, scheme, password) => {
    if (scheme === 'django-bcrypt-sha256') {
      const prehashed = createHash('sha256').update(password, 'utf8').digest('hex');
      return bcryptVerify(innerOf(cred.hash, scheme), prehashed);
    }
    if (scheme === 'django-argon2') return verifyArgon2(innerOf(cred.hash, scheme), password);
    const parsed = parsePbkdf2(cred.hash);
    if (typeof parsed === 'string') return false;
    return pbkdf2Compare(Buffer.from(password, 'utf8'), Buffer.from(parsed.salt, 'utf8'), parsed.iterations, parsed.digest, parsed.key);
  },
};
