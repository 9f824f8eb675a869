// One-time codes sent by e-mail: self-service unlock and password reset.
//
//   pk "lockout#a#<sub>"  sk "code#<purpose>"   { h, tries, max, expiresAt, usedAt? }
//   pk "lockout#a#<sub>"  sk "sends#<purpose>"  { n, expiresAt }   codes sent this hour
//
// Only a keyed hash of the code is stored (HMAC under the keyring's
// blind-index key). A new code replaces the previous one. A try is counted
// BEFORE the code is compared, by one conditional update that succeeds only
// while tries < max, the code is unexpired and unused: parallel guesses get no
// more than `max` comparisons. The right code is used up by a second
// conditional write (usedAt absent), so it works exactly once.
import crypto from 'node:crypto';
import { PutCommand, UpdateCommand, DeleteCommand, GetCommand } from '@aws-sdk/lib-dynamodb';
import type { CounterStore } from './counters.ts';
import { isConditionFailed, writeIfCondition } from '../storage/errors.ts';

export type CodePurpose = 'unlock' | 'reset';

export interface CodeOptions {
  digits: number;
  ttlSeconds: number;
  maxTries: number;
  /** codes per account and purpose per hour */
  maxSends: number;
}

export class OneTimeCodes {
  private readonly store: CounterStore;
  private readonly key: () => Buffer;
  readonly opts: CodeOptions;

  constructor(store: CounterStore, key: () => Buffer, opts: CodeOptions) {
    this.store = store;
    this.key = key;
    this.opts = opts;
  }

  private hash(pk: string, purpose: CodePurpose, code: string): string {
    return crypto.createHmac('sha256', this.key()).update(`lockout-code\0${purpose}\0${pk}\0${code}`).digest('base64url');
  }

  private tryWrite(cmd: object): Promise<boolean> {
    return writeIfCondition(this.store.doc, cmd);
  }

  /** one more send this hour, or false when the hourly limit is reached */
  private async countSend(pk: string, purpose: CodePurpose): Promise<boolean> {
    const { table, clock } = this.store.doc;
    const key = { pk, sk: `sends#${purpose}` };
    for (let round = 0; round < 4; round++) {
      const nowS = Math.floor(clock() / 1000);
      const ok = await this.tryWrite(new UpdateCommand({
        TableName: table, Key: key,
        UpdateExpression: 'SET #e = if_not_exists(#e, :exp) ADD #n :one',
        ConditionExpression: 'attribute_not_exists(pk) OR (#n < :max AND #e > :now)',
        ExpressionAttributeNames: { '#e': 'expiresAt', '#n': 'n' },
        ExpressionAttributeValues: { ':exp': nowS + 3600, ':one': 1, ':max': this.opts.maxSends, ':now': nowS },
      }));
      if (ok) return true;
      const r = await this.store.doc.send<{ Item?: { expiresAt: number } }>(new GetCommand({ TableName: table, Key: key, ConsistentRead: true }));
      if (r.Item && r.Item.expiresAt > nowS) return false;
      await this.tryWrite(new DeleteCommand({
        TableName: table, Key: key, ConditionExpression: '#e = :e', ExpressionAttributeNames: { '#e': 'expiresAt' },
        ExpressionAttributeValues: { ':e': r.Item?.expiresAt ?? 0 },
      }));
    }
    return false;
  }

  /** a new code for this account pk, replacing the previous one; undefined when too many were sent this hour */
  async issue(pk: string, purpose: CodePurpose): Promise<string | undefined> {
    if (!(await this.countSend(pk, purpose))) return undefined;
    const { table, clock } = this.store.doc;
    const code = crypto.randomInt(0, 10 ** this.opts.digits).toString().padStart(this.opts.digits, '0');
    await this.store.doc.send(new PutCommand({
      TableName: table,
      Item: {
        pk, sk: `code#${purpose}`, h: this.hash(pk, purpose, code), tries: 0, max: this.opts.maxTries,
        expiresAt: Math.floor(clock() / 1000) + this.opts.ttlSeconds,
      },
    }));
    return code;
  }

  /**
   * Counts a try and compares. With `consume`, the right code is used up
   * (exactly once); without, a right code gives its try back and stays
   * usable (the caller checks something else first, e.g. the new password).
   */
  async verify(pk: string, purpose: CodePurpose, code: string, consume: boolean): Promise<boolean> {
    const { table, clock } = this.store.doc;
    const key = { pk, sk: `code#${purpose}` };
    const normalized = code.replace(/[\s-]/g, '');
    let item: { h: string } | undefined;
    try {
      const r = await this.store.doc.send<{ Attributes?: { h: string } }>(new UpdateCommand({
        TableName: table, Key: key,
        UpdateExpression: 'ADD tries :one',
        ConditionExpression: 'attribute_exists(pk) AND tries < #max AND #e > :now AND attribute_not_exists(usedAt)',
        ExpressionAttributeNames: { '#max': 'max', '#e': 'expiresAt' },
        ExpressionAttributeValues: { ':one': 1, ':now': Math.floor(clock() / 1000) },
        ReturnValues: 'ALL_NEW',
      }));
      item = r.Attributes;
    } catch (err) {
      if (!isConditionFailed(err)) throw err;
    }
    // compare even without a code item, so a wrong address costs the same
    const expected = Buffer.from(item?.h ?? this.hash(pk, purpose, 'x'.repeat(this.opts.digits)));
    const got = Buffer.from(this.hash(pk, purpose, normalized));
    const match = item !== undefined && /^\d{6,12}$/.test(normalized) && expected.length === got.length && crypto.timingSafeEqual(expected, got);
    if (!match) return false;
    if (!consume) {
      await this.tryWrite(new UpdateCommand({
        TableName: table, Key: key, UpdateExpression: 'ADD tries :minus',
        ConditionExpression: 'attribute_exists(pk) AND tries > :zero', ExpressionAttributeValues: { ':minus': -1, ':zero': 0 },
      }));
      return true;
    }
    return this.tryWrite(new UpdateCommand({
      TableName: table, Key: key, UpdateExpression: 'SET usedAt = :at',
      ConditionExpression: 'attribute_exists(pk) AND attribute_not_exists(usedAt)',
      ExpressionAttributeValues: { ':at': new Date(clock()).toISOString() },
    }));
  }
}
