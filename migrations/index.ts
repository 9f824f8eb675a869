// Ordered, idempotent migrations. The applied version is recorded in the meta
// table (pk "schema", sk "version"); `migrate` runs every migration above it,
// in order, and each may be run again safely if a previous run died half-way.
import {
  CreateTableCommand, DescribeTableCommand, DescribeTimeToLiveCommand, UpdateTimeToLiveCommand,
} from '@aws-sdk/client-dynamodb';
import { GetCommand, PutCommand, ScanCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import type { Storage } from '../src/storage/index.ts';
import { TABLES, createTableInput, eventsTableInput } from './tables.ts';

export interface Migration {
  version: number;
  name: string;
  up(storage: Storage): Promise<void>;
}

// errors are matched by name: emulators and real DynamoDB agree on names, not on messages
const errorName = (err: unknown) => (err as Error)?.name;

async function ensureTable(storage: Storage, tableName: string, ttlAttribute?: string, input = createTableInput(tableName)): Promise<void> {
  try {
    await storage.raw.send(new CreateTableCommand(input));
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

/**
 * Migration 2: every wrapped data key still inside the accounts table (`dk` of
 * an account item, `fromItem.dk` of a merge record's undo snapshot) is copied
 * to its key item in `datakeys` (pk "account#<sub>"), then removed from the
 * item, on the condition that it is still that key. A crash between the two
 * leaves the key in both places (reads prefer the key item; the next run
 * removes it), so the migration can be run again at any point; accounts read
 * fine throughout (src/accounts/dynamo-store.ts falls back to `dk`).
 */
export async function moveDataKeys(storage: Storage): Promise<number> {
  const { accounts, datakeys } = storage.tables;
  const putKey = async (sub: string, dk: string) => {
    try {
      await storage.doc.send(new PutCommand({
        TableName: datakeys, Item: { pk: `account#${sub}`, sk: '_', sub, dk },
        ConditionExpression: 'attribute_not_exists(pk) OR dk = :dk', ExpressionAttributeValues: { ':dk': dk },
      }));
    } catch (err) {
      if (errorName(err) === 'ConditionalCheckFailedException') throw new Error(`account ${sub} has two different data keys; not moved`);
      throw err;
    }
  };
  const removeIfStill = async (cmd: UpdateCommand) => {
    try {
      await storage.doc.send(cmd);
    } catch (err) {
      if (errorName(err) !== 'ConditionalCheckFailedException') throw err;
    }
  };
  let moved = 0;
  let ExclusiveStartKey: Record<string, unknown> | undefined;
  do {
    const r = await storage.doc.send(new ScanCommand({
      TableName: accounts, ConsistentRead: true, ExclusiveStartKey,
      FilterExpression: 'attribute_exists(dk) OR attribute_exists(fromItem.dk)',
    }));
    for (const it of (r.Items ?? []) as Array<{ pk: string; sk: string; sub?: string; dk?: string; from?: string; fromItem?: { sub?: string; dk?: string } }>) {
      const Key = { pk: it.pk, sk: it.sk };
      if (typeof it.dk === 'string' && it.sub) {
        await putKey(it.sub, it.dk);
        await removeIfStill(new UpdateCommand({
          TableName: accounts, Key, UpdateExpression: 'REMOVE dk', ConditionExpression: 'dk = :dk', ExpressionAttributeValues: { ':dk': it.dk },
        }));
        moved++;
      }
      const from = it.fromItem;
      if (typeof from?.dk === 'string' && from.sub) {
        await putKey(from.sub, from.dk);
        await removeIfStill(new UpdateCommand({
          TableName: accounts, Key, UpdateExpression: 'REMOVE fromItem.dk', ConditionExpression: 'fromItem.dk = :dk', ExpressionAttributeValues: { ':dk': from.dk },
        }));
        moved++;
      }
    }
    ExclusiveStartKey = r.LastEvaluatedKey;
  } while (ExclusiveStartKey);
  return moved;
}

export const MIGRATIONS: Migration[] = [
  {
    version: 1,
    name: 'create tables',
    async up(storage) {
      for (const t of TABLES) await ensureTable(storage, storage.tables[t.name], t.ttlAttribute);
    },
  },
  {
    version: 2,
    name: 'data keys apart from the account records (table datakeys)',
    async up(storage) {
      await ensureTable(storage, storage.tables.datakeys);
      await moveDataKeys(storage);
    },
  },
  {
    version: 3,
    name: 'events stored with their changes, and the audit log (table events)',
    async up(storage) {
      await ensureTable(storage, storage.tables.events, 'expiresAt', eventsTableInput(storage.tables.events));
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
