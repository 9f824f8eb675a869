// Reads and plain writes issued within one turn of the event loop go to
// DynamoDB together: the GetItems as one BatchGetItem, the unconditional
// PutItems and BatchWriteItems as one BatchWriteItem (the batching of a
// DataLoader). One refresh reads its token, grant and account at once: one
// request instead of three. Under load, requests that arrive together share
// their round trips too. Each request to DynamoDB costs about as much CPU as
// the work it carries out, so fewer of them is less CPU per token.
//
// What may be coalesced, and nothing else:
//   GetCommand        with only TableName, Key and ConsistentRead
//   PutCommand        with only TableName and Item (no condition, no return values)
//   BatchWriteCommand with only RequestItems, on one table, at most 25 requests
// Everything else (conditions, updates, queries, projections, an abort signal)
// goes straight through. A lone command is sent as it was given.
//
// Semantics kept: a Get resolves with the item (or none) as its own GetItem
// would, read with the same consistency; a write resolves only once all its
// items are written (what DynamoDB leaves unprocessed is retried here, with
// back-off); a failed request rejects every command it carried, with
// DynamoDB's error. Writes to the same key in one turn go in separate
// requests (BatchWriteItem refuses duplicates); their order was undefined
// anyway, as for any two concurrent writes.
import { BatchGetCommand, BatchWriteCommand, GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';

type Native = Record<string, unknown>;
type Send = (command: object) => Promise<Native>;
type WriteRequest = { PutRequest?: { Item: Native }; DeleteRequest?: { Key: Native } };

const MAX_GET_KEYS = 100;
const MAX_WRITES = 25;
const MAX_RETRIES = 8;

interface PendingGet {
  command: GetCommand;
  table: string;
  consistent: boolean;
  id: string;
  resolve(v: Native): void;
  reject(e: unknown): void;
}

interface PendingWrite {
  command: PutCommand | BatchWriteCommand;
  table: string;
  requests: WriteRequest[];
  ids: string[];
  resolve(v: Native): void;
  reject(e: unknown): void;
}

const onlyKeys = (o: object, allowed: readonly string[]) => Object.keys(o).every((k) => allowed.includes(k) || (o as Native)[k] === undefined);
const pause = (attempt: number) => new Promise((r) => setTimeout(r, Math.min(1000, 20 * 2 ** attempt) * (0.5 + Math.random() / 2)));

export class Coalescer {
  readonly #send: Send;
  readonly #keyAttributes: readonly string[];
  #gets: PendingGet[] = [];
  #writes: PendingWrite[] = [];
  #scheduled = false;

  /** keyAttributes: the key attribute names every table has (ours: pk, sk) */
  constructor(send: Send, keyAttributes: readonly string[]) {
    this.#send = send;
    this.#keyAttributes = keyAttributes;
  }

  /** The command's answer when it is coalesced; undefined when it must be sent as it is. */
  offer(command: object): Promise<Native> | undefined {
    if (command instanceof GetCommand) {
      const i = command.input;
      if (!onlyKeys(i, ['TableName', 'Key', 'ConsistentRead']) || !i.TableName || !i.Key) return undefined;
      const id = this.#keyId(i.Key);
      if (!id) return undefined;
      return new Promise((resolve, reject) => {
        this.#gets.push({ command, table: i.TableName!, consistent: i.ConsistentRead === true, id, resolve, reject });
        this.#schedule();
      });
    }
    let table: string | undefined;
    let requests: WriteRequest[] | undefined;
    if (command instanceof PutCommand) {
      const i = command.input;
      if (!onlyKeys(i, ['TableName', 'Item']) || !i.TableName || !i.Item) return undefined;
      table = i.TableName;
      requests = [{ PutRequest: { Item: i.Item } }];
    } else if (command instanceof BatchWriteCommand) {
      const i = command.input;
      if (!onlyKeys(i, ['RequestItems']) || !i.RequestItems) return undefined;
      const tables = Object.keys(i.RequestItems);
      if (tables.length !== 1) return undefined;
      table = tables[0];
      requests = i.RequestItems[table] as WriteRequest[];
      if (requests.length === 0 || requests.length > MAX_WRITES) return undefined;
    } else {
      return undefined;
    }
    const ids = requests.map((r) => this.#keyId((r.PutRequest?.Item ?? r.DeleteRequest?.Key) as Native));
    if (ids.some((x) => !x)) return undefined;
    return new Promise((resolve, reject) => {
      this.#writes.push({ command: command as PutCommand | BatchWriteCommand, table: table!, requests: requests!, ids: ids as string[], resolve, reject });
      this.#schedule();
    });
  }

  /** the item's key as one string, or undefined when it lacks a key attribute or one is not a string or number */
  #keyId(o: Native): string | undefined {
    const parts: string[] = [];
    for (const a of this.#keyAttributes) {
      const v = o[a];
      if (typeof v !== 'string' && typeof v !== 'number') return undefined;
      parts.push(`${typeof v}:${v}`);
    }
    return parts.join('\u0000');
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    // after this turn's I/O callbacks and promise jobs: everything issued meanwhile goes together
    setImmediate(() => {
      this.#scheduled = false;
      const gets = this.#gets;
      const writes = this.#writes;
      this.#gets = [];
      this.#writes = [];
      if (gets.length) this.#flushGets(gets);
      if (writes.length) this.#flushWrites(writes);
    });
  }

  #flushGets(gets: PendingGet[]): void {
    if (gets.length === 1) {
      const [g] = gets;
      this.#send(g.command).then(g.resolve, g.reject);
      return;
    }
    // one BatchGetItem per (table, consistency) and at most 100 distinct keys
    const groups = new Map<string, PendingGet[]>();
    for (const g of gets) {
      const k = `${g.consistent ? 'c' : 'e'}:${g.table}`;
      groups.set(k, [...(groups.get(k) ?? []), g]);
    }
    for (const group of groups.values()) {
      const byId = new Map<string, PendingGet[]>();
      for (const g of group) byId.set(g.id, [...(byId.get(g.id) ?? []), g]);
      const ids = [...byId.keys()];
      for (let i = 0; i < ids.length; i += MAX_GET_KEYS) {
        const chunk = ids.slice(i, i + MAX_GET_KEYS).map((id) => byId.get(id)!);
        if (chunk.length === 1 && chunk[0].length === 1) {
          this.#send(chunk[0][0].command).then(chunk[0][0].resolve, chunk[0][0].reject);
          continue;
        }
        void this.#batchGet(chunk);
      }
    }
  }

  async #batchGet(chunk: PendingGet[][]): Promise<void> {
    const { table, consistent } = chunk[0][0];
    const waiting = new Map(chunk.map((gs) => [gs[0].id, gs]));
    const found = new Map<string, Native>();
    try {
      let keys = chunk.map((gs) => gs[0].command.input.Key as Native);
      for (let attempt = 0; keys.length > 0; attempt++) {
        const out = await this.#send(new BatchGetCommand({ RequestItems: { [table]: { Keys: keys, ConsistentRead: consistent } } })) as {
          Responses?: Record<string, Native[]>; UnprocessedKeys?: Record<string, { Keys?: Native[] }>;
        };
        for (const item of out.Responses?.[table] ?? []) {
          const id = this.#keyId(item);
          if (id) found.set(id, item);
        }
        keys = out.UnprocessedKeys?.[table]?.Keys ?? [];
        if (keys.length && attempt >= MAX_RETRIES) throw unprocessed('BatchGetItem left keys unprocessed');
        if (keys.length) await pause(attempt);
      }
    } catch (err) {
      for (const gs of chunk) for (const g of gs) g.reject(err);
      return;
    }
    for (const [id, gs] of waiting) {
      const item = found.get(id);
      gs.forEach((g, n) => g.resolve(item === undefined ? {} : { Item: n === 0 ? item : structuredClone(item) }));
    }
  }

  #flushWrites(writes: PendingWrite[]): void {
    if (writes.length === 1) {
      const [w] = writes;
      this.#send(w.command).then(w.resolve, w.reject);
      return;
    }
    // pack whole commands into requests of at most 25 writes and no repeated key
    const batches: Array<{ writes: PendingWrite[]; count: number; ids: Set<string> }> = [];
    for (const w of writes) {
      let b = batches.find((x) => x.count + w.requests.length <= MAX_WRITES && w.ids.every((id) => !x.ids.has(`${w.table}\u0000${id}`)));
      if (!b) batches.push(b = { writes: [], count: 0, ids: new Set() });
      b.writes.push(w);
      b.count += w.requests.length;
      for (const id of w.ids) b.ids.add(`${w.table}\u0000${id}`);
    }
    for (const b of batches) {
      if (b.writes.length === 1) {
        const [w] = b.writes;
        this.#send(w.command).then(w.resolve, w.reject);
        continue;
      }
      void this.#batchWrite(b.writes);
    }
  }

  async #batchWrite(writes: PendingWrite[]): Promise<void> {
    try {
      let items: Record<string, WriteRequest[]> = {};
      for (const w of writes) items[w.table] = [...(items[w.table] ?? []), ...w.requests];
      for (let attempt = 0; Object.keys(items).length > 0; attempt++) {
        const out = await this.#send(new BatchWriteCommand({ RequestItems: items as never })) as { UnprocessedItems?: Record<string, WriteRequest[]> };
        items = Object.fromEntries(Object.entries(out.UnprocessedItems ?? {}).filter(([, rs]) => rs.length > 0));
        if (Object.keys(items).length && attempt >= MAX_RETRIES) throw unprocessed('BatchWriteItem left items unprocessed');
        if (Object.keys(items).length) await pause(attempt);
      }
    } catch (err) {
      for (const w of writes) w.reject(err);
      return;
    }
    for (const w of writes) w.resolve(w.command instanceof PutCommand ? {} : { UnprocessedItems: {} });
  }
}

function unprocessed(message: string): Error {
  const err = new Error(message);
  err.name = 'ProvisionedThroughputExceededException';
  return err;
}
