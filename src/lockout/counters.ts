// Failure counters in DynamoDB (the `accounts` table, pk prefix "lockout#";
// docs/lockout.md lists every key). One item per counter:
//
//   n            attempts admitted in the current cycle (0..limit)
//   lvl          temporary locks already served (the current cycle's lock is lock lvl+1)
//   lockedUntil  epoch ms at which the current cycle's lock ends; only meaningful when n >= limit
//   expiresAt    epoch s (TTL): after it the item counts as absent (reads ignore expired items,
//                since dynalite never deletes them)
//   ver          bumped by every write, for the conditional transitions
//
// `admit` counts an attempt BEFORE its secret is checked, with ONE conditional
// UpdateItem that increments only while n < limit (and the item is current and
// in the expected cycle). DynamoDB applies updates of one item one at a time,
// so of 50 parallel attempts exactly `limit` are admitted and the others see
// n >= limit: no attempt slips past the limit between a read and a write. The
// update that admits the limit-th attempt also writes the lock's end, so
// whoever sees n >= limit sees the lock. A right secret resets the counter.
import crypto from 'node:crypto';
import { DeleteCommand, GetCommand, PutCommand, QueryCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import type { Storage } from '../storage/index.ts';
import { asStorageError, isConditionFailed, sendOrUnavailable, writeIfCondition } from '../storage/errors.ts';
import { normalizeEmail, normalizePhone } from '../accounts/types.ts';

export interface CounterSpec {
  /** reason code reported when this counter refuses */
  reason: string;
  /** attempts per cycle; 0 disables the counter */
  limit: number;
  /** the item is forgotten this long after its last admitted attempt */
  resetSeconds: number;
  /** the lock after this many temporary locks is permanent (0 = never) */
  permanentAfter: number;
}

export interface Backoff {
  waitSeconds: number;
  backoff: 'linear' | 'exponential';
  maxWaitSeconds: number;
}

export interface CounterKey {
  pk: string;
  sk: string;
}

export type AdmitResult =
  | {
    allowed: true;
    /** attempts admitted in this cycle, this one included */
    n: number;
    /** true when this attempt was the limit-th: if it fails, the lock is on */
    last: boolean;
    /** the lock that this cycle ends in: its number (1 = first), length, and whether it is permanent */
    lockNumber: number;
    lockSeconds: number;
    permanent: boolean;
  }
  | { allowed: false; retryAfterSeconds: number; permanent: boolean; lockNumber: number };

interface CounterItem {
  pk: string;
  sk: string;
  n: number;
  lvl: number;
  lockedUntil: number;
  expiresAt: number;
  ver: number;
}

const PREFIX = 'lockout#';
const FOREVER_SECONDS = 10 * 365 * 86400;

/** the n-th temporary lock's length, in seconds (n >= 1) */
export function lockSeconds(b: Backoff, n: number): number {
  const raw = b.backoff === 'linear' ? b.waitSeconds * n : b.waitSeconds * 2 ** Math.min(n - 1, 40);
  return Math.min(raw, b.maxWaitSeconds);
}

/** IPv4 as it is (also when IPv4-mapped); IPv6 by its /64, which one subscriber usually holds whole */
export function ipKey(ip: string): string {
  const v4 = /^(?:::ffff:)?(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(ip);
  if (v4) return v4[1];
  // anything else that is not an IPv6 address (a forwarded header can say anything): a bounded key
  if (!ip.includes(':') || ip.length > 45 || !/^[0-9a-f:.]+$/i.test(ip)) return ip ? `h:${sha256(ip)}` : 'unknown';
  const [head, tail = ''] = ip.toLowerCase().split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = ip.includes('::') ? [...h, ...Array(Math.max(0, 8 - h.length - t.length)).fill('0'), ...t] : h;
  return `${groups.slice(0, 4).map((g) => (g.replace(/^0+/, '') || '0')).join(':')}::/64`;
}

export const sha256 = (s: string) => crypto.createHash('sha256').update(s).digest('base64url');

export const keys = {
  /** an account, by sub */
  account: (sub: string) => `${PREFIX}a#${sub}`,
  /** an identifier that names no account, by a keyed hash of it */
  identifier: (hmac: string) => `${PREFIX}i#${hmac}`,
  ip: (ip: string) => `${PREFIX}ip#${ipKey(ip)}`,
};

/**
 * Keyed hash of an identifier as typed (normalized like the account pointers:
 * e-mail lower-cased, phone in E.164), under the keyring's blind-index key:
 * the key of the counters of an identifier that names no account.
 */
export function identifierHash(blindIndexKey: Buffer, login: string): string {
  const s = login.trim();
  const normalized = s.includes('@') ? normalizeEmail(s) : normalizePhone(s) ?? s.toLowerCase();
  return crypto.createHmac('sha256', blindIndexKey).update(`lockout-identifier\0${normalized}`).digest('base64url');
}

/**
 * The partitions of lockout items that belong to one account, for its
 * erasure (src/lockout/erasure.ts): everything under the account's pk
 * (counters, known devices, unlock/reset codes and their send counts), and the
 * counters of its e-mail addresses and phone numbers kept while they named no
 * account. The per-IP counters (`lockout#ip#...`) are shared by every account
 * and hold no account: they are not the account's.
 */
export function lockoutPartitions(sub: string, identifiers: string[], blindIndexKey: Buffer): string[] {
  return [keys.account(sub), ...identifiers.map((i) => keys.identifier(identifierHash(blindIndexKey, i)))];
}

export class CounterStore {
  private readonly storage: Storage;
  private readonly backoff: Backoff;
  private readonly clock: () => number;

  constructor(storage: Storage, backoff: Backoff, clock: () => number = Date.now) {
    this.storage = storage;
    this.backoff = backoff;
    this.clock = clock;
  }

  private get table() {
    return this.storage.tables.accounts;
  }

  private send<T>(cmd: object): Promise<T> {
    return sendOrUnavailable<T>(this.storage.doc, cmd);
  }

  private async get<T>(key: CounterKey): Promise<T | undefined> {
    const r = await this.send<{ Item?: T }>(new GetCommand({ TableName: this.table, Key: key, ConsistentRead: true }));
    return r.Item;
  }

  /** count one attempt, or refuse it while the counter is locked */
  async admit(key: CounterKey, spec: CounterSpec): Promise<AdmitResult> {
    if (spec.limit <= 0) return { allowed: true, n: 0, last: false, lockNumber: 0, lockSeconds: 0, permanent: false };
    let lvl = 0; // the common case; a failed condition tells the real one
    for (let round = 0; round < 16; round++) {
      const now = this.clock();
      const nowS = Math.floor(now / 1000);
      const lockNumber = lvl + 1;
      const permanent = spec.permanentAfter > 0 && lockNumber > spec.permanentAfter;
      const seconds = permanent ? FOREVER_SECONDS : lockSeconds(this.backoff, lockNumber);
      const lockedUntil = now + seconds * 1000;
      const expiresAt = permanent ? nowS + FOREVER_SECONDS : Math.max(nowS + spec.resetSeconds, Math.ceil(lockedUntil / 1000));
      try {
        const r = await this.send<{ Attributes?: CounterItem }>(new UpdateCommand({
          TableName: this.table, Key: key,
          UpdateExpression: 'SET #e = :exp, #lu = :lu, #lv = if_not_exists(#lv, :lv) ADD #n :one, #v :one',
          ConditionExpression: 'attribute_not_exists(pk) OR (#lv = :lv AND #n < :limit AND #e > :nowS)',
          ExpressionAttributeNames: { '#e': 'expiresAt', '#lu': 'lockedUntil', '#lv': 'lvl', '#n': 'n', '#v': 'ver' },
          ExpressionAttributeValues: { ':exp': expiresAt, ':lu': lockedUntil, ':lv': lvl, ':one': 1, ':limit': spec.limit, ':nowS': nowS },
          ReturnValues: 'ALL_NEW',
        }));
        const n = r.Attributes?.n ?? 1;
        return { allowed: true, n, last: n >= spec.limit, lockNumber, lockSeconds: seconds, permanent };
      } catch (err) {
        if (!isConditionFailed(err)) throw err;
      }
      const item = await this.get<CounterItem>(key);
      if (!item) {
        lvl = 0;
        continue;
      }
      if (item.expiresAt <= nowS) {
        // forgotten: remove the stale item (only the one we saw, and only while it is expired:
        // a counter that replaced it in the meantime starts its `ver` at 1 again, so `ver`
        // alone could match the new one) and start over
        await this.conditional(new DeleteCommand({
          TableName: this.table, Key: key, ConditionExpression: '#v = :v AND #e <= :nowS',
          ExpressionAttributeNames: { '#v': 'ver', '#e': 'expiresAt' }, ExpressionAttributeValues: { ':v': item.ver, ':nowS': nowS },
        }));
        lvl = 0;
        continue;
      }
      if (item.n >= spec.limit) {
        const itemLock = item.lvl + 1;
        const isPermanent = spec.permanentAfter > 0 && itemLock > spec.permanentAfter;
        if (isPermanent) return { allowed: false, retryAfterSeconds: FOREVER_SECONDS, permanent: true, lockNumber: itemLock };
        if (now < item.lockedUntil) {
          return { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil((item.lockedUntil - now) / 1000)), permanent: false, lockNumber: itemLock };
        }
        // the lock is over: the next cycle begins (one writer wins; the others retry). Only on
        // the item we saw: a counter reset and counted again since has the same `ver` again,
        // but not the same lock end
        await this.conditional(new UpdateCommand({
          TableName: this.table, Key: key,
          UpdateExpression: 'SET #n = :zero, #lv = :next ADD #v :one',
          ConditionExpression: '#v = :v AND #lu = :lu',
          ExpressionAttributeNames: { '#n': 'n', '#lv': 'lvl', '#v': 'ver', '#lu': 'lockedUntil' },
          ExpressionAttributeValues: { ':zero': 0, ':next': item.lvl + 1, ':one': 1, ':v': item.ver, ':lu': item.lockedUntil },
        }));
        lvl = item.lvl + 1;
        continue;
      }
      lvl = item.lvl;
    }
    throw asStorageError(new Error('lockout counter under too much contention'));
  }

  /** a conditional write that may lose to a concurrent one: losing is fine */
  private conditional(cmd: object): Promise<boolean> {
    return writeIfCondition(this.storage.doc, cmd);
  }

  /** the state of a counter without counting (admin and tests) */
  async peek(key: CounterKey, spec: CounterSpec): Promise<{ n: number; lockNumber: number; locked: boolean; permanent: boolean; retryAfterSeconds: number }> {
    const item = await this.get<CounterItem>(key);
    const now = this.clock();
    if (!item || item.expiresAt <= Math.floor(now / 1000)) return { n: 0, lockNumber: 1, locked: false, permanent: false, retryAfterSeconds: 0 };
    const atLimit = spec.limit > 0 && item.n >= spec.limit;
    const permanent = atLimit && spec.permanentAfter > 0 && item.lvl + 1 > spec.permanentAfter;
    const locked = permanent || (atLimit && now < item.lockedUntil);
    return { n: item.n, lockNumber: item.lvl + 1, locked, permanent, retryAfterSeconds: locked ? Math.max(1, Math.ceil((item.lockedUntil - now) / 1000)) : 0 };
  }

  /** after a right secret: the failures are no longer consecutive */
  async reset(key: CounterKey): Promise<void> {
    await this.send(new DeleteCommand({ TableName: this.table, Key: key }));
  }

  /** give back an attempt admitted for a secret that was right (shared counters such as the IP's) */
  async giveBack(key: CounterKey): Promise<void> {
    await this.conditional(new UpdateCommand({
      TableName: this.table, Key: key,
      UpdateExpression: 'ADD #n :minus, #v :one',
      ConditionExpression: 'attribute_exists(pk) AND #n > :zero',
      ExpressionAttributeNames: { '#n': 'n', '#v': 'ver' },
      ExpressionAttributeValues: { ':minus': -1, ':one': 1, ':zero': 0 },
    }));
  }

  /** every item under one pk (an account's counters, known devices and codes) */
  async list(pk: string): Promise<Array<Record<string, unknown> & CounterKey>> {
    const out: Array<Record<string, unknown> & CounterKey> = [];
    let ExclusiveStartKey: Record<string, unknown> | undefined;
    do {
      const r = await this.send<{ Items?: Array<Record<string, unknown> & CounterKey>; LastEvaluatedKey?: Record<string, unknown> }>(new QueryCommand({
        TableName: this.table, KeyConditionExpression: 'pk = :pk', ExpressionAttributeValues: { ':pk': pk }, ConsistentRead: true, ExclusiveStartKey,
      }));
      out.push(...(r.Items ?? []));
      ExclusiveStartKey = r.LastEvaluatedKey;
    } while (ExclusiveStartKey);
    return out;
  }

  /** deletes every counter (sk "c#...") of one pk; returns how many were current */
  async clear(pk: string): Promise<number> {
    const nowS = Math.floor(this.clock() / 1000);
    const items = (await this.list(pk)).filter((i) => i.sk.startsWith('c#'));
    for (const i of items) await this.send(new DeleteCommand({ TableName: this.table, Key: { pk: i.pk, sk: i.sk } }));
    return items.filter((i) => (i.expiresAt as number) > nowS).length;
  }

  // ---- known devices: pk = the account's, sk = "known#<factor>#<sha256(device id)>" ----
  // A device is known for one factor once that factor succeeded from it: a
  // stolen password makes the thief's browser known for passwords, not for MFA.

  async isKnownDevice(accountPk: string, deviceHash: string, factor: 'password' | 'mfa'): Promise<boolean> {
    const item = await this.get<{ expiresAt: number }>({ pk: accountPk, sk: `known#${factor}#${deviceHash}` });
    return !!item && item.expiresAt > Math.floor(this.clock() / 1000);
  }

  async rememberDevice(accountPk: string, deviceHash: string, factor: 'password' | 'mfa', days: number): Promise<void> {
    const now = this.clock();
    await this.send(new PutCommand({
      TableName: this.table,
      Item: { pk: accountPk, sk: `known#${factor}#${deviceHash}`, lastLoginAt: new Date(now).toISOString(), expiresAt: Math.floor(now / 1000) + days * 86400 },
    }));
  }

  /** raw access for the one-time codes (same table, same conventions) */
  get doc() {
    return { send: <T>(cmd: object) => this.send<T>(cmd), table: this.table, clock: this.clock };
  }
}
