/**
 * The one comparator in front of every hasher, in the manner of Ory Kratos's
 * hash/hash_comparator.go: it finds the scheme (named by the credential, or
 * detected from a self-describing hash), checks the credential, and hands it
 * to the scheme's file under schemes/.
 *
 * Nothing here throws on bad input: unknown or malformed credentials give a
 * reason from validateCredential() and false from verifyLegacy().
 */
import type { LegacyCredential, LegacySecrets, SchemeHandler } from './types.ts';
import { argon2Scheme } from './schemes/argon2.ts';
import { bcryptScheme } from './schemes/bcrypt.ts';
import { digestScheme, hmacScheme } from './schemes/digest.ts';
import { djangoScheme } from './schemes/django.ts';
import { firebaseScryptScheme } from './schemes/firebase-scrypt.ts';
import { ldapScheme } from './schemes/ldap.ts';
import { ntScheme } from './schemes/md4.ts';
import { md5CryptScheme } from './schemes/md5-crypt.ts';
import { passlibPbkdf2Scheme } from './schemes/passlib-pbkdf2.ts';
import { pbkdf2Scheme } from './schemes/pbkdf2.ts';
import { phpassScheme } from './schemes/phpass.ts';
import { scryptScheme } from './schemes/scrypt.ts';
import { shaCryptScheme } from './schemes/sha-crypt.ts';
import { werkzeugScheme } from './schemes/werkzeug.ts';

/** Longest password (in UTF-8 bytes) we will hash for a comparison; longer ones never verify. */
export const MAX_PASSWORD_BYTES = 4096;

const HANDLERS: readonly SchemeHandler[] = [
  argon2Scheme,
  bcryptScheme,
  scryptScheme,
  md5CryptScheme,
  shaCryptScheme,
  phpassScheme,
  djangoScheme,
  passlibPbkdf2Scheme,
  werkzeugScheme,
  ldapScheme,
  ntScheme,
  digestScheme,
  hmacScheme,
  pbkdf2Scheme,
  firebaseScryptScheme,
];

const BY_SCHEME = new Map<string, SchemeHandler>();
for (const h of HANDLERS) for (const s of h.schemes) BY_SCHEME.set(s, h);

/** Every scheme name verifyLegacy() understands. */
export const KNOWN_SCHEMES: readonly string[] = Object.freeze([...BY_SCHEME.keys()]);

/** Fields that only explicit (non-self-describing) schemes take. */
const EXPLICIT_FIELDS = ['salt', 'saltPosition', 'encoding', 'saltEncoding', 'iterations', 'keyLength', 'key'] as const;

function normalizeScheme(name: string): string {
  return name.trim().toLowerCase();
}

/** Whether `name` is a scheme verifyLegacy() understands (case-insensitive). */
export function isKnownScheme(name: string): boolean {
  return typeof name === 'string' && BY_SCHEME.has(normalizeScheme(name));
}

/** The scheme of a self-describing hash string, or undefined when it is not recognisable. */
export function detectScheme(hash: string): string | undefined {
  if (typeof hash !== 'string') return undefined;
  for (const h of HANDLERS) {
    const scheme = h.detect?.(hash);
    if (scheme !== undefined) return scheme;
  }
  return undefined;
}

function resolve(cred: LegacyCredential): { scheme: string; handler: SchemeHandler } | string {
  if (cred === null || typeof cred !== 'object') return 'credential is not an object';
  if (typeof cred.hash !== 'string' || cred.hash.length === 0) return 'credential has no hash';
  if (cred.scheme !== undefined && typeof cred.scheme !== 'string') return 'scheme is not a string';
  const scheme = cred.scheme === undefined || cred.scheme.trim() === '' ? detectScheme(cred.hash) : normalizeScheme(cred.scheme);
  if (scheme === undefined) return 'the hash is not in a self-describing format we recognise; name its scheme';
  const handler = BY_SCHEME.get(scheme);
  if (!handler) return `unknown scheme '${cred.scheme}'`;
  return { scheme, handler };
}

/**
 * Why `cred` can never verify (unknown scheme, malformed hash, missing or
 * inapplicable parameter), or undefined when it is well formed. With
 * `secrets`, also checks that the HMAC key / Firebase project it names is
 * configured.
 */
export function validateCredential(cred: LegacyCredential, secrets?: LegacySecrets): string | undefined {
  try {
    const r = resolve(cred);
    if (typeof r === 'string') return r;
    if (r.handler.selfDescribing) {
      const detected = detectScheme(cred.hash);
      if (detected !== r.scheme) return `hash does not look like a ${r.scheme} hash`;
      for (const f of EXPLICIT_FIELDS) {
        if (cred[f] !== undefined) return `${f} does not apply to ${r.scheme}: its parameters are inside the hash`;
      }
    }
    return r.handler.validate(cred, r.scheme, secrets);
  } catch {
    return 'credential could not be parsed';
  }
}

/**
 * Verifies `password` against a legacy (or our own argon2id) credential.
 * Resolves to false, never rejects, for a wrong password, an empty or
 * over-long password, and any credential validateCredential() faults.
 */
export async function verifyLegacy(cred: LegacyCredential, password: string, secrets: LegacySecrets = {}): Promise<boolean> {
  try {
    if (typeof password !== 'string' || password.length === 0) return false;
    if (Buffer.byteLength(password, 'utf8') > MAX_PASSWORD_BYTES) return false;
    if (validateCredential(cred, secrets) !== undefined) return false;
    const r = resolve(cred);
    if (typeof r === 'string') return false;
    return (await r.handler.verify(cred, r.scheme, password, secrets)) === true;
  } catch {
    return false;
  }
}
