/**
 * bcrypt: $2a$, $2b$ and $2y$ (OpenBSD, PHP password_hash, htpasswd -B).
 *
 * Uses the maintained native `bcrypt` package, which runs on libuv's thread
 * pool. $2y$ (crypt_blowfish's fixed variant) computes exactly what $2b$ does,
 * but the package only accepts $2a$/$2b$, so $2y$ is rehashed under $2b$ and
 * compared as such. $2x$ (crypt_blowfish's deliberately buggy compatibility
 * mode) is a different function and is refused.
 *
 * We recompute the hash with the stored salt and compare with
 * crypto.timingSafeEqual ourselves.
 */
import bcrypt from 'bcrypt';
import type { SchemeHandler } from '../types.ts';
import { constantTimeEqualString } from '../util.ts';

const BCRYPT_RE = /^\$2([aby])\$(\d\d)\$([./A-Za-z0-9]{22})([./A-Za-z0-9]{31})$/;

/** Why `hash` is not a bcrypt hash we can verify, or undefined. */
export function bcryptHashProblem(hash: string): string | undefined {
  if (hash.startsWith('$2x$')) return "bcrypt $2x$ (crypt_blowfish's buggy compatibility mode) is not supported";
  const m = BCRYPT_RE.exec(hash);
  if (!m) return 'not a well-formed bcrypt hash ($2b$NN$ + 53 characters)';
  const cost = Number(m[2]);
  if (cost < 4 || cost > 31) return `bcrypt cost ${cost} is out of range 4..31`;
  return undefined;
}

/** Verifies `password` (string or bytes) against a bcrypt hash; false for malformed hashes. */
export async function bcryptVerify(hash: string, password: string | Buffer): Promise<boolean> {
  if (bcryptHashProblem(hash) !== undefined) return false;
  // $2y$ and $2b$ are the same function; the package knows only $2a$/$2b$.
  const normalized = hash.startsWith('$2y$') ? `$2b$${hash.slice(4)}` : hash;
  const computed = await bcrypt.hash(password, normalized.slice(0, 29));
  return constantTimeEqualString(computed, normalized);
}

export const bcryptScheme: SchemeHandler = {
  schemes: ['bcrypt'],
  selfDescribing: true,
  detect: (hash) => (/^\$2[abxy]\$/.test(hash) ? 'bcrypt' : undefined),
  validate: (cred) => bcryptHashProblem(cred.hash),
  verify: (cred, _scheme, password) => bcryptVerify(cred.hash, password),
};
