// Write scopes: how an event is stored with the state change that caused it
// (src/events/store.ts, docs/events.md "Stored with the change").
//
// Inside `writeScopes.run(scope, fn)`, every single-item write the document
// client sends (Put, Update, Delete) is changed on its way out:
//   - before the first one, `scope.beforeFirstWrite(ref)` runs and is awaited
//     (the events store writes the prepared events there, naming `ref`);
//   - Puts and Updates carry the scope's marker in the attribute `_ev`, in the
//     same conditional write as the change itself.
// So once the first write has happened, the item itself says so (`_ev` is the
// marker; for a Delete, the item is gone), and a prepared event found after a
// crash can be settled by reading that one item. Writes outside a scope are
// untouched.
import { AsyncLocalStorage } from 'node:async_hooks';
import { BatchWriteCommand, DeleteCommand, PutCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';

export const MARKER_ATTRIBUTE = '_ev';

/** the item a scope's first write changed */
export interface WriteRef {
  table: string;
  key: Record<string, unknown>;
  op: 'put' | 'update' | 'delete' | 'batch';
}

export interface WriteScope {
  /** written into `_ev` of every Put and Update in the scope */
  readonly marker: string;
  /** the first write, once it was sent */
  first?: WriteRef;
  /** how many writes went out in the scope */
  writes: number;
  beforeFirstWrite(ref: WriteRef): Promise<void>;
}

export const writeScopes = new AsyncLocalStorage<WriteScope>();

type Command = { input: Record<string, unknown> };
type Send = (command: object, options?: unknown) => Promise<unknown>;

/** the table, key and kind of a single-item write (or a batch), undefined for reads */
function refOf(command: object): WriteRef | undefined {
  const input = (command as Command).input;
  if (command instanceof PutCommand) {
    const item = input.Item as Record<string, unknown>;
    return { table: input.TableName as string, key: { pk: item.pk, sk: item.sk }, op: 'put' };
  }
  if (command instanceof UpdateCommand) return { table: input.TableName as string, key: input.Key as Record<string, unknown>, op: 'update' };
  if (command instanceof DeleteCommand) return { table: input.TableName as string, key: input.Key as Record<string, unknown>, op: 'delete' };
  if (command instanceof BatchWriteCommand) {
    const [table] = Object.keys(input.RequestItems as object);
    return { table, key: {}, op: 'batch' };
  }
  return undefined;
}

/** `SET #_ev = :_ev` joined to an update expression's SET clause, or a SET clause of its own */
export function withMarkerSet(expression: string): string {
  const set = /(^|\s)SET\s/i.exec(expression);
  if (!set) return `SET #_ev = :_ev ${expression}`;
  const at = set.index + set[0].length;
  return `${expression.slice(0, at)}#_ev = :_ev, ${expression.slice(at)}`;
}

function marked(command: object, marker: string): object {
  if (command instanceof PutCommand) {
    const input = command.input;
    return new PutCommand({ ...input, Item: { ...input.Item, [MARKER_ATTRIBUTE]: marker } });
  }
  if (command instanceof UpdateCommand) {
    const input = command.input;
    if (typeof input.UpdateExpression !== 'string') {
      return new UpdateCommand({ ...input, AttributeUpdates: { ...input.AttributeUpdates, [MARKER_ATTRIBUTE]: { Action: 'PUT', Value: marker } } });
    }
    return new UpdateCommand({
      ...input,
      UpdateExpression: withMarkerSet(input.UpdateExpression),
      ExpressionAttributeNames: { ...input.ExpressionAttributeNames, '#_ev': MARKER_ATTRIBUTE },
      ExpressionAttributeValues: { ...input.ExpressionAttributeValues, ':_ev': marker },
    });
  }
  return command;
}

/**
 * Wraps a document client's send so that writes inside a scope are marked
 * and the scope hears of its first write before it is sent.
 */
export function scopedSend<S>(sendFn: S): S {
  const send = sendFn as unknown as Send;
  return (async (command: object, options?: unknown) => {
    const scope = writeScopes.getStore();
    const ref = scope ? refOf(command) : undefined;
    if (!scope || !ref) return send(command, options);
    if (scope.writes++ === 0) {
      scope.first = ref;
      // the prepared events are written outside the scope, unmarked
      await writeScopes.exit(() => scope.beforeFirstWrite(ref));
    }
    return send(marked(command, scope.marker), options);
  }) as unknown as S;
}
