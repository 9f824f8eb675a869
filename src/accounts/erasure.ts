// Erasure hooks: how a capability that keeps items per account in the
// accounts table (lockout: src/lockout/erasure.ts, MFA: src/mfa/erasure.ts)
// has them deleted with the account, and how what is kept elsewhere (the
// user's sessions, grants and tokens in the oidc table, outbox lines) goes
// too: a hook's `erase`. accounts imports no capability: each one
// exports a hook, and whoever composes a DynamoAccountStore passes them in
// (src/erasure-hooks.ts). DynamoAccountStore.erase asks every hook for its
// partitions, records them in the tombstone's `sweep`, and empties only
// partitions under a prefix some hook declared (docs/accounts.md, Erasure).

import type { Storage } from '../storage/index.ts';

/** what a hook knows of the account being erased */
export interface ErasureContext {
  /** the erased account */
  sub: string;
  /** accounts an admin merged into it (their undo snapshots go with this erasure) */
  mergedSubs: string[];
  /** the e-mail addresses and phone numbers in its record, as stored; empty when the record no longer opens */
  identifiers: string[];
  /** the keyring's blind-index key, for partitions keyed by a hash of an identifier */
  blindIndexKey: Buffer;
  /** the erasing store's storage (its client: a failure there is StorageUnavailable, and the erasure is run again) */
  storage: Storage;
}

export interface ErasureHook {
  /** the capability, for messages */
  name: string;
  /** the partitions (pk values) to empty for this account: every item under each is deleted */
  partitions(ctx: ErasureContext): string[];
  /**
   * the pk prefixes of those partitions: a sweep empties only a partition
   * under one of them (never a pointer or a record of the store's own)
   */
  prefixes: string[];
  /**
   * deletes what the capability keeps for the account outside the accounts
   * table; run before the account item goes (a failure leaves the item, and
   * the next run repeats it), so it must be safe to repeat
   */
  erase?(ctx: ErasureContext): Promise<void>;
}

/** the store's own pk kinds: no hook prefix may reach them */
const OWN_KINDS = ['user#', 'email#', 'phone#', 'source#', 'merge#', 'erased#'];

/** throws when a hook declares a prefix that could empty the store's own items */
export function checkErasureHooks(hooks: readonly ErasureHook[]): void {
  for (const h of hooks) {
    for (const p of h.prefixes) {
      if (p === '' || OWN_KINDS.some((k) => k.startsWith(p) || p.startsWith(k))) {
        throw new Error(`erasure hook ${h.name}: prefix "${p}" would reach the account store's own items`);
      }
    }
  }
}
