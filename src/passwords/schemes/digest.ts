/**
 * Bare message digests with an explicit scheme name: md5, sha1, sha256,
 * sha512 and md4 of the password's UTF-8 bytes, with an optional salt before
 * (saltPosition 'prefix') or after ('suffix') the password, the digest in hex
 * or base64 (inferred from its shape when `encoding` is absent).
 *
 * Also the keyed variants hmac-md5, hmac-sha1, hmac-sha256 and hmac-sha512:
 * HMAC(key, salted password), where the key is looked up by name (`key`) in
 * the configured LegacySecrets.hmacKeys and never comes from the import file.
 */
import { createHash, createHmac } from 'node:crypto';
import type { LegacyCredential, LegacySecrets, SchemeHandler } from '../types.ts';
import { affix, constantTimeEqual, decodeDigest, saltBytes } from '../util.ts';
import { md4 } from './md4.ts';

const DIGEST_LENGTH: Record<string, number> = { md4: 16, md5: 16, sha1: 20, sha256: 32, sha512: 64 };

function commonProblem(cred: LegacyCredential, scheme: string, alg: string): string | undefined {
  if (cred.iterations !== undefined) return `${scheme}: iterations do not apply`;
  if (cred.keyLength !== undefined) return `${scheme}: keyLength does not apply`;
  const salt = saltBytes(cred);
  if (!salt) return `${scheme}: salt is not valid ${cred.saltEncoding}`;
  if (salt.length > 0 && cred.saltPosition === undefined) return `${scheme}: a salt needs saltPosition ('prefix' or 'suffix')`;
  if (cred.saltPosition !== undefined && cred.saltPosition !== 'prefix' && cred.saltPosition !== 'suffix') {
    return `${scheme}: saltPosition must be 'prefix' or 'suffix'`;
  }
  if (cred.encoding !== undefined && cred.encoding !== 'hex' && cred.encoding !== 'base64') return `${scheme}: encoding must be 'hex' or 'base64'`;
  if (!decodeDigest(cred.hash, cred.encoding, DIGEST_LENGTH[alg])) {
    return `${scheme}: hash is not a ${DIGEST_LENGTH[alg]}-byte digest in ${cred.encoding ?? 'hex or base64'}`;
  }
  return undefined;
}

function message(cred: LegacyCredential, password: string): Buffer | undefined {
  const salt = saltBytes(cred);
  return salt ? affix(Buffer.from(password, 'utf8'), salt, cred.saltPosition) : undefined;
}

export const digestScheme: SchemeHandler = {
  schemes: ['md4', 'md5', 'sha1', 'sha256', 'sha512'],
  selfDescribing: false,
  validate: (cred, scheme) => {
    if (cred.key !== undefined) return `${scheme}: key does not apply (use hmac-${scheme} for keyed hashes)`;
    return commonProblem(cred, scheme, scheme);
  },
  verify: async (cred, scheme, password) => {
    const expected = decodeDigest(cred.hash, cred.encoding, DIGEST_LENGTH[scheme]);
    const msg = message(cred, password);
    if (!expected || !msg) return false;
    const computed = scheme === 'md4' ? await md4(msg) : createHash(scheme).update(msg).digest();
    return constantTimeEqual(computed, expected);
  },
};

function hmacKey(cred: LegacyCredential, secrets: LegacySecrets | undefined): Uint8Array | undefined {
  if (cred.key === undefined || !secrets?.hmacKeys || !Object.hasOwn(secrets.hmacKeys, cred.key)) return undefined;
  const k = secrets.hmacKeys[cred.key];
  return typeof k === 'string' ? Buffer.from(k, 'utf8') : k;
}

export const hmacScheme: SchemeHandler = {
  schemes: ['hmac-md5', 'hmac-sha1', 'hmac-sha256', 'hmac-sha512'],
  selfDescribing: false,
  validate: (cred, scheme, secrets) => {
    if (typeof cred.key !== 'string' || cred.key === '') return `${scheme}: needs key, the name of a configured HMAC key`;
    if (secrets && !hmacKey(cred, secrets)) return `${scheme}: no HMAC key named '${cred.key}' is configured`;
    return commonProblem(cred, scheme, scheme.slice('hmac-'.length));
  },
  verify: async (cred, scheme, password, secrets) => {
    const alg = scheme.slice('hmac-'.length);
    const key = hmacKey(cred, secrets);
    const expected = decodeDigest(cred.hash, cred.encoding, DIGEST_LENGTH[alg]);
    const msg = message(cred, password);
    if (!key || !expected || !msg) return false;
    return constantTimeEqual(createHmac(alg, key).update(msg).digest(), expected);
  },
};
