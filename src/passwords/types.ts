/**
 * Shared types of the password-hashing capability.
 *
 * A legacy credential is what an import file carries for one user: either a
 * self-describing hash string (bcrypt, crypt(3), PHC, Django, LDAP, ...) whose
 * scheme is detected from the string itself, or a bare digest plus the
 * parameters (scheme name, salt, encoding, iterations) that the import names
 * explicitly. Secrets (HMAC keys, Firebase project parameters) never come from
 * the import file: the caller passes them in from configuration.
 */

export type SaltPosition = 'prefix' | 'suffix';
export type DigestEncoding = 'hex' | 'base64';
export type SaltEncoding = 'utf8' | 'hex' | 'base64';

export interface LegacyCredential {
  /** Scheme name. Optional for self-describing hashes (detected from `hash`). */
  scheme?: string;
  /** The stored hash: a self-describing string or a bare hex/base64 digest. */
  hash: string;
  /** Salt for explicit schemes; text (UTF-8) unless `saltEncoding` says otherwise. */
  salt?: string;
  /** Where the salt goes, for the digest and HMAC schemes: before or after the password. */
  saltPosition?: SaltPosition;
  /** Encoding of `hash` for explicit schemes; inferred from its shape when absent. */
  encoding?: DigestEncoding;
  /**
   * Encoding of `salt` (an extension of the import shape): 'utf8' (the default:
   * the salt is used as the bytes of its text), 'hex' or 'base64' for binary
   * salts. Firebase salts are always base64, as Firebase exports them.
   */
  saltEncoding?: SaltEncoding;
  /** PBKDF2 iteration count (explicit pbkdf2-* schemes). */
  iterations?: number;
  /** PBKDF2 derived-key length in bytes; must match the decoded hash length. */
  keyLength?: number;
  /**
   * Name of a configured secret: the HMAC key for hmac-* schemes, or the
   * Firebase project parameters for firebase-scrypt (default 'default').
   */
  key?: string;
}

/** Firebase's modified-scrypt parameters, as shown in the Firebase console ("Password hash parameters"). */
export interface FirebaseScryptConfig {
  /** base64_signer_key */
  signerKey: string;
  /** base64_salt_separator */
  saltSeparator: string;
  /** rounds (scrypt r) */
  rounds: number;
  /** mem_cost (scrypt N = 2^memCost) */
  memCost: number;
}

/** Secrets from configuration that some legacy schemes need. */
export interface LegacySecrets {
  /** Named HMAC keys; a string is used as its UTF-8 bytes. */
  hmacKeys?: Readonly<Record<string, string | Uint8Array>>;
  /** Named Firebase projects' hash parameters; a credential picks one with `key` (default 'default'). */
  firebase?: Readonly<Record<string, FirebaseScryptConfig>>;
}

/** One hasher family, in the manner of Kratos's hash/ package: one file per family under schemes/. */
export interface SchemeHandler {
  /** Canonical scheme names this handler verifies. */
  readonly schemes: readonly string[];
  /** True for self-describing formats (everything needed is inside `hash`). */
  readonly selfDescribing: boolean;
  /** For self-describing formats: the scheme name if `hash` looks like one of ours, else undefined. */
  detect?(hash: string): string | undefined;
  /**
   * Why this credential can never verify (malformed hash, missing parameter), or
   * undefined when it is well formed. `secrets`, when given, is checked too.
   */
  validate(cred: LegacyCredential, scheme: string, secrets?: LegacySecrets): string | undefined;
  /** Verify a credential that passed `validate`. May throw; the comparator turns throws into false. */
  verify(cred: LegacyCredential, scheme: string, password: string, secrets: LegacySecrets): Promise<boolean>;
}
