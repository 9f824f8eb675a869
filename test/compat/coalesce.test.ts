// Gets and plain writes issued in the same turn share DynamoDB requests
// (src/storage/coalesce.ts): same answers as one command per request, fewer
// requests. Runs on dynalite in `mocha` and on DynamoDB Local in
// `npm run test:compat`; the retry of unprocessed keys/items against a fake.
import { expect } from 'chai';
import { BatchGetCommand, BatchWriteCommand, GetCommand, PutCommand, UpdateCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { Coalescer } from '../../src/storage/coalesce.ts';
import { documentClient } from '../../src/storage/index.ts';
import { startBackend, openTestStorage, type TestBackend, type TestStorage } from '../support/dynamo.ts';

type Native = Record<string, unknown>;

describe('coalesced DynamoDB requests', function () {
  this.timeout(120_000);
  let backend: TestBackend;
  let storage: TestStorage;
  let plain: DynamoDBDocumentClient;
  let table: string;
  const sent: string[] = [];
  /** a coalescer over the uncoalesced lean client, counting what it sends */
  const coalescer = () => new Coalescer((c) => {
    sent.push(c.constructor.name);
    return plain.send(c as never) as Promise<Native>;
  }, ['pk', 'sk']);

  before(async function () {
    this.timeout(180_000);
    backend = await startBackend();
    storage = await openTestStorage(backend);
    table = storage.tables.oidc;
    plain = documentClient(storage.raw, { coalesce: false });
    for (let i = 0; i < 40; i++) await plain.send(new PutCommand({ TableName: table, Item: { pk: `co#${i}`, sk: '_', n: i, nested: { list: [i, 'x'] } } }));
  });
  after(async () => {
    await storage?.close();
    await backend?.close();
  });
  beforeEach(() => {
    sent.length = 0;
  });

  it('60 Gets in one turn (40 stored, 10 missing, 10 repeated): the answers of 60 GetItems, in 1 BatchGetItem', async () => {
    const c = coalescer();
    const ids = [...Array.from({ length: 40 }, (_, i) => i), ...Array.from({ length: 10 }, (_, i) => 1000 + i), ...Array.from({ length: 10 }, (_, i) => i * 3)];
    const get = (i: number) => new GetCommand({ TableName: table, Key: { pk: `co#${i}`, sk: '_' }, ConsistentRead: true });
    const answers = await Promise.all(ids.map((i) => c.offer(get(i))!));
    for (const [n, i] of ids.entries()) {
      const own = await plain.send(get(i));
      expect(answers[n].Item, `co#${i}`).to.deep.equal(own.Item);
    }
    expect(sent).to.deep.equal(['BatchGetCommand']);
    // repeated keys get copies, not one shared object
    const first = answers[0].Item as Native;
    const again = answers[40 + 10].Item as Native;
    expect(again).to.deep.equal(first);
    expect(again === first).to.equal(false);
  });

  it('a lone Get is sent as it was given', async () => {
    const c = coalescer();
    const r = await c.offer(new GetCommand({ TableName: table, Key: { pk: 'co#1', sk: '_' }, ConsistentRead: true }))!;
    expect((r.Item as Native).n).to.equal(1);
    expect(sent).to.deep.equal(['GetCommand']);
  });

  it('Puts and BatchWrites in one turn, the same key twice among them: everything written, in few requests', async () => {
    const c = coalescer();
    const puts = Array.from({ length: 30 }, (_, i) => c.offer(new PutCommand({ TableName: table, Item: { pk: `cw#${i}`, sk: '_', v: i } }))!);
    const batch = c.offer(new BatchWriteCommand({ RequestItems: { [table]: [
      { PutRequest: { Item: { pk: 'cw#b1', sk: '_', v: 'b1' } } }, { DeleteRequest: { Key: { pk: 'co#39', sk: '_' } } },
    ] } }))!;
    const dup = c.offer(new PutCommand({ TableName: table, Item: { pk: 'cw#0', sk: '_', v: 'second' } }))!;
    const out = await Promise.all([...puts, batch, dup]);
    expect(out[30]).to.deep.equal({ UnprocessedItems: {} });
    expect(sent.every((n) => n === 'BatchWriteCommand')).to.equal(true);
    expect(sent.length).to.be.within(2, 3);
    for (let i = 1; i < 30; i++) {
      expect((await plain.send(new GetCommand({ TableName: table, Key: { pk: `cw#${i}`, sk: '_' }, ConsistentRead: true }))).Item).to.deep.equal({ pk: `cw#${i}`, sk: '_', v: i });
    }
    expect([0, 'second']).to.include((await plain.send(new GetCommand({ TableName: table, Key: { pk: 'cw#0', sk: '_' }, ConsistentRead: true }))).Item?.v);
    expect((await plain.send(new GetCommand({ TableName: table, Key: { pk: 'co#39', sk: '_' }, ConsistentRead: true }))).Item).to.equal(undefined);
    expect((await plain.send(new GetCommand({ TableName: table, Key: { pk: 'cw#b1', sk: '_' }, ConsistentRead: true }))).Item?.v).to.equal('b1');
  });

  it('conditions, updates, projections and other shapes are not taken', () => {
    const c = coalescer();
    expect(c.offer(new PutCommand({ TableName: table, Item: { pk: 'x', sk: '_' }, ConditionExpression: 'attribute_not_exists(pk)' }))).to.equal(undefined);
    expect(c.offer(new GetCommand({ TableName: table, Key: { pk: 'x', sk: '_' }, ProjectionExpression: 'pk' }))).to.equal(undefined);
    expect(c.offer(new UpdateCommand({ TableName: table, Key: { pk: 'x', sk: '_' }, UpdateExpression: 'SET a = :a', ExpressionAttributeValues: { ':a': 1 } }))).to.equal(undefined);
    expect(c.offer(new GetCommand({ TableName: table, Key: { id: 'no pk/sk' } }))).to.equal(undefined);
    expect(c.offer(new BatchGetCommand({ RequestItems: { [table]: { Keys: [{ pk: 'x', sk: '_' }] } } }))).to.equal(undefined);
  });

  it('a table that does not exist fails only the commands for it, with DynamoDB\'s error', async () => {
    const c = coalescer();
    const ok = [1, 2].map((i) => c.offer(new GetCommand({ TableName: table, Key: { pk: `co#${i}`, sk: '_' }, ConsistentRead: true }))!);
    const bad = [1, 2].map((i) => c.offer(new GetCommand({ TableName: `${table}_missing`, Key: { pk: `co#${i}`, sk: '_' }, ConsistentRead: true }))!);
    const settled = await Promise.allSettled([...ok, ...bad]);
    expect(settled.slice(0, 2).map((s) => s.status)).to.deep.equal(['fulfilled', 'fulfilled']);
    expect(settled.slice(2).map((s) => (s.status === 'rejected' ? (s.reason as Error).name : 'fulfilled'))).to.deep.equal(['ResourceNotFoundException', 'ResourceNotFoundException']);
  });

  it('keys and items DynamoDB leaves unprocessed are retried until done', async () => {
    let calls = 0;
    const items = new Map<string, Native>([['a', { pk: 'a', sk: '_', v: 1 }], ['b', { pk: 'b', sk: '_', v: 2 }]]);
    const written: string[] = [];
    const fake = new Coalescer(async (cmd) => {
      calls++;
      if (cmd instanceof BatchGetCommand) {
        const keys = cmd.input.RequestItems![table].Keys as Native[];
        // the first answer leaves the last key unprocessed
        const served = calls === 1 ? keys.slice(0, -1) : keys;
        return {
          Responses: { [table]: served.map((k) => items.get(k.pk as string)).filter(Boolean) as Native[] },
          ...(calls === 1 ? { UnprocessedKeys: { [table]: { Keys: keys.slice(-1) } } } : {}),
        };
      }
      const reqs = (cmd as BatchWriteCommand).input.RequestItems![table] as Array<{ PutRequest: { Item: Native } }>;
      // the first write answer (the 3rd call) leaves all but the first item unprocessed
      const served = calls === 3 ? reqs.slice(0, 1) : reqs;
      written.push(...served.map((r) => r.PutRequest.Item.pk as string));
      return calls === 3 ? { UnprocessedItems: { [table]: reqs.slice(1) } } : {};
    }, ['pk', 'sk']);
    const gets = await Promise.all(['a', 'b'].map((k) => fake.offer(new GetCommand({ TableName: table, Key: { pk: k, sk: '_' }, ConsistentRead: true }))!));
    expect(gets.map((g) => (g.Item as Native).v)).to.deep.equal([1, 2]);
    expect(calls).to.equal(2);
    await Promise.all(['x', 'y'].map((k) => fake.offer(new PutCommand({ TableName: table, Item: { pk: k, sk: '_' } }))!));
    expect(written).to.deep.equal(['x', 'y']);
    expect(calls).to.equal(4);
  });

  it('through the storage seam: concurrent reads answer as sequential ones', async () => {
    const doc = storage.doc;
    const got = await Promise.all(Array.from({ length: 20 }, (_, i) => doc.send(new GetCommand({ TableName: table, Key: { pk: `co#${i}`, sk: '_' }, ConsistentRead: true }))));
    expect(got.map((g) => g.Item?.n)).to.deep.equal(Array.from({ length: 20 }, (_, i) => i));
  });
});
