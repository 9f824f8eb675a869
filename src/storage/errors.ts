// A DynamoDB call that failed for any reason other than a lost condition:
// network down, throttled, missing table. Callers render it as 503.
// ServiceUnavailable is the same condition typed as oidc-provider's
// temporarily_unavailable (for code oidc-provider calls: the adapter, KMS);
// isUnavailable recognises either.
import { errors } from 'oidc-provider';

export class StorageUnavailable extends Error {
  override name = 'StorageUnavailable';
}

export function asStorageError(err: unknown): StorageUnavailable {
  if (err instanceof StorageUnavailable) return err;
  const name = (err as Error)?.name ?? 'Error';
  return new StorageUnavailable(`storage unavailable (${name})`, { cause: err });
}

/** 503 temporarily_unavailable: a dependency (DynamoDB, KMS) cannot be reached. */
export class ServiceUnavailable extends errors.TemporarilyUnavailable {
  constructor(description = 'the service is temporarily unavailable, try again shortly', options?: { cause?: unknown }) {
    super(description, options as never);
    this.status = 503;
    this.statusCode = 503;
    this.expose = true;
  }
}

export function isUnavailable(err: unknown): boolean {
  return err instanceof StorageUnavailable || err instanceof ServiceUnavailable
    || (err as { error?: string })?.error === 'temporarily_unavailable';
}

/** a conditional write or update lost its condition */
export const isConditionFailed = (err: unknown): boolean => (err as Error)?.name === 'ConditionalCheckFailedException';

/**
 * Sends a DynamoDB command: a lost condition is rethrown as it is (callers
 * decide what it means), every other failure becomes StorageUnavailable.
 */
export async function sendOrUnavailable<T>(doc: { send(cmd: never): Promise<unknown> }, cmd: object): Promise<T> {
  try {
    return await doc.send(cmd as never) as T;
  } catch (err) {
    if (isConditionFailed(err)) throw err;
    throw asStorageError(err);
  }
}

/** A conditional write that may lose to a concurrent one: true when written, false when its condition failed. */
export async function writeIfCondition(doc: { send(cmd: never): Promise<unknown> }, cmd: object): Promise<boolean> {
  try {
    await sendOrUnavailable(doc, cmd);
    return true;
  } catch (err) {
    if (isConditionFailed(err)) return false;
    throw err;
  }
}
