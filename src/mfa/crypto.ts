// MFA secrets at rest, under the account record's own data key (the 32-byte
// key the keyring made for "account:<sub>", see src/accounts/crypto.ts):
//
//  - the TOTP secret (and a pending one during enrolment) is AES-256-GCM
//    sealed with that key; the additional data names the record and the use
//    ("idp/mfa/v1:<sub>:<purpose>"), so a blob moved to another account or
//    purpose does not open, and erasing the account (its wrapped data key)
//    shreds it;
//  - recovery codes and e-mail/SMS codes are stored as HMAC-SHA256 under a
//    key derived from the data key by HKDF-SHA256 (info "idp/mfa/<kind>/v1"):
//    a table dump without the keyring cannot test guesses offline.
import crypto from 'node:crypto';

const VERSION = 'm1';

function aad(sub: string, purpose: string): Buffer {
  return Buffer.from(`idp/mfa/v1:${sub}:${purpose}`);
}

export class MfaSecretIntegrityError extends Error {
  override name = 'MfaSecretIntegrityError';
}

/** "m1.<iv>.<tag>.<ciphertext>" (base64url) */
export function sealSecret(key: Buffer, sub: string, purpose: string, plaintext: string): string {
  const iv = crypto.randomBytes(12);
  const c = crypto.createCipheriv('aes-256-gcm', key, iv);
  c.setAAD(aad(sub, purpose));
  const ct = Buffer.concat([c.update(plaintext, 'utf8'), c.final()]);
  return [VERSION, iv.toString('base64url'), c.getAuthTag().toString('base64url'), ct.toString('base64url')].join('.');
}

export function openSecret(key: Buffer, sub: string, purpose: string, blob: string): string {
  const [v, iv, tag, ct] = blob.split('.');
  if (v !== VERSION || !iv || !tag || ct === undefined) throw new MfaSecretIntegrityError(`mfa ${sub}: unknown secret format`);
  try {
    const d = crypto.createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64url'));
    d.setAAD(aad(sub, purpose));
    d.setAuthTag(Buffer.from(tag, 'base64url'));
    return Buffer.concat([d.update(Buffer.from(ct, 'base64url')), d.final()]).toString('utf8');
  } catch {
    throw new MfaSecretIntegrityError(`mfa ${sub}: the sealed ${purpose} does not authenticate`);
  }
}

/** HMAC-SHA256 of a code under HKDF-SHA256(recordKey, "idp/mfa/<kind>/v1"), base64url */
export function codeHash(recordKey: Buffer, kind: 'recovery' | 'message', value: string): string {
  const k = Buffer.from(crypto.hkdfSync('sha256', recordKey, Buffer.alloc(0), `idp/mfa/${kind}/v1`, 32));
  return crypto.createHmac('sha256', k).update(value).digest('base64url');
}

/** constant-time comparison of two base64url hashes */
export function sameHash(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && crypto.timingSafeEqual(x, y);
}

// Recovery codes: 10 characters from a 31-letter alphabet without look-alikes
// (about 49 bits), shown as "xxxxx-xxxxx". Typed input is lower-cased and stripped
// of spaces and dashes before hashing.
const ALPHABET = 'abcdefghjkmnpqrstuvwxyz23456789';

export function newRecoveryCode(): string {
  let s = '';
  for (let i = 0; i < 10; i++) s += ALPHABET[crypto.randomInt(ALPHABET.length)];
  return `${s.slice(0, 5)}-${s.slice(5)}`;
}

export function normalizeRecoveryCode(input: string): string {
  return input.toLowerCase().replace(/[\s-]/g, '');
}

/** a 6-digit message code */
export function newMessageCode(): string {
  return String(crypto.randomInt(1_000_000)).padStart(6, '0');
}

/** the public id of a remembered device: never the cookie value itself */
export function deviceKey(deviceId: string): string {
  return crypto.createHash('sha256').update(`idp/mfa/device:${deviceId}`).digest('hex');
}
