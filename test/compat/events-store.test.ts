// Events stored with their changes (src/events/store.ts, publisher.ts) on a
// real backend: a change's event is recorded only when its write succeeded;
// a process that died between the write and the confirmation leaves a
// prepared event that the sweep settles by reading the item; publishers
// claim with a lease, so two of them deliver each event once; a sink that
// fails gets the event again later; the audit log filters and pages.
//
// Runs on dynalite in `mocha`, and on DynamoDB Local in `npm run test:compat`.
import { expect } from 'chai';
import crypto from 'node:crypto';
import { DeleteCommand, GetCommand, PutCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { Events } from '../../src/events/index.ts';
import { EventStore, EventsInvalid } from '../../src/events/store.ts';
import { writeScopes, type WriteScope } from '../../src/storage/write-scope.ts';
import type { CloudEvent, EventSink } from '../../src/events/types.ts';
import { createLogger } from '../../src/logging/index.ts';
import { backendKind, openTestStorage, startBackend, type TestBackend, type TestStorage } from '../support/dynamo.ts';

const silent = createLogger('silent');

/** a sink that keeps what it got, and fails while `down` */
class MemorySink implements EventSink {
  readonly kind = 'memory';
  got: CloudEvent[] = [];
  down = false;
  calls = 0;
  async deliver(events: CloudEvent[]): Promise<string[]> {
    this.calls++;
    if (this.down) throw Object.assign(new Error('sink unreachable'), { name: 'NetworkingError' });
    this.got.push(...events);
    return [];
  }
  async close(): Promise<void> {}
}

describe(`events stored with their changes (${backendKind()})`, function () {
  this.timeout(120_000);
  let backend: TestBackend;
  let storage: TestStorage;
  let store: EventStore;
  const key = () => ({ pk: `thing#${crypto.randomUUID()}`, sk: '_' });
  const item = async (k: Record<string, unknown>) => (await storage.doc.send(new GetCommand({ TableName: storage.tables.meta, Key: k, ConsistentRead: true }))).Item;
  const events = (sink: EventSink | undefined, publisher = {}) => new Events(sink, silent, { source: 'https://idp.test', store, publisher });

  before(async function () {
    this.timeout(120_000);
    backend = await startBackend();
    storage = await openTestStorage(backend);
    store = new EventStore(storage.doc, storage.tables.events, { retentionDays: 30 });
  });

  after(async () => {
    await storage?.close();
    await backend?.close();
  });

  it('a change that succeeds: its event is stored, marked on the item, delivered once and marked delivered', async () => {
    const sink = new MemorySink();
    const ev = events(sink);
    const k = key();
    await ev.commit({ type: 'user.disabled', sub: 'u-1', actor: 'admin-1', data: { email: 'x@example.com', why: 'test' } }, () =>
      storage.doc.send(new UpdateCommand({ TableName: storage.tables.meta, Key: k, UpdateExpression: 'SET #s = :s', ExpressionAttributeNames: { '#s': 'status' }, ExpressionAttributeValues: { ':s': 'disabled' } })));
    await ev.settled();
    expect(sink.got).to.have.length(1);
    const [e] = sink.got;
    expect(e).to.include({ specversion: '1.0', type: 'user.disabled', subject: 'u-1', source: 'https://idp.test', datacontenttype: 'application/json' });
    expect(e.data).to.deep.equal({ why: 'test', actor: 'admin-1' });
    expect((await item(k))?._ev, 'the write carries the marker').to.match(/^[0-9a-f-]{36}$/);
    expect((await store.get(e.id))?.st).to.equal('delivered');
    await ev.close();
  });

  it('a failed conditional write: no event anywhere, and the error reaches the caller', async () => {
    const sink = new MemorySink();
    const ev = events(sink);
    const k = key();
    let id = '';
    const err = await ev.commit({ type: 'client.created', clientId: 'c-1' }, async () => {
      id = (await store.query({ subject: 'c-1' })).items[0]?.id ?? '';
      return storage.doc.send(new PutCommand({ TableName: storage.tables.meta, Item: { ...k, v: 1 }, ConditionExpression: 'attribute_exists(pk)' }));
    }).then(() => undefined, (e: unknown) => e as Error);
    expect(err?.name).to.equal('ConditionalCheckFailedException');
    await ev.settled();
    expect(sink.got).to.deep.equal([]);
    expect(id).to.equal('');
    expect((await store.query({ subject: 'c-1' })).items).to.deep.equal([]);
    expect(await item(k)).to.equal(undefined);
    expect((await store.backlog()).size).to.equal(0);
    await ev.close();
  });

  it('a process that died after the write: the sweep finds the marker and delivers; one whose write never happened leaves no event', async () => {
    // what commit() leaves when the process dies between the write and the confirmation
    const prepareAndWrite = async (type: string, write: boolean, op: 'put' | 'delete') => {
      const e: CloudEvent = { specversion: '1.0', id: crypto.randomUUID(), type, source: 's', time: new Date(Date.now() - 5000).toISOString(), subject: 'u-2', datacontenttype: 'application/json', data: {} };
      const k = key();
      if (op === 'delete') await storage.doc.send(new PutCommand({ TableName: storage.tables.meta, Item: { ...k } }));
      const scope: WriteScope = { marker: e.id, writes: 0, beforeFirstWrite: (ref) => store.prepare([e], ref, e.id) };
      await writeScopes.run(scope, async () => {
        if (write && op === 'put') await storage.doc.send(new PutCommand({ TableName: storage.tables.meta, Item: { ...k, v: 2 } }));
        if (write && op === 'delete') await storage.doc.send(new DeleteCommand({ TableName: storage.tables.meta, Key: k }));
        else await scope.beforeFirstWrite({ table: storage.tables.meta, key: k, op });
      });
      return e;
    };
    const happened = await prepareAndWrite('user.updated', true, 'put');
    const deleted = await prepareAndWrite('token.revoked', true, 'delete');
    const never = await prepareAndWrite('user.created', false, 'put');
    expect((await store.get(happened.id))?.st).to.equal('prepared');
    expect((await store.query({ subject: 'u-2' })).items, 'prepared events are not in the audit log').to.deep.equal([]);

    const sink = new MemorySink();
    const ev = events(sink, { recoveryMs: 1000 });
    await ev.publisher!.sweep();
    expect(sink.got.map((e) => e.id).sort()).to.deep.equal([happened.id, deleted.id].sort());
    expect(await store.get(never.id)).to.equal(undefined);
    expect((await store.query({ subject: 'u-2' })).items.map((e) => e.type).sort()).to.deep.equal(['token.revoked', 'user.updated']);
    await ev.close();
  });

  it('two publishers sweeping the same backlog deliver each event once', async () => {
    const quiet = new Events(undefined, silent, { store }); // records without a sink: delivered at once
    const down = new MemorySink();
    down.down = true;
    const producer = events(down);
    const ids: string[] = [];
    for (let i = 0; i < 30; i++) ids.push((await producer.append('login.succeeded', { sub: `u-${i}`, data: { method: 'password' } })).id);
    await producer.settled(); // the fast path failed: all 30 wait, with a retry time
    expect((await store.backlog()).size).to.be.at.least(30);
    await quiet.append('login.failed', { sub: 'u-x' });
    // retry time passed for everyone
    for (const id of ids) {
      await storage.doc.send(new UpdateCommand({ TableName: storage.tables.events, Key: { pk: `E#${id}`, sk: '_' }, UpdateExpression: 'SET #n = :z', ExpressionAttributeNames: { '#n': 'next' }, ExpressionAttributeValues: { ':z': 0 } }));
    }
    const a = new MemorySink();
    const b = new MemorySink();
    const pa = events(a);
    const pb = events(b);
    await Promise.all([pa.publisher!.sweep(), pb.publisher!.sweep()]);
    const all = [...a.got, ...b.got].map((e) => e.id).filter((id) => ids.includes(id));
    expect(all.sort()).to.deep.equal([...ids].sort());
    expect((await store.backlog()).size).to.equal(0);
    await Promise.all([pa.close(), pb.close(), producer.close()]);
  });

  it('a sink that fails: the event waits with a retry time and the error, then goes when the sink answers', async () => {
    const sink = new MemorySink();
    sink.down = true;
    const ev = events(sink, { recoveryMs: 1000 });
    const e = await ev.append('account.locked', { sub: 'u-3', reason: 'account_threshold' });
    await ev.settled();
    const stored = await store.get(e.id);
    expect(stored).to.include({ st: 'ready', n: 1 });
    expect(stored!.err).to.match(/NetworkingError: sink unreachable/);
    expect(stored!.next).to.be.greaterThan(Date.now());
    sink.down = false;
    await ev.publisher!.sweep();
    expect(sink.got, 'not before its retry time').to.deep.equal([]);
    await storage.doc.send(new UpdateCommand({ TableName: storage.tables.events, Key: { pk: `E#${e.id}`, sk: '_' }, UpdateExpression: 'SET #n = :z', ExpressionAttributeNames: { '#n': 'next' }, ExpressionAttributeValues: { ':z': 0 } }));
    await ev.publisher!.sweep();
    expect(sink.got.map((x) => x.id)).to.deep.equal([e.id]);
    expect((await store.get(e.id))?.st).to.equal('delivered');
    await ev.close();
  });

  it('the audit log: newest first, by subject, client, type prefix and actor, in pages with a cursor', async () => {
    const ev = new Events(undefined, silent, { store });
    const sub = `u-${crypto.randomUUID()}`;
    for (let i = 0; i < 7; i++) {
      await ev.append(i % 2 ? 'user.updated' : 'login.succeeded', { sub, clientId: i < 3 ? 'app-a' : 'app-b', actor: i === 6 ? 'admin-9' : undefined, data: { i } });
      await new Promise((r) => setTimeout(r, 3));
    }
    const page1 = await ev.query({ subject: sub, limit: 3 });
    expect(page1.items.map((e) => e.data.i)).to.deep.equal([6, 5, 4]);
    const page2 = await ev.query({ subject: sub, limit: 3, cursor: page1.cursor });
    const page3 = await ev.query({ subject: sub, limit: 3, cursor: page2.cursor });
    expect([...page2.items, ...page3.items].map((e) => e.data.i)).to.deep.equal([3, 2, 1, 0]);
    expect((await ev.query({ subject: sub, type: 'user.' })).items.map((e) => e.data.i)).to.deep.equal([5, 3, 1]);
    expect((await ev.query({ clientId: 'app-a', type: 'login.succeeded' })).items.filter((e) => e.subject === sub).map((e) => e.data.i)).to.deep.equal([2, 0]);
    expect((await ev.query({ actor: 'admin-9' })).items.map((e) => e.data.i)).to.deep.equal([6]);
    const all = await ev.query({ limit: 200 });
    expect(all.items.map((e) => e.time)).to.deep.equal([...all.items.map((e) => e.time)].sort().reverse());
    const future = await ev.query({ from: new Date(Date.now() + 3_600_000).toISOString() });
    expect(future.items).to.deep.equal([]);
    for (const bad of [{ cursor: 'nope' }, { limit: 0 }, { limit: 201 }, { from: 'yesterday' }]) {
      const err = await ev.query(bad).then(() => undefined, (e: unknown) => e);
      expect(err, JSON.stringify(bad)).to.be.instanceOf(EventsInvalid);
    }
  });
});
