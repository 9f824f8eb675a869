// Key records in the `keys` table. Only wrapped secrets are stored:
//   pk "signing"  sk <kid>  alg, state, createdAt, activatesAt, activatedAt, retiredAt, removesAt,
//                           publicJwk, and either wrapped (sealed private JWK: local, kms-envelope)
//                           or kmsKeyId (the KMS key holding the private half: kms-sign)
//   pk "cookie"   sk <id>   state, createdAt, ..., wrapped (sealed cookie key)
//   pk "secret"   sk <name> wrapped             (e.g. the blind-index key)
//   pk "lock"     sk <name> owner, expiresAt   (bootstrap/rotation lock between processes)
// A record without `state` (written before rotation existed) is active.
import crypto from 'node:crypto';
import { DeleteCommand, GetCommand, PutCommand, QueryCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import type { JWK } from 'jose';
import type { Storage } from '../storage/index.ts';
import type { KeyState, SigningAlg } from './types.ts';

/** times and state shared by signing and cookie keys */
export interface Lifecycle {
  state: KeyState;
  createdAt: string;
  activatesAt?: string;
  activatedAt?: string;
  retiredAt?: string;
  removesAt?: string;
}

export interface StoredSigningKey extends Lifecycle {
  kid: string;
  alg: SigningAlg;
  /** sealed private JWK (local, kms-envelope) */
  wrapped?: string;
  /** the KMS key of a kms-sign key */
  kmsKeyId?: string;
  publicJwk: JWK;
}

export interface StoredCookieKey {
  id: string;
  createdAt: string;
  wrapped: string;
  state?: KeyState;
  activatesAt?: string;
  activatedAt?: string;
  retiredAt?: string;
  removesAt?: string;
}

export type KeyKind = 'signing' | 'cookie';

const LIFECYCLE = ['state', 'createdAt', 'activatesAt', 'activatedAt', 'retiredAt', 'removesAt'] as const;

function pick<T extends object>(item: Record<string, unknown>, names: readonly string[]): Partial<T> {
  const out: Record<string, unknown> = {};
  for (const n of names) if (item[n] !== undefined) out[n] = item[n];
  return out as Partial<T>;
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
    const items = await this.query<Record<string, unknown>>('signing');
    return items.map((i) => ({
      ...pick<StoredSigningKey>(i, [...LIFECYCLE, 'alg', 'wrapped', 'kmsKeyId', 'publicJwk']),
      kid: i.sk as string,
      state: (i.state as KeyState | undefined) ?? 'active',
    }) as StoredSigningKey);
  }

  async putSigningKey(k: StoredSigningKey): Promise<void> {
    const { kid, ...rest } = k;
    await this.storage.doc.send(new PutCommand({
      TableName: this.table,
      Item: { pk: 'signing', sk: kid, ...rest },
      ConditionExpression: 'attribute_not_exists(pk)',
    }));
  }

  async cookieKeys(): Promise<StoredCookieKey[]> {
    const items = await this.query<Record<string, unknown>>('cookie');
    return items.map((i) => ({
      ...pick<StoredCookieKey>(i, [...LIFECYCLE, 'wrapped']),
      id: i.sk as string,
      state: (i.state as KeyState | undefined) ?? 'active',
    }) as StoredCookieKey);
  }

  async putCookieKey(k: StoredCookieKey): Promise<void> {
    const { id, ...rest } = k;
    await this.storage.doc.send(new PutCommand({
      TableName: this.table,
      Item: { pk: 'cookie', sk: id, ...rest },
      ConditionExpression: 'attribute_not_exists(pk)',
    }));
  }

  /**
   * Move a key from one state to another, setting the given times. Conditional
   * on the current state, so two processes never both apply the same step;
   * resolves false when the key was not in state `from` any more.
   */
  async transition(kind: KeyKind, id: string, from: KeyState, to: KeyState, times: Partial<Lifecycle>): Promise<boolean> {
    const names: Record<string, string> = { '#state': 'state' };
    const values: Record<string, unknown> = { ':from': from, ':to': to };
    const sets = ['#state = :to'];
    for (const [k, v] of Object.entries(times)) {
      if (v === undefined || k === 'state') continue;
      names[`#${k}`] = k;
      values[`:${k}`] = v;
      sets.push(`#${k} = :${k}`);
    }
    // records written before rotation existed have no state: they are active
    const cond = from === 'active' ? '(#state = :from OR attribute_not_exists(#state))' : '#state = :from';
    try {
      await this.storage.doc.send(new UpdateCommand({
        TableName: this.table, Key: { pk: kind, sk: id },
        UpdateExpression: `SET ${sets.join(', ')}`,
        ConditionExpression: `attribute_exists(pk) AND ${cond}`,
        ExpressionAttributeNames: names, ExpressionAttributeValues: values,
      }));
      return true;
    } catch (err) {
      if (err instanceof ConditionalCheckFailedException) return false;
      throw err;
    }
  }

  /** delete a retired key; false when it is not (or no longer) retired */
  async removeRetired(kind: KeyKind, id: string): Promise<boolean> {
    try {
      await this.storage.doc.send(new DeleteCommand({
        TableName: this.table, Key: { pk: kind, sk: id },
        ConditionExpression: '#state = :retired', ExpressionAttributeNames: { '#state': 'state' }, ExpressionAttributeValues: { ':retired': 'retired' },
      }));
      return true;
    } catch (err) {
      if (err instanceof ConditionalCheckFailedException) return false;
      throw err;
    }
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

  private async acquire(name: string, owner: string, ttlSeconds: number): Promise<boolean> {
    const now = Math.floor(Date.now() / 1000);
    try {
      await this.storage.doc.send(new PutCommand({
        TableName: this.table,
        Item: { pk: 'lock', sk: name, owner, expiresAt: now + ttlSeconds },
        ConditionExpression: 'attribute_not_exists(pk) OR expiresAt < :now',
        ExpressionAttributeValues: { ':now': now },
      }));
      return true;
    } catch (err) {
      if (err instanceof ConditionalCheckFailedException) return false;
      throw err;
    }
  }

  private async release(name: string, owner: string): Promise<void> {
    await this.storage.doc.send(new DeleteCommand({
      TableName: this.table, Key: { pk: 'lock', sk: name },
      // "owner" is a DynamoDB reserved word
      ConditionExpression: '#owner = :o', ExpressionAttributeNames: { '#owner': 'owner' }, ExpressionAttributeValues: { ':o': owner },
    })).catch(() => {});
  }

  /** Run fn while holding a named lock shared by every process on this table (waits for it). */
  async withLock<T>(name: string, fn: () => Promise<T>, ttlSeconds = 30): Promise<T> {
    const owner = crypto.randomUUID();
    const deadline = Date.now() + (ttlSeconds + 5) * 1000;
    while (!(await this.acquire(name, owner, ttlSeconds))) {
      if (Date.now() > deadline) throw new Error(`the "${name}" lock in ${this.table} is held by another process`);
      await new Promise((r) => setTimeout(r, 100));
    }
    try {
      return await fn();
    } finally {
      await this.release(name, owner);
    }
  }

  /** Run fn only if the lock is free right now; `ran` is false when another process holds it. */
  async tryLock<T>(name: string, fn: () => Promise<T>, ttlSeconds = 30): Promise<{ ran: true; value: T } | { ran: false }> {
    const owner = crypto.randomUUID();
    if (!(await this.acquire(name, owner, ttlSeconds))) return { ran: false };
    try {
      return { ran: true, value: await fn() };
    } finally {
      await this.release(name, owner);
    }
  }
}
