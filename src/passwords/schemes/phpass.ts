/**
 * phpass "portable" hashes and Drupal 7's SHA-512 variant of them.
 *
 * - $P$ (WordPress before 6.8, phpass) and $H$ (phpBB 3): Solar Designer's
 *   phpass 0.x, PasswordHash::crypt_private(): with count = 2^itoa64(setting[3])
 *   and salt = setting[4..12): hash = md5(salt . password), then count times
 *   hash = md5(hash . password); output = setting[0..12) . encode64(hash, 16).
 *   (https://www.openwall.com/phpass/, PasswordHash.php.)
 * - $S$ (Drupal 7): includes/password.inc, _password_crypt(): the same loop
 *   with sha512, the result encoded with the same encode64 and the whole hash
 *   truncated to DRUPAL_HASH_LENGTH = 55 characters; count log2 7..30.
 *   Drupal 7 also stores "U$S$..." for accounts migrated from Drupal 6, whose
 *   plain md5 hex digest was re-hashed: there the input is md5_hex(password).
 *
 * No maintained npm package covers these (the ones that exist are unmaintained
 * and loop synchronously), so they are composed from node:crypto's md5/sha512
 * per those sources. The loop yields to the event loop every few milliseconds.
 */
import { createHash } from 'node:crypto';
import type { SchemeHandler } from '../types.ts';
import { constantTimeEqualString, crypt64Index, encodeCrypt64LE, Yielder } from '../util.ts';

const PORTABLE_RE = /^\$([PH])\$([./0-9A-Za-z])([./0-9A-Za-z]{8})([./0-9A-Za-z]{22})$/;
const DRUPAL_RE = /^(U?)\$S\$([./0-9A-Za-z])([./0-9A-Za-z]{8})([./0-9A-Za-z]{43})$/;

async function iterate(alg: 'md5' | 'sha512', salt: string, password: Buffer, log2: number): Promise<Buffer> {
  const yielder = new Yielder();
  let hash = createHash(alg).update(salt, 'latin1').update(password).digest();
  for (let count = 2 ** log2; count > 0; count--) {
    hash = createHash(alg).update(hash).update(password).digest();
    const pause = yielder.tick();
    if (pause) await pause;
  }
  return hash;
}

export function phpassHashProblem(hash: string): string | undefined {
  const m = PORTABLE_RE.exec(hash);
  if (!m) return 'not a well-formed phpass hash ($P$ or $H$, cost character, 8-character salt, 22-character hash)';
  const log2 = crypt64Index(m[2]);
  if (log2 < 7 || log2 > 30) return `phpass iteration count 2^${log2} is outside 2^7..2^30`;
  return undefined;
}

export function drupalHashProblem(hash: string): string | undefined {
  const m = DRUPAL_RE.exec(hash);
  if (!m) return 'not a well-formed Drupal 7 hash ($S$, cost character, 8-character salt, 43-character hash)';
  const log2 = crypt64Index(m[2]);
  if (log2 < 7 || log2 > 30) return `Drupal 7 iteration count 2^${log2} is outside 2^7..2^30`;
  return undefined;
}

/** Verifies a $P$ / $H$ hash; false when malformed. */
export async function phpassVerify(hash: string, password: string): Promise<boolean> {
  const m = PORTABLE_RE.exec(hash);
  if (!m || phpassHashProblem(hash)) return false;
  const digest = await iterate('md5', m[3], Buffer.from(password, 'utf8'), crypt64Index(m[2]));
  return constantTimeEqualString(encodeCrypt64LE(digest), m[4]);
}

/** Verifies a Drupal 7 $S$ (or U$S$) hash; false when malformed. */
export async function drupalVerify(hash: string, password: string): Promise<boolean> {
  const m = DRUPAL_RE.exec(hash);
  if (!m || drupalHashProblem(hash)) return false;
  const input = m[1] === 'U' ? createHash('md5').update(password, 'utf8').digest('hex') : password;
  // Drupal 7 refuses passwords longer than DRUPAL_MAX_PASSWORD_LENGTH (512 bytes).
  if (Buffer.byteLength(input, 'utf8') > 512) return false;
  const digest = await iterate('sha512', m[3], Buffer.from(input, 'utf8'), crypt64Index(m[2]));
  return constantTimeEqualString(encodeCrypt64LE(digest).slice(0, 43), m[4]);
}

export const phpassScheme: SchemeHandler = {
  schemes: ['phpass', 'drupal7'],
  selfDescribing: true,
  detect: (hash) =>
    hash.startsWith('$P$') || hash.startsWith('$H$') ? 'phpass' : hash.startsWith('$S$') || hash.startsWith('U$S$') ? 'drupal7' : undefined,
  validate: (cred, scheme) => (scheme === 'phpass' ? phpassHashProblem(cred.hash) : drupalHashProblem(cred.hash)),
  verify: (cred, scheme, password) => (scheme === 'phpass' ? phpassVerify(cred.hash, password) : drupalVerify(cred.hash, password)),
};
