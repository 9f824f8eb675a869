// Counts the calls of a PasswordHasher, so tests (and metrics) can show that
// a refused attempt costs no hash: the lockout check runs before it.
import type { PasswordHasher } from '../accounts/hasher.ts';

export interface HashCalls {
  hash: number;
  verify: number;
  dummyVerify: number;
}

export type MeteredHasher = PasswordHasher & { readonly calls: HashCalls };

export function meteredHasher(inner: PasswordHasher): MeteredHasher {
  const calls: HashCalls = { hash: 0, verify: 0, dummyVerify: 0 };
  return {
    calls,
    hash(password) {
      calls.hash++;
      return inner.hash(password);
    },
    verify(hash, password) {
      calls.verify++;
      return inner.verify(hash, password);
    },
    dummyVerify(password) {
      calls.dummyVerify++;
      return inner.dummyVerify(password);
    },
  };
}
