// MFA's part of an account erasure (src/accounts/erasure.ts): the factors,
// pending enrolments and remembered devices of the account and of every
// account an admin merged into it. Login flows (keyed by their interaction)
// are left to their TTL (see mfaPartitions).
import type { ErasureHook } from '../accounts/erasure.ts';
import { factorPk, mfaPartitions } from './store.ts';

export const mfaErasure: ErasureHook = {
  name: 'mfa',
  prefixes: [factorPk('')],
  partitions: ({ sub, mergedSubs }) => [sub, ...mergedSubs].flatMap(mfaPartitions),
};
