// The account, lockout and MFA stores wired together on a test backend,
// without a server: for tests that exercise the stores directly (the
// compatibility suites in test/compat run them on dynalite and on DynamoDB
// Local).
//
//   const backend = await startBackend();
//   const s = await openStores(backend, { LOCKOUT_MAX_FAILURES: '5' });
//   ... s.accounts, s.guard, s.counters, s.codes, s.mfa, s.events
//   await s.close();
import fs from 'node:fs';
import { ScanCommand } from '@aws-sdk/lib-dynamodb';
import { loadConfig, type Config } from '../../src/config/index.ts';
import { createLogger } from '../../src/logging/index.ts';
import { openKeyring, type Keyring } from '../../src/keys/index.ts';
import { argon2Hasher } from '../../src/accounts/hasher.ts';
import { DynamoAccountStore } from '../../src/accounts/dynamo-store.ts';
import { erasureHooks } from '../../src/erasure-hooks.ts';
import { createGuard } from '../../src/lockout/index.ts';
import { meteredHasher, type MeteredHasher } from '../../src/lockout/metered-hasher.ts';
import type { CounterStore } from '../../src/lockout/counters.ts';
import type { OneTimeCodes } from '../../src/lockout/codes.ts';
import type { DynamoLoginGuard } from '../../src/lockout/guard.ts';
import { MfaStore } from '../../src/mfa/store.ts';
import { MfaService } from '../../src/mfa/service.ts';
import type { OutgoingMessage } from '../../src/events/messages.ts';
import { Events } from '../../src/events/index.ts';
import { EventStore } from '../../src/events/store.ts';
import { openTestStorage, uniquePrefix, type TestBackend, type TestStorage } from './dynamo.ts';
import { tempDir } from './idp.ts';

export interface CapturedEvent {
  type: string;
  sub?: string;
  reason?: string;
  data?: Record<string, unknown>;
}

export interface Stores {
  storage: TestStorage;
  config: Config;
  keyring: Keyring;
  /** argon2id with the lightest parameters, counting its calls */
  hasher: MeteredHasher;
  accounts: DynamoAccountStore;
  guard: DynamoLoginGuard;
  counters: CounterStore;
  codes: OneTimeCodes;
  mfaStore: MfaStore;
  mfa: MfaService;
  /** every event the guard and the MFA service emitted, in order */
  events: CapturedEvent[];
  /** every e-mail/SMS the MFA service sent */
  outbox: OutgoingMessage[];
  /** every item of the accounts table (a Scan: tests only) */
  scanAccounts(): Promise<Array<Record<string, unknown> & { pk: string; sk: string }>>;
  close(): Promise<void>;
}

/** the stores on their own tables (unique TABLE_PREFIX) and their own DATA_DIR (local keyring) */
export async function openStores(backend: TestBackend, env: Record<string, string> = {}, opts: { now?: () => number } = {}): Promise<Stores> {
  const prefix = uniquePrefix('st');
  const dataDir = tempDir('idp-stores-');
  const storage = await openTestStorage(backend, { prefix });
  const config = loadConfig({
    DYNAMODB_ENDPOINT: backend.endpoint, AWS_REGION: backend.region, TABLE_PREFIX: prefix, DATA_DIR: dataDir,
    LOG_LEVEL: 'silent', ARGON2_MEMORY_KIB: '1024', ARGON2_TIME_COST: '1',
    ...env,
  });
  const keyring = await openKeyring(config, storage);
  const hasher = meteredHasher(argon2Hasher(config.argon2));
  const accounts = new DynamoAccountStore(storage, hasher, keyring, { erasureHooks: erasureHooks() });
  const events: CapturedEvent[] = [];
  // the real events, stored in the events table without a sink; captured as they are recorded
  const sink = new Events(undefined, createLogger('silent'), { store: new EventStore(storage.doc, storage.tables.events, { retentionDays: 1 }) });
  sink.subscribe((e) => {
    const { reason, ...data } = e.data;
    events.push({ type: e.type, ...(e.subject ? { sub: e.subject } : {}), ...(typeof reason === 'string' ? { reason } : {}), data });
  });
  const { guard, counters, codes } = createGuard({ config, storage, keyring, accounts, events: sink, log: createLogger('silent') });
  const mfaStore = new MfaStore(storage);
  const outbox: OutgoingMessage[] = [];
  const mfa = new MfaService({
    store: mfaStore, keys: accounts, events: sink, config: config.mfa,
    messages: { send: async (m) => { outbox.push(m); } },
    ...(opts.now ? { now: opts.now } : {}),
  });
  return {
    storage, config, keyring, hasher, accounts, guard, counters, codes, mfaStore, mfa, events, outbox,
    async scanAccounts() {
      const out: Array<Record<string, unknown> & { pk: string; sk: string }> = [];
      let ExclusiveStartKey: Record<string, unknown> | undefined;
      do {
        const r = await storage.doc.send(new ScanCommand({ TableName: storage.tables.accounts, ConsistentRead: true, ExclusiveStartKey }));
        out.push(...((r.Items ?? []) as typeof out));
        ExclusiveStartKey = r.LastEvaluatedKey;
      } while (ExclusiveStartKey);
      return out;
    },
    async close() {
      (keyring as { close?: () => void }).close?.();
      await storage.close();
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
