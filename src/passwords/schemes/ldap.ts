/**
 * LDAP userPassword schemes (RFC 2307 and the OpenLDAP / 389-DS extensions):
 *
 * - {SHA} {SHA256} {SHA384} {SHA512} {MD5}: base64 (or, as some tools write
 *   it, hex) of the digest of the password.
 * - {SSHA} {SSHA256} {SSHA384} {SSHA512} {SMD5}: base64(digest(password || salt) || salt).
 * - {CRYPT}: a crypt(3) string: $1$, $apr1$, $5$, $6$, $2a$/$2b$/$2y$ or $7$.
 *   Traditional DES crypt is not supported.
 *
 * Scheme tags are matched case-insensitively, as OpenLDAP does.
 */
import { createHash } from 'node:crypto';
import type { SchemeHandler } from '../types.ts';
import { constantTimeEqual, decodeBase64, decodeDigest } from '../util.ts';
import { bcryptHashProblem, bcryptVerify } from './bcrypt.ts';
import { md5CryptHashProblem, md5CryptVerify } from './md5-crypt.ts';
import { crypt7Verify, scryptHashProblem } from './scrypt.ts';
import { shaCryptHashProblem, shaCryptVerify } from './sha-crypt.ts';

interface Tag {
  scheme: string;
  alg: string;
  length: number;
  salted: boolean;
}

const TAGS: Record<string, Tag> = {
  SHA: { scheme: 'ldap-sha', alg: 'sha1', length: 20, salted: false },
  SSHA: { scheme: 'ldap-ssha', alg: 'sha1', length: 20, salted: true },
  SHA256: { scheme: 'ldap-sha256', alg: 'sha256', length: 32, salted: false },
  SSHA256: { scheme: 'ldap-ssha256', alg: 'sha256', length: 32, salted: true },
  SHA384: { scheme: 'ldap-sha384', alg: 'sha384', length: 48, salted: false },
  SSHA384: { scheme: 'ldap-ssha384', alg: 'sha384', length: 48, salted: true },
  SHA512: { scheme: 'ldap-sha512', alg: 'sha512', length: 64, salted: false },
  SSHA512: { scheme: 'ldap-ssha512', alg: 'sha512', length: 64, salted: true },
  MD5: { scheme: 'ldap-md5', alg: 'md5', length: 16, salted: false },
  SMD5: { scheme: 'ldap-smd5', alg: 'md5', length: 16, salted: true },
};
const BY_SCHEME = new Map(Object.values(TAGS).map((t) => [t.scheme, t]));

const TAG_RE = /^\{([A-Za-z0-9]+)\}/;

function split(hash: string): { tag: string; body: string } | undefined {
  const m = TAG_RE.exec(hash);
  return m ? { tag: m[1].toUpperCase(), body: hash.slice(m[0].length) } : undefined;
}

/** crypt(3) forms accepted inside {CRYPT}. */
const CRYPT_FORMS: readonly { prefix: RegExp; problem: (h: string) => string | undefined; verify: (h: string, pw: string) => Promise<boolean> | boolean }[] = [
  { prefix: /^\$(1|apr1)\$/, problem: md5CryptHashProblem, verify: md5CryptVerify },
  { prefix: /^\$[56]\$/, problem: shaCryptHashProblem, verify: shaCryptVerify },
  { prefix: /^\$2[abxy]\$/, problem: bcryptHashProblem, verify: bcryptVerify },
  { prefix: /^\$7\$/, problem: scryptHashProblem, verify: crypt7Verify },
];

function cryptForm(body: string) {
  return CRYPT_FORMS.find((f) => f.prefix.test(body));
}

function parseDigest(tag: Tag, body: string): { digest: Buffer; salt: Buffer } | undefined {
  if (!tag.salted) {
    const digest = decodeDigest(body, undefined, tag.length);
    return digest ? { digest, salt: Buffer.alloc(0) } : undefined;
  }
  const raw = decodeBase64(body);
  if (!raw || raw.length <= tag.length) return undefined;
  return { digest: raw.subarray(0, tag.length), salt: raw.subarray(tag.length) };
}

export const ldapScheme: SchemeHandler = {
  schemes: [...BY_SCHEME.keys(), 'ldap-crypt'],
  selfDescribing: true,
  detect: (hash) => {
    const s = split(hash);
    if (!s) return undefined;
    if (s.tag === 'CRYPT') return 'ldap-crypt';
    return TAGS[s.tag]?.scheme;
  },
  validate: (cred, scheme) => {
    const s = split(cred.hash);
    if (!s || ldapScheme.detect?.(cred.hash) !== scheme) return `hash is not an ${scheme} ({TAG}...) hash`;
    if (scheme === 'ldap-crypt') {
      const form = cryptForm(s.body);
      if (!form) return '{CRYPT} holds a crypt(3) form that is not supported (only $1$, $apr1$, $5$, $6$, $2a$/$2b$/$2y$, $7$)';
      return form.problem(s.body);
    }
    const tag = BY_SCHEME.get(scheme);
    if (!tag || !parseDigest(tag, s.body)) {
      return `{${s.tag}} value is not ${tag?.salted ? `base64 of a ${tag.length}-byte digest and a salt` : `a ${tag?.length}-byte digest in base64 or hex`}`;
    }
    return undefined;
  },
  verify: async (cred, scheme, password) => {
    const s = split(cred.hash);
    if (!s) return false;
    if (scheme === 'ldap-crypt') {
      const form = cryptForm(s.body);
      return form ? form.verify(s.body, password) : false;
    }
    const tag = BY_SCHEME.get(scheme);
    const parsed = tag && parseDigest(tag, s.body);
    if (!tag || !parsed) return false;
    const computed = createHash(tag.alg).update(password, 'utf8').update(parsed.salt).digest();
    return constantTimeEqual(computed, parsed.digest);
  },
};
