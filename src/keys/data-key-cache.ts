// A bounded cache of opened data keys, for callers that open the same
// record's data key often (accounts). With kms-envelope and kms-sign every
// openDataKey is one KMS Decrypt; with this cache it is one per record per
// ttlMs at most. Entries are evicted least-recently-used beyond `max`, and
// expire after `ttlMs`; evicted plaintext is zeroed. Concurrent opens of the
// same key share one call. A failed open is not cached.
import type { DataKey, Keyring } from './types.ts';

export interface DataKeyCache {
  /** one GenerateDataKey (kms modes); the new plaintext is cached for its wrapped form */
  newDataKey(context: string): Promise<DataKey>;
  /** cached, or one Decrypt (kms modes) */
  openDataKey(wrapped: string, context: string): Promise<Buffer>;
  /** drop one key (e.g. the record was deleted) or all */
  forget(wrapped?: string, context?: string): void;
  readonly size: number;
}

export function cachedDataKeys(keyring: Pick<Keyring, 'newDataKey' | 'openDataKey'>, opts: { max?: number; ttlMs?: number } = {}): DataKeyCache {
  const max = opts.max ?? 1000;
  const ttlMs = opts.ttlMs ?? 5 * 60_000;
  const entries = new Map<string, { key: Buffer; expires: number }>();
  const inflight = new Map<string, Promise<Buffer>>();
  const id = (wrapped: string, context: string) => `${context}\u0000${wrapped}`;

  function put(k: string, key: Buffer) {
    entries.delete(k);
    entries.set(k, { key: Buffer.from(key), expires: Date.now() + ttlMs });
    while (entries.size > max) {
      const [oldest, e] = entries.entries().next().value as [string, { key: Buffer }];
      e.key.fill(0);
      entries.delete(oldest);
    }
  }

  return {
    async newDataKey(context) {
      const dk = await keyring.newDataKey(context);
      put(id(dk.wrapped, context), dk.plaintext);
      return dk;
    },
    async openDataKey(wrapped, context) {
      const k = id(wrapped, context);
      const hit = entries.get(k);
      if (hit && hit.expires > Date.now()) {
        entries.delete(k);
        entries.set(k, hit); // most recently used last
        return Buffer.from(hit.key);
      }
      if (hit) {
        hit.key.fill(0);
        entries.delete(k);
      }
      let p = inflight.get(k);
      if (!p) {
        p = keyring.openDataKey(wrapped, context).then((key) => {
          put(k, key);
          return key;
        }).finally(() => inflight.delete(k));
        inflight.set(k, p);
      }
      return Buffer.from(await p);
    },
    forget(wrapped, context) {
      if (wrapped === undefined) {
        for (const e of entries.values()) e.key.fill(0);
        entries.clear();
        return;
      }
      const k = id(wrapped, context ?? '');
      entries.get(k)?.key.fill(0);
      entries.delete(k);
    },
    get size() {
      return entries.size;
    },
  };
}
