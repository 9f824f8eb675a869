/**
 * md5crypt ($1$, Poul-Henning Kamp's FreeBSD MD5 crypt) and Apache's $apr1$
 * variant (the same algorithm with the magic string "$apr1$").
 *
 * The algorithm is the maintained `apache-md5` package's (used by http-auth
 * and htpasswd-compatible tools). It runs a fixed 1000 MD5 iterations, well
 * under a millisecond, so it is run synchronously. That package feeds strings
 * to MD5 in Node's 'ascii' (that is, latin1) encoding and uses `.length` as the
 * byte count, so we hand it the password's UTF-8 bytes as a latin1 string:
 * that makes it hash exactly the UTF-8 bytes, as crypt(3) does.
 */
import { createRequire } from 'node:module';
import type { SchemeHandler } from '../types.ts';
import { constantTimeEqualString } from '../util.ts';

// apache-md5 is CommonJS with `module.exports = fn`, but its typings declare an
// ES default export, which TypeScript resolves to the wrong thing under
// nodenext; require() gives the function itself.
const apacheMd5 = createRequire(import.meta.url)('apache-md5') as (password: string, salt?: string) => string;

const MD5_CRYPT_RE = /^\$(1|apr1)\$([^$]{0,8})\$([./0-9A-Za-z]{22})$/;

export function md5CryptHashProblem(hash: string): string | undefined {
  return MD5_CRYPT_RE.test(hash) ? undefined : 'not a well-formed md5-crypt hash ($1$ or $apr1$, salt of up to 8 characters, 22-character hash)';
}

/** Verifies a $1$ or $apr1$ hash; false when malformed. */
export function md5CryptVerify(hash: string, password: string | Buffer): boolean {
  const m = MD5_CRYPT_RE.exec(hash);
  if (!m) return false;
  const pw = (typeof password === 'string' ? Buffer.from(password, 'utf8') : password).toString('latin1');
  const computed = apacheMd5(pw, `$${m[1]}$${m[2]}$`);
  return constantTimeEqualString(computed, hash);
}

export const md5CryptScheme: SchemeHandler = {
  schemes: ['md5-crypt', 'apr1-md5'],
  selfDescribing: true,
  detect: (hash) => (hash.startsWith('$1$') ? 'md5-crypt' : hash.startsWith('$apr1$') ? 'apr1-md5' : undefined),
  validate: (cred, scheme) => {
    const problem = md5CryptHashProblem(cred.hash);
    if (problem) return problem;
    if ((scheme === 'md5-crypt') !== cred.hash.startsWith('$1$')) return `hash is not a ${scheme} hash`;
    return undefined;
  },
  verify: async (cred, _scheme, password) => md5CryptVerify(cred.hash, password),
};
