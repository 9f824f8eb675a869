// Accounts in the `accounts` table (docs/accounts.md has the full layout).
//
//   pk "user#<sub>"              sk "_"            the account: plaintext status/version/metadata
//                                                  and `blob` (AES-256-GCM under the account's data key)
//   pk "email#<hmac>"            sk "_"            { sub, verified }  login pointer (owner)
//   pk "email#<hmac>"            sk "pending#<sub>" { sub }           claim of a held (pending) account
//   pk "phone#<hmac>"            sk "_" | "pending#<sub>"             the same for E.164 phones
//   pk "source#<hmac>"           sk "_"            { sub } | { erased } one per (source, sourceUserId)
//   pk "fed#<hmac>"              sk "_"            { sub }  one per upstream identity (connection, issuer, subject)
//   pk "merge#<id>"              sk "_"            a merge record (undo data; no personal data in clear)
//   pk "erased#<sub>"            sk "_"            tombstone of an erased account ({ sub, erasedAt }, and
//                                                  `sweep` while the items other capabilities keep for it,
//                                                  lockout and MFA, are being deleted: erasure.ts)
//
// The data key is NOT in the accounts table: table `datakeys`, pk
// "account#<sub>", sk "_", { sub, dk } (dk: the data key wrapped by the
// keyring). A read gets the item and its key item in the same turn (one round
// trip: parallel Gets); an item without a key item reads as no account (its
// key was erased: a copy of the record from a backup does not open). Items
// written before the move carry `dk` themselves: read while it is there, moved
// by migration 2 (migrations/index.ts) or by the next write of the account.
//
// There are no transactions (dynalite has none): every change of an account is
// ONE conditional write of its item on `version`; pointers are claimed with
// their own conditional writes, in an order that a re-run repairs.
import crypto from 'node:crypto';
import {
  BatchWriteCommand, DeleteCommand, GetCommand, PutCommand, QueryCommand, ScanCommand, UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import type { Storage } from '../storage/index.ts';
import { asStorageError, isConditionFailed, sendOrUnavailable } from '../storage/errors.ts';
import { KeyIntegrityError, type Keyring } from '../keys/types.ts';
import type { PasswordHasher } from './hasher.ts';
import { checkErasureHooks, type ErasureContext, type ErasureHook } from './erasure.ts';
import { blindIndex, BlobIntegrityError, DataKeyCache, dataKeyContext, open, seal } from './crypto.ts';
import {
  canonical, computeStatus, metadataOf, toAccount, type AccountItem, type Sealed,
} from './record.ts';
import {
  AccountExists, AccountNotFound, ConcurrentUpdate, isValidEmail, normalizeEmail, normalizePhone,
  FederatedIdentityTaken,
  type Account, type AccountAdmin, type AccountStore, type FederatedKey, type FederatedLink, type FederationAccounts, type AccountSummary, type ImportOutcome, type ImportRow, type ImportRowResult,
  type LinkedIdentity, type MergeRecord, type NewAccount, type Profile, type SourceMigrationStatus,
} from './types.ts';

export interface AccountStoreOptions {
  /** data-key cache bounds (defaults: 10 000 keys, 10 minutes) */
  dataKeyCache?: { maxEntries: number; maxAgeMs: number };
  /**
   * what other capabilities keep per account, deleted by erase() (erasure.ts;
   * src/erasure-hooks.ts has them all). Without hooks erase() deletes the
   * account and its pointers only.
   */
  erasureHooks?: readonly ErasureHook[];
}

/** A row that cannot be imported, with a reason that names no personal data. */
export class ImportRejected extends Error {
  override name = 'ImportRejected';
}

/** A pointer claim lost to a concurrent writer: the row is tried again. */
class RaceLost extends Error {}

interface Loaded {
  item: AccountItem;
  sealed: Sealed;
  key: Buffer;
}

/** an account's wrapped data key, in the `datakeys` table */
interface KeyItem {
  pk: string;
  sk: string;
  sub: string;
  dk: string;
}

/** the key item of an account in the `datakeys` table */
export const dataKeyPk = (sub: string) => `account#${sub}`;

interface Pointer {
  pk: string;
  sk: string;
  sub?: string;
  verified?: boolean;
  erased?: boolean;
}

interface MergeItem extends MergeRecord {
  pk: string;
  sk: string;
  /** admin merges: the merged-away account's item as it was (still encrypted) */
  fromItem?: AccountItem;
  /** admin merges: the pointers it owned, to give back on undo */
  fromPointers?: Array<{ pk: string; sk: string; verified?: boolean }>;
  identityKeys: string[];
}

const PTR = (pk: string, sk: string) => `${pk}|${sk}`;
const splitPtr = (p: string) => {
  const i = p.indexOf('|');
  return { pk: p.slice(0, i), sk: p.slice(i + 1) };
};
const union = (...lists: string[][]) => [...new Set(lists.flat())];
const HELD_DUPLICATE = 'unverified-duplicate';

/** drops an identity's legacy credential for good (the account has an argon2id secret now) */
function retireLegacy(i: LinkedIdentity): LinkedIdentity {
  if (!i.legacy) return i;
  const { legacy: _legacy, ...rest } = i;
  return { ...rest, legacyRetired: true };
}
const HELD_CLAIMED = 'identifier-claimed-by-verified-account';
const HELD_UNMERGED = 'unmerged';

/** the tombstone of an erased account; `sweep` lists the partitions still to empty (an unfinished erasure) */
interface Tombstone {
  pk: string;
  sk: string;
  sub: string;
  erasedAt: string;
  sweep?: string[];
}

const sameIdentity = (k: FederatedKey) => (l: FederatedKey) => l.connection === k.connection && l.issuer === k.issuer && l.subject === k.subject;

export class DynamoAccountStore implements AccountStore, AccountAdmin, FederationAccounts {
  private readonly storage: Storage;
  private readonly hasher: PasswordHasher;
  private readonly keyring: Keyring;
  private readonly erasureHooks: readonly ErasureHook[];
  readonly cache: DataKeyCache;
  /** what each returned Account was read from, so a follow-up write is conditional on exactly that version */
  private readonly origin = new WeakMap<Account, Loaded>();

  constructor(storage: Storage, hasher: PasswordHasher, keyring: Keyring, opts: AccountStoreOptions = {}) {
    this.storage = storage;
    this.hasher = hasher;
    this.keyring = keyring;
    checkErasureHooks(opts.erasureHooks ?? []);
    this.erasureHooks = opts.erasureHooks ?? [];
    this.cache = new DataKeyCache(opts.dataKeyCache ?? { maxEntries: 10_000, maxAgeMs: 10 * 60_000 });
  }

  private get table() {
    return this.storage.tables.accounts;
  }

  private get keyTable() {
    return this.storage.tables.datakeys;
  }

  private send<T>(cmd: object): Promise<T> {
    return sendOrUnavailable<T>(this.storage.doc, cmd);
  }

  // ---- keys of pointer items (blind indexes) ----

  private idx(kind: 'email' | 'phone' | 'source' | 'fed', v: string): string {
    return `${kind}#${blindIndex(this.keyring.blindIndexKey(), kind, v)}`;
  }

  sourcePk(source: string, sourceUserId: string): string {
    return this.idx('source', `${source}\0${sourceUserId}`);
  }

  /** the login pointers an account's identifiers ask for: one per distinct e-mail and phone */
  private loginTargets(sealed: Sealed): Array<{ pk: string; verified: boolean }> {
    const out = new Map<string, boolean>();
    const add = (p: Profile) => {
      if (p.email) out.set(this.idx('email', p.email), (out.get(this.idx('email', p.email)) ?? false) || p.emailVerified === true);
      if (p.phone) out.set(this.idx('phone', p.phone), (out.get(this.idx('phone', p.phone)) ?? false) || p.phoneVerified === true);
    };
    if (sealed.local) add(sealed.local);
    for (const i of sealed.identities) add(i.profile);
    return [...out].map(([pk, verified]) => ({ pk, verified }));
  }

  /** the "pk|sk" of the login pointers (owner, or claims when held) an account's identifiers give */
  private pointerKeys(sealed: Sealed, sub: string, held: boolean): string[] {
    return this.loginTargets(sealed).map((t) => PTR(t.pk, held ? `pending#${sub}` : '_'));
  }

  rowKeys(row: ImportRow): string[] {
    return [
      this.sourcePk(row.source, row.sourceUserId),
      ...(row.profile.email ? [this.idx('email', row.profile.email)] : []),
      ...(row.profile.phone ? [this.idx('phone', row.profile.phone)] : []),
    ];
  }

  // ---- items ----

  private async get<T>(pk: string, sk = '_', table = this.table): Promise<T | undefined> {
    const r = await this.send<{ Item?: T }>(new GetCommand({ TableName: table, Key: { pk, sk }, ConsistentRead: true }));
    return r.Item;
  }

  /**
   * The account item and its wrapped data key, read in the same turn (the
   * storage layer sends them together). `wrapped` is the key item's, or the
   * item's own `dk` while the item still carries one (written before
   * migration 2); undefined when the key is gone (erased).
   */
  private async read(sub: string): Promise<{ item?: AccountItem; wrapped?: string; keyStored: boolean }> {
    const [item, k] = await Promise.all([this.get<AccountItem>(`user#${sub}`), this.get<KeyItem>(dataKeyPk(sub), '_', this.keyTable)]);
    return { item, wrapped: k?.dk ?? item?.dk, keyStored: k !== undefined };
  }

  private async load(sub: string, onlyIf?: Promise<boolean>): Promise<Loaded | undefined> {
    const { item, wrapped } = await this.read(sub);
    // no key item: the account's data key was erased (a record restored from a backup stays shut)
    if (!item || !wrapped) return undefined;
    if (onlyIf && !(await onlyIf)) return undefined;
    const key = await this.cache.open(this.keyring, sub, wrapped);
    return { item, sealed: open<Sealed>(key, sub, item.blob), key };
  }

  /** writes an account's key item unless there is one (first step of every write that creates an account) */
  private async putKey(sub: string, wrapped: string): Promise<void> {
    try {
      await this.send(new PutCommand({
        TableName: this.keyTable, Item: { pk: dataKeyPk(sub), sk: '_', sub, dk: wrapped }, ConditionExpression: 'attribute_not_exists(pk) OR dk = :dk',
        ExpressionAttributeValues: { ':dk': wrapped },
      }));
    } catch (err) {
      if (isConditionFailed(err)) throw new AccountExists(`account ${sub} already has another data key`);
      throw err;
    }
  }

  /** the item as stored: without `dk` (its key lives in `datakeys`) */
  private static stored(item: AccountItem): Omit<AccountItem, 'dk'> {
    const { dk: _dk, ...rest } = item;
    return rest;
  }

  private view(l: Loaded): Account {
    const a = toAccount(l.item, l.sealed);
    this.origin.set(a, l);
    return a;
  }

  /** ONE conditional write of the whole item on its version. */
  private async save(l: Loaded, sealed: Sealed, patch: Partial<AccountItem> = {}): Promise<Loaded> {
    // an item from before migration 2: its key moves out first, then the item is written without it
    if (l.item.dk) await this.putKey(l.item.sub, l.item.dk);
    const item: AccountItem = {
      ...l.item, ...patch, ...metadataOf(sealed),
      blob: seal(l.key, l.item.sub, sealed),
      version: l.item.version + 1,
      updatedAt: new Date().toISOString(),
    };
    try {
      await this.send(new PutCommand({
        TableName: this.table, Item: DynamoAccountStore.stored(item),
        ConditionExpression: 'version = :v', ExpressionAttributeValues: { ':v': l.item.version },
      }));
    } catch (err) {
      if (isConditionFailed(err)) throw new ConcurrentUpdate(`account ${l.item.sub} changed concurrently (version ${l.item.version})`);
      throw err;
    }
    return { item, sealed, key: l.key };
  }

  /** read-modify-write with retries on version conflicts; `fn` returns null for "nothing to do" */
  private async mutate(sub: string, fn: (l: Loaded) => { sealed: Sealed; patch?: Partial<AccountItem> } | null): Promise<Loaded | undefined> {
    for (let attempt = 0; ; attempt++) {
      const l = await this.load(sub);
      if (!l) throw new AccountNotFound(`no account ${sub}`);
      const change = fn(l);
      if (!change) return undefined;
      try {
        return await this.save(l, change.sealed, change.patch);
      } catch (err) {
        if (!(err instanceof ConcurrentUpdate) || attempt >= 5) throw err;
      }
    }
  }

  private async insert(sub: string, key: { plaintext: Buffer; wrapped: string }, sealed: Sealed, patch: Partial<AccountItem>): Promise<Loaded> {
    const now = new Date().toISOString();
    const item: AccountItem = {
      pk: `user#${sub}`, sk: '_', sub, status: 'active', version: 1, createdAt: now, updatedAt: now,
      ptrs: [], merges: [], ...patch, ...metadataOf(sealed),
      dk: key.wrapped, blob: seal(key.plaintext, sub, sealed),
    };
    // the key item first, then the record: a record is never without its key
    await this.putKey(sub, key.wrapped);
    await this.send(new PutCommand({ TableName: this.table, Item: DynamoAccountStore.stored(item), ConditionExpression: 'attribute_not_exists(pk)' }));
    this.cache.set(sub, key.wrapped, key.plaintext);
    return { item, sealed, key: key.plaintext };
  }

  // ---- AccountStore ----

  async create(input: NewAccount): Promise<Account> {
    const sub = input.sub ?? crypto.randomUUID();
    const local: Profile = {
      email: normalizeEmail(input.email), emailVerified: input.emailVerified ?? false,
      ...(input.phone ? { phone: normalizePhone(input.phone) ?? input.phone, phoneVerified: input.phoneVerified ?? false } : {}),
      ...(input.name !== undefined ? { name: input.name } : {}),
      ...(input.givenName !== undefined ? { givenName: input.givenName } : {}),
      ...(input.familyName !== undefined ? { familyName: input.familyName } : {}),
    };
    const sealed: Sealed = { local, identities: [], ...(input.password !== undefined ? { password: await this.hasher.hash(input.password) } : {}) };
    const targets = this.loginTargets(sealed);
    const claimed: string[] = [];
    try {
      for (const t of targets) {
        await this.send(new PutCommand({
          TableName: this.table, Item: { pk: t.pk, sk: '_', sub, verified: t.verified },
          ConditionExpression: 'attribute_not_exists(pk)',
        }));
        claimed.push(t.pk);
      }
    } catch (err) {
      await Promise.all(claimed.map((pk) => this.deletePointer(pk, '_', sub)));
      if (isConditionFailed(err)) throw new AccountExists('an account with this e-mail or phone already exists');
      throw err;
    }
    try {
      const l = await this.insert(sub, await this.keyring.newDataKey(dataKeyContext(sub)), sealed, { ptrs: targets.map((t) => PTR(t.pk, '_')) });
      return this.view(l);
    } catch (err) {
      await Promise.all(claimed.map((pk) => this.deletePointer(pk, '_', sub)));
      throw err;
    }
  }

  async findBySub(sub: string, opts: { onlyIf?: Promise<boolean> } = {}): Promise<Account | undefined> {
    const l = await this.load(sub, opts.onlyIf);
    return l ? this.view(l) : undefined;
  }

  /**
   * The record's data key (opened through the cache), for secrets kept beside
   * the record and sealed with it (src/mfa: TOTP secrets, recovery-code
   * HMACs). undefined when there is no such account.
   */
  async recordKey(sub: string): Promise<Buffer | undefined> {
    const { item, wrapped } = await this.read(sub);
    return item && wrapped ? this.cache.open(this.keyring, sub, wrapped) : undefined;
  }

  /** the login pointer key of what a user typed, or undefined when it is neither an e-mail nor a phone */
  loginKey(login: string): string | undefined {
    const s = login.trim();
    if (s.includes('@')) return isValidEmail(s) ? this.idx('email', normalizeEmail(s)) : undefined;
    const phone = normalizePhone(s);
    return phone ? this.idx('phone', phone) : undefined;
  }

  async findByLogin(login: string): Promise<Account | undefined> {
    const pk = this.loginKey(login);
    if (!pk) return undefined;
    const p = await this.get<Pointer>(pk);
    return p?.sub ? this.findBySub(p.sub) : undefined;
  }

  async list({ limit = 1000 }: { limit?: number } = {}): Promise<AccountSummary[]> {
    const items = await this.scanUsers(limit);
    return items.map((i) => ({
      sub: i.sub, status: i.status, ...(i.pendingReason ? { pendingReason: i.pendingReason } : {}),
      sources: i.sources ?? [], legacySources: i.legacySources ?? [], hasPassword: i.hasPassword === true,
      lastLegacyLogin: i.lastLegacyLogin ?? {}, merges: i.merges ?? [],
      version: i.version, createdAt: i.createdAt, updatedAt: i.updatedAt,
    })).sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.sub.localeCompare(b.sub));
  }

  private async scanUsers(limit = Infinity): Promise<AccountItem[]> {
    const out: AccountItem[] = [];
    let ExclusiveStartKey: Record<string, unknown> | undefined;
    do {
      const r = await this.send<{ Items?: AccountItem[]; LastEvaluatedKey?: Record<string, unknown> }>(new ScanCommand({
        TableName: this.table, FilterExpression: 'begins_with(pk, :u)', ExpressionAttributeValues: { ':u': 'user#' },
        ProjectionExpression: 'pk, #s, #st, pendingReason, version, createdAt, updatedAt, sources, legacySources, hasPassword, lastLegacyLogin, merges',
        ExpressionAttributeNames: { '#s': 'sub', '#st': 'status' },
        ExclusiveStartKey,
      }));
      out.push(...(r.Items ?? []));
      ExclusiveStartKey = r.LastEvaluatedKey;
    } while (ExclusiveStartKey && out.length < limit);
    return out.slice(0, limit);
  }

  private loadedFor(account: Account): Loaded | undefined {
    return this.origin.get(account);
  }

  private async exactly(account: Account): Promise<Loaded> {
    const l = this.loadedFor(account) ?? await this.load(account.sub);
    if (!l) throw new AccountNotFound(`no account ${account.sub}`);
    if (l.item.version !== account.version) throw new ConcurrentUpdate(`account ${account.sub} changed concurrently (version ${account.version})`);
    return l;
  }

  async setPassword(account: Account, argon2Hash: string): Promise<Account> {
    const l = await this.exactly(account);
    return this.view(await this.save(l, { ...l.sealed, password: argon2Hash }));
  }

  async passwordHistory(sub: string): Promise<string[]> {
    return (await this.load(sub))?.sealed.passwordHistory ?? [];
  }

  async changePassword(sub: string, argon2Hash: string, opts: { keepHistory: number; expectedVersion?: number }): Promise<Account> {
    const l = await this.mutate(sub, (cur) => {
      if (opts.expectedVersion !== undefined && cur.item.version !== opts.expectedVersion) {
        throw new ConcurrentUpdate(`account ${sub} changed concurrently (version ${opts.expectedVersion})`);
      }
      const previous = [...(cur.sealed.password ? [cur.sealed.password] : []), ...(cur.sealed.passwordHistory ?? [])];
      return {
        sealed: {
          ...cur.sealed, password: argon2Hash, passwordHistory: previous.slice(0, Math.max(0, opts.keepHistory)),
          passwordChangedAt: new Date().toISOString(), identities: cur.sealed.identities.map(retireLegacy),
        },
      };
    });
    return this.view(l!);
  }

  /**
   * An administrator disables an account (status `disabled`: no sign-in, no
   * refresh, findAccount answers nothing) or enables it again (the status its
   * identities give, as computed on import and merge). Unchanged: undefined.
   */
  async setDisabled(sub: string, disabled: boolean): Promise<Account | undefined> {
    const l = await this.mutate(sub, (cur) => {
      const next = disabled ? 'disabled' : computeStatus(cur.sealed.identities, !!cur.item.pendingReason);
      return cur.item.status === next ? null : { sealed: cur.sealed, patch: { status: next } };
    });
    return l ? this.view(l) : undefined;
  }

  async completeLegacyLogin(account: Account, argon2Hash: string, used: { source: string; scheme: string }): Promise<Account> {
    const l = await this.exactly(account);
    if (l.sealed.password !== undefined) throw new ConcurrentUpdate(`account ${account.sub} already has a password`);
    const sealed: Sealed = {
      ...l.sealed,
      password: argon2Hash,
      identities: l.sealed.identities.map(retireLegacy),
    };
    const at = new Date().toISOString();
    return this.view(await this.save(l, sealed, {
      lastLegacyLogin: { ...(l.item.lastLegacyLogin ?? {}), [used.source]: at },
      passwordMigrated: { source: used.source, scheme: used.scheme, at },
    }));
  }

  // ---- federated identities (src/federation) ----
  //
  // The pointer fed#<hmac(connection, issuer, subject)> names the account;
  // the account's sealed record lists its links. A link is made pointer
  // first, record second, so only a pointer whose record names the link
  // counts; a pointer left by a half-done link or by an account that is gone
  // may be taken over.

  private fedPk(k: FederatedKey): string {
    return this.idx('fed', `${k.connection}\0${k.issuer}\0${k.subject}`);
  }

  async findByFederated(k: FederatedKey): Promise<Account | undefined> {
    const p = await this.get<Pointer>(this.fedPk(k));
    if (!p?.sub) return undefined;
    const a = await this.findBySub(p.sub);
    return a?.federated.some(sameIdentity(k)) ? a : undefined;
  }

  /** claims the identity's pointer for `sub`: free, already its own, or left without a record that names it */
  private async claimFederated(pk: string, sub: string, k: FederatedKey): Promise<void> {
    for (let attempt = 0; attempt < 3; attempt++) {
      if (await this.putPointer({ pk, sk: '_', sub }, { expr: 'attribute_not_exists(pk) OR #s = :s', values: { ':s': sub } })) return;
      const p = await this.get<Pointer>(pk);
      if (!p?.sub) continue;
      const owner = await this.findBySub(p.sub);
      if (owner?.federated.some(sameIdentity(k))) throw new FederatedIdentityTaken(`this ${k.connection} identity is linked to another account`);
      if (await this.putPointer({ pk, sk: '_', sub }, { expr: '#s = :o', values: { ':o': p.sub } })) return;
    }
    throw new FederatedIdentityTaken(`this ${k.connection} identity is being linked concurrently`);
  }

  async linkFederated(sub: string, link: FederatedKey & { via: FederatedLink['via'] }): Promise<Account> {
    const pk = this.fedPk(link);
    await this.claimFederated(pk, sub, link);
    const entry: FederatedLink = { connection: link.connection, issuer: link.issuer, subject: link.subject, via: link.via, linkedAt: new Date().toISOString() };
    const saved = await this.mutate(sub, (l) => {
      const fed = l.sealed.federated ?? [];
      if (fed.some(sameIdentity(link))) return null;
      return { sealed: { ...l.sealed, federated: [...fed, entry] }, patch: { ptrs: union(l.item.ptrs ?? [], [PTR(pk, '_')]) } };
    });
    if (saved) return this.view(saved);
    const now = await this.findBySub(sub);
    if (!now) throw new AccountNotFound(`no account ${sub}`);
    return now;
  }

  async unlinkFederated(sub: string, k: FederatedKey): Promise<boolean> {
    const pk = this.fedPk(k);
    const saved = await this.mutate(sub, (l) => {
      const fed = l.sealed.federated ?? [];
      if (!fed.some(sameIdentity(k))) return null;
      return { sealed: { ...l.sealed, federated: fed.filter((f) => !sameIdentity(k)(f)) }, patch: { ptrs: (l.item.ptrs ?? []).filter((x) => x !== PTR(pk, '_')) } };
    });
    await this.deletePointer(pk, '_', sub);
    return !!saved;
  }

  async touchFederated(account: Account, k: FederatedKey): Promise<void> {
    const l = this.origin.get(account);
    if (!l) return;
    const now = new Date().toISOString();
    const federated = (l.sealed.federated ?? []).map((f) => (sameIdentity(k)(f) ? { ...f, lastLoginAt: now } : f));
    // conditional on the version read: a concurrent change wins, and the time is simply not recorded
    await this.save(l, { ...l.sealed, federated }).catch((err) => {
      if (!(err instanceof ConcurrentUpdate)) throw err;
    });
  }

  /** `sub`: made by the caller when its events must name the account before it exists (src/events: commit) */
  async createFederated(input: { profile: Profile; link: FederatedKey & { via: FederatedLink['via'] }; sub?: string }): Promise<Account> {
    const { link } = input;
    const sub = input.sub ?? crypto.randomUUID();
    const pk = this.fedPk(link);
    // the identity first: two first sign-ins at once make one account
    if (!(await this.putPointer({ pk, sk: '_', sub }, { expr: 'attribute_not_exists(pk)' }))) {
      const existing = await this.findByFederated(link);
      if (existing) return existing;
      await this.claimFederated(pk, sub, link);
    }
    const p = input.profile;
    const local: Profile = {
      ...p,
      ...(p.email ? { email: normalizeEmail(p.email), emailVerified: p.emailVerified === true } : {}),
      ...(p.phone ? { phone: normalizePhone(p.phone) ?? p.phone, phoneVerified: p.phoneVerified === true } : {}),
    };
    const sealed: Sealed = {
      local, localOrigin: `federated:${link.connection}`, identities: [],
      federated: [{ connection: link.connection, issuer: link.issuer, subject: link.subject, via: link.via, linkedAt: new Date().toISOString() }],
    };
    // login pointers only where free: an address another account owns is stored, never taken over
    const claimed: string[] = [];
    try {
      for (const t of this.loginTargets(sealed)) {
        if (await this.putPointer({ pk: t.pk, sk: '_', sub, verified: t.verified }, { expr: 'attribute_not_exists(pk)' })) claimed.push(t.pk);
      }
      const l = await this.insert(sub, await this.keyring.newDataKey(dataKeyContext(sub)), sealed, { ptrs: [PTR(pk, '_'), ...claimed.map((c) => PTR(c, '_'))] });
      return this.view(l);
    } catch (err) {
      await Promise.all([pk, ...claimed].map((x) => this.deletePointer(x, '_', sub)));
      throw err;
    }
  }

  // ---- pointers ----

  private async deletePointer(pk: string, sk: string, sub: string): Promise<void> {
    try {
      await this.send(new DeleteCommand({
        TableName: this.table, Key: { pk, sk }, ConditionExpression: '#s = :s',
        ExpressionAttributeNames: { '#s': 'sub' }, ExpressionAttributeValues: { ':s': sub },
      }));
    } catch (err) {
      if (!isConditionFailed(err)) throw err;
    }
  }

  private async putPointer(item: Pointer, condition?: { expr: string; values?: Record<string, unknown> }): Promise<boolean> {
    try {
      await this.send(new PutCommand({
        TableName: this.table, Item: item,
        ...(condition ? {
          ConditionExpression: condition.expr, ExpressionAttributeNames: condition.expr.includes('#s') ? { '#s': 'sub' } : undefined,
          ExpressionAttributeValues: condition.values,
        } : {}),
      }));
      return true;
    } catch (err) {
      if (isConditionFailed(err)) return false;
      throw err;
    }
  }

  /**
   * Brings an account's login pointers in line with its identifiers:
   * a held (pending) account owns none and files claims; an active one claims
   * free identifiers, takes over an unverified owner's with a verified one
   * (and holds that owner), and leaves an identifier another account owns alone.
   */
  private async syncLoginPointers(l: Loaded): Promise<void> {
    const sub = l.item.sub;
    const targets = this.loginTargets(l.sealed);
    const held = !!l.item.pendingReason;
    const wanted = new Set(targets.map((t) => t.pk));
    const demote: string[] = [];
    for (const t of targets) {
      if (held) {
        await this.putPointer({ pk: t.pk, sk: `pending#${sub}`, sub });
        await this.deletePointer(t.pk, '_', sub);
        continue;
      }
      if (l.item.ptrs?.includes(PTR(t.pk, `pending#${sub}`))) await this.deletePointer(t.pk, `pending#${sub}`, sub);
      const p = await this.get<Pointer>(t.pk);
      if (!p) {
        await this.putPointer({ pk: t.pk, sk: '_', sub, verified: t.verified }, { expr: 'attribute_not_exists(pk)' });
      } else if (p.sub === sub) {
        if ((p.verified === true) !== t.verified) {
          await this.putPointer({ pk: t.pk, sk: '_', sub, verified: t.verified }, { expr: '#s = :s', values: { ':s': sub } });
        }
      } else if (t.verified && p.verified !== true && p.sub) {
        const ok = await this.putPointer({ pk: t.pk, sk: '_', sub, verified: true }, { expr: '#s = :o AND verified = :f', values: { ':o': p.sub, ':f': false } });
        if (ok) demote.push(p.sub);
      }
    }
    for (const ptr of l.item.ptrs ?? []) {
      const { pk, sk } = splitPtr(ptr);
      if ((pk.startsWith('email#') || pk.startsWith('phone#')) && !wanted.has(pk)) {
        await this.deletePointer(pk, sk, sub);
      }
    }
    for (const other of demote) await this.hold(other, HELD_CLAIMED);
  }

  /** puts an account on hold (pending): it loses its login pointers and files claims instead */
  private async hold(sub: string, reason: string): Promise<void> {
    const saved = await this.mutate(sub, (m) => (m.item.pendingReason ? null : {
      sealed: m.sealed,
      patch: {
        pendingReason: reason, status: computeStatus(m.sealed.identities, true, m.item.status),
        ptrs: union(m.item.ptrs, this.loginTargets(m.sealed).map((t) => PTR(t.pk, `pending#${sub}`))),
      },
    })).catch((err) => { if (err instanceof AccountNotFound) return undefined; throw err; });
    if (saved) await this.syncLoginPointers(saved);
  }

  // ---- import ----

  private newIdentity(row: ImportRow, via: LinkedIdentity['via'], hasPassword: boolean, mergeId?: string): LinkedIdentity {
    return {
      source: row.source, sourceUserId: row.sourceUserId, status: row.status, profile: row.profile,
      ...(row.legacy && !hasPassword ? { legacy: row.legacy } : {}),
      via, ...(mergeId ? { mergeId } : {}), verifiedLink: true, linkedAt: new Date().toISOString(),
    };
  }

  /** what a re-import of `row` would store for identity `i` (undefined: no legacy credential) */
  private importedLegacy(i: LinkedIdentity | undefined, row: ImportRow, hasPassword: boolean) {
    return hasPassword || i?.legacyRetired ? undefined : row.legacy;
  }

  private sameContent(i: LinkedIdentity, row: ImportRow, hasPassword: boolean): boolean {
    return canonical({ status: i.status, profile: i.profile, legacy: i.legacy })
      === canonical({ status: row.status, profile: row.profile, legacy: this.importedLegacy(i, row, hasPassword) });
  }

  async importRow(row: ImportRow, opts: { dryRun?: boolean } = {}): Promise<ImportRowResult> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.importOnce(row, opts.dryRun === true);
      } catch (err) {
        if (!(err instanceof RaceLost) || attempt >= 4) throw err;
      }
    }
  }

  private async importOnce(row: ImportRow, dryRun: boolean): Promise<ImportRowResult> {
    const srcPk = this.sourcePk(row.source, row.sourceUserId);
    const ptr = await this.get<Pointer>(srcPk);
    if (ptr?.erased) throw new ImportRejected('this source identity belonged to an erased account');
    if (ptr?.sub) {
      const owner = ptr.sub;
      const l = await this.load(owner);
      if (l) {
        const same = (m: Loaded) => m.sealed.identities.find((i) => i.source === row.source && i.sourceUserId === row.sourceUserId);
        const cur = same(l);
        if (cur && this.sameContent(cur, row, l.sealed.password !== undefined)) return { outcome: 'unchanged', sub: ptr.sub };
        if (dryRun) return { outcome: 'updated', sub: ptr.sub };
        const saved = await this.mutate(ptr.sub, (m) => {
          const hasPw = m.sealed.password !== undefined;
          const existing = same(m);
          if (existing && this.sameContent(existing, row, hasPw)) return null;
          const next: LinkedIdentity = existing
            ? { ...existing, status: row.status, profile: row.profile, legacy: this.importedLegacy(existing, row, hasPw) }
            : this.newIdentity(row, 'import', hasPw);
          const identities = existing ? m.sealed.identities.map((i) => (i === existing ? next : i)) : [...m.sealed.identities, next];
          const sealed = { ...m.sealed, identities };
          return {
            sealed,
            patch: {
              status: computeStatus(identities, !!m.item.pendingReason),
              ptrs: union(m.item.ptrs, [PTR(srcPk, '_')], this.pointerKeys(sealed, owner, !!m.item.pendingReason)),
            },
          };
        });
        if (saved) await this.syncLoginPointers(saved);
        return { outcome: saved ? 'updated' : 'unchanged', sub: ptr.sub };
      }
      // the pointer of a create that died before its account was written: finish it with the same sub
      if (dryRun) return { outcome: 'created' };
      return this.createFromIdentity(this.newIdentity(row, 'import', false), ptr.sub, srcPk, HELD_DUPLICATE);
    }

    const target = await this.mergeTarget(row);
    if (target) {
      if (dryRun) return { outcome: 'merged', sub: target };
      if (!(await this.putPointer({ pk: srcPk, sk: '_', sub: target }, { expr: 'attribute_not_exists(pk)' }))) throw new RaceLost();
      const mergeId = crypto.randomUUID();
      const rec: MergeItem = {
        pk: `merge#${mergeId}`, sk: '_', id: mergeId, kind: 'import', into: target,
        sources: [row.source], identityKeys: [srcPk], at: new Date().toISOString(),
      };
      await this.send(new PutCommand({ TableName: this.table, Item: rec }));
      const saved = await this.mutate(target, (m) => {
        if (m.sealed.identities.some((i) => i.source === row.source && i.sourceUserId === row.sourceUserId)) return null;
        const identities = [...m.sealed.identities, this.newIdentity(row, 'import-merge', m.sealed.password !== undefined, mergeId)];
        const sealed = { ...m.sealed, identities };
        return {
          sealed,
          patch: {
            status: computeStatus(identities, !!m.item.pendingReason),
            merges: [...(m.item.merges ?? []), mergeId],
            ptrs: union(m.item.ptrs, [PTR(srcPk, '_')], this.pointerKeys(sealed, target, !!m.item.pendingReason)),
          },
        };
      });
      if (saved) await this.syncLoginPointers(saved);
      return { outcome: 'merged', sub: target, mergeId };
    }

    if (dryRun) return { outcome: 'created' };
    const sub = crypto.randomUUID();
    if (!(await this.putPointer({ pk: srcPk, sk: '_', sub }, { expr: 'attribute_not_exists(pk)' }))) throw new RaceLost();
    return this.createFromIdentity(this.newIdentity(row, 'import', false), sub, srcPk, HELD_DUPLICATE);
  }

  /** the account a row joins: the owner of its verified e-mail, else of its verified phone, when that owner's is verified too */
  private async mergeTarget(row: ImportRow): Promise<string | undefined> {
    const tries: string[] = [];
    if (row.profile.email && row.profile.emailVerified) tries.push(this.idx('email', row.profile.email));
    if (row.profile.phone && row.profile.phoneVerified) tries.push(this.idx('phone', row.profile.phone));
    for (const pk of tries) {
      const p = await this.get<Pointer>(pk);
      if (p?.sub && p.verified === true) return p.sub;
    }
    return undefined;
  }

  /** a new account around one identity; held (pending) when one of its identifiers is an unverified duplicate */
  private async createFromIdentity(ident: LinkedIdentity, sub: string, srcPk: string, holdReason: string): Promise<{ outcome: ImportOutcome; sub: string }> {
    const sealed: Sealed = { identities: [ident] };
    const targets = this.loginTargets(sealed);
    const owners = await Promise.all(targets.map((t) => this.get<Pointer>(t.pk)));
    const held = targets.some((t, i) => {
      const p = owners[i];
      return p?.sub !== undefined && p.sub !== sub && !(t.verified && p.verified !== true);
    });
    const l = await this.insert(sub, await this.keyring.newDataKey(dataKeyContext(sub)), sealed, {
      status: computeStatus([ident], held),
      ...(held ? { pendingReason: holdReason } : {}),
      ptrs: [PTR(srcPk, '_'), ...this.pointerKeys(sealed, sub, held)],
    }).catch((err) => {
      if (isConditionFailed(err)) throw new RaceLost();
      throw err;
    });
    await this.syncLoginPointers(l);
    return { outcome: 'created', sub };
  }

  // ---- merge / unmerge ----

  async getMerge(mergeId: string): Promise<MergeRecord | undefined> {
    const m = await this.get<MergeItem>(`merge#${mergeId}`);
    if (!m) return undefined;
    return {
      id: m.id, kind: m.kind, into: m.into, ...(m.from ? { from: m.from } : {}), sources: m.sources, at: m.at,
      ...(m.undoneAt ? { undoneAt: m.undoneAt } : {}), ...(m.restoredSub ? { restoredSub: m.restoredSub } : {}),
    };
  }

  async merge(into: string, from: string, opts: { mergeId?: string } = {}): Promise<MergeRecord> {
    if (into === from) throw new AccountNotFound('an account cannot be merged into itself');
    const [a, b] = await Promise.all([this.load(into), this.load(from)]);
    if (!a) throw new AccountNotFound(`no account ${into}`);
    if (!b) throw new AccountNotFound(`no account ${from}`);
    const mergeId = opts.mergeId ?? crypto.randomUUID();
    const fromPointers: MergeItem['fromPointers'] = [];
    for (const ptr of b.item.ptrs ?? []) {
      const { pk, sk } = splitPtr(ptr);
      const p = await this.get<Pointer>(pk, sk);
      if (p?.sub === from) fromPointers.push({ pk, sk, ...(p.verified !== undefined ? { verified: p.verified } : {}) });
    }
    const now = new Date().toISOString();
    const moved: LinkedIdentity[] = [
      ...b.sealed.identities.map((i) => ({ ...i, via: 'admin-merge' as const, mergeId, verifiedLink: true, linkedAt: now })),
      ...(b.sealed.local ? [{
        source: 'local', sourceUserId: from, status: 'active' as const, profile: b.sealed.local,
        via: 'admin-merge' as const, mergeId, verifiedLink: true, linkedAt: now,
      }] : []),
    ];
    const rec: MergeItem = {
      pk: `merge#${mergeId}`, sk: '_', id: mergeId, kind: 'admin', into, from,
      sources: [...new Set(moved.map((i) => i.source))].sort(),
      identityKeys: moved.filter((i) => i.source !== 'local').map((i) => this.sourcePk(i.source, i.sourceUserId)),
      // the merged-away account's key item stays in `datakeys` for the undo (erasing `into` deletes it)
      at: now, fromItem: DynamoAccountStore.stored(b.item) as AccountItem, fromPointers,
    };
    if (b.item.dk) await this.putKey(from, b.item.dk);
    await this.send(new PutCommand({ TableName: this.table, Item: rec }));
    const saved = await this.mutate(into, (m) => {
      const have = new Set(m.sealed.identities.map((i) => `${i.source}\0${i.sourceUserId}`));
      const identities = [...m.sealed.identities, ...moved.filter((i) => !have.has(`${i.source}\0${i.sourceUserId}`))];
      const password = m.sealed.password ?? b.sealed.password;
      // an account with an argon2id secret keeps no legacy credential
      const sealed: Sealed = {
        ...m.sealed,
        identities: password === undefined ? identities : identities.map(retireLegacy),
        ...(password !== undefined ? { password } : {}),
      };
      return {
        sealed,
        patch: {
          status: identities.length ? computeStatus(identities, !!m.item.pendingReason) : m.item.status,
          merges: [...(m.item.merges ?? []), mergeId],
          ptrs: union(m.item.ptrs, fromPointers.filter((p) => p.sk === '_').map((p) => PTR(p.pk, '_')),
            this.pointerKeys(sealed, into, !!m.item.pendingReason)),
        },
      };
    });
    for (const p of fromPointers) {
      if (p.sk === '_') {
        await this.putPointer({ pk: p.pk, sk: '_', sub: into, ...(p.verified !== undefined ? { verified: p.verified } : {}) }, { expr: '#s = :s', values: { ':s': from } });
      } else {
        await this.deletePointer(p.pk, p.sk, from);
      }
    }
    await this.send(new DeleteCommand({
      TableName: this.table, Key: { pk: `user#${from}`, sk: '_' },
      ConditionExpression: 'version = :v', ExpressionAttributeValues: { ':v': b.item.version },
    })).catch((err) => {
      if (isConditionFailed(err)) throw new ConcurrentUpdate(`account ${from} changed during the merge; run the merge again`);
      throw err;
    });
    this.cache.delete(from);
    if (saved) await this.syncLoginPointers(saved);
    return (await this.getMerge(mergeId))!;
  }

  async unmerge(mergeId: string): Promise<MergeRecord> {
    const rec = await this.get<MergeItem>(`merge#${mergeId}`);
    if (!rec) throw new AccountNotFound(`no merge ${mergeId}`);
    if (rec.undoneAt) throw new AccountNotFound(`merge ${mergeId} was already undone`);
    const into = rec.into;
    let restoredSub: string;
    if (rec.kind === 'admin') {
      const fromItem = rec.fromItem;
      if (!fromItem || !rec.from) throw new AccountNotFound(`merge ${mergeId} has no undo data (erased?)`);
      const from = rec.from;
      const wrapped = (await this.get<KeyItem>(dataKeyPk(from), '_', this.keyTable))?.dk ?? fromItem.dk;
      if (!wrapped) throw new AccountNotFound(`merge ${mergeId} has no undo data (its data key is erased)`);
      const fromKey = await this.cache.open(this.keyring, from, wrapped);
      const fromSealed = open<Sealed>(fromKey, from, fromItem.blob);
      const saved = await this.mutate(into, (m) => {
        const identities = m.sealed.identities.filter((i) => i.mergeId !== mergeId);
        const sealed: Sealed = { ...m.sealed, identities };
        if (fromSealed.password !== undefined && m.sealed.password === fromSealed.password) delete sealed.password;
        return { sealed, patch: { status: identities.length ? computeStatus(identities, !!m.item.pendingReason) : m.item.status } };
      });
      await this.putKey(from, wrapped);
      await this.send(new PutCommand({
        TableName: this.table, Item: { ...DynamoAccountStore.stored(fromItem), version: fromItem.version + 1, updatedAt: new Date().toISOString() },
        ConditionExpression: 'attribute_not_exists(pk)',
      }));
      for (const p of rec.fromPointers ?? []) {
        if (p.sk === '_') {
          await this.putPointer({ pk: p.pk, sk: '_', sub: from, ...(p.verified !== undefined ? { verified: p.verified } : {}) },
            { expr: 'attribute_not_exists(pk) OR #s = :s', values: { ':s': into } });
        } else {
          await this.putPointer({ pk: p.pk, sk: p.sk, sub: from });
        }
      }
      if (saved) await this.syncLoginPointers(saved);
      restoredSub = from;
    } else {
      const a = await this.load(into);
      if (!a) throw new AccountNotFound(`no account ${into}`);
      const ident = a.sealed.identities.find((i) => i.mergeId === mergeId);
      if (!ident) throw new AccountNotFound(`the identity of merge ${mergeId} is no longer linked to ${into}`);
      const saved = await this.mutate(into, (m) => {
        const identities = m.sealed.identities.filter((i) => i.mergeId !== mergeId);
        return { sealed: { ...m.sealed, identities }, patch: { status: computeStatus(identities, !!m.item.pendingReason) } };
      });
      restoredSub = crypto.randomUUID();
      const srcPk = this.sourcePk(ident.source, ident.sourceUserId);
      await this.putPointer({ pk: srcPk, sk: '_', sub: restoredSub }, { expr: '#s = :s', values: { ':s': into } });
      const { mergeId: _m, ...rest } = ident;
      void _m;
      await this.createFromIdentity({ ...rest, via: 'import', linkedAt: new Date().toISOString() }, restoredSub, srcPk, HELD_UNMERGED);
      if (saved) await this.syncLoginPointers(saved);
    }
    await this.send(new UpdateCommand({
      TableName: this.table, Key: { pk: `merge#${mergeId}`, sk: '_' },
      UpdateExpression: 'SET undoneAt = :t, restoredSub = :r REMOVE fromItem',
      ConditionExpression: 'attribute_not_exists(undoneAt)',
      ExpressionAttributeValues: { ':t': new Date().toISOString(), ':r': restoredSub },
    }));
    return (await this.getMerge(mergeId))!;
  }

  // ---- erasure ----

  /**
   * Erases an account; false when there is no such account (nor an unfinished
   * erasure of it). Every step can be repeated, in an order that a re-run
   * finishes whatever a failed run left:
   *
   *  1. the tombstone `erased#<sub>` is written with `sweep`: the partitions
   *     the erasure hooks (lockout, MFA) name for the account, worked out from
   *     the record (its identifiers are inside the encrypted blob, which step 3
   *     shreds);
   *  2. what hooks keep outside the accounts table goes (their `erase`: the
   *     user's sessions, grants and tokens in the oidc table, outbox lines);
   *     login pointers and claims are deleted, source pointers become
   *     `erased` markers, merge records lose their undo snapshots;
   *  3. the key items go (table `datakeys`: the account's and those of accounts
   *     merged into it): from then on no copy of the record opens, backups of
   *     the accounts table included; then the account item;
   *  4. every item of every partition in `sweep` is deleted;
   *  5. `sweep` is removed from the tombstone: the erasure is complete.
   *
   * A run that stops in 1-3 leaves the account item (a re-run after step 3's
   * key deletion no longer opens the record, and uses the tombstone's
   * `sweep`), a run that stops in 4-5
   * leaves `sweep`: either way the next run finds the work and finishes it.
   * A partition in `sweep` under no prefix of this store's hooks (a store
   * built without them finishing another's run) is not touched and stays in
   * `sweep`, for a run with the hooks to finish.
   */
  async erase(sub: string): Promise<boolean> {
    const [item, tomb] = await Promise.all([this.get<AccountItem>(`user#${sub}`), this.get<Tombstone>(`erased#${sub}`)]);
    if (!item && !tomb?.sweep) return false;
    let sweep = tomb?.sweep ?? [];
    if (item) {
      const ctx = await this.erasureContext(item);
      sweep = union(sweep, ...this.erasureHooks.map((h) => h.partitions(ctx)));
      await this.send(new PutCommand({
        TableName: this.table,
        Item: { pk: `erased#${sub}`, sk: '_', sub, erasedAt: tomb?.erasedAt ?? new Date().toISOString(), sweep },
      }));
      for (const h of this.erasureHooks) await h.erase?.(ctx);
      for (const ptr of item.ptrs ?? []) {
        const { pk, sk } = splitPtr(ptr);
        if (pk.startsWith('source#')) {
          // keep a marker (a hash, no data) so a re-import does not bring the person back
          await this.putPointer({ pk, sk, erased: true }, { expr: '#s = :s', values: { ':s': sub } });
        } else {
          await this.deletePointer(pk, sk, sub);
        }
      }
      for (const id of item.merges ?? []) {
        await this.send(new UpdateCommand({
          TableName: this.table, Key: { pk: `merge#${id}`, sk: '_' }, UpdateExpression: 'REMOVE fromItem',
          ConditionExpression: 'attribute_exists(pk)',
        })).catch((err) => { if (!isConditionFailed(err)) throw err; });
      }
      // the data keys first: from here on any copy of the blob (a backup) no longer opens
      await this.batchDelete([item.sub, ...ctx.mergedSubs].map((s) => ({ pk: dataKeyPk(s), sk: '_' })), this.keyTable);
      for (const s of [item.sub, ...ctx.mergedSubs]) this.cache.delete(s);
      await this.send(new DeleteCommand({ TableName: this.table, Key: { pk: `user#${sub}`, sk: '_' } }));
    }
    // only partitions that other capabilities keep per account: never a pointer or a record
    const erasable = this.erasureHooks.flatMap((h) => h.prefixes);
    const left: string[] = [];
    for (const pk of sweep) {
      if (erasable.some((p) => pk.startsWith(p))) await this.emptyPartition(pk);
      else left.push(pk);
    }
    await this.send(new UpdateCommand({
      TableName: this.table, Key: { pk: `erased#${sub}`, sk: '_' }, ConditionExpression: 'attribute_exists(pk)',
      ...(left.length === 0 ? { UpdateExpression: 'REMOVE sweep' } : { UpdateExpression: 'SET sweep = :l', ExpressionAttributeValues: { ':l': left } }),
    }));
    return true;
  }

  /**
   * What the erasure hooks are told of this account: its sub, the subs of
   * accounts merged into it by an admin (whose undo snapshots and data keys go
   * with this erasure so they can never come back), and its e-mail addresses
   * and phone numbers (lockout's counters) while the record still opens.
   */
  private async erasureContext(item: AccountItem): Promise<ErasureContext> {
    const identifiers = new Set<string>();
    try {
      const wrapped = (await this.get<KeyItem>(dataKeyPk(item.sub), '_', this.keyTable))?.dk ?? item.dk;
      // no key: a re-run after the key went (step 3); the first run's sweep has the identifiers' partitions
      if (!wrapped) throw new BlobIntegrityError(`account ${item.sub}: no data key`);
      const sealed = open<Sealed>(await this.cache.open(this.keyring, item.sub, wrapped), item.sub, item.blob);
      for (const p of [...(sealed.local ? [sealed.local] : []), ...sealed.identities.map((i) => i.profile)]) {
        if (p.email) identifiers.add(p.email);
        if (p.phone) identifiers.add(p.phone);
      }
    } catch (err) {
      // a record that no longer opens is erased all the same; its identifier counters are left to their TTL
      if (!(err instanceof BlobIntegrityError) && !(err instanceof KeyIntegrityError)) throw err;
    }
    const subs = [item.sub];
    for (const id of item.merges ?? []) {
      const m = await this.get<MergeItem>(`merge#${id}`);
      if (m?.kind === 'admin' && m.into === item.sub && m.from && !m.undoneAt) subs.push(m.from);
    }
    return { sub: item.sub, mergedSubs: subs.slice(1), identifiers: [...identifiers], blindIndexKey: this.keyring.blindIndexKey(), storage: this.storage };
  }

  /** deletes every item under one pk; returns how many there were */
  private async emptyPartition(pk: string): Promise<number> {
    let n = 0;
    let ExclusiveStartKey: Record<string, unknown> | undefined;
    do {
      const r = await this.send<{ Items?: Array<{ pk: string; sk: string }>; LastEvaluatedKey?: Record<string, unknown> }>(new QueryCommand({
        TableName: this.table, KeyConditionExpression: 'pk = :pk', ExpressionAttributeValues: { ':pk': pk },
        ProjectionExpression: 'pk, sk', ConsistentRead: true, ExclusiveStartKey,
      }));
      const found = r.Items ?? [];
      for (let i = 0; i < found.length; i += 25) await this.batchDelete(found.slice(i, i + 25));
      n += found.length;
      ExclusiveStartKey = r.LastEvaluatedKey;
    } while (ExclusiveStartKey);
    return n;
  }

  /** one BatchWriteItem of up to 25 deletes, sending its unprocessed items again */
  private async batchDelete(keys: Array<{ pk: string; sk: string }>, table = this.table): Promise<void> {
    let requests: unknown[] = keys.map((k) => ({ DeleteRequest: { Key: { pk: k.pk, sk: k.sk } } }));
    for (let attempt = 0; requests.length > 0; attempt++) {
      if (attempt >= 8) throw asStorageError(new Error('erasure: deletes left unprocessed'));
      if (attempt > 0) await new Promise((r) => setTimeout(r, 50 * 2 ** attempt));
      const r = await this.send<{ UnprocessedItems?: Record<string, unknown[]> }>(new BatchWriteCommand({
        RequestItems: { [table]: requests as never },
      }));
      requests = r.UnprocessedItems?.[table] ?? [];
    }
  }

  // ---- migration status ----

  async migrationStatus(sunset: Record<string, string> = {}): Promise<SourceMigrationStatus[]> {
    const per = new Map<string, SourceMigrationStatus>();
    const row = (source: string) => {
      let r = per.get(source);
      if (!r) {
        r = { source, accounts: 0, argon2id: 0, legacy: 0, noPassword: 0 };
        per.set(source, r);
      }
      return r;
    };
    for (const i of await this.scanUsers()) {
      for (const source of i.sources ?? []) {
        const r = row(source);
        r.accounts++;
        if (i.hasPassword) r.argon2id++;
        else if ((i.legacySources ?? []).length > 0) r.legacy++;
        else r.noPassword++;
      }
      for (const [source, at] of Object.entries(i.lastLegacyLogin ?? {})) {
        const r = row(source);
        if (!r.lastLegacyLogin || at > r.lastLegacyLogin) r.lastLegacyLogin = at;
      }
    }
    for (const [source, at] of Object.entries(sunset)) row(source).sunset = at;
    return [...per.values()].sort((a, b) => a.source.localeCompare(b.source));
  }
}
