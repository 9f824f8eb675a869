// MFA items in the `accounts` table, beside the account records (whose own
// items are pk "user#<sub>"; nothing here starts with "user#", so account
// scans never see these):
//
//   pk "mfa#<sub>"     sk "_"                 the factors: totpSecret (sealed with the record's data
//                                             key), totpId, totpEnrolledAt, totpLastStep (the last
//                                             accepted time step), recoverySet, recoveryCodes
//                                             (map of HMAC -> 1), recoveryCreatedAt
//   pk "mfa#<sub>"     sk "pending#<context>" a TOTP secret being enrolled (sealed), expiresAt
//   pk "mfa#<sub>"     sk "device#<sha256>"   a remembered device: id, label, createdAt, lastUsedAt,
//                                             expiresAt (MFA_REMEMBER_DAYS)
//   pk "mfaflow#<uid>" sk "_"                 the second step of one login interaction: sub, the
//                                             first factor's amr, what was offered, the e-mail/SMS
//                                             code (HMAC, expiry, tries), expiresAt (the interaction's)
//
// Every check-and-use is ONE conditional write: a TOTP time step is accepted
// only when it is above totpLastStep, a recovery code only while its HMAC is
// still in the map, a message code only while unused, unexpired and under
// its try limit. `expiresAt` is the table's TTL attribute; reads ignore
// expired items themselves (dynalite has no TTL).
import {
  DeleteCommand, GetCommand, PutCommand, QueryCommand, UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import type { Storage } from '../storage/index.ts';
import { isConditionFailed, sendOrUnavailable, writeIfCondition } from '../storage/errors.ts';
import type { MfaMethod, MfaPolicy } from './types.ts';

export interface FactorItem {
  pk: string;
  sk: '_';
  sub: string;
  totpSecret?: string;
  totpId?: string;
  totpEnrolledAt?: string;
  totpLastStep?: number;
  recoverySet?: string;
  recoveryCodes?: Record<string, number>;
  recoveryCreatedAt?: string;
  updatedAt: string;
}

export interface PendingTotpItem {
  pk: string;
  sk: string;
  sealed: string;
  createdAt: string;
  expiresAt: number;
}

export interface DeviceItem {
  pk: string;
  sk: string;
  /** public id (a prefix of the hash of the device token) */
  id: string;
  label: string;
  createdAt: string;
  lastUsedAt: string;
  expiresAt: number;
}

export interface MessageCode {
  id: string;
  channel: 'email' | 'sms';
  hash: string;
  /** epoch seconds */
  exp: number;
  tries: number;
  sentAt: string;
  used?: string;
}

export interface FlowItem {
  pk: string;
  sk: '_';
  uid: string;
  sub: string;
  /** the first factor's amr, e.g. ['pwd'] */
  amr: string[];
  clientId: string;
  policy: MfaPolicy;
  /** the client asked for urn:idp:acr:mfa (acr_values / essential acr claim) */
  stepUp: boolean;
  /** "remember this device" is offered (new_device policy with MFA_REMEMBER_DAYS > 0) */
  offerRemember: boolean;
  sends: number;
  code?: MessageCode;
  /** the account is locked by strangers' failures: this second factor lifts the lock (no enrolment offered) */
  unlock?: boolean;
  /** set when the second factor is proven but the login is not finished yet (recovery codes shown) */
  verified?: { method: MfaMethod; remember: boolean };
  createdAt: string;
  expiresAt: number;
}

const nowSec = () => Math.floor(Date.now() / 1000);
const live = <T extends { expiresAt?: number }>(item: T | undefined, now = nowSec()): T | undefined =>
  item && (item.expiresAt === undefined || item.expiresAt > now) ? item : undefined;

export const factorPk = (sub: string) => `mfa#${sub}`;
export const flowPk = (uid: string) => `mfaflow#${uid}`;

/**
 * The partitions of MFA items that belong to one account, for its erasure
 * (src/mfa/erasure.ts): the factors, pending enrolments and
 * remembered devices, all under `mfa#<sub>`. A login flow (`mfaflow#<uid>`)
 * is keyed by its interaction, not the account: only a Scan would find it, so
 * it is left to its TTL (the interaction's expiry).
 */
export const mfaPartitions = (sub: string): string[] => [factorPk(sub)];

export class MfaStore {
  private readonly storage: Storage;

  constructor(storage: Storage) {
    this.storage = storage;
  }

  private get table() {
    return this.storage.tables.accounts;
  }

  private send<T>(cmd: object): Promise<T> {
    return sendOrUnavailable<T>(this.storage.doc, cmd);
  }

  /** runs a conditional write: false when its condition failed */
  private conditional(cmd: object): Promise<boolean> {
    return writeIfCondition(this.storage.doc, cmd);
  }

  private async get<T>(pk: string, sk: string): Promise<T | undefined> {
    const r = await this.send<{ Item?: T }>(new GetCommand({ TableName: this.table, Key: { pk, sk }, ConsistentRead: true }));
    return r.Item;
  }

  /** every item under `pk` whose sk starts with `prefix` ('' for all of them) */
  private async query<T>(pk: string, prefix: string): Promise<T[]> {
    const out: T[] = [];
    let ExclusiveStartKey: Record<string, unknown> | undefined;
    do {
      // DynamoDB refuses an empty string as a key value, begins_with's included (dynalite lets it through)
      const r = await this.send<{ Items?: T[]; LastEvaluatedKey?: Record<string, unknown> }>(new QueryCommand({
        TableName: this.table,
        KeyConditionExpression: prefix === '' ? 'pk = :pk' : 'pk = :pk AND begins_with(sk, :p)',
        ExpressionAttributeValues: prefix === '' ? { ':pk': pk } : { ':pk': pk, ':p': prefix },
        ConsistentRead: true, ExclusiveStartKey,
      }));
      out.push(...(r.Items ?? []));
      ExclusiveStartKey = r.LastEvaluatedKey;
    } while (ExclusiveStartKey);
    return out;
  }

  // ---- factors ----

  getFactors(sub: string): Promise<FactorItem | undefined> {
    return this.get<FactorItem>(factorPk(sub), '_');
  }

  /**
   * Stores a confirmed TOTP secret and a new recovery-code set in one write.
   * `replace: false` (enrolment at login) only when no TOTP is enrolled yet.
   */
  async putTotp(sub: string, t: { sealed: string; id: string; step: number; recoverySet: string; recoveryHashes: string[] }, replace: boolean): Promise<boolean> {
    const now = new Date().toISOString();
    return this.conditional(new UpdateCommand({
      TableName: this.table, Key: { pk: factorPk(sub), sk: '_' },
      UpdateExpression: 'SET #sub = :sub, totpSecret = :s, totpId = :id, totpEnrolledAt = :t, totpLastStep = :step, '
        + 'recoverySet = :rs, recoveryCodes = :rc, recoveryCreatedAt = :t, updatedAt = :t',
      ...(replace ? {} : { ConditionExpression: 'attribute_not_exists(totpSecret)' }),
      ExpressionAttributeNames: { '#sub': 'sub' },
      ExpressionAttributeValues: {
        ':sub': sub, ':s': t.sealed, ':id': t.id, ':t': now, ':step': t.step,
        ':rs': t.recoverySet, ':rc': Object.fromEntries(t.recoveryHashes.map((h) => [h, 1])),
      },
    }));
  }

  /** accepts `step` for the enrolled secret `totpId` only when it is above the last accepted one */
  consumeStep(sub: string, totpId: string, step: number): Promise<boolean> {
    return this.conditional(new UpdateCommand({
      TableName: this.table, Key: { pk: factorPk(sub), sk: '_' },
      UpdateExpression: 'SET totpLastStep = :step, updatedAt = :t',
      ConditionExpression: 'totpId = :id AND (attribute_not_exists(totpLastStep) OR totpLastStep < :step)',
      ExpressionAttributeValues: { ':id': totpId, ':step': step, ':t': new Date().toISOString() },
    }));
  }

  /** replaces the recovery-code set (the old codes stop working); only while TOTP is enrolled */
  replaceRecovery(sub: string, set: string, hashes: string[]): Promise<boolean> {
    const now = new Date().toISOString();
    return this.conditional(new UpdateCommand({
      TableName: this.table, Key: { pk: factorPk(sub), sk: '_' },
      UpdateExpression: 'SET recoverySet = :rs, recoveryCodes = :rc, recoveryCreatedAt = :t, updatedAt = :t',
      ConditionExpression: 'attribute_exists(totpSecret)',
      ExpressionAttributeValues: { ':rs': set, ':rc': Object.fromEntries(hashes.map((h) => [h, 1])), ':t': now },
    }));
  }

  /** uses one recovery code of the current set: true once, false ever after */
  consumeRecovery(sub: string, set: string, hash: string): Promise<boolean> {
    return this.conditional(new UpdateCommand({
      TableName: this.table, Key: { pk: factorPk(sub), sk: '_' },
      UpdateExpression: 'REMOVE recoveryCodes.#h SET updatedAt = :t',
      ConditionExpression: 'recoverySet = :rs AND attribute_exists(recoveryCodes.#h)',
      ExpressionAttributeNames: { '#h': hash },
      ExpressionAttributeValues: { ':rs': set, ':t': new Date().toISOString() },
    }));
  }

  /** every MFA item of the account (factors, pending enrolments, remembered devices); returns how many */
  async deleteAll(sub: string): Promise<{ factors: boolean; devices: number }> {
    const items = await this.query<{ pk: string; sk: string }>(factorPk(sub), '');
    for (const i of items) await this.send(new DeleteCommand({ TableName: this.table, Key: { pk: i.pk, sk: i.sk } }));
    return { factors: items.some((i) => i.sk === '_'), devices: items.filter((i) => i.sk.startsWith('device#')).length };
  }

  // ---- pending enrolment ----

  async getPending(sub: string, context: string): Promise<PendingTotpItem | undefined> {
    return live(await this.get<PendingTotpItem>(factorPk(sub), `pending#${context}`));
  }

  async putPending(sub: string, context: string, sealed: string, ttlSeconds: number): Promise<void> {
    await this.send(new PutCommand({
      TableName: this.table,
      Item: { pk: factorPk(sub), sk: `pending#${context}`, sealed, createdAt: new Date().toISOString(), expiresAt: nowSec() + ttlSeconds },
    }));
  }

  /** removes the pending secret; false when another request took it first */
  takePending(sub: string, context: string, sealed: string): Promise<boolean> {
    return this.conditional(new DeleteCommand({
      TableName: this.table, Key: { pk: factorPk(sub), sk: `pending#${context}` },
      ConditionExpression: 'sealed = :s', ExpressionAttributeValues: { ':s': sealed },
    }));
  }

  // ---- remembered devices ----

  async putDevice(sub: string, key: string, label: string, days: number): Promise<DeviceItem> {
    const now = new Date().toISOString();
    const item: DeviceItem = { pk: factorPk(sub), sk: `device#${key}`, id: key.slice(0, 16), label, createdAt: now, lastUsedAt: now, expiresAt: nowSec() + days * 86400 };
    await this.send(new PutCommand({ TableName: this.table, Item: item }));
    return item;
  }

  async getDevice(sub: string, key: string): Promise<DeviceItem | undefined> {
    return live(await this.get<DeviceItem>(factorPk(sub), `device#${key}`));
  }

  async touchDevice(sub: string, key: string): Promise<void> {
    await this.conditional(new UpdateCommand({
      TableName: this.table, Key: { pk: factorPk(sub), sk: `device#${key}` },
      UpdateExpression: 'SET lastUsedAt = :t', ConditionExpression: 'attribute_exists(pk)',
      ExpressionAttributeValues: { ':t': new Date().toISOString() },
    }));
  }

  async listDevices(sub: string): Promise<DeviceItem[]> {
    const now = nowSec();
    return (await this.query<DeviceItem>(factorPk(sub), 'device#')).filter((d) => live(d, now))
      .sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  }

  deleteDevice(sub: string, sk: string): Promise<boolean> {
    return this.conditional(new DeleteCommand({
      TableName: this.table, Key: { pk: factorPk(sub), sk }, ConditionExpression: 'attribute_exists(pk)',
    }));
  }

  // ---- login flows ----

  async getFlow(uid: string): Promise<FlowItem | undefined> {
    return live(await this.get<FlowItem>(flowPk(uid), '_'));
  }

  async putFlow(flow: FlowItem): Promise<void> {
    await this.send(new PutCommand({ TableName: this.table, Item: flow }));
  }

  async deleteFlow(uid: string): Promise<void> {
    await this.send(new DeleteCommand({ TableName: this.table, Key: { pk: flowPk(uid), sk: '_' } }));
  }

  /** the flow's second factor is proven (the recovery codes are being shown) */
  markVerified(uid: string, sub: string, verified: NonNullable<FlowItem['verified']>): Promise<boolean> {
    return this.conditional(new UpdateCommand({
      TableName: this.table, Key: { pk: flowPk(uid), sk: '_' },
      UpdateExpression: 'SET verified = :v', ConditionExpression: '#sub = :sub',
      ExpressionAttributeNames: { '#sub': 'sub' }, ExpressionAttributeValues: { ':v': verified, ':sub': sub },
    }));
  }

  /** a new message code replaces the previous one; false past `maxSends` codes for this flow */
  setCode(uid: string, sub: string, code: MessageCode, maxSends: number): Promise<boolean> {
    return this.conditional(new UpdateCommand({
      TableName: this.table, Key: { pk: flowPk(uid), sk: '_' },
      UpdateExpression: 'SET code = :c, sends = sends + :one',
      ConditionExpression: '#sub = :sub AND sends < :max',
      ExpressionAttributeNames: { '#sub': 'sub' },
      ExpressionAttributeValues: { ':c': code, ':one': 1, ':sub': sub, ':max': maxSends },
    }));
  }

  /**
   * Counts one try of the current message code, in one conditional write that
   * holds only while the code is unused, unexpired and under `maxTries`.
   * Returns the code as it is after the count, or the reason it was refused.
   */
  async tryCode(uid: string, sub: string, maxTries: number): Promise<{ code: MessageCode } | { refused: 'none' | 'used' | 'expired' | 'exhausted' }> {
    const now = nowSec();
    try {
      const r = await this.send<{ Attributes?: FlowItem }>(new UpdateCommand({
        TableName: this.table, Key: { pk: flowPk(uid), sk: '_' },
        UpdateExpression: 'SET code.tries = code.tries + :one',
        ConditionExpression: '#sub = :sub AND attribute_exists(code.id) AND attribute_not_exists(code.used) AND code.tries < :max AND code.exp > :now',
        ExpressionAttributeNames: { '#sub': 'sub' },
        ExpressionAttributeValues: { ':one': 1, ':sub': sub, ':max': maxTries, ':now': now },
        ReturnValues: 'ALL_NEW',
      }));
      return { code: r.Attributes!.code! };
    } catch (err) {
      if (!isConditionFailed(err)) throw err;
    }
    const flow = await this.getFlow(uid);
    const c = flow?.sub === sub ? flow.code : undefined;
    if (!c) return { refused: 'none' };
    if (c.used) return { refused: 'used' };
    if (c.tries >= maxTries) return { refused: 'exhausted' };
    return { refused: 'expired' };
  }

  /** marks the message code used: true for exactly one caller */
  useCode(uid: string, sub: string, codeId: string): Promise<boolean> {
    return this.conditional(new UpdateCommand({
      TableName: this.table, Key: { pk: flowPk(uid), sk: '_' },
      UpdateExpression: 'SET code.used = :t',
      ConditionExpression: '#sub = :sub AND code.id = :id AND attribute_not_exists(code.used)',
      ExpressionAttributeNames: { '#sub': 'sub' },
      ExpressionAttributeValues: { ':t': new Date().toISOString(), ':sub': sub, ':id': codeId },
    }));
  }
}
