// A bounded in-process map whose entries expire: the one cache shape used by
// the storage adapter's hints (adapters/dynamodb.ts) and the provider's
// metadata caches (src/provider/client-cache.ts re-exports it). Beyond
// `maxEntries` the oldest entry is dropped; an entry older than `ttlMs` reads
// as a miss.

/** A bounded map whose entries expire `ttlMs` after they were set. */
export class TtlCache<V> {
  private readonly map = new Map<string, { at: number; value: V }>();
  private readonly ttlMs: number;
  private readonly maxEntries: number;
  private readonly now: () => number;

  constructor(opts: { ttlMs: number; maxEntries: number; now?: () => number }) {
    this.ttlMs = opts.ttlMs;
    this.maxEntries = opts.maxEntries;
    this.now = opts.now ?? Date.now;
  }

  /** the cached value wrapped in an object (so `undefined` can be cached), or undefined on a miss */
  get(key: string): { value: V } | undefined {
    const hit = this.map.get(key);
    if (!hit) return undefined;
    if (this.now() - hit.at >= this.ttlMs) {
      this.map.delete(key);
      return undefined;
    }
    return hit;
  }

  set(key: string, value: V): void {
    this.map.delete(key);
    if (this.map.size >= this.maxEntries) {
      // Map iterates in insertion order: the first key is the oldest
      const oldest = this.map.keys().next();
      if (!oldest.done) this.map.delete(oldest.value);
    }
    this.map.set(key, { at: this.now(), value });
  }

  delete(key: string): void {
    this.map.delete(key);
  }

  clear(): void {
    this.map.clear();
  }

  get size(): number {
    return this.map.size;
  }
}
