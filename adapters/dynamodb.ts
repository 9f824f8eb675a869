// oidc-provider storage adapter on DynamoDB (one table, `oidc`).
//
//   model item        pk "<Model>#<id>"              sk "_"             payload (JSON text), expiresAt?, consumed?, grantId?
//   uid pointer       pk "uid#<Model>#<uid>"         sk "_"             ref = id of the item (Session), expiresAt?
//   user code pointer pk "userCode#<Model>#<code>"   sk "_"             ref = id of the item (DeviceCode), expiresAt?
//   grant membership  pk "grant#<grantId>"           sk "<Model>#<id>"  expiresAt?; lets revokeByGrantId Query instead of Scan
//   account index     pk "account#<accountId>"       sk "<Model>#<id>"  expiresAt?; Session and Grant items of an account,
//                                                                       so erasing it Queries instead of Scanning (eraseAccount)
//
// Pointers are per model, so one model's uid or user code never shadows
// another's. Grant membership is kept for the models oidc-provider revokes by
// grant id (GRANT_MODELS, as in its memory adapter).
//
// The payload is stored as JSON text so that whatever oidc-provider produces
// round-trips exactly (DynamoDB maps would refuse empty sets, limit nesting to
// 32 levels and turn numbers into decimals). `expiresAt` is epoch seconds,
// rounded up, so an item lives at least `expiresIn` seconds and less than one
// second more; it is DynamoDB's TTL attribute, but TTL deletes lazily (and
// dynalite not at all), so every read is ConsistentRead and ignores expired
// items, and an expired item cannot be consumed.
//
// There are no transactions (dynalite has no TransactWriteItems). A uid
// pointer and its item (a Session) go in ONE BatchWriteItem, and the save
// resolves only when both landed. A crash between the two leaves a pointer to
// nothing or an item no pointer leads to: either way the session reads as not
// found, as if the save had not happened, and the failed save failed its
// request; an orphan item expires by TTL. User code pointers (DeviceCode, whose
// code is shown before the device flow saves again) are still written before
// the item. Reads through a pointer check that the item still carries that
// uid / user code, so stale pointers read as not found. `destroy` removes the
// item's pointers and membership too.
//
// Hints (per process, bounded, never trusted): the uid each item was last seen
// with, and the item each uid pointer last led to. findByUid reads the pointer
// and the hinted item at once and uses the item only when the pointer still
// leads to it (one round trip instead of two); destroy deletes the item and
// the hinted uid pointer at once (the pointer delete is conditional on still
// leading to this item). Without a hint, or with a stale one, both fall back
// to the sequential reads and deletes, so another process's writes are never
// missed.
//
// Grant membership: for the tokens whose value oidc-provider hands out only
// after the save resolves (ISSUED_ON_SAVE: access tokens, refresh tokens,
// authorization codes), membership and item go in ONE BatchWriteItem. Its
// puts may land in either order, but the save resolves only when both did:
// if either fails the request fails and the value is never handed out, so no
// token anyone holds can lack the membership its revocation needs (and an
// orphan that nobody holds expires by TTL). Models whose items are saved again
// after their value went out (a DeviceCode learns its grantId later) keep the
// order: membership first, then the item.
//
// Account index: a Session or Grant saved with an accountId also writes
// `account#<accountId>` / `<Model>#<id>` with the item's TTL, in the same
// BatchWriteItem as the item (no extra round trip; one more item written per
// Session and Grant save, the same key rewritten each time). It is a hint,
// checked on use: eraseAccount reads each member and acts only when its
// payload still names the account (a session that moved to another account
// is left alone), then deletes the index. Tokens are reached through their
// grants (the indexed Grants and every grant a session's `authorizations`
// name), through the grant membership above.
//
// `consume` is one conditional update: of concurrent redemptions exactly one
// wins; a loser that finds the item already consumed treats it as reuse,
// revokes everything of the grant (and the Grant) and gets invalid_grant.
//
// Item size is checked here against DynamoDB's 400 KB limit in UTF-8 bytes
// (dynalite counts UTF-16 code units and would accept items DynamoDB refuses);
// a payload too large throws PayloadTooLarge before anything is written.
import {
  BatchWriteCommand, DeleteCommand, GetCommand, PutCommand, QueryCommand, ScanCommand, UpdateCommand,
  type DynamoDBDocumentClient,
} from '@aws-sdk/lib-dynamodb';
import type { Adapter, AdapterPayload } from 'oidc-provider';
import { errors } from 'oidc-provider';
import { ServiceUnavailable, isConditionFailed, sendOrUnavailable } from '../src/storage/errors.ts';
import { TtlCache } from '../src/storage/ttl-cache.ts';

