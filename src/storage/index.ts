// The storage seam: a DynamoDB document client plus table names. Embedded
// mode (no DYNAMODB_ENDPOINT) runs dynalite on LevelDB under DATA_DIR; any
// other endpoint (DynamoDB Local, real DynamoDB) is used as it is.
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { Config } from '../config/index.ts';
import { tableNames, type TableNames } from './tables.ts';
import { startEmbedded, type Embedded } from './embedded.ts';

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

export function makeClient(endpoint: string | undefined, region: string): DynamoDBClient {
  const local = endpoint !== undefined && /^http:\/\/(127\.0\.0\.1|localhost|\[::1\])[:/]/.test(endpoint);
  const client = new DynamoDBClient({
    region,
    endpoint,
    // emulators accept any credentials; real DynamoDB uses the default chain
    ...(local ? { credentials: { accessKeyId: 'local', secretAccessKey: 'local' } } : {}),
    maxAttempts: 2,
    // without throwOnRequestTimeout the SDK only warns when requestTimeout passes, and keeps waiting
    requestHandler: { connectionTimeout: 1000, requestTimeout: 5000, throwOnRequestTimeout: true },
  });
  return client;
}

export function documentClient(raw: DynamoDBClient): DynamoDBDocumentClient {
  return DynamoDBDocumentClient.from(raw, {
    marshallOptions: { removeUndefinedValues: true, convertClassInstanceToMap: false },
    unmarshallOptions: { wrapNumbers: false },
  });
}

export async function openStorage(config: Config, opts: { role: 'server' | 'cli' }): Promise<Storage> {
  let embedded: Embedded | undefined;
  let endpoint = config.dynamodbEndpoint;
  if (!endpoint) {
    embedded = await startEmbedded(config.dataDir, opts.role);
    endpoint = embedded.endpoint;
  }
  const raw = makeClient(endpoint, config.awsRegion);
  const doc = documentClient(raw);
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
