// The document layer over the lean wire client (wire.ts): takes the same
// lib-dynamodb command objects the stores already build (GetCommand,
// PutCommand, …), marshals their native values with the SDK's own
// @aws-sdk/util-dynamodb, calls the operation, and unmarshals the answer the
// way DynamoDBDocumentClient does with our options (documentClient() in
// index.ts). Commands it does not know go to the SDK unchanged.
import {
  BatchGetCommand, BatchWriteCommand, DeleteCommand, GetCommand, PutCommand, QueryCommand, ScanCommand, UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { marshall, unmarshall, type marshallOptions } from '@aws-sdk/util-dynamodb';
import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import type { DynamoWire } from './wire.ts';

type Native = Record<string, unknown>;
type Marshalled = Record<string, AttributeValue>;

const MARSHALL: marshallOptions = { removeUndefinedValues: true, convertClassInstanceToMap: false };

// On the wire, binary (B, BS) is base64 text; marshall/unmarshall work with
// Uint8Array. These walk the attribute values and convert, as the SDK's serde does.
type AV = Record<string, unknown>;
const b64 = (u: Uint8Array) => Buffer.from(u.buffer, u.byteOffset, u.byteLength).toString('base64');
const bytes = (s: string) => {
  const b = Buffer.from(s, 'base64');
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
};
function convertBinary(av: AV, to: 'wire' | 'native'): void {
  if (av.B !== undefined) av.B = to === 'wire' ? b64(av.B as Uint8Array) : bytes(av.B as string);
  else if (av.BS !== undefined) av.BS = (av.BS as unknown[]).map((x) => (to === 'wire' ? b64(x as Uint8Array) : bytes(x as string)));
  else if (av.L !== undefined) for (const x of av.L as AV[]) convertBinary(x, to);
  else if (av.M !== undefined) for (const x of Object.values(av.M as Record<string, AV>)) convertBinary(x, to);
}
const convertMap = <T extends Marshalled>(m: T, to: 'wire' | 'native'): T => {
  for (const v of Object.values(m)) convertBinary(v as unknown as AV, to);
  return m;
};

const toWire = (v: Native | undefined): Marshalled | undefined => (v === undefined ? undefined : convertMap(marshall(v, MARSHALL), 'wire'));
const fromWire = (v: Marshalled | undefined): Native | undefined =>
  (v === undefined ? undefined : unmarshall(convertMap(v, 'native'), { wrapNumbers: false }));

/** the operation and the marshalling of one command class */
interface Op {
  name: string;
  request(input: Native): Native;
  response(output: Native): Native;
}

const item = (out: Native): Native => ({ ...out, Item: fromWire(out.Item as Marshalled | undefined) });
const attributes = (out: Native): Native => ({ ...out, Attributes: fromWire(out.Attributes as Marshalled | undefined) });
const withValues = (input: Native): Native => ({
  ...input, ExpressionAttributeValues: toWire(input.ExpressionAttributeValues as Native | undefined),
});
const page = (input: Native): Native => ({ ...withValues(input), ExclusiveStartKey: toWire(input.ExclusiveStartKey as Native | undefined) });
const items = (out: Native): Native => ({
  ...out,
  Items: (out.Items as Marshalled[] | undefined)?.map((i) => fromWire(i)),
  LastEvaluatedKey: fromWire(out.LastEvaluatedKey as Marshalled | undefined),
});

type WriteRequest = { PutRequest?: { Item: Native }; DeleteRequest?: { Key: Native } };
type WireWriteRequest = { PutRequest?: { Item: Marshalled }; DeleteRequest?: { Key: Marshalled } };
const mapTables = <A, B>(tables: Record<string, A> | undefined, f: (a: A) => B): Record<string, B> | undefined =>
  tables && Object.fromEntries(Object.entries(tables).map(([t, v]) => [t, f(v)]));

type KeysAndAttributes = Native & { Keys: Native[] };
type WireKeysAndAttributes = Native & { Keys: Marshalled[] };

const OPS = new Map<unknown, Op>([
  [GetCommand, { name: 'GetItem', request: (i) => ({ ...i, Key: toWire(i.Key as Native) }), response: item }],
  [PutCommand, { name: 'PutItem', request: (i) => ({ ...withValues(i), Item: toWire(i.Item as Native) }), response: attributes }],
  [UpdateCommand, { name: 'UpdateItem', request: (i) => ({ ...withValues(i), Key: toWire(i.Key as Native) }), response: attributes }],
  [DeleteCommand, { name: 'DeleteItem', request: (i) => ({ ...withValues(i), Key: toWire(i.Key as Native) }), response: attributes }],
  [QueryCommand, { name: 'Query', request: page, response: items }],
  [ScanCommand, { name: 'Scan', request: page, response: items }],
  [BatchWriteCommand, {
    name: 'BatchWriteItem',
    request: (i) => ({ ...i, RequestItems: mapTables(i.RequestItems as Record<string, WriteRequest[]>, (rs) => rs.map(writeToWire)) }),
    response: (o) => ({ ...o, UnprocessedItems: mapTables(o.UnprocessedItems as Record<string, WireWriteRequest[]> | undefined, (rs) => rs.map(writeFromWire)) }),
  }],
  [BatchGetCommand, {
    name: 'BatchGetItem',
    request: (i) => ({
      ...i,
      RequestItems: mapTables(i.RequestItems as Record<string, KeysAndAttributes>, (ka) => ({ ...ka, Keys: ka.Keys.map((k) => toWire(k)) })),
    }),
    response: (o) => ({
      ...o,
      Responses: mapTables(o.Responses as Record<string, Marshalled[]> | undefined, (rs) => rs.map((r) => fromWire(r))),
      UnprocessedKeys: mapTables(o.UnprocessedKeys as Record<string, WireKeysAndAttributes> | undefined,
        (ka) => ({ ...ka, Keys: ka.Keys.map((k) => fromWire(k)) })),
    }),
  }],
]);

function writeToWire(r: WriteRequest): WireWriteRequest {
  if (r.PutRequest) return { PutRequest: { Item: toWire(r.PutRequest.Item)! } };
  return { DeleteRequest: { Key: toWire(r.DeleteRequest!.Key)! } };
}
function writeFromWire(r: WireWriteRequest): WriteRequest {
  if (r.PutRequest) return { PutRequest: { Item: fromWire(r.PutRequest.Item)! } };
  return { DeleteRequest: { Key: fromWire(r.DeleteRequest!.Key)! } };
}

/** The operation a command maps to on the lean path, or undefined when it must go to the SDK. */
export function leanOperation(command: object): Op | undefined {
  return OPS.get(command.constructor);
}

/** Sends a command the lean way; the caller checked leanOperation(command) first. */
export async function sendLean(wire: DynamoWire, op: Op, input: Native, signal?: AbortSignal): Promise<Native> {
  const out = await wire.call<Native>(op.name, op.request(input), signal);
  const res = op.response(out);
  // as the SDK's output shape: undefined members stay absent
  for (const k of Object.keys(res)) if (res[k] === undefined) delete res[k];
  return res;
}
