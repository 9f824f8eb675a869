// Every capability's erasure hook (src/accounts/erasure.ts), for each place
// that builds a DynamoAccountStore which may erase an account: the server
// and the CLI (`idp users delete --erase`). A capability that starts keeping
// items per account in the accounts table adds its hook here. Besides those:
//   oidc    the account's sessions, grants and tokens in the oidc table,
//           through the adapter's per-account index (adapters/dynamodb.ts,
//           eraseAccount: a Query per account, no Scan)
//   outbox  with `dataDir`: the account's lines in DATA_DIR/outbox.jsonl
//           (by sub or by recipient), rewritten atomically
import path from 'node:path';
import type { ErasureHook } from './accounts/erasure.ts';
import { eraseAccount } from '../adapters/dynamodb.ts';
import { eraseFromOutbox } from './events/messages.ts';
import { lockoutErasure } from './lockout/erasure.ts';
import { mfaErasure } from './mfa/erasure.ts';
import { consentErasure } from './consent/erasure.ts';

const oidcErasure: ErasureHook = {
  name: 'oidc',
  prefixes: [],
  partitions: () => [],
  async erase({ storage, sub, mergedSubs }) {
    for (const s of [sub, ...mergedSubs]) await eraseAccount({ doc: storage.doc, table: storage.tables.oidc }, s);
  },
};

function outboxErasure(dataDir: string): ErasureHook {
  return {
    name: 'outbox',
    prefixes: [],
    partitions: () => [],
    async erase({ sub, mergedSubs, identifiers }) {
      await eraseFromOutbox(path.join(dataDir, 'outbox.jsonl'), [sub, ...mergedSubs], identifiers);
    },
  };
}

export function erasureHooks(opts: { dataDir?: string } = {}): ErasureHook[] {
  return [lockoutErasure, mfaErasure, consentErasure, oidcErasure, ...(opts.dataDir ? [outboxErasure(opts.dataDir)] : [])];
}
