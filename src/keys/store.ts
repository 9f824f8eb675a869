// Key records in the `keys` table. Only wrapped secrets are stored:
//   pk "signing"  sk <kid>  alg, state, createdAt, wrapped (sealed private JWK), publicJwk
//   pk "cookie"   sk <id>   createdAt, wrapped (sealed cookie key)
//   pk "secret"   sk <name> wrapped             (e.g. the blind-index key)
//   pk "lock"     sk <name> owner, expiresAt   (bootstrap lock between processes)
import crypto from 'node:crypto';
import { DeleteCommand, GetCommand, PutCommand, QueryCommand } from '@aws-sdk/lib-dynamodb';
import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import type { JWK } from 'jose';
import type { Storage } from '../storage/index.ts';
import type { KeyState, SigningAlg } from './types.ts';

export interface StoredSigningKey {
  kid: string;
  alg: SigningAlg;
  state: KeyState;
  createdAt: string;
  wrapped: string;
  publicJwk: JWK;
}

export interface StoredCookieKey {
  id: string;
  createdAt: string;
  wrapped: string;
}

export class KeyStore {
  private readonly storage: Storage;
  constructor(storage: Storage) {
    this.storage = storage;
  }

  private get table() {
    return this.storage.tables.keys;
  }

  private async query<T>(pk: string): Promise<T[]> {
    const out: T[] = [];
    let ExclusiveStartKey: Record<string, unknown> | undefined;
    do {
      const r = await this.storage.doc.send(new QueryCommand({
        TableName: this.table, KeyConditionExpression: 'pk = :pk',
        ExpressionAttributeValues: { ':pk': pk }, ConsistentRead: true, ExclusiveStartKey,
      }));
      out.push(...(r.Items ?? []) as T[]);
      ExclusiveStartKey = r.LastEvaluatedKey;
    } while (ExclusiveStartKey);
    return out;
  }

  async signingKeys(): Promise<StoredSigningKey[]> {
    const items = await this.query<StoredSigningKey & { sk: string }>('signing');
    return items.map((i) => ({ kid: i.sk, alg: i.alg, state: i.state, createdAt: i.createdAt, wrapped: i.wrapped, publicJwk: i.publicJwk }));
  }

  async putSigningKey(k: StoredSigningKey): Promise<void> {
    await this.storage.doc.send(new PutCommand({
      TableName: this.table,
      Item: { pk: 'signing', sk: k.kid, alg: k.alg, state: k.state, createdAt: k.createdAt, wrapped: k.wrapped, publicJwk: k.publicJwk },
      ConditionExpression: 'attribute_not_exists(pk)',
    }));
  }

  async cookieKeys(): Promise<StoredCookieKey[]> {
    const items = await this.query<StoredCookieKey & { sk: string }>('cookie');
    return items.map((i) => ({ id: i.sk, createdAt: i.createdAt, wrapped: i.wrapped }));
  }

  async putCookieKey(k: StoredCookieKey): Promise<void> {
    await this.storage.doc.send(new PutCommand({
      TableName: this.table,
      Item: { pk: 'cookie', sk: k.id, createdAt: k.createdAt, wrapped: k.wrapped },
      ConditionExpression: 'attribute_not_exists(pk)',
    }));
  }

  async secret(name: string): Promise<string | undefined> {
    const r = await this.storage.doc.send(new GetCommand({ TableName: this.table, Key: { pk: 'secret', sk: name }, ConsistentRead: true }));
    return r.Item?.wrapped as string | undefined;
  }

  async putSecret(name: string, wrapped: string): Promise<void> {
    await this.storage.doc.send(new PutCommand({
      TableName: this.table, Item: { pk: 'secret', sk: name, wrapped, createdAt: new Date().toISOString() },
      ConditionExpression: 'attribute_not_exists(pk)',
    }));
  }

  /** Run fn while holding a named lock shared by every process on this table. */
  async withLock<T>(name: string, fn: () => Promise<T>, ttlSeconds = 30): Promise<T> {
    const owner = crypto.randomUUID();
    const deadline = Date.now() + (ttlSeconds + 5) * 1000;
    for (;;) {
      const now = Math.floor(Date.now() / 1000);
      try {
        await this.storage.doc.send(new PutCommand({
          TableName: this.table,
          Item: { pk: 'lock', sk: name, owner, expiresAt: now + ttlSeconds },
          ConditionExpression: 'attribute_not_exists(pk) OR expiresAt < :now',
          ExpressionAttributeValues: { ':now': now },
        }));
        break;
      } catch (err) {
        if (!(err instanceof ConditionalCheckFailedException) || Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    try {
      return await fn();
    } finally {
      await this.storage.doc.send(new DeleteCommand({
        TableName: this.table, Key: { pk: 'lock', sk: name },
        ConditionExpression: 'owner = :o', ExpressionAttributeValues: { ':o': owner },
      })).catch(() => {});
    }
  }
}
