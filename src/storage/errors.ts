// A DynamoDB call that failed for any reason other than a lost condition:
// network down, throttled, missing table. Callers render it as 503.
export class StorageUnavailable extends Error {
  override name = 'StorageUnavailable';
}

export function asStorageError(err: unknown): StorageUnavailable {
  if (err instanceof StorageUnavailable) return err;
  const name = (err as Error)?.name ?? 'Error';
  return new StorageUnavailable(`storage unavailable (${name})`, { cause: err });
}
