/**
 * argon2 PHC strings from other systems: $argon2id$, $argon2i$, $argon2d$
 * (libsodium, PHP password_hash, the argon2 reference CLI, passlib, ...).
 * Verification is the argon2 package's (native, thread pool, timingSafeEqual).
 */
import { argon2HashProblem, verifyArgon2 } from '../argon2id.ts';
import type { SchemeHandler } from '../types.ts';

export const argon2Scheme: SchemeHandler = {
  schemes: ['argon2id', 'argon2i', 'argon2d'],
  selfDescribing: true,
  detect: (hash) => /^\$(argon2id|argon2i|argon2d)\$/.exec(hash)?.[1],
  validate: (cred, scheme) => {
    const problem = argon2HashProblem(cred.hash);
    if (problem) return problem;
    if (!cred.hash.startsWith(`$${scheme}$`)) return `hash is not an ${scheme} hash`;
    return undefined;
  },
  verify: (cred, _scheme, password) => verifyArgon2(cred.hash, password),
};