/** the models oidc-provider calls revokeByGrantId on (lib/helpers/revoke.js) */
const GRANT_MODELS = new Set([
  'AccessToken', 'AuthorizationCode', 'RefreshToken', 'DeviceCode',
  'BackchannelAuthenticationRequest', 'PreAuthorizedCode',
]);

/**
 * Models whose value oidc-provider hands out only once the first save
 * resolved, and which it never saves again with a new grantId: their
 * membership and item can be written together (see the header).
 */
const ISSUED_ON_SAVE = new Set(['AccessToken', 'AuthorizationCode', 'RefreshToken']);

/** models indexed by account (header: account index) */
const ACCOUNT_INDEXED = new Set(['Session', 'Grant']);

/** DynamoDB's item size limit, in bytes */
export const MAX_ITEM_BYTES = 400 * 1024;
/**
 * The longest id (client_id, code, token value, resource indicator, uid) that
 * is looked up: DynamoDB refuses partition keys over 2048 bytes with a
 * ValidationException, which would read as an outage (503). Ours are far
 * shorter; a longer one from a request is simply not found.
 */
export const MAX_ID_BYTES = 1024;

/** The payload would make an item larger than DynamoDB accepts; nothing was written. */
export class PayloadTooLarge extends Error {
  override name = 'PayloadTooLarge';
}

interface Item {
  pk: string;
  sk: string;
  payload?: string;
  expiresAt?: number;
  consumed?: number;
  ref?: string;
  grantId?: string;
}

type Key = { pk: string; sk: string };

const nowSeconds = () => Math.floor(Date.now() / 1000);
const expired = (item: Item) => item.expiresAt !== undefined && item.expiresAt <= nowSeconds();

/** DynamoDB's size of an item of string and number attributes (numbers at their 21-byte maximum) */
function itemBytes(item: Record<string, unknown>): number {
  let size = 0;
  for (const [name, value] of Object.entries(item)) {
    if (value === undefined) continue;
    size += Buffer.byteLength(name, 'utf8');
    size += typeof value === 'string' ? Buffer.byteLength(value, 'utf8') : 21;
  }
  return size;
}

/** how many ids and uids each map of hints keeps, and for how long (see the header) */
const MAX_HINTS = 10_000;
const HINT_TTL_MS = 3_600_000;


export interface DynamoAdapterOptions {
  doc: DynamoDBDocumentClient;
  table: string;
}

/**
 * Every stored item of one model (its payloads), by a filtered Scan: for
 * listings (the CLI's clients and resource servers) and the rare reads that
 * need all resource servers (src/keys: the longest token lifetime). Errors
 * are the client's own, not ServiceUnavailable.
 */
export async function scanModel({ doc, table }: DynamoAdapterOptions, model: string): Promise<AdapterPayload[]> {
  const out: AdapterPayload[] = [];
  let ExclusiveStartKey: Record<string, unknown> | undefined;
  do {
    const r = await doc.send(new ScanCommand({
      TableName: table,
      FilterExpression: 'begins_with(pk, :m) AND sk = :s',
      ExpressionAttributeValues: { ':m': `${model}#`, ':s': '_' },
      ExclusiveStartKey,
    }));
    for (const item of r.Items ?? []) out.push(JSON.parse(item.payload as string) as AdapterPayload);
    ExclusiveStartKey = r.LastEvaluatedKey;
  } while (ExclusiveStartKey);
  return out;
}

