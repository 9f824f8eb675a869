// The second baseline's storage: an oidc-provider adapter that reproduces,
// command for command, the community DynamoDB adapter oidc-provider's
// repository carried as `example/adapters/dynamodb-gsi.ts` (later
// `example/adapters/contributed/dynamodb-gsi.ts`, by Sachin Shekhar; removed
// in 2025). Written here from its described design on `@aws-sdk/lib-dynamodb`
// (the original used the v2 SDK's DocumentClient); nothing of ours is in it:
// no lean client, no coalescing, no hints. It is what a user who picks
// oidc-provider and "the DynamoDB adapter" gets.
//
// One table keyed `modelId` = "<Model>-<id>", with GSIs `uidIndex` (uid),
// `grantIdIndex` (grantId) and `userCodeIndex` (userCode):
//
//   upsert           one UpdateItem: SET payload (a map), expiresAt (epoch s),
//                    and uid / grantId / userCode when the payload has them
//   find             one GetItem (payload, expiresAt), expiry checked in code
//   findByUid        one Query on uidIndex, Limit 1, expiry checked in code
//   findByUserCode   one Query on userCodeIndex, Limit 1, the same
//   consume          one UpdateItem SET payload.consumed = now, on attribute_exists(modelId)
//   destroy          one DeleteItem
//   revokeByGrantId  pages of 25 from a Query on grantIdIndex, each page one
//                    BatchWriteItem of deletes
//
// As in the original, GetItem and the GSI queries are eventually consistent
// reads, and consume does not refuse a second redemption (oidc-provider sees
// `consumed` on the next find). `removeUndefinedValues` stands for the v2
// DocumentClient, which skipped undefined map values.
import { DynamoDBClient, CreateTableCommand, DescribeTableCommand } from '@aws-sdk/client-dynamodb';
import {
  BatchWriteCommand, DeleteCommand, DynamoDBDocumentClient, GetCommand, QueryCommand, UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import type { Adapter, AdapterPayload } from 'oidc-provider';

export interface CommunityStorage {
  endpoint: string;
  region: string;
  table: string;
}

/** the SDK's clients against an emulator (any credentials) */
export function communityClient(s: CommunityStorage): { raw: DynamoDBClient; doc: DynamoDBDocumentClient } {
  const raw = new DynamoDBClient({ region: s.region, endpoint: s.endpoint, credentials: { accessKeyId: 'local', secretAccessKey: 'local' } });
  return { raw, doc: DynamoDBDocumentClient.from(raw, { marshallOptions: { removeUndefinedValues: true } }) };
}

/** the table the original's prerequisites describe (GSIs projecting all attributes, the console's default) */
export async function createCommunityTable(raw: DynamoDBClient, table: string): Promise<void> {
  const gsi = (name: string, attr: string) => ({
    IndexName: name, KeySchema: [{ AttributeName: attr, KeyType: 'HASH' as const }], Projection: { ProjectionType: 'ALL' as const },
  });
  try {
    await raw.send(new CreateTableCommand({
      TableName: table,
      BillingMode: 'PAY_PER_REQUEST',
      AttributeDefinitions: ['modelId', 'uid', 'grantId', 'userCode'].map((a) => ({ AttributeName: a, AttributeType: 'S' as const })),
      KeySchema: [{ AttributeName: 'modelId', KeyType: 'HASH' }],
      GlobalSecondaryIndexes: [gsi('uidIndex', 'uid'), gsi('grantIdIndex', 'grantId'), gsi('userCodeIndex', 'userCode')],
    }));
  } catch (err) {
    if ((err as Error).name !== 'ResourceInUseException') throw err;
  }
  for (let i = 0; i < 240; i++) {
    const d = await raw.send(new DescribeTableCommand({ TableName: table }));
    if (d.Table?.TableStatus === 'ACTIVE' && (d.Table.GlobalSecondaryIndexes ?? []).every((g) => g.IndexStatus === 'ACTIVE')) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`table ${table} did not become ACTIVE`);
}

type Stored = { payload: AdapterPayload; expiresAt?: number } | undefined;

const live = (item: Stored): AdapterPayload | undefined =>
  !item || (item.expiresAt && Date.now() > item.expiresAt * 1000) ? undefined : item.payload;

export function communityAdapter(doc: DynamoDBDocumentClient, table: string): new (name: string) => Adapter {
  const byIndex = async (index: string, attr: string, value: string) => {
    const r = await doc.send(new QueryCommand({
      TableName: table, IndexName: index, KeyConditionExpression: `${attr} = :v`, ExpressionAttributeValues: { ':v': value },
      Limit: 1, ProjectionExpression: 'payload, expiresAt',
    }));
    return live(r.Items?.[0] as Stored);
  };

  return class CommunityDynamoDBAdapter implements Adapter {
    readonly name: string;

    constructor(name: string) {
      this.name = name;
    }

    private key(id: string) {
      return { modelId: `${this.name}-${id}` };
    }

    async upsert(id: string, payload: AdapterPayload, expiresIn?: number): Promise<void> {
      const expiresAt = expiresIn ? Math.floor(Date.now() / 1000) + expiresIn : undefined;
      const set: string[] = ['payload = :payload'];
      const values: Record<string, unknown> = { ':payload': payload };
      const add = (attr: string, v: unknown) => {
        if (!v) return;
        set.push(`${attr} = :${attr}`);
        values[`:${attr}`] = v;
      };
      add('expiresAt', expiresAt);
      add('userCode', payload.userCode);
      add('uid', payload.uid);
      add('grantId', payload.grantId);
      await doc.send(new UpdateCommand({ TableName: table, Key: this.key(id), UpdateExpression: `SET ${set.join(', ')}`, ExpressionAttributeValues: values }));
    }

    async find(id: string): Promise<AdapterPayload | undefined> {
      const r = await doc.send(new GetCommand({ TableName: table, Key: this.key(id), ProjectionExpression: 'payload, expiresAt' }));
      return live(r.Item as Stored);
    }

    findByUid(uid: string): Promise<AdapterPayload | undefined> {
      return byIndex('uidIndex', 'uid', uid);
    }

    findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
      return byIndex('userCodeIndex', 'userCode', userCode);
    }

    async consume(id: string): Promise<void> {
      await doc.send(new UpdateCommand({
        TableName: table, Key: this.key(id),
        UpdateExpression: 'SET #payload.#consumed = :value',
        ExpressionAttributeNames: { '#payload': 'payload', '#consumed': 'consumed' },
        ExpressionAttributeValues: { ':value': Math.floor(Date.now() / 1000) },
        ConditionExpression: 'attribute_exists(modelId)',
      }));
    }

    async destroy(id: string): Promise<void> {
      await doc.send(new DeleteCommand({ TableName: table, Key: this.key(id) }));
    }

    async revokeByGrantId(grantId: string): Promise<void> {
      let ExclusiveStartKey: Record<string, unknown> | undefined;
      do {
        const r = await doc.send(new QueryCommand({
          TableName: table, IndexName: 'grantIdIndex', KeyConditionExpression: 'grantId = :grantId',
          ExpressionAttributeValues: { ':grantId': grantId }, ProjectionExpression: 'modelId', Limit: 25, ExclusiveStartKey,
        }));
        ExclusiveStartKey = r.LastEvaluatedKey;
        const items = (r.Items ?? []) as Array<{ modelId: string }>;
        if (!items.length) return;
        await doc.send(new BatchWriteCommand({ RequestItems: { [table]: items.map((i) => ({ DeleteRequest: { Key: { modelId: i.modelId } } })) } }));
      } while (ExclusiveStartKey);
    }
  };
}
