// The events table: every event is stored here before any sink sees it, so
// this table is both the outbox and the audit log (docs/events.md).
//
//   pk "E#<id>", sk "_"
//   ev        the CloudEvent
//   st        prepared | ready | failing | delivered
//   ref, cid  (prepared) the item the change wrote first, and the marker it carries
//   pq, pt    index `pending`: "P<shard>", "<time>#<id>" — while not delivered
//   lm, lt    index `log`: "<yyyy-mm>", "<time>#<id>" — once recorded (not while prepared)
//   subj      index `subject`: the event subject, with lt
//   type, client, actor   for filters
//   lu, lo    lease: until (epoch ms) and owner, while a publisher delivers it
//   n, next, err          failed attempts, when to try again (epoch ms), the last error
//   dlv       when it was delivered
//   expiresAt retention (EVENTS_RETENTION_DAYS)
//
// Stored with the change: commit() runs the state write inside a write scope
// (src/storage/write-scope.ts). Just before the change's first write, the
// events are put here as `prepared`, naming that item and the scope's marker;
// the write then carries the marker in the same conditional write. After it:
// success → `ready`; a failed write → the prepared events are deleted. A
// process that dies in between leaves `prepared` events, which a publisher
// settles after EVENTS_RECOVERY_SECONDS by reading the one item they name:
// marker there (or, for a delete, the item gone) → ready; item absent → the
// write never happened → deleted; anything else (the item rewritten since
// without the marker) → delivered, marked `data.recovery: "uncertain"`.
import crypto from 'node:crypto';
import { DeleteCommand, GetCommand, PutCommand, QueryCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { MARKER_ATTRIBUTE, type WriteRef } from '../storage/write-scope.ts';
import type { AuditPage, AuditQuery, CloudEvent } from './types.ts';

export const SHARDS = 4;
const DAY_MS = 86_400_000;

export type EventState = 'prepared' | 'ready' | 'failing' | 'delivered';

export interface StoredEvent {
  ev: CloudEvent;
  st: EventState;
  ref?: WriteRef;
  cid?: string;
  lu?: number;
  lo?: string;
  n?: number;
  next?: number;
  err?: string;
}

export class EventsInvalid extends Error {}

const conditionFailed = (err: unknown) => (err as Error)?.name === 'ConditionalCheckFailedException';

function shardOf(id: string): string {
  return `P${crypto.createHash('sha256').update(id).digest()[0] % SHARDS}`;
}

const sortKey = (e: CloudEvent) => `${e.time}#${e.id}`;
const monthOf = (iso: string) => iso.slice(0, 7);

function encodeCursor(c: { m: string; k?: Record<string, unknown> }): string {
  return Buffer.from(JSON.stringify(c)).toString('base64url');
}

function decodeCursor(s: string): { m: string; k?: Record<string, unknown> } {
  try {
    const c = JSON.parse(Buffer.from(s, 'base64url').toString('utf8')) as { m?: unknown; k?: unknown };
    if (typeof c.m === 'string' && /^\d{4}-\d{2}$/.test(c.m) && (c.k === undefined || (typeof c.k === 'object' && c.k !== null))) {
      return { m: c.m, k: c.k as Record<string, unknown> | undefined };
    }
  } catch { /* below */ }
  throw new EventsInvalid('cursor is not one this server gave out');
}

function prevMonth(m: string): string {
  const [y, mo] = m.split('-').map(Number);
  return mo === 1 ? `${y - 1}-12` : `${y}-${String(mo - 1).padStart(2, '0')}`;
}

export interface EventStoreOptions {
  retentionDays: number;
}

export class EventStore {
  readonly doc: DynamoDBDocumentClient;
  readonly table: string;
  private readonly retentionDays: number;

  constructor(doc: DynamoDBDocumentClient, table: string, opts: EventStoreOptions) {
    this.doc = doc;
    this.table = table;
    this.retentionDays = opts.retentionDays;
  }

  private recordedAttributes(e: CloudEvent): Record<string, unknown> {
    const d = e.data;
    return {
      lm: monthOf(e.time), lt: sortKey(e), type: e.type,
      ...(e.subject ? { subj: e.subject } : {}),
      ...(typeof d.clientId === 'string' ? { client: d.clientId } : e.type.startsWith('client.') && e.subject ? { client: e.subject } : {}),
      ...(typeof d.actor === 'string' ? { actor: d.actor } : {}),
      expiresAt: Math.floor((Date.parse(e.time) + this.retentionDays * DAY_MS) / 1000),
    };
  }

  /** prepared events, before the change's first write */
  async prepare(events: CloudEvent[], ref: WriteRef, marker: string): Promise<void> {
    await Promise.all(events.map((e) => this.doc.send(new PutCommand({
      TableName: this.table,
      Item: {
        pk: `E#${e.id}`, sk: '_', ev: e, st: 'prepared', ref, cid: marker, pq: shardOf(e.id), pt: sortKey(e),
        expiresAt: Math.floor((Date.parse(e.time) + this.retentionDays * DAY_MS) / 1000),
      },
    }))));
  }

  /**
   * Records events as ready (or delivered, with no sink). With `lease`, the
   * caller holds them for delivery (the publisher's fast path).
   */
  async record(events: CloudEvent[], opts: { lease?: { owner: string; until: number }; delivered?: boolean } = {}): Promise<void> {
    await Promise.all(events.map((e) => this.doc.send(new PutCommand({
      TableName: this.table,
      Item: {
        pk: `E#${e.id}`, sk: '_', ev: e, ...this.recordedAttributes(e),
        ...(opts.delivered ? { st: 'delivered' } : { st: 'ready', pq: shardOf(e.id), pt: sortKey(e) }),
        ...(opts.lease && !opts.delivered ? { lu: opts.lease.until, lo: opts.lease.owner } : {}),
      },
    }))));
  }

  /** prepared → ready (the change happened); with `lease`, held by the caller */
  async confirm(events: CloudEvent[], opts: { lease?: { owner: string; until: number }; delivered?: boolean; recovery?: string } = {}): Promise<void> {
    await Promise.all(events.map(async (e) => {
      const ev = opts.recovery ? { ...e, data: { ...e.data, recovery: opts.recovery } } : e;
      const attrs: Record<string, unknown> = {
        ...this.recordedAttributes(ev), ev, st: opts.delivered ? 'delivered' : 'ready',
        ...(opts.lease && !opts.delivered ? { lu: opts.lease.until, lo: opts.lease.owner } : {}),
      };
      const names: Record<string, string> = { '#st': 'st' };
      const values: Record<string, unknown> = { ':prepared': 'prepared' };
      const sets = Object.entries(attrs).map(([k, v], i) => {
        names[`#a${i}`] = k;
        values[`:a${i}`] = v;
        return `#a${i} = :a${i}`;
      });
      try {
        await this.doc.send(new UpdateCommand({
          TableName: this.table, Key: { pk: `E#${e.id}`, sk: '_' },
          UpdateExpression: `SET ${sets.join(', ')} REMOVE #ref, #cid${opts.delivered ? ', #pq, #pt' : ''}`,
          ConditionExpression: '#st = :prepared',
          ExpressionAttributeNames: { ...names, '#ref': 'ref', '#cid': 'cid', ...(opts.delivered ? { '#pq': 'pq', '#pt': 'pt' } : {}) },
          ExpressionAttributeValues: values,
        }));
      } catch (err) {
        if (!conditionFailed(err)) throw err; // settled by someone else already
      }
    }));
  }

  /** the change did not happen: its prepared events go */
  async discard(ids: string[]): Promise<void> {
    await Promise.all(ids.map(async (id) => {
      try {
        await this.doc.send(new DeleteCommand({
          TableName: this.table, Key: { pk: `E#${id}`, sk: '_' },
          ConditionExpression: 'st = :prepared', ExpressionAttributeValues: { ':prepared': 'prepared' },
        }));
      } catch (err) {
        if (!conditionFailed(err)) throw err;
      }
    }));
  }

  /** Settles a prepared event left by a process that died: reads the item it names. */
  async settle(item: StoredEvent & { pk: string }): Promise<'ready' | 'discarded' | 'uncertain'> {
    const ref = item.ref;
    if (!ref || ref.op === 'batch' || !ref.table) {
      await this.confirm([item.ev], { recovery: 'uncertain' });
      return 'uncertain';
    }
    const r = await this.doc.send(new GetCommand({ TableName: ref.table, Key: ref.key, ConsistentRead: true }));
    const target = r.Item as Record<string, unknown> | undefined;
    if (ref.op === 'delete' ? !target : target?.[MARKER_ATTRIBUTE] === item.cid) {
      await this.confirm([item.ev]);
      return 'ready';
    }
    if (!target) {
      await this.discard([item.ev.id]);
      return 'discarded';
    }
    await this.confirm([item.ev], { recovery: 'uncertain' });
    return 'uncertain';
  }

  /** undelivered events of one shard, oldest first */
  async pending(shard: string, limit: number, startKey?: Record<string, unknown>): Promise<{ items: Array<StoredEvent & { pk: string }>; next?: Record<string, unknown> }> {
    const r = await this.doc.send(new QueryCommand({
      TableName: this.table, IndexName: 'pending', KeyConditionExpression: 'pq = :s', ExpressionAttributeValues: { ':s': shard },
      Limit: limit, ExclusiveStartKey: startKey,
    }));
    return { items: (r.Items ?? []) as Array<StoredEvent & { pk: string }>, next: r.LastEvaluatedKey };
  }

  /** takes a lease on a deliverable event; false when another publisher holds it or it moved on */
  async claim(id: string, owner: string, now: number, until: number): Promise<boolean> {
    try {
      await this.doc.send(new UpdateCommand({
        TableName: this.table, Key: { pk: `E#${id}`, sk: '_' },
        UpdateExpression: 'SET lu = :until, lo = :me',
        ConditionExpression: 'st IN (:ready, :failing) AND (attribute_not_exists(lu) OR lu < :now) AND (attribute_not_exists(#next) OR #next <= :now)',
        ExpressionAttributeNames: { '#next': 'next' },
        ExpressionAttributeValues: { ':until': until, ':me': owner, ':ready': 'ready', ':failing': 'failing', ':now': now },
      }));
      return true;
    } catch (err) {
      if (conditionFailed(err)) return false;
      throw err;
    }
  }

  /** delivered: off the pending index, on the condition that `owner` still holds it */
  async delivered(id: string, owner: string): Promise<void> {
    try {
      await this.doc.send(new UpdateCommand({
        TableName: this.table, Key: { pk: `E#${id}`, sk: '_' },
        UpdateExpression: 'SET st = :d, dlv = :at REMOVE pq, pt, lu, lo, #next, err',
        ConditionExpression: 'lo = :me',
        ExpressionAttributeNames: { '#next': 'next' },
        ExpressionAttributeValues: { ':d': 'delivered', ':me': owner, ':at': new Date().toISOString() },
      }));
    } catch (err) {
      if (!conditionFailed(err)) throw err;
    }
  }

  /** a failed attempt: try again after `retryAt`; after `failingAfter` attempts the state says `failing` */
  async failed(id: string, owner: string, attempts: number, retryAt: number, error: string, failingAfter: number): Promise<void> {
    try {
      await this.doc.send(new UpdateCommand({
        TableName: this.table, Key: { pk: `E#${id}`, sk: '_' },
        UpdateExpression: 'SET n = :n, #next = :next, err = :err, st = :st REMOVE lu, lo',
        ConditionExpression: 'lo = :me',
        ExpressionAttributeNames: { '#next': 'next' },
        ExpressionAttributeValues: { ':n': attempts, ':next': retryAt, ':err': error.slice(0, 300), ':st': attempts >= failingAfter ? 'failing' : 'ready', ':me': owner },
      }));
    } catch (err) {
      if (!conditionFailed(err)) throw err;
    }
  }

  /** how many events wait, and the oldest one's time */
  async backlog(): Promise<{ size: number; oldest?: string; failing: number }> {
    let size = 0;
    let failing = 0;
    let oldest: string | undefined;
    for (let s = 0; s < SHARDS; s++) {
      let startKey: Record<string, unknown> | undefined;
      let first = true;
      do {
        const r = await this.doc.send(new QueryCommand({
          TableName: this.table, IndexName: 'pending', KeyConditionExpression: 'pq = :s', ExpressionAttributeValues: { ':s': `P${s}` },
          ProjectionExpression: 'pt, st', ExclusiveStartKey: startKey,
        }));
        const items = (r.Items ?? []) as Array<{ pt: string; st: string }>;
        size += items.length;
        failing += items.filter((i) => i.st === 'failing').length;
        if (first && items[0] && (!oldest || items[0].pt < oldest)) oldest = items[0].pt;
        first = false;
        startKey = r.LastEvaluatedKey;
      } while (startKey);
    }
    return { size, failing, oldest: oldest?.split('#')[0] };
  }

  /** one stored event (with its delivery state), or undefined */
  async get(id: string): Promise<StoredEvent | undefined> {
    const r = await this.doc.send(new GetCommand({ TableName: this.table, Key: { pk: `E#${id}`, sk: '_' }, ConsistentRead: true }));
    return r.Item as StoredEvent | undefined;
  }

  /**
   * The audit log, newest first. With a subject, its own index; otherwise the
   * months, walked back from `to` (or now) to `from` (or the retention).
   */
  async query(q: AuditQuery): Promise<AuditPage> {
    const limit = q.limit ?? 50;
    if (!Number.isInteger(limit) || limit < 1 || limit > 200) throw new EventsInvalid('limit must be an integer from 1 to 200');
    for (const [name, v] of [['from', q.from], ['to', q.to]] as const) {
      if (v !== undefined && Number.isNaN(Date.parse(v))) throw new EventsInvalid(`${name} must be an ISO-8601 time`);
    }
    const to = q.to ? new Date(q.to).toISOString() : new Date(Date.now() + 60_000).toISOString();
    const from = q.from ? new Date(q.from).toISOString() : new Date(Date.now() - this.retentionDays * DAY_MS).toISOString();
    if (from > to) return { items: [] };
    const filters: string[] = [];
    const names: Record<string, string> = { '#lt': 'lt' };
    const values: Record<string, unknown> = { ':from': from, ':to': `${to}~` };
    if (q.type) {
      if (q.type.endsWith('.')) filters.push('begins_with(#type, :type)');
      else filters.push('#type = :type');
      names['#type'] = 'type';
      values[':type'] = q.type;
    }
    if (q.clientId) {
      filters.push('client = :client');
      values[':client'] = q.clientId;
    }
    if (q.actor) {
      filters.push('actor = :actor');
      values[':actor'] = q.actor;
    }
    const cursor = q.cursor ? decodeCursor(q.cursor) : undefined;
    const items: CloudEvent[] = [];
    let month = cursor?.m ?? monthOf(to);
    let startKey = cursor?.k;
    const firstMonth = monthOf(from);
    let reads = 0;
    while (items.length < limit && month >= firstMonth && reads < 40) {
      reads++;
      const r = await this.doc.send(new QueryCommand({
        TableName: this.table,
        ...(q.subject
          ? { IndexName: 'subject', KeyConditionExpression: 'subj = :p AND #lt BETWEEN :from AND :to', ExpressionAttributeValues: { ...values, ':p': q.subject } }
          : { IndexName: 'log', KeyConditionExpression: 'lm = :p AND #lt BETWEEN :from AND :to', ExpressionAttributeValues: { ...values, ':p': month } }),
        ExpressionAttributeNames: names,
        ...(filters.length ? { FilterExpression: filters.join(' AND ') } : {}),
        ScanIndexForward: false, Limit: limit - items.length, ExclusiveStartKey: startKey,
      }));
      for (const it of r.Items ?? []) items.push((it as { ev: CloudEvent }).ev);
      startKey = r.LastEvaluatedKey;
      if (!startKey) {
        if (q.subject) break;
        month = prevMonth(month);
      }
    }
    const more = startKey !== undefined || (!q.subject && month >= firstMonth && items.length >= limit);
    return { items, ...(more ? { cursor: encodeCursor({ m: month, k: startKey }) } : {}) };
  }
}