type Send = <T>(cmd: object) => Promise<T>;

/** the item operations the adapter and eraseAccount share, over one table and one way of sending */
function itemOps(table: string, send: Send) {
  async function getItem(pk: string): Promise<Item | undefined> {
    const r = await send<{ Item?: Item }>(new GetCommand({ TableName: table, Key: { pk, sk: '_' }, ConsistentRead: true }));
    const item = r.Item;
    if (!item || expired(item)) return undefined;
    return item;
  }

  /** deletes the pointer `pk` only while it still refers to `id` */
  async function deletePointer(pk: string, id: string): Promise<void> {
    try {
      await send(new DeleteCommand({
        TableName: table,
        Key: { pk, sk: '_' },
        ConditionExpression: '#ref = :id',
        ExpressionAttributeNames: { '#ref': 'ref' },
        ExpressionAttributeValues: { ':id': id },
      }));
    } catch (err) {
      if (!isConditionFailed(err)) throw err;
    }
  }

  type WriteRequest = { DeleteRequest: { Key: Key } } | { PutRequest: { Item: Item } };

  /** BatchWriteItem in chunks of 25, retrying what DynamoDB leaves unprocessed */
  async function batchWrite(all: WriteRequest[]): Promise<void> {
    for (let i = 0; i < all.length; i += 25) {
      let requests = all.slice(i, i + 25);
      for (let attempt = 0; requests.length > 0; attempt++) {
        const r = await send<{ UnprocessedItems?: Record<string, WriteRequest[]> }>(
          new BatchWriteCommand({ RequestItems: { [table]: requests } }),
        );
        requests = r.UnprocessedItems?.[table] ?? [];
        if (requests.length && attempt > 8) throw new ServiceUnavailable(undefined, { cause: new Error('BatchWrite left unprocessed items') });
        if (requests.length) await new Promise((res) => setTimeout(res, 20 * 2 ** attempt));
      }
    }
  }

  function deleteKeys(keys: Key[]): Promise<void> {
    return batchWrite(keys.map((Key) => ({ DeleteRequest: { Key } })));
  }

  /** the items (and their membership entries) of a grant, optionally of one model only */
  async function grantMembers(grantId: string, model?: string): Promise<Key[]> {
    const keys: Key[] = [];
    let ExclusiveStartKey: Record<string, unknown> | undefined;
    do {
      const r = await send<{ Items?: Item[]; LastEvaluatedKey?: Record<string, unknown> }>(new QueryCommand({
        TableName: table,
        KeyConditionExpression: model ? '#pk = :pk AND begins_with(#sk, :m)' : '#pk = :pk',
        ExpressionAttributeNames: { '#pk': 'pk', '#sk': 'sk' },
        ExpressionAttributeValues: model ? { ':pk': `grant#${grantId}`, ':m': `${model}#` } : { ':pk': `grant#${grantId}` },
        ProjectionExpression: '#pk, #sk',
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

  return { getItem, deletePointer, batchWrite, deleteKeys, grantMembers, revokeGrant };
}

/** the account index item of a Session or Grant save (header), or undefined */
function accountIndex(model: string, pk: string, payload: AdapterPayload, expiresAt: number | undefined): Item | undefined {
  if (!ACCOUNT_INDEXED.has(model) || typeof payload.accountId !== 'string' || !payload.accountId) return undefined;
  const item: Item = { pk: `account#${payload.accountId}`, sk: pk, expiresAt };
  return Buffer.byteLength(item.pk, 'utf8') > MAX_ID_BYTES ? undefined : item;
}

/**
 * Deletes what the oidc table holds for an account (erasure, src/accounts):
 * its sessions (with their uid pointers), its grants and every token issued
 * under them, found through the account index (no Scan; header). Safe to
 * repeat. Failures are StorageUnavailable (the erasure is run again).
 * Returns how many sessions and grants went.
 */
export async function eraseAccount({ doc, table }: DynamoAdapterOptions, accountId: string): Promise<{ sessions: number; grants: number }> {
  const send: Send = (cmd) => sendOrUnavailable(doc, cmd);
  const ops = itemOps(table, send);
  const index = await accountIndexKeys(send, table, accountId);
  const grants = new Set<string>();
  let sessions = 0;
  for (const { sk } of index) {
    const item = await ops.getItem(sk);
    const payload = item?.payload ? JSON.parse(item.payload) as AdapterPayload : undefined;
    if (payload?.accountId !== accountId) continue;
    const id = sk.slice(sk.indexOf('#') + 1);
    if (sk.startsWith('Grant#')) {
      grants.add(id);
      continue;
    }
    // a session: the grants of its authorizations, then the session and its uid pointer
    for (const a of Object.values((payload.authorizations ?? {}) as Record<string, { grantId?: string }>)) if (a?.grantId) grants.add(a.grantId);
    if (typeof payload.uid === 'string') await ops.deletePointer(`uid#Session#${payload.uid}`, id);
    await ops.deleteKeys([{ pk: sk, sk: '_' }]);
    sessions++;
  }
  for (const g of grants) await ops.revokeGrant(g);
  await ops.deleteKeys(index);
  return { sessions, grants: grants.size };
}

/** one Session or Grant of an account, as the admin console lists it (no token values) */
export interface AccountEntry {
  kind: 'session' | 'grant';
  id: string;
  /** sessions: the clients signed in through it; grants: the client */
  clients: string[];
  /** epoch seconds: when the session's sign-in happened / the grant was made */
  at?: number;
  /** epoch seconds */
  expiresAt?: number;
  /** sessions: the authentication methods of the sign-in */
  amr?: string[];
}

async function accountIndexKeys(send: Send, table: string, accountId: string): Promise<Key[]> {
  const index: Key[] = [];
  let ExclusiveStartKey: Record<string, unknown> | undefined;
  do {
    const r = await send<{ Items?: Key[]; LastEvaluatedKey?: Record<string, unknown> }>(new QueryCommand({
      TableName: table, KeyConditionExpression: '#pk = :pk', ExpressionAttributeNames: { '#pk': 'pk', '#sk': 'sk' },
      ExpressionAttributeValues: { ':pk': `account#${accountId}` }, ProjectionExpression: '#pk, #sk', ConsistentRead: true, ExclusiveStartKey,
    }));
    index.push(...(r.Items ?? []));
    ExclusiveStartKey = r.LastEvaluatedKey;
  } while (ExclusiveStartKey);
  return index;
}

/** the live sessions and grants of an account, through the account index (no Scan; header) */
export async function listAccountEntries({ doc, table }: DynamoAdapterOptions, accountId: string): Promise<AccountEntry[]> {
  const send: Send = (cmd) => sendOrUnavailable(doc, cmd);
  const ops = itemOps(table, send);
  const out: AccountEntry[] = [];
  for (const { sk } of await accountIndexKeys(send, table, accountId)) {
    const item = await ops.getItem(sk);
    const payload = item?.payload ? JSON.parse(item.payload) as AdapterPayload : undefined;
    if (!item || payload?.accountId !== accountId) continue;
    const id = sk.slice(sk.indexOf('#') + 1);
    if (sk.startsWith('Grant#')) {
      out.push({ kind: 'grant', id, clients: typeof payload.clientId === 'string' ? [payload.clientId] : [], at: payload.iat as number | undefined, expiresAt: item.expiresAt });
    } else {
      out.push({
        kind: 'session', id, clients: Object.keys((payload.authorizations ?? {}) as object), at: (payload.loginTs ?? payload.iat) as number | undefined,
        expiresAt: item.expiresAt, ...(Array.isArray(payload.amr) ? { amr: payload.amr as string[] } : {}),
      });
    }
  }
  return out.sort((a, b) => (b.at ?? 0) - (a.at ?? 0) || a.id.localeCompare(b.id));
}

/**
 * Revokes one session (its grants and their tokens go with it, and the session
 * and its uid pointer) or one grant (and its tokens) of an account. False when
 * the account has no such session or grant.
 */
export async function revokeAccountEntry({ doc, table }: DynamoAdapterOptions, accountId: string, kind: 'session' | 'grant', id: string): Promise<boolean> {
  const send: Send = (cmd) => sendOrUnavailable(doc, cmd);
  const ops = itemOps(table, send);
  const pk = `${kind === 'session' ? 'Session' : 'Grant'}#${id}`;
  if (Buffer.byteLength(pk, 'utf8') > MAX_ID_BYTES) return false;
  const item = await ops.getItem(pk);
  const payload = item?.payload ? JSON.parse(item.payload) as AdapterPayload : undefined;
  if (!item || payload?.accountId !== accountId) return false;
  if (kind === 'grant') {
    await ops.revokeGrant(id);
  } else {
    for (const a of Object.values((payload.authorizations ?? {}) as Record<string, { grantId?: string }>)) if (a?.grantId) await ops.revokeGrant(a.grantId);
    if (typeof payload.uid === 'string') await ops.deletePointer(`uid#Session#${payload.uid}`, id);
    await ops.deleteKeys([{ pk, sk: '_' }]);
  }
  await ops.deleteKeys([{ pk: `account#${accountId}`, sk: pk }]);
  return true;
}

export function createDynamoAdapter({ doc, table }: DynamoAdapterOptions): new (name: string) => Adapter {
  // Every DynamoDB failure other than a lost condition becomes a typed storage
  // error that oidc-provider renders as 503 temporarily_unavailable.
  async function send<T>(cmd: object): Promise<T> {
    try {
      return await doc.send(cmd as never) as T;
    } catch (err) {
      if (isConditionFailed(err)) throw err;
      throw new ServiceUnavailable(undefined, { cause: err });
    }
  }
  const { getItem, deletePointer, batchWrite, deleteKeys, grantMembers, revokeGrant } = itemOps(table, send);

  /** item key → the uid it carried; uid pointer key → the item id it led to (hints, see the header) */
  const uidOfItem = new TtlCache<string>({ ttlMs: HINT_TTL_MS, maxEntries: MAX_HINTS });
  const itemOfUid = new TtlCache<string>({ ttlMs: HINT_TTL_MS, maxEntries: MAX_HINTS });
  const remember = (itemKey: string, uidKey: string, id: string) => {
    uidOfItem.set(itemKey, uidKey);
    itemOfUid.set(uidKey, id);
  };

  return class DynamoAdapter implements Adapter {
    readonly name: string;

    constructor(name: string) {
      this.name = name;
    }

    private key(id: string): string {
      return `${this.name}#${id}`;
    }

    /** an id (from a request: client_id, code, token, resource, uid) too long for a DynamoDB key is no item at all */
    private static oversized(id: unknown): boolean {
      return typeof id !== 'string' || Buffer.byteLength(id, 'utf8') > MAX_ID_BYTES;
    }

    private uidKey(uid: string): string {
      return `uid#${this.name}#${uid}`;
    }

    private userCodeKey(userCode: string): string {
      return `userCode#${this.name}#${userCode}`;
    }

    async upsert(id: string, payload: AdapterPayload, expiresIn?: number): Promise<void> {
      const expiresAt = expiresIn ? Math.ceil(Date.now() / 1000 + expiresIn) : undefined;
      const pk = this.key(id);
      const item: Item = { pk, sk: '_', payload: JSON.stringify(payload), expiresAt };
      if (payload.grantId) item.grantId = payload.grantId;
      // a consumed payload written back stays consumed
      if (typeof payload.consumed === 'number') item.consumed = payload.consumed;
      const size = itemBytes(item as unknown as Record<string, unknown>);
      if (size > MAX_ITEM_BYTES) {
        throw new PayloadTooLarge(`${this.name} payload makes a ${size}-byte item, DynamoDB takes at most ${MAX_ITEM_BYTES}`);
      }
      const membership: Item | undefined = payload.grantId && GRANT_MODELS.has(this.name)
        ? { pk: `grant#${payload.grantId}`, sk: pk, expiresAt }
        : undefined;
      // one BatchWriteItem with the item (header): the membership of a token
      // handed out only after this resolves, or a Session's uid pointer
      const uidKey = typeof payload.uid === 'string' ? this.uidKey(payload.uid) : undefined;
      const companion: Item | undefined = payload.userCode ? undefined
        : membership && !uidKey ? (ISSUED_ON_SAVE.has(this.name) ? membership : undefined)
        : uidKey && !membership ? { pk: uidKey, sk: '_', ref: id, expiresAt }
        : undefined;
      // a Session's or Grant's account index item goes in the same request (header)
      const indexed = accountIndex(this.name, pk, payload, expiresAt);
      if (companion || (indexed && !uidKey && !payload.userCode && !membership)) {
        const companions = [companion, indexed].filter((c): c is Item => c !== undefined);
        await batchWrite([...companions.map((c) => ({ PutRequest: { Item: c } })), { PutRequest: { Item: item } }]);
        if (uidKey) remember(pk, uidKey, id);
        return;
      }
      // user code pointers and grant membership first: a pointer to a missing
      // item reads as "not found", while a missing pointer would hide a stored item.
      const side: Promise<unknown>[] = [];
      if (uidKey) side.push(send(new PutCommand({ TableName: table, Item: { pk: uidKey, sk: '_', ref: id, expiresAt } })));
      if (payload.userCode) {
        side.push(send(new PutCommand({ TableName: table, Item: { pk: this.userCodeKey(payload.userCode as string), sk: '_', ref: id, expiresAt } })));
      }
      if (membership) side.push(send(new PutCommand({ TableName: table, Item: membership })));
      if (indexed) side.push(send(new PutCommand({ TableName: table, Item: indexed })));
      await Promise.all(side);
      await send(new PutCommand({ TableName: table, Item: item }));
    }

    async find(id: string): Promise<AdapterPayload | undefined> {
      if (DynamoAdapter.oversized(id)) return undefined;
      const pk = this.key(id);
      const item = await getItem(pk);
      if (!item?.payload) return undefined;
      const payload = JSON.parse(item.payload) as AdapterPayload;
      if (item.consumed !== undefined) payload.consumed = item.consumed;
      if (typeof payload.uid === 'string') remember(pk, this.uidKey(payload.uid), id);
      return payload;
    }

    async findByUid(uid: string): Promise<AdapterPayload | undefined> {
      if (DynamoAdapter.oversized(uid)) return undefined;
      const uidKey = this.uidKey(uid);
      const hinted = itemOfUid.get(uidKey)?.value;
      // the pointer and the item it led to last time, at once (header)
      const [ptr, speculative] = await Promise.all([getItem(uidKey), hinted ? this.find(hinted) : undefined]);
      if (!ptr?.ref) {
        itemOfUid.delete(uidKey);
        return undefined;
      }
      const payload = hinted === ptr.ref ? speculative : await this.find(ptr.ref);
      return payload?.uid === uid ? payload : undefined;
    }

    async findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
      if (DynamoAdapter.oversized(userCode)) return undefined;
      const ptr = await getItem(this.userCodeKey(userCode));
      if (!ptr?.ref) return undefined;
      const payload = await this.find(ptr.ref);
      return payload?.userCode === userCode ? payload : undefined;
    }

    async consume(id: string): Promise<void> {
      if (DynamoAdapter.oversized(id)) throw new errors.InvalidGrant(`${this.name === 'RefreshToken' ? 'refresh token' : 'grant'} not found`);
      const now = nowSeconds();
      try {
        await send(new UpdateCommand({
          TableName: table,
          Key: { pk: this.key(id), sk: '_' },
          // `consumed` is a DynamoDB reserved word: always go through names
          UpdateExpression: 'SET #consumed = :now',
          ConditionExpression: 'attribute_exists(#pk) AND attribute_not_exists(#consumed)'
            + ' AND (attribute_not_exists(#expiresAt) OR #expiresAt > :now)',
          ExpressionAttributeNames: { '#pk': 'pk', '#consumed': 'consumed', '#expiresAt': 'expiresAt' },
          ExpressionAttributeValues: { ':now': now },
        }));
      } catch (err) {
        if (!isConditionFailed(err)) throw err;
        // Already consumed (a concurrent or repeated redemption): treat it as
        // reuse, revoke everything of the grant, refuse this request. Missing
        // or expired items are refused without revoking anything.
        const r = await send<{ Item?: Item }>(new GetCommand({ TableName: table, Key: { pk: this.key(id), sk: '_' }, ConsistentRead: true }));
        const item = r.Item;
        if (item?.consumed !== undefined && item.grantId && !expired(item)) await revokeGrant(item.grantId);
        throw new errors.InvalidGrant(`${this.name === 'RefreshToken' ? 'refresh token' : 'grant'} already used`);
      }
    }

    /**
     * A consumed token presented again within the reuse grace (src/provider/
     * token-pipeline.ts): un-consumes it ONCE, conditional on the consumption
     * being the one that was read and on no grace before; true when this call
     * won. The redemption then consumes it again, as any redemption does.
     */
    async revive(id: string, consumedAt: number): Promise<boolean> {
      try {
        await send(new UpdateCommand({
          TableName: table,
          Key: { pk: this.key(id), sk: '_' },
          UpdateExpression: 'REMOVE #consumed SET #graced = :now',
          ConditionExpression: '#consumed = :c AND attribute_not_exists(#graced)',
          ExpressionAttributeNames: { '#consumed': 'consumed', '#graced': 'graced' },
          ExpressionAttributeValues: { ':c': consumedAt, ':now': nowSeconds() },
        }));
        return true;
      } catch (err) {
        if (isConditionFailed(err)) return false;
        throw err;
      }
    }

    async destroy(id: string): Promise<void> {
      if (DynamoAdapter.oversized(id)) return;
      const pk = this.key(id);
      // the item and the uid pointer it was last seen with, at once (header)
      const hintedUid = uidOfItem.get(pk)?.value;
      const [r] = await Promise.all([
        send<{ Attributes?: Item }>(new DeleteCommand({ TableName: table, Key: { pk, sk: '_' }, ReturnValues: 'ALL_OLD' })),
        hintedUid ? deletePointer(hintedUid, id) : undefined,
      ]);
      uidOfItem.delete(pk);
      // the pointer may lead to a newer item already (a Session saved under a new id beside this delete)
      if (hintedUid && itemOfUid.get(hintedUid)?.value === id) itemOfUid.delete(hintedUid);
      if (!r.Attributes?.payload) return;
      const old = JSON.parse(r.Attributes.payload) as AdapterPayload;
      const cleanup: Promise<unknown>[] = [];
      if (old.uid && this.uidKey(old.uid as string) !== hintedUid) cleanup.push(deletePointer(this.uidKey(old.uid as string), id));
      if (old.userCode) cleanup.push(deletePointer(this.userCodeKey(old.userCode as string), id));
      if (old.grantId && GRANT_MODELS.has(this.name)) {
        cleanup.push(send(new DeleteCommand({ TableName: table, Key: { pk: `grant#${old.grantId}`, sk: this.key(id) } })));
      }
      await Promise.all(cleanup);
    }

    async revokeByGrantId(grantId: string): Promise<void> {
      if (!GRANT_MODELS.has(this.name) || DynamoAdapter.oversized(grantId)) return;
      await deleteKeys(await grantMembers(grantId, this.name));
    }
  };
}
