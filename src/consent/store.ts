// Consent in DynamoDB.
//
//   accounts table  pk "consent#<sub>"       sk "app#<clientId>"   what the user allowed the client (AppConsent):
//                                                                  string sets scope, claims, declined, rscopes
//                                                                  ("<indicator> <scope>") and grants ("<id> <exp>")
//   meta table      pk "admin-consent"       sk "<clientId>"       what an admin allowed the client for everyone
//   meta table      pk "admin-consent-log"   sk "<time>#<rand>"    every admin consent change: who, when, what
//
// The user's items sit in the accounts table under one partition per account
// ("consent#<sub>", also home of the user's roles, roles.ts), emptied with the
// account by the erasure hook (erasure.ts). Admin consents are few and read on
// every authorization: the list is cached in the process for `cacheMs`; this
// process's writes drop the cache at once, other processes' show within cacheMs.
import crypto from 'node:crypto';
import { DeleteCommand, GetCommand, PutCommand, QueryCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import type { Storage } from '../storage/index.ts';
import { sendOrUnavailable, writeIfCondition } from '../storage/errors.ts';
import type { AdminConsent, AdminConsentChange, AppConsent, ConsentScope } from './types.ts';

export const CONSENT_PK_PREFIX = 'consent#';
const ADMIN_PK = 'admin-consent';
const LOG_PK = 'admin-consent-log';
const APP = 'app#';

import { CachedList } from '../storage/cached-list.ts';

type Doc = Pick<Storage, 'doc' | 'tables'>;
type Item = Record<string, unknown>;


/** every item of one partition (consistent reads), optionally under an sk prefix */
export async function queryAll(s: Doc, table: string, pk: string, skPrefix?: string): Promise<Item[]> {
  const items: Item[] = [];
  let start: Record<string, unknown> | undefined;
  do {
    const r = await sendOrUnavailable<{ Items?: Item[]; LastEvaluatedKey?: Record<string, unknown> }>(s.doc, new QueryCommand({
      TableName: table,
      KeyConditionExpression: skPrefix ? 'pk = :pk AND begins_with(sk, :p)' : 'pk = :pk',
      ExpressionAttributeValues: skPrefix ? { ':pk': pk, ':p': skPrefix } : { ':pk': pk },
      ConsistentRead: true,
      ExclusiveStartKey: start,
    }));
    items.push(...(r.Items ?? []));
    start = r.LastEvaluatedKey;
  } while (start);
  return items;
}

/** a string set as stored (a Set from DynamoDB, or a list) → a list; openid first, the rest sorted */
const strings = (v: unknown): string[] => [...(v instanceof Set || Array.isArray(v) ? v : [])]
  .filter((x): x is string => typeof x === 'string').sort((a, b) => (a === 'openid' ? -1 : b === 'openid' ? 1 : a.localeCompare(b)));

function toApp(i: Item): AppConsent {
  const scope = strings(i.scope);
  const resources: Record<string, string[]> = {};
  for (const rs of strings(i.rscopes)) {
    const at = rs.lastIndexOf(' ');
    (resources[rs.slice(0, at)] ??= []).push(rs.slice(at + 1));
  }
  const grants: Record<string, number> = {};
  for (const g of strings(i.grants)) {
    const [id, exp] = g.split(' ');
    grants[id] = Number(exp);
  }
  return {
    sub: String(i.sub), clientId: String(i.clientId), scope, claims: strings(i.claims), resources,
    // a scope allowed after it was declined is allowed
    declined: strings(i.declined).filter((d) => !scope.includes(d)),
    grantedAt: String(i.grantedAt), updatedAt: String(i.updatedAt), lastUsedAt: String(i.lastUsedAt ?? i.updatedAt), grants,
  };
}

const toAdmin = (i: Item): AdminConsent => ({
  clientId: String(i.clientId), scope: (i.scope as string[]) ?? [], claims: (i.claims as string[]) ?? [],
  resources: (i.resources as Record<string, string[]>) ?? {}, grantedBy: String(i.grantedBy), grantedAt: String(i.grantedAt),
});

export class ConsentStore {
  private readonly s: Doc;
  private readonly admins: CachedList<AdminConsent>;

  constructor(storage: Doc, opts: { cacheMs?: number } = {}) {
    this.s = storage;
    this.admins = new CachedList(opts.cacheMs ?? 10_000, async () => (await queryAll(this.s, this.s.tables.meta, ADMIN_PK)).map(toAdmin));
  }

  private get accounts(): string {
    return this.s.tables.accounts;
  }

  // ---- what users allowed (connected apps)

  async findApp(sub: string, clientId: string): Promise<AppConsent | undefined> {
    const r = await sendOrUnavailable<{ Item?: Item }>(this.s.doc, new GetCommand({
      TableName: this.accounts, Key: { pk: CONSENT_PK_PREFIX + sub, sk: APP + clientId }, ConsistentRead: true,
    }));
    return r.Item ? toApp(r.Item) : undefined;
  }

  /** the user's connected apps, by client id */
  async listApps(sub: string): Promise<AppConsent[]> {
    return (await queryAll(this.s, this.accounts, CONSENT_PK_PREFIX + sub, APP)).map(toApp);
  }

  /**
   * The user allowed `added` (and left `declined` unticked) under grant
   * `grant`: ONE update that adds them to what they allowed before (string
   * sets grow atomically, so nothing is read first and concurrent consents
   * both land), with the grant among the consent's grants.
   */
  async recordConsent(sub: string, clientId: string, added: ConsentScope, declined: string[], grant: { id: string; exp: number }): Promise<void> {
    const now = new Date().toISOString();
    const sets: Record<string, string[]> = {
      scope: added.scope, claims: added.claims, declined,
      rscopes: Object.entries(added.resources).flatMap(([r, xs]) => xs.map((x) => `${r} ${x}`)),
      grants: [`${grant.id} ${grant.exp}`],
    };
    const adds = Object.entries(sets).filter(([, v]) => v.length > 0);
    await sendOrUnavailable(this.s.doc, new UpdateCommand({
      TableName: this.accounts, Key: { pk: CONSENT_PK_PREFIX + sub, sk: APP + clientId },
      UpdateExpression: `SET #sub = :sub, clientId = :c, grantedAt = if_not_exists(grantedAt, :now), updatedAt = :now, lastUsedAt = :now ADD ${adds.map(([k]) => `#${k} :${k}`).join(', ')}`,
      ExpressionAttributeNames: { '#sub': 'sub', ...Object.fromEntries(adds.map(([k]) => [`#${k}`, k])) },
      ExpressionAttributeValues: { ':sub': sub, ':c': clientId, ':now': now, ...Object.fromEntries(adds.map(([k, v]) => [`:${k}`, new Set(v)])) },
    }));
  }

  /**
   * A new grant started from the remembered consent (a sign-in in a new
   * session): it joins the consent's grants and lastUsedAt moves; expired
   * grant entries are dropped beside it. False when the consent is gone
   * (removed meanwhile).
   */
  async addGrant(app: AppConsent, grant: { id: string; exp: number }): Promise<boolean> {
    const key = { pk: CONSENT_PK_PREFIX + app.sub, sk: APP + app.clientId };
    const now = Math.floor(Date.now() / 1000);
    const expired = Object.entries(app.grants).filter(([, exp]) => exp <= now).map(([id, exp]) => `${id} ${exp}`);
    const [added] = await Promise.all([
      writeIfCondition(this.s.doc, new UpdateCommand({
        TableName: this.accounts, Key: key,
        UpdateExpression: 'SET lastUsedAt = :now ADD grants :g',
        ConditionExpression: 'attribute_exists(pk)',
        ExpressionAttributeValues: { ':g': new Set([`${grant.id} ${grant.exp}`]), ':now': new Date().toISOString() },
      })),
      expired.length ? writeIfCondition(this.s.doc, new UpdateCommand({
        TableName: this.accounts, Key: key, UpdateExpression: 'DELETE grants :x', ConditionExpression: 'attribute_exists(pk)',
        ExpressionAttributeValues: { ':x': new Set(expired) },
      })) : undefined,
    ]);
    return added;
  }

  /** forgets what the user allowed the client; the removed consent (with its grants to revoke), or undefined */
  async removeApp(sub: string, clientId: string): Promise<AppConsent | undefined> {
    const r = await sendOrUnavailable<{ Attributes?: Item }>(this.s.doc, new DeleteCommand({
      TableName: this.accounts, Key: { pk: CONSENT_PK_PREFIX + sub, sk: APP + clientId }, ReturnValues: 'ALL_OLD',
    }));
    return r.Attributes ? toApp(r.Attributes) : undefined;
  }

  // ---- admin (tenant-wide) consent

  /** every admin consent (cached for cacheMs) */
  adminConsents(): Promise<AdminConsent[]> {
    return this.admins.get();
  }

  async adminConsentFor(clientId: string): Promise<AdminConsent | undefined> {
    return (await this.adminConsents()).find((a) => a.clientId === clientId);
  }

  /** sets what the admin allowed the client for everyone (replacing what was there), and records the change */
  async grantAdmin(clientId: string, what: ConsentScope, by: string): Promise<AdminConsent> {
    const consent: AdminConsent = { clientId, ...what, grantedBy: by, grantedAt: new Date().toISOString() };
    await sendOrUnavailable(this.s.doc, new PutCommand({ TableName: this.s.tables.meta, Item: { pk: ADMIN_PK, sk: clientId, ...consent } }));
    this.admins.drop();
    await this.log({ action: 'granted', clientId, ...what, by, at: consent.grantedAt });
    return consent;
  }

  /** the removed admin consent, or undefined when the client had none (nothing is recorded then) */
  async revokeAdmin(clientId: string, by: string): Promise<AdminConsent | undefined> {
    const r = await sendOrUnavailable<{ Attributes?: Item }>(this.s.doc, new DeleteCommand({
      TableName: this.s.tables.meta, Key: { pk: ADMIN_PK, sk: clientId }, ReturnValues: 'ALL_OLD',
    }));
    this.admins.drop();
    if (!r.Attributes) return undefined;
    const old = toAdmin(r.Attributes);
    await this.log({ action: 'revoked', clientId, scope: old.scope, claims: old.claims, resources: old.resources, by, at: new Date().toISOString() });
    return old;
  }

  /** the recorded admin consent changes, oldest first (of one client, when given) */
  async adminHistory(clientId?: string): Promise<AdminConsentChange[]> {
    const items = await queryAll(this.s, this.s.tables.meta, LOG_PK);
    return items.map(({ pk: _p, sk: _s, ...c }) => c as unknown as AdminConsentChange).filter((c) => !clientId || c.clientId === clientId);
  }

  private async log(change: AdminConsentChange): Promise<void> {
    await sendOrUnavailable(this.s.doc, new PutCommand({
      TableName: this.s.tables.meta,
      Item: { pk: LOG_PK, sk: `${change.at}#${crypto.randomBytes(4).toString('hex')}`, ...change },
    }));
  }
}
