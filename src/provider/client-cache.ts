// A small TTL cache in front of the Client model's adapter.
//
// oidc-provider calls the Client adapter's `find` on every request that names
// a client (every token, introspection and authorization request); it already
// keeps the built Client objects keyed by a hash of their metadata, so all it
// needs from us is the metadata, and a DynamoDB GetItem for that on every
// request is one round trip too many.
//
// Freshness:
//   - in this process, a client written or removed through an adapter wrapped
//     here (the Registry the server holds, the provider's own Client model) is
//     dropped from the cache at once, and a lookup that was in flight while it
//     changed is not cached;
//   - in other processes (the `idp` CLI, other cluster workers, other hosts)
//     a change is seen within CLIENT_CACHE_TTL_MS: a removed client or a
//     rotated secret keeps working here for at most that long.
// Unknown client ids are cached too (the same TTL), so junk client_ids do not
// each cost a read; the cache holds at most `maxEntries` ids and drops the
// oldest beyond that.
import type { Adapter, AdapterPayload } from 'oidc-provider';
import { TtlCache } from '../storage/ttl-cache.ts';

export { TtlCache };

export const CLIENT_CACHE_TTL_MS = 5_000;

/**
 * Client metadata by client_id. Concurrent misses for one id share one read;
 * hits return a fresh copy (parsed from the cached JSON), so no caller can
 * change what the next one gets.
 */
export class ClientCache {
  private readonly cache: TtlCache<string | undefined>;
  private readonly inflight = new Map<string, Promise<AdapterPayload | undefined>>();
  /** bumped on every invalidation: a read that started before it is not cached */
  private epoch = 0;
  hits = 0;
  misses = 0;

  constructor(opts: { ttlMs?: number; maxEntries?: number; now?: () => number } = {}) {
    this.cache = new TtlCache({ ttlMs: opts.ttlMs ?? CLIENT_CACHE_TTL_MS, maxEntries: opts.maxEntries ?? 1000, now: opts.now });
  }

  async find(id: string, load: () => Promise<AdapterPayload | undefined>): Promise<AdapterPayload | undefined> {
    const hit = this.cache.get(id);
    if (hit) {
      this.hits++;
      return hit.value === undefined ? undefined : JSON.parse(hit.value) as AdapterPayload;
    }
    this.misses++;
    let pending = this.inflight.get(id);
    if (!pending) {
      const epoch = this.epoch;
      pending = load().then((payload) => {
        if (this.epoch === epoch) this.cache.set(id, payload === undefined ? undefined : JSON.stringify(payload));
        return payload;
      }).finally(() => {
        if (this.inflight.get(id) === pending) this.inflight.delete(id);
      });
      this.inflight.set(id, pending);
    }
    const payload = await pending;
    return payload === undefined ? undefined : structuredClone(payload);
  }

  invalidate(id: string): void {
    this.epoch++;
    this.cache.delete(id);
    this.inflight.delete(id);
  }

  clear(): void {
    this.epoch++;
    this.cache.clear();
    this.inflight.clear();
  }
}

type AdapterClass = new (name: string) => Adapter;

/**
 * Wraps an adapter class so that its "Client" model reads through `cache` and
 * its writes (upsert, destroy) invalidate the entry; other models pass through.
 */
export function withClientCache(Base: AdapterClass, cache: ClientCache): AdapterClass {
  return class CachedClientAdapter extends Base {
    private readonly cached: boolean;

    constructor(name: string) {
      super(name);
      this.cached = name === 'Client';
    }

    override async find(id: string): Promise<AdapterPayload | undefined> {
      if (!this.cached) return (await super.find(id)) ?? undefined;
      return cache.find(id, async () => (await super.find(id)) ?? undefined);
    }

    override async upsert(id: string, payload: AdapterPayload, expiresIn: number): Promise<void> {
      if (!this.cached) return super.upsert(id, payload, expiresIn);
      cache.invalidate(id);
      try {
        await super.upsert(id, payload, expiresIn);
      } finally {
        cache.invalidate(id);
      }
    }

    override async destroy(id: string): Promise<void> {
      if (!this.cached) return super.destroy(id);
      cache.invalidate(id);
      try {
        await super.destroy(id);
      } finally {
        cache.invalidate(id);
      }
    }
  };
}
