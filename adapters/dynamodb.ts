// oidc-provider storage adapter on DynamoDB (one table, `oidc`).
//
//   model item        pk "<Model>#<id>"        sk "_"             payload (JSON text), expiresAt, consumed?
//   uid pointer       pk "uid#<uid>"           sk "_"             ref = id of the Session
//   user code pointer pk "userCode#<code>"     sk "_"             ref = id of the DeviceCode
//   grant membership  pk "grant#<grantId>"     sk "<Model>#<id>"  lets revokeByGrantId Query instead of Scan
//
// The payload is stored as JSON text so that whatever oidc-provider produces
// round-trips exactly. Every read is ConsistentRead and ignores expired items
// (DynamoDB's TTL deletes lazily; dynalite not at all). `consume` is one
// conditional write: of two concurrent redemptions exactly one wins, the loser
// revokes the grant and gets invalid_grant.
import {
  BatchWriteCommand, DeleteCommand, GetCommand, PutCommand, QueryCommand, UpdateCommand,
  type DynamoDBDocumentClient,
} from '@aws-sdk/lib-dynamodb';
import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import type { Adapter, AdapterPayload } from 'oidc-provider';
import { errors } from 'oidc-provider';
import { ServiceUnavailable } from '../src/provider/errors.ts';

const GRANT_MODELS = new Set([
  'AccessToken', 'AuthorizationCode', 'RefreshToken', 'DeviceCode', 'ClientCredentials',
  'BackchannelAuthenticationRequest', 'PreAuthorizedCode',
]);

interface Item {
  pk: string;
  sk: string;
  payload?: string;
  expiresAt?: number;
  consumed?: number;
  ref?: string;
  grantId?: string;
}

const now = () => Math.floor(Date.now() / 1000);

export interface DynamoAdapterOptions {
  doc: DynamoDBDocumentClient;
  table: string;
}

