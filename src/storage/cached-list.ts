// A short in-process cache of one list read from storage (connections, admin
// consents, roles): reused for `cacheMs`; a read that fails is not kept; this
// process's own writes drop it at once.
/** a list read from DynamoDB, reused for `cacheMs` (a failed read is not kept) */
export class CachedList<T> {
  private cached: { at: number; list: Promise<T[]> } | undefined;
  private readonly cacheMs: number;
  private readonly load: () => Promise<T[]>;

  constructor(cacheMs: number, load: () => Promise<T[]>) {
    this.cacheMs = cacheMs;
    this.load = load;
  }

  get(): Promise<T[]> {
    const now = Date.now();
    if (this.cached && now - this.cached.at < this.cacheMs) return this.cached.list;
    const list = this.load();
    this.cached = { at: now, list };
    list.catch(() => {
      if (this.cached?.list === list) this.cached = undefined;
    });
    return list;
  }

  drop(): void {
    this.cached = undefined;
  }
}
