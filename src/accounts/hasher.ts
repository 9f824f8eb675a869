// How accounts hash and check the passwords we set: argon2id (src/passwords),
// on libuv's thread pool so the event loop never waits for a hash.
// dummyVerify spends the same time as a real check, for unknown identifiers,
// so response time does not tell whether an account exists.
import { hashPassword, verifyArgon2 } from '../passwords/argon2id.ts';

export interface Argon2Params { memoryKiB: number; timeCost: number; parallelism: number }

export interface PasswordHasher {
  hash(password: string): Promise<string>;
  verify(hash: string, password: string): Promise<boolean>;
  dummyVerify(password: string): Promise<void>;
}

export function argon2Hasher(params: Argon2Params): PasswordHasher {
  let dummy: Promise<string> | undefined;
  return {
    hash: (password) => hashPassword(password, params),
    verify: (hash, password) => verifyArgon2(hash, password),
    async dummyVerify(password) {
      dummy ??= hashPassword('dummy password that never matches', params);
      await verifyArgon2(await dummy, password);
    },
  };
}
