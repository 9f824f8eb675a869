// Accounts in the `accounts` table.
//   pk "user#<sub>"    sk "_"   the account (see types.ts)
//   pk "email#<norm>"  sk "_"   sub: the lookup pointer for the login form
// Creation claims the e-mail pointer with a conditional write first, so two
// concurrent sign-ups of one address cannot both succeed.
import crypto from 'node:crypto';
import { DeleteCommand, GetCommand, PutCommand, ScanCommand } from '@aws-sdk/lib-dynamodb';
import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import type { Storage } from '../storage/index.ts';
import { asStorageError } from '../storage/errors.ts';
import type { PasswordHasher } from './hasher.ts';
import {
  AccountExists, normalizeEmail, type Account, type AccountStore, type NewAccount,
} from './types.ts';

export class DynamoAccountStore implements AccountStore {
  private readonly storage: Storage;
  private readonly hasher: PasswordHasher;

  constructor(storage: Storage, hasher: PasswordHasher) {
    this.storage = storage;
    this.hasher = hasher;
  }

  private get table() {
    return this.storage.tables.accounts;
  }

  private async send<T>(cmd: object): Promise<T> {
    try {
      return await this.storage.doc.send(cmd as never) as T;
    } catch (err) {
      if (err instanceof ConditionalCheckFailedException) throw err;
      throw asStorageError(err);
    }
  }

  async create(input: NewAccount): Promise<Account> {
    const now = new Date().toISOString();
    const account: Account = {
      sub: crypto.randomUUID(),
      status: 'active',
      email: input.email.trim(),
      emailVerified: input.emailVerified ?? false,
      phone: input.phone,
      phoneVerified: input.phoneVerified ?? false,
      name: input.name,
      givenName: input.givenName,
      familyName: input.familyName,
      passwordHash: input.password !== undefined ? await this.hasher.hash(input.password) : undefined,
      version: 1,
      createdAt: now,
      updatedAt: now,
    };
    const pointer = `email#${normalizeEmail(input.email)}`;
    try {
      await this.send(new PutCommand({
        TableName: this.table, Item: { pk: pointer, sk: '_', sub: account.sub },
        ConditionExpression: 'attribute_not_exists(pk)',
      }));
    } catch (err) {
      if (err instanceof ConditionalCheckFailedException) throw new AccountExists('an account with this e-mail already exists');
      throw err;
    }
    try {
      await this.send(new PutCommand({
        TableName: this.table, Item: { pk: `user#${account.sub}`, sk: '_', ...account },
        ConditionExpression: 'attribute_not_exists(pk)',
      }));
    } catch (err) {
      await this.send(new DeleteCommand({ TableName: this.table, Key: { pk: pointer, sk: '_' } })).catch(() => {});
      throw err;
    }
    return account;
  }

  async findBySub(sub: string): Promise<Account | undefined> {
    const r = await this.send<{ Item?: Record<string, unknown> }>(new GetCommand({
      TableName: this.table, Key: { pk: `user#${sub}`, sk: '_' }, ConsistentRead: true,
    }));
    return r.Item ? toAccount(r.Item) : undefined;
  }

  async findByLogin(login: string): Promise<Account | undefined> {
    const r = await this.send<{ Item?: { sub?: string } }>(new GetCommand({
      TableName: this.table, Key: { pk: `email#${normalizeEmail(login)}`, sk: '_' }, ConsistentRead: true,
    }));
    return r.Item?.sub ? this.findBySub(r.Item.sub) : undefined;
  }

  async list({ limit = 1000 }: { limit?: number } = {}): Promise<Account[]> {
    const out: Account[] = [];
    let ExclusiveStartKey: Record<string, unknown> | undefined;
    do {
      const r = await this.send<{ Items?: Record<string, unknown>[]; LastEvaluatedKey?: Record<string, unknown> }>(new ScanCommand({
        TableName: this.table, FilterExpression: 'begins_with(pk, :u)', ExpressionAttributeValues: { ':u': 'user#' }, ExclusiveStartKey,
      }));
      out.push(...(r.Items ?? []).map(toAccount));
      ExclusiveStartKey = r.LastEvaluatedKey;
    } while (ExclusiveStartKey && out.length < limit);
    return out.slice(0, limit).sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  }
}

function toAccount(item: Record<string, unknown>): Account {
  const { pk, sk, ...rest } = item;
  void pk; void sk;
  return rest as unknown as Account;
}