export function createDynamoAdapter({ doc, table }: DynamoAdapterOptions): new (name: string) => Adapter {
  // Every DynamoDB failure other than a lost condition becomes a typed storage
  // error that oidc-provider renders as 503 temporarily_unavailable.
  async function send<T>(cmd: object): Promise<T> {
    try {
      return await doc.send(cmd as never) as T;
    } catch (err) {
      if (err instanceof ConditionalCheckFailedException) throw err;
      throw new ServiceUnavailable(undefined, { cause: err });
    }
  }

  async function getItem(pk: string): Promise<Item | undefined> {
    const r = await send<{ Item?: Item }>(new GetCommand({ TableName: table, Key: { pk, sk: '_' }, ConsistentRead: true }));
    const item = r.Item;
    if (!item) return undefined;
    if (item.expiresAt !== undefined && item.expiresAt <= now()) return undefined;
    return item;
  }

  async function deleteKeys(keys: Array<{ pk: string; sk: string }>): Promise<void> {
    for (let i = 0; i < keys.length; i += 25) {
      let requests = keys.slice(i, i + 25).map((Key) => ({ DeleteRequest: { Key } }));
      for (let attempt = 0; requests.length > 0; attempt++) {
        const r = await send<{ UnprocessedItems?: Record<string, typeof requests> }>(
          new BatchWriteCommand({ RequestItems: { [table]: requests } }),
        );
        requests = r.UnprocessedItems?.[table] ?? [];
        if (requests.length && attempt > 8) throw new ServiceUnavailable(undefined, { cause: new Error('BatchWrite left unprocessed items') });
        if (requests.length) await new Promise((res) => setTimeout(res, 20 * 2 ** attempt));
      }
    }
  }

  /** every item of a grant, optionally of one model only */
  async function grantMembers(grantId: string, model?: string): Promise<Array<{ pk: string; sk: string }>> {
    const keys: Array<{ pk: string; sk: string }> = [];
    let ExclusiveStartKey: Record<string, unknown> | undefined;
    do {
      const r = await send<{ Items?: Item[]; LastEvaluatedKey?: Record<string, unknown> }>(new QueryCommand({
        TableName: table,
        KeyConditionExpression: model ? 'pk = :pk AND begins_with(sk, :m)' : 'pk = :pk',
        ExpressionAttributeValues: model ? { ':pk': `grant#${grantId}`, ':m': `${model}#` } : { ':pk': `grant#${grantId}` },
        ProjectionExpression: 'pk, sk',
        ConsistentRead: true,
        ExclusiveStartKey,
      }));
      for (const it of r.Items ?? []) {
        keys.push({ pk: it.sk, sk: '_' }, { pk: it.pk, sk: it.sk });
      }
      ExclusiveStartKey = r.LastEvaluatedKey;
    } while (ExclusiveStartKey);
    return keys;
  }

  async function revokeGrant(grantId: string): Promise<void> {
    const keys = await grantMembers(grantId);
    keys.push({ pk: `Grant#${grantId}`, sk: '_' });
    await deleteKeys(keys);
  }

  return class DynamoAdapter implements Adapter {
    readonly name: string;

    constructor(name: string) {
      this.name = name;
    }

    private key(id: string): string {
      return `${this.name}#${id}`;
    }

    async upsert(id: string, payload: AdapterPayload, expiresIn: number): Promise<void> {
      const expiresAt = expiresIn ? now() + expiresIn : undefined;
      const pk = this.key(id);
      // pointers and grant membership first: a pointer to a missing item reads
      // as "not found", while a missing pointer would hide a stored item.
      const side: Promise<unknown>[] = [];
      if (payload.uid) {
        side.push(send(new PutCommand({ TableName: table, Item: { pk: `uid#${payload.uid}`, sk: '_', ref: id, expiresAt } })));
      }
      if (payload.userCode) {
        side.push(send(new PutCommand({ TableName: table, Item: { pk: `userCode#${payload.userCode}`, sk: '_', ref: id, expiresAt } })));
      }
      if (payload.grantId && GRANT_MODELS.has(this.name)) {
        side.push(send(new PutCommand({ TableName: table, Item: { pk: `grant#${payload.grantId}`, sk: pk, expiresAt } })));
      }
      await Promise.all(side);
      const item: Item = { pk, sk: '_', payload: JSON.stringify(payload), expiresAt };
      if (payload.grantId) item.grantId = payload.grantId;
      await send(new PutCommand({ TableName: table, Item: item }));
    }

    async find(id: string): Promise<AdapterPayload | undefined> {
      const item = await getItem(this.key(id));
      if (!item?.payload) return undefined;
      const payload = JSON.parse(item.payload) as AdapterPayload;
      if (item.consumed !== undefined) payload.consumed = item.consumed;
      return payload;
    }

    async findByUid(uid: string): Promise<AdapterPayload | undefined> {
      const ptr = await getItem(`uid#${uid}`);
      if (!ptr?.ref) return undefined;
      const payload = await this.find(ptr.ref);
      return payload?.uid === uid ? payload : undefined;
    }

    async findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
      const ptr = await getItem(`userCode#${userCode}`);
      if (!ptr?.ref) return undefined;
      const payload = await this.find(ptr.ref);
      return payload?.userCode === userCode ? payload : undefined;
    }

    async consume(id: string): Promise<void> {
      try {
        await send(new UpdateCommand({
          TableName: table,
          Key: { pk: this.key(id), sk: '_' },
          UpdateExpression: 'SET consumed = :now',
          ConditionExpression: 'attribute_exists(pk) AND attribute_not_exists(consumed)',
          ExpressionAttributeValues: { ':now': now() },
        }));
      } catch (err) {
        if (!(err instanceof ConditionalCheckFailedException)) throw err;
        // Lost a race with another redemption (or the item is gone): treat it
        // as reuse, revoke everything of the grant, refuse this request.
        const item = await send<{ Item?: Item }>(new GetCommand({ TableName: table, Key: { pk: this.key(id), sk: '_' }, ConsistentRead: true }));
        if (item.Item?.grantId) await revokeGrant(item.Item.grantId);
        throw new errors.InvalidGrant(`${this.name === 'RefreshToken' ? 'refresh token' : 'grant'} already used`);
      }
    }

    async destroy(id: string): Promise<void> {
      await send(new DeleteCommand({ TableName: table, Key: { pk: this.key(id), sk: '_' } }));
    }

    async revokeByGrantId(grantId: string): Promise<void> {
      await deleteKeys(await grantMembers(grantId, this.name));
    }
  };
}
