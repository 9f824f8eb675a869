// The lean DynamoDB client (src/storage/wire.ts + lean-doc.ts) against the
// AWS SDK's document client on the same backend: every item command the
// stores use gives the same answer and the same error names. Runs on dynalite
// in `mocha`, and on DynamoDB Local in `npm run test:compat`.
import { expect } from 'chai';
import {
  BatchGetCommand, BatchWriteCommand, DeleteCommand, GetCommand, PutCommand, QueryCommand, ScanCommand, UpdateCommand,
  type DynamoDBDocumentClient,
} from '@aws-sdk/lib-dynamodb';
import { documentClient, makeClient } from '../../src/storage/index.ts';
import { startBackend, openTestStorage, type TestBackend, type TestStorage } from '../support/dynamo.ts';

describe('lean DynamoDB client: same answers as the SDK document client', function () {
  this.timeout(120_000);
  let backend: TestBackend;
  let storage: TestStorage;
  let lean: DynamoDBDocumentClient;
  let sdk: DynamoDBDocumentClient;
  let table: string;
  const closers: Array<() => void> = [];

  before(async function () {
    this.timeout(180_000);
    backend = await startBackend();
    storage = await openTestStorage(backend);
    table = storage.tables.oidc;
    const leanRaw = makeClient(backend.endpoint, backend.region, 'lean');
    const sdkRaw = makeClient(backend.endpoint, backend.region, 'sdk');
    closers.push(() => leanRaw.destroy(), () => sdkRaw.destroy());
    lean = documentClient(leanRaw);
    sdk = documentClient(sdkRaw);
  });

  after(async () => {
    for (const c of closers) c();
    await storage?.close();
    await backend?.close();
  });

  /** the answer without the SDK's response metadata */
  const strip = (o: Record<string, unknown>) => {
    const { $metadata: _m, ...rest } = o;
    return rest;
  };
  const both = async (make: () => object) => {
    const a = strip(await lean.send(make() as never) as Record<string, unknown>);
    const b = strip(await sdk.send(make() as never) as Record<string, unknown>);
    return [a, b] as const;
  };
  const errorName = (p: Promise<unknown>) => p.then(() => 'resolved', (e: Error) => e.name);

  it('Put then Get: the same item, with numbers, strings, binary, lists, maps and booleans', async () => {
    const item = {
      pk: 'parity#1', sk: '_', n: 42, f: 1.5, s: 'héllo ✓', b: new Uint8Array([0, 1, 255]), l: [1, 'two', { three: 3 }],
      m: { nested: { deep: true } }, t: true, nul: null,
    };
    await lean.send(new PutCommand({ TableName: table, Item: item }));
    const [a, b] = await both(() => new GetCommand({ TableName: table, Key: { pk: 'parity#1', sk: '_' }, ConsistentRead: true }));
    expect(a).to.deep.equal(b);
    expect(a.Item).to.deep.equal(item);
  });

  it('Get of a missing key: no Item on either', async () => {
    const [a, b] = await both(() => new GetCommand({ TableName: table, Key: { pk: 'parity#missing', sk: '_' }, ConsistentRead: true }));
    expect(a).to.deep.equal(b);
    expect(a).to.not.have.property('Item');
  });

  it('Update with ReturnValues ALL_NEW, and a failed condition named ConditionalCheckFailedException on both', async () => {
    const update = (id: string) => new UpdateCommand({
      TableName: table, Key: { pk: id, sk: '_' },
      UpdateExpression: 'ADD #c :one SET #u = :u', ConditionExpression: 'attribute_not_exists(#c) OR #c < :max',
      ExpressionAttributeNames: { '#c': 'count', '#u': 'updated' },
      ExpressionAttributeValues: { ':one': 1, ':u': 'x', ':max': 2 }, ReturnValues: 'ALL_NEW',
    });
    const a = strip(await lean.send(update('parity#u1')));
    const b = strip(await sdk.send(update('parity#u2')));
    expect(a.Attributes).to.deep.equal({ ...(b.Attributes as object), pk: 'parity#u1' });
    await lean.send(update('parity#u1'));
    expect(await errorName(lean.send(update('parity#u1')))).to.equal('ConditionalCheckFailedException');
    await sdk.send(update('parity#u2'));
    expect(await errorName(sdk.send(update('parity#u2')))).to.equal('ConditionalCheckFailedException');
  });

  it('Delete with ReturnValues ALL_OLD gives the old item; a conditional Put on an existing key fails alike', async () => {
    await lean.send(new PutCommand({ TableName: table, Item: { pk: 'parity#d', sk: '_', v: 1 } }));
    const put = () => new PutCommand({ TableName: table, Item: { pk: 'parity#d', sk: '_', v: 2 }, ConditionExpression: 'attribute_not_exists(pk)' });
    expect(await errorName(lean.send(put()))).to.equal('ConditionalCheckFailedException');
    expect(await errorName(sdk.send(put()))).to.equal('ConditionalCheckFailedException');
    const a = strip(await lean.send(new DeleteCommand({ TableName: table, Key: { pk: 'parity#d', sk: '_' }, ReturnValues: 'ALL_OLD' })));
    expect(a.Attributes).to.deep.equal({ pk: 'parity#d', sk: '_', v: 1 });
  });

  it('Query and Scan pages: the same items and the same LastEvaluatedKey', async () => {
    for (let i = 0; i < 7; i++) await lean.send(new PutCommand({ TableName: table, Item: { pk: 'parity#q', sk: `s${i}`, i } }));
    const query = (start?: Record<string, unknown>) => new QueryCommand({
      TableName: table, KeyConditionExpression: 'pk = :p', ExpressionAttributeValues: { ':p': 'parity#q' }, Limit: 3,
      ConsistentRead: true, ExclusiveStartKey: start,
    });
    const [a1, b1] = await both(() => query());
    expect(a1).to.deep.equal(b1);
    expect(a1.LastEvaluatedKey).to.deep.equal({ pk: 'parity#q', sk: 's2' });
    const [a2, b2] = await both(() => query(a1.LastEvaluatedKey as Record<string, unknown>));
    expect(a2).to.deep.equal(b2);
    expect((a2.Items as Array<{ i: number }>).map((x) => x.i)).to.deep.equal([3, 4, 5]);
    const scan = () => new ScanCommand({
      TableName: table, FilterExpression: 'pk = :p', ExpressionAttributeValues: { ':p': 'parity#q' }, ConsistentRead: true,
    });
    const [sa, sb] = await both(scan);
    expect(sa.Items).to.deep.equal(sb.Items);
    expect(sa.Items).to.have.length(7);
  });

  it('BatchWrite (puts and deletes) and BatchGet', async () => {
    await lean.send(new BatchWriteCommand({
      RequestItems: {
        [table]: [
          { PutRequest: { Item: { pk: 'parity#b1', sk: '_', v: 'one' } } },
          { PutRequest: { Item: { pk: 'parity#b2', sk: '_', v: 'two' } } },
          { DeleteRequest: { Key: { pk: 'parity#q', sk: 's0' } } },
        ],
      },
    }));
    const get = () => new BatchGetCommand({
      RequestItems: { [table]: { Keys: [{ pk: 'parity#b1', sk: '_' }, { pk: 'parity#b2', sk: '_' }, { pk: 'parity#q', sk: 's0' }], ConsistentRead: true } },
    });
    const [a, b] = await both(get);
    const sortByPk = (xs: unknown) => (xs as Array<{ pk: string }>).slice().sort((x, y) => x.pk.localeCompare(y.pk));
    const ra = a.Responses as Record<string, unknown[]>;
    const rb = b.Responses as Record<string, unknown[]>;
    expect(sortByPk(ra[table])).to.deep.equal(sortByPk(rb[table]));
    expect(sortByPk(ra[table])).to.deep.equal([{ pk: 'parity#b1', sk: '_', v: 'one' }, { pk: 'parity#b2', sk: '_', v: 'two' }]);
  });

  it('a request DynamoDB refuses is named as the SDK names it (ValidationException, ResourceNotFoundException)', async () => {
    const bad = () => new GetCommand({ TableName: table, Key: { nope: 'x' } });
    expect(await errorName(lean.send(bad()))).to.equal(await errorName(sdk.send(bad())));
    expect(await errorName(lean.send(bad()))).to.equal('ValidationException');
    const missing = () => new GetCommand({ TableName: `${table}_missing`, Key: { pk: 'x', sk: '_' } });
    expect(await errorName(lean.send(missing()))).to.equal('ResourceNotFoundException');
    expect(await errorName(sdk.send(missing()))).to.equal('ResourceNotFoundException');
  });
});
