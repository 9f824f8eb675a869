// Ordered, idempotent migrations. The applied version is recorded in the meta
// table (pk "schema", sk "version"); `migrate` runs every migration above it,
// in order, and each may be run again safely if a previous run died half-way.
import {
  CreateTableCommand, DescribeTableCommand, DescribeTimeToLiveCommand, UpdateTimeToLiveCommand,
} from '@aws-sdk/client-dynamodb';
import { GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import type { Storage } from '../src/storage/index.ts';
import { TABLES, createTableInput } from './tables.ts';

export interface Migration {
  version: number;
  name: string;
  up(storage: Storage): Promise<void>;
}

// errors are matched by name: emulators and real DynamoDB agree on names, not on messages
const errorName = (err: unknown) => (err as Error)?.name;

async function ensureTable(storage: Storage, tableName: string, ttlAttribute?: string): Promise<void> {
  try {
    await storage.raw.send(new CreateTableCommand(createTableInput(tableName)));
  } catch (err) {
    if (errorName(err) !== 'ResourceInUseException') throw err;
  }
  let status: string | undefined;
  for (let i = 0; i < 240; i++) {
    const d = await storage.raw.send(new DescribeTableCommand({ TableName: tableName }));
    status = d.Table?.TableStatus;
    if (status === 'ACTIVE') break;
    await new Promise((r) => setTimeout(r, 250));
  }
  if (status !== 'ACTIVE') throw new Error(`table ${tableName} is still ${status ?? 'unknown'} after 60 s`);
  if (ttlAttribute) await ensureTtl(storage, tableName, ttlAttribute);
}

/** TTL state: undefined where the backend has no TTL at all (dynalite) */
async function describeTtl(storage: Storage, tableName: string): Promise<{ status?: string; attribute?: string } | undefined> {
  try {
    const d = await storage.raw.send(new DescribeTimeToLiveCommand({ TableName: tableName }));
    return { status: d.TimeToLiveDescription?.TimeToLiveStatus, attribute: d.TimeToLiveDescription?.AttributeName };
  } catch (err) {
    if (errorName(err) === 'UnknownOperationException') return undefined;
    throw err;
  }
}

// Turns TTL on for `attribute`. Reads filter expired items in every case, so a
// backend without TTL (dynalite) is fine; TTL on another attribute is not.
async function ensureTtl(storage: Storage, tableName: string, attribute: string): Promise<void> {
  const check = (ttl: { status?: string; attribute?: string }): boolean => {
    if (ttl.status === 'ENABLED' || ttl.status === 'ENABLING') {
      if (ttl.attribute !== attribute) {
        throw new Error(`table ${tableName} has TTL on "${ttl.attribute}", expected "${attribute}"; change it by hand`);
      }
      return true;
    }
    return false;
  };
  const before = await describeTtl(storage, tableName);
  if (before === undefined || check(before)) return;
  try {
    await storage.raw.send(new UpdateTimeToLiveCommand({
      TableName: tableName,
      TimeToLiveSpecification: { AttributeName: attribute, Enabled: true },
    }));
  } catch (err) {
    if (errorName(err) === 'UnknownOperationException') return; // DescribeTimeToLive without UpdateTimeToLive (dynalite)
    // another process may have turned it on meanwhile: then ValidationException
    const after = errorName(err) === 'ValidationException' ? await describeTtl(storage, tableName) : undefined;
    if (after && check(after)) return;
    throw err;
  }
}

export const MIGRATIONS: Migration[] = [
  {
    version: 1,
    name: 'create tables',
    async up(storage) {
      for (const t of TABLES) await ensureTable(storage, storage.tables[t.name], t.ttlAttribute);
    },
  },
];

export async function currentVersion(storage: Storage): Promise<number> {
  try {
    const r = await storage.doc.send(new GetCommand({
      TableName: storage.tables.meta, Key: { pk: 'schema', sk: 'version' }, ConsistentRead: true,
    }));
    return (r.Item?.version as number | undefined) ?? 0;
  } catch (err) {
    if (errorName(err) === 'ResourceNotFoundException') return 0;
    throw err;
  }
}

export const LATEST_VERSION = MIGRATIONS[MIGRATIONS.length - 1].version;

export async function migrate(storage: Storage, log: (msg: string) => void = () => {}): Promise<{ from: number; to: number }> {
  const from = await currentVersion(storage);
  for (const m of MIGRATIONS) {
    if (m.version <= from) continue;
    log(`migration ${m.version}: ${m.name}`);
    await m.up(storage);
    await storage.doc.send(new PutCommand({
      TableName: storage.tables.meta,
      Item: { pk: 'schema', sk: 'version', version: m.version, name: m.name, appliedAt: new Date().toISOString() },
    }));
  }
  return { from, to: Math.max(from, LATEST_VERSION) };
}
