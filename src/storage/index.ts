// The storage seam: a DynamoDB document client plus table names. Embedded
// mode (no DYNAMODB_ENDPOINT) runs dynalite on LevelDB under DATA_DIR; any
// other endpoint (DynamoDB Local, real DynamoDB) is used as it is. Item
// commands go through the lean wire client (wire.ts, lean-doc.ts) unless
// DYNAMODB_CLIENT=sdk; table management always goes through the SDK.
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { Config } from '../config/index.ts';
import { instrumentSdkClient, type Metrics } from '../logging/metrics.ts';
import { tableNames, type TableNames } from './tables.ts';
import { startEmbedded, type Embedded } from './embedded.ts';
import { DynamoWire } from './wire.ts';
import { leanOperation, sendLean } from './lean-doc.ts';
import { Coalescer } from './coalesce.ts';
import { scopedSend } from './write-scope.ts';

export type DynamoClientKind = 'lean' | 'sdk';

const CONNECTION_TIMEOUT_MS = 1000;
const REQUEST_TIMEOUT_MS = 5000;
const MAX_ATTEMPTS = 2;

/** the lean wire client of each low-level client made by makeClient (absent with DYNAMODB_CLIENT=sdk) */
const wires = new WeakMap<DynamoDBClient, DynamoWire>();

export interface Storage {
  /** the low-level client, for table management */
  raw: DynamoDBClient;
  /** the document client, for items */
  doc: DynamoDBDocumentClient;
  tables: TableNames;
  endpoint: string | undefined;
  /** true when this process runs the embedded dynalite itself */
  embeddedOwner: boolean;
  close(): Promise<void>;
}

/**
 * `metrics`: every call is timed and its errors counted by operation, on both
 * paths (the SDK's middleware stack, the wire client's call()).
 */
export function makeClient(endpoint: string | undefined, region: string, kind: DynamoClientKind = 'lean', metrics?: Metrics): DynamoDBClient {
  const local = endpoint !== undefined && /^http:\/\/(127\.0\.0\.1|localhost|\[::1\])[:/]/.test(endpoint);
  const client = new DynamoDBClient({
    region,
    endpoint,
    // emulators accept any credentials; real DynamoDB uses the default chain
    ...(local ? { credentials: { accessKeyId: 'local', secretAccessKey: 'local' } } : {}),
    maxAttempts: MAX_ATTEMPTS,
    // without throwOnRequestTimeout the SDK only warns when requestTimeout passes, and keeps waiting
    requestHandler: { connectionTimeout: CONNECTION_TIMEOUT_MS, requestTimeout: REQUEST_TIMEOUT_MS, throwOnRequestTimeout: true },
  });
  if (metrics) instrumentSdkClient(client, (op, s, error) => metrics.observeDynamo(op, s, error));
  if (kind === 'lean') {
    const wire = new DynamoWire({
      endpoint: endpoint ?? `https://dynamodb.${region}.amazonaws.com`,
      region,
      // the SDK's resolved credential provider and hash: same chain, same refresh
      credentials: client.config.credentials,
      sha256: client.config.sha256,
      maxAttempts: MAX_ATTEMPTS,
      connectionTimeoutMs: CONNECTION_TIMEOUT_MS,
      requestTimeoutMs: REQUEST_TIMEOUT_MS,
      ...(metrics ? { onCall: (op: string, s: number, error?: string) => metrics.observeDynamo(op, s, error) } : {}),
    });
    wires.set(client, wire);
    const destroy = client.destroy.bind(client);
    client.destroy = () => {
      wire.destroy();
      destroy();
    };
  }
  return client;
}

/** the key attributes of every table (migrations/tables.ts) */
const KEY_ATTRIBUTES = ['pk', 'sk'] as const;

/**
 * The document client the stores use. Item commands (Get, Put, Update,
 * Delete, Query, Scan, BatchWrite, BatchGet) take the lean path when `raw`
 * has a wire client; anything else goes to the SDK. On the lean path, plain
 * Gets and Puts issued in the same turn of the event loop share requests
 * (coalesce.ts) unless `coalesce` is false.
 */
export function documentClient(raw: DynamoDBClient, opts: { coalesce?: boolean } = {}): DynamoDBDocumentClient {
  const doc = DynamoDBDocumentClient.from(raw, {
    marshallOptions: { removeUndefinedValues: true, convertClassInstanceToMap: false },
    unmarshallOptions: { wrapNumbers: false },
  });
  const wire = wires.get(raw);
  const sdkSend = doc.send.bind(doc);
  if (!wire) {
    doc.send = scopedSend(sdkSend) as typeof doc.send;
    return doc;
  }
  const direct = (command: { input: object }, options?: { abortSignal?: AbortSignal }) => {
    const op = leanOperation(command);
    return op ? sendLean(wire, op, command.input as Record<string, unknown>, options?.abortSignal) : sdkSend(command as never, options);
  };
  const coalescer = opts.coalesce === false ? undefined : new Coalescer((c) => direct(c as { input: object }) as Promise<Record<string, unknown>>, KEY_ATTRIBUTES);
  const send = (command: { input: object }, options?: { abortSignal?: AbortSignal }) =>
    (options === undefined ? coalescer?.offer(command) : undefined) ?? direct(command, options);
  // writes inside a write scope carry its marker (write-scope.ts: events stored with their change)
  doc.send = scopedSend(send) as typeof doc.send;
  return doc;
}

export async function openStorage(config: Config, opts: { role: 'server' | 'cli'; metrics?: Metrics }): Promise<Storage> {
  let embedded: Embedded | undefined;
  let endpoint = config.dynamodbEndpoint;
  if (!endpoint) {
    embedded = await startEmbedded(config.dataDir, opts.role);
    endpoint = embedded.endpoint;
  }
  const raw = makeClient(endpoint, config.awsRegion, config.dynamodbClient, opts.metrics);
  const doc = documentClient(raw, { coalesce: config.dynamodbCoalesce });
  return {
    raw,
    doc,
    tables: tableNames(config.tablePrefix),
    endpoint,
    embeddedOwner: embedded?.owner ?? false,
    async close() {
      raw.destroy();
      await embedded?.close();
    },
  };
}
