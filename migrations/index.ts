// Ordered, idempotent migrations. The applied version is recorded in the meta
// table (pk "schema", sk "version"); `migrate` runs every migration above it,
// in order, and each may be run again safely if a previous run died half-way.
import {
  CreateTableCommand, DescribeTableCommand, UpdateTimeToLiveCommand,
  ResourceInUseException, ResourceNotFoundException,
} from '@aws-sdk/client-dynamodb';
import { GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import type { Storage } from '../src/storage/index.ts';
import { TABLES, createTableInput } from './tables.ts';

export interface Migration {
  version: number;
  name: string;
  up(storage: Storage): Promise<void>;
}

async function ensureTable(storage: Storage, tableName: string, ttlAttribute?: string): Promise<void> {
  try {
    await storage.raw.send(new CreateTableCommand(createTableInput(tableName)));
  } catch (err) {
    if (!(err instanceof ResourceInUseException)) throw err;
  }
  for (let i = 0; i < 120; i++) {
    const d = await storage.raw.send(new DescribeTableCommand({ TableName: tableName }));
    if (d.Table?.TableStatus === 'ACTIVE') break;
    await new Promise((r) => setTimeout(r, 250));
  }
  if (ttlAttribute) {
    try {
      await storage.raw.send(new UpdateTimeToLiveCommand({
        TableName: tableName,
        TimeToLiveSpecification: { AttributeName: ttlAttribute, Enabled: true },
      }));
    } catch (err) {
      // dynalite has no TTL; DynamoDB answers ValidationException when TTL is already on.
      // Reads filter expired items in every case, so neither is fatal.
      const name = (err as Error).name;
      if (!['UnknownOperationException', 'ValidationException'].includes(name)) throw err;
    }
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
    if (err instanceof ResourceNotFoundException) return 0;
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
