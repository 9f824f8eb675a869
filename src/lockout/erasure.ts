// Lockout's part of an account erasure (src/accounts/erasure.ts): everything
// under the account's pk and under the pks of accounts an admin merged into
// it (counters, known devices, unlock/reset codes and their send counts),
// and the counters of its e-mail addresses and phone numbers from the time
// they named no account. The per-IP counters hold no account and stay.
import type { ErasureHook } from '../accounts/erasure.ts';
import { keys, lockoutPartitions } from './counters.ts';

export const lockoutErasure: ErasureHook = {
  name: 'lockout',
  prefixes: [keys.account(''), keys.identifier('')],
  partitions: ({ sub, mergedSubs, identifiers, blindIndexKey }) => [
    ...lockoutPartitions(sub, identifiers, blindIndexKey),
    ...mergedSubs.flatMap((s) => lockoutPartitions(s, [], blindIndexKey)),
  ],
};
