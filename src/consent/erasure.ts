// Consent's part of an account erasure (src/accounts/erasure.ts): the
// account's partition "consent#<sub>" (what it allowed apps, its roles), and
// those of accounts an admin merged into it. Grants and tokens live in the
// oidc table and expire with their TTL.
import type { ErasureHook } from '../accounts/erasure.ts';
import { CONSENT_PK_PREFIX } from './store.ts';

export const consentErasure: ErasureHook = {
  name: 'consent',
  prefixes: [CONSENT_PK_PREFIX],
  partitions: ({ sub, mergedSubs }) => [sub, ...mergedSubs].map((s) => CONSENT_PK_PREFIX + s),
};
