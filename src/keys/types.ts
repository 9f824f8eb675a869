// The keyring seam. One interface, implementations chosen by KEYS_MODE
// (src/keys/index.ts, docs/keys.md): `local` (a master key file in DATA_DIR
// wraps everything stored in DynamoDB), `kms-envelope` (AWS KMS data keys wrap
// it) and `kms-sign` (signing keys are asymmetric KMS keys; the rest as
// kms-envelope). All share ManagedKeyring (managed.ts): rotation, reloading.
import type { JWK } from 'jose';
import type { ExternalSigningKey } from 'oidc-provider';

/**
 * One key per algorithm: a PS256 key is an RSA key of its own (JWK `alg:
 * PS256`), never the RS256 key, so each alg has its own kid, rotation and
 * KMS key (oidc-provider selects signing keys by `alg`).
 */
export type SigningAlg = 'RS256' | 'PS256' | 'ES256' | 'EdDSA';
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
  /**
   * keys for oidc-provider's `jwks` option, active keys first (then next, then
   * retired): private JWKs (local, kms-envelope) or ExternalSigningKey
   * instances whose private half stays in KMS (kms-sign)
   */
  signingJwks(): ProviderSigningKey[];
  /** cookie-signing keys, the active one first; older and next ones still verify */
  cookieKeys(): string[];
  /** wrap a secret (data key, private key) for storage; context binds it to its use */
  wrap(plaintext: Buffer, context: string): Promise<string>;
  unwrap(wrapped: string, context: string): Promise<Buffer>;

  /** true when the signing keys live in KMS (oidc-provider's externalSigningSupport) */
  readonly external: boolean;
  /** the algorithms this mode signs with */
  readonly algs: readonly SigningAlg[];
  /** the published (public) keys: what /jwks serves */
  publicJwks(): JWK[];
  /** the keys as loaded, with their states and times */
  keys(): KeyInfo[];
  /** create missing keys (first start) and load everything; throws KmsUnavailable / KeyIntegrityError */
  init(): Promise<this>;
  /** re-read the keys table; resolves true when the key set changed (and was loaded) */
  reload(): Promise<boolean>;
  /** one step of the schedule: promote due `next` keys, create `next` keys for old ones, remove expired retired keys */
  maintain(now?: number): Promise<KeyAction[]>;
  /** create `next` keys now (for one alg, every alg, and/or the cookie key) */
  rotate(opts?: RotateOptions): Promise<KeyAction[]>;
  /** the keys table as stored (no secret opened, no KMS call) */
  describe(): Promise<KeyInfo[]>;
  /** KMS modes: one cheap call (DescribeKey of KMS_KEY_ID) that rejects when KMS cannot be used (/readyz); absent in local mode */
  readonly ping?: (signal: AbortSignal) => Promise<void>;
  close(): void;
}

export type ProviderSigningKey = JWK | ExternalSigningKey;

export interface KeyInfo {
  kind: 'signing' | 'cookie';
  /** RFC 7638 thumbprint (signing keys) or the cookie key id */
  kid: string;
  alg?: SigningAlg;
  state: KeyState;
  createdAt: string;
  /** next: when it starts signing */
  activatesAt?: string;
  activatedAt?: string;
  /** active: when it is replaced (the next key's activation, or activation + KEY_MAX_AGE_SECONDS) */
  retiresAt?: string;
  retiredAt?: string;
  /** retired: when it leaves /jwks (every token it signed has expired) */
  removesAt?: string;
  /** kms-sign: the KMS key holding the private half */
  kmsKeyId?: string;
}

export interface RotateOptions {
  /** only this algorithm (default: every algorithm of the mode, and the cookie key) */
  alg?: SigningAlg;
  /** rotate the cookie key (default when no alg is named) */
  cookie?: boolean;
  /** override KEY_PREPUBLISH_SECONDS for this rotation (0: activate on the next schedule step) */
  activateInSeconds?: number;
  /** kms-sign: adopt this existing KMS key instead of creating one */
  kmsKeyId?: string;
}

export interface KeyAction {
  action: 'create' | 'promote' | 'retire' | 'remove' | 'skip';
  kind: 'signing' | 'cookie' | 'secret';
  kid: string;
  alg?: SigningAlg;
  state?: KeyState;
  at?: string;
  note?: string;
}

/** A wrapped secret that failed authentication: tampered, or wrapped for another use. */
export class KeyIntegrityError extends Error {
  override name = 'KeyIntegrityError';
  /** the kid or context of the refused secret */
  readonly ref: string | undefined;
  constructor(message: string, ref?: string) {
    super(message);
    this.ref = ref;
  }
}
