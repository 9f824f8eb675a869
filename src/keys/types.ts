// The keyring seam. One interface, several implementations chosen by
// KEYS_MODE: `local` (a master key file in DATA_DIR wraps everything stored in
// DynamoDB); the KMS modes attach here too.
import type { JWK } from 'jose';

export type SigningAlg = 'RS256' | 'ES256' | 'EdDSA';
export type KeyState = 'next' | 'active' | 'retired';

export interface SigningKeyRecord {
  kid: string;
  alg: SigningAlg;
  state: KeyState;
  createdAt: string;
  /** private JWK, in memory only (never stored unwrapped) */
  jwk: JWK;
}

/** A fresh data key: use `plaintext` (32 bytes, AES-256) in memory, store `wrapped`. */
export interface DataKey {
  plaintext: Buffer;
  wrapped: string;
}

export interface Keyring {
  readonly mode: string;
  /** a new per-record data key, wrapped for `context` (e.g. "account:<sub>") */
  newDataKey(context: string): Promise<DataKey>;
  /** unwrap a stored data key; throws KeyIntegrityError naming the context when tampered */
  openDataKey(wrapped: string, context: string): Promise<Buffer>;
  /** the 32-byte key of blind indexes (HMAC-SHA256 of normalized e-mail/phone) */
  blindIndexKey(): Buffer;
  /** private JWKs (with kid and alg) for oidc-provider's `jwks` option, active keys first */
  signingJwks(): JWK[];
  /** cookie-signing keys, newest first; older ones still verify */
  cookieKeys(): string[];
  /** wrap a secret (data key, private key) for storage; context binds it to its use */
  wrap(plaintext: Buffer, context: string): Promise<string>;
  unwrap(wrapped: string, context: string): Promise<Buffer>;
}

/** A wrapped secret that failed authentication: tampered, or wrapped for another use. */
export class KeyIntegrityError extends Error {
  override name = 'KeyIntegrityError';
}
