/**
 * Password hashing: argon2id for every password we set (argon2id.ts), and
 * verification of hashes imported from legacy systems (comparator.ts, with
 * one file per hasher family under schemes/).
 *
 * Typical login flow for an imported account:
 *
 *   if (await verifyLegacy(cred, password, secrets)) {
 *     if (needsRehash(cred.hash)) store(await hashPassword(password));
 *   }
 */
export { ARGON2_LIMITS, DEFAULT_ARGON2_PARAMS, hashPassword, needsRehash, parseArgon2, verifyArgon2 } from './argon2id.ts';
export type { Argon2Params, ParsedArgon2 } from './argon2id.ts';
export { detectScheme, isKnownScheme, KNOWN_SCHEMES, MAX_PASSWORD_BYTES, validateCredential, verifyLegacy } from './comparator.ts';
export type { DigestEncoding, FirebaseScryptConfig, LegacyCredential, LegacySecrets, SaltEncoding, SaltPosition } from './types.ts';
