// Table definitions. Every table: partition key `pk` (S), sort key `sk` (S),
// on-demand billing, TTL on `expiresAt` where items expire.
//
//  oidc      oidc-provider models.  pk = "<Model>#<id>", sk = "_"
//            pointer items:         pk = "uid#<Model>#<uid>" | "userCode#<Model>#<code>", sk = "_"  -> { ref }
//            grant membership:      pk = "grant#<grantId>", sk = "<Model>#<id>"
//            (adapters/dynamodb.ts describes these items in full)
//  accounts  users and their lookup pointers (see src/accounts)
//  datakeys  each account's wrapped data key: pk = "account#<sub>", sk = "_" -> { sub, dk }.
//            Apart from `accounts` so that deleting it shreds every copy of the
//            record, backups included: back it up on its own, kept shorter (or not at all)
//  oidc      also per-account index: pk = "account#<sub>", sk = "<Model>#<id>" (Session, Grant)
//  keys      wrapped key material (see src/keys)
//  meta      schema version and other bookkeeping
//  events    one item per recorded event: pk = "E#<id>", sk = "_" (src/events/store.ts), with
//            three sparse indexes: `pending` (pq, pt) while undelivered, `log` (lm, lt) and
//            `subject` (subj, lt) once recorded — the audit log, newest first
import type { CreateTableCommandInput } from '@aws-sdk/client-dynamodb';
import type { TableNames } from '../src/storage/tables.ts';

export interface TableSpec {
  name: keyof TableNames;
  ttlAttribute?: string;
}

export const TABLES: TableSpec[] = [
  { name: 'meta' },
  { name: 'oidc', ttlAttribute: 'expiresAt' },
  { name: 'accounts', ttlAttribute: 'expiresAt' },
  { name: 'datakeys' },
  { name: 'keys' },
];

/** the events table: keys as every table, plus its three indexes */
export function eventsTableInput(tableName: string): CreateTableCommandInput {
  const base = createTableInput(tableName);
  const index = (IndexName: string, hash: string, range: string) => ({
    IndexName,
    KeySchema: [{ AttributeName: hash, KeyType: 'HASH' as const }, { AttributeName: range, KeyType: 'RANGE' as const }],
    Projection: { ProjectionType: 'ALL' as const },
  });
  return {
    ...base,
    AttributeDefinitions: [
      ...base.AttributeDefinitions!,
      ...['pq', 'pt', 'lm', 'lt', 'subj'].map((AttributeName) => ({ AttributeName, AttributeType: 'S' as const })),
    ],
    GlobalSecondaryIndexes: [index('pending', 'pq', 'pt'), index('log', 'lm', 'lt'), index('subject', 'subj', 'lt')],
  };
}

export function createTableInput(tableName: string): CreateTableCommandInput {
  return {
    TableName: tableName,
    BillingMode: 'PAY_PER_REQUEST',
    AttributeDefinitions: [
      { AttributeName: 'pk', AttributeType: 'S' },
      { AttributeName: 'sk', AttributeType: 'S' },
    ],
    KeySchema: [
      { AttributeName: 'pk', KeyType: 'HASH' },
      { AttributeName: 'sk', KeyType: 'RANGE' },
    ],
  };
}
