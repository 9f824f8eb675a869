/**
 * Firebase Authentication's modified scrypt (github.com/firebase/scrypt,
 * README "Password Hashing"):
 *
 *   derived = scrypt(password, salt || saltSeparator, N = 2^memCost, r = rounds, p = 1, 64 bytes)
 *   hash    = AES-256-CTR(key = derived[0..32), iv = 16 zero bytes, plaintext = signerKey)
 *
 * The per-user hash and salt are base64, as `firebase auth:export` writes
 * them. The project's signer key, salt separator, rounds and mem cost come
 * from configuration (LegacySecrets.firebase[name]; the credential's `key`
 * picks the project, default 'default'), never from the import file.
 * scrypt runs on libuv's thread pool (node:crypto async scrypt).
 */
import { createCipheriv } from 'node:crypto';
import type { FirebaseScryptConfig, LegacyCredential, LegacySecrets, SchemeHandler } from '../types.ts';
import { constantTimeEqual, decodeBase64, scryptAsync, scryptOptions, scryptParamsProblem } from '../util.ts';

interface ResolvedConfig {
  signerKey: Buffer;
  saltSeparator: Buffer;
  N: number;
  r: number;
}

function configFor(cred: LegacyCredential, secrets: LegacySecrets | undefined): FirebaseScryptConfig | undefined {
  const name = cred.key ?? 'default';
  return secrets?.firebase && Object.hasOwn(secrets.firebase, name) ? secrets.firebase[name] : undefined;
}

/** Decodes and checks a project's parameters; a reason when they are unusable. */
export function resolveFirebaseConfig(config: FirebaseScryptConfig): ResolvedConfig | string {
  const signerKey = decodeBase64(config.signerKey ?? '');
  const saltSeparator = decodeBase64(config.saltSeparator ?? '');
  if (!signerKey || signerKey.length === 0) return 'firebase-scrypt: signerKey is not base64';
  if (!saltSeparator) return 'firebase-scrypt: saltSeparator is not base64';
  if (!Number.isSafeInteger(config.memCost) || config.memCost < 1 || config.memCost > 30) return 'firebase-scrypt: memCost must be an integer in 1..30';
  const N = 2 ** config.memCost;
  const problem = scryptParamsProblem(N, config.rounds, 1);
  if (problem) return `firebase-scrypt: ${problem}`;
  return { signerKey, saltSeparator, N, r: config.rounds };
}

export const firebaseScryptScheme: SchemeHandler = {
  schemes: ['firebase-scrypt'],
  selfDescribing: false,
  validate: (cred, _scheme, secrets) => {
    if (cred.iterations !== undefined || cred.keyLength !== undefined || cred.saltPosition !== undefined) {
      return 'firebase-scrypt: iterations, keyLength and saltPosition do not apply (the parameters are the project\'s)';
    }
    if (cred.encoding !== undefined && cred.encoding !== 'base64') return 'firebase-scrypt: the hash is base64';
    if (cred.saltEncoding !== undefined && cred.saltEncoding !== 'base64') return 'firebase-scrypt: the salt is base64';
    const hash = decodeBase64(cred.hash);
    if (!hash || hash.length === 0) return 'firebase-scrypt: hash is not base64';
    if (cred.salt === undefined || !decodeBase64(cred.salt)) return 'firebase-scrypt: needs the user\'s base64 salt';
    if (secrets) {
      const config = configFor(cred, secrets);
      if (!config) return `firebase-scrypt: no Firebase project parameters named '${cred.key ?? 'default'}' are configured`;
      const resolved = resolveFirebaseConfig(config);
      if (typeof resolved === 'string') return resolved;
      if (resolved.signerKey.length !== hash.length) return 'firebase-scrypt: hash length does not match the signer key';
    }
    return undefined;
  },
  verify: async (cred, _scheme, password, secrets) => {
    const config = configFor(cred, secrets);
    const resolved = config && resolveFirebaseConfig(config);
    const expected = decodeBase64(cred.hash);
    const salt = decodeBase64(cred.salt ?? '');
    if (!resolved || typeof resolved === 'string' || !expected || !salt) return false;
    const derived = await scryptAsync(
      Buffer.from(password, 'utf8'),
      Buffer.concat([salt, resolved.saltSeparator]),
      64,
      scryptOptions(resolved.N, resolved.r, 1),
    );
    const cipher = createCipheriv('aes-256-ctr', derived.subarray(0, 32), Buffer.alloc(16));
    const computed = Buffer.concat([cipher.update(resolved.signerKey), cipher.final()]);
    return constantTimeEqual(computed, expected);
  },
};
