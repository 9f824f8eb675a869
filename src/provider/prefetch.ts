// Early reads of one request (the interaction and token pipelines): started
// before the handler asks, taken once by the code that asks, and all waited
// for before the request ends, so none outlives it.
export class Prefetches {
  private readonly pending = new Map<string, Promise<unknown>>();
  private readonly started: Array<Promise<unknown>> = [];

  /** starts `load` now unless `key` is already under way; the first take(key) gets its answer */
  start(key: string, load: () => Promise<unknown>): void {
    if (this.pending.has(key)) return;
    const p = load();
    p.catch(() => {}); // a prefetch nobody takes must not be an unhandled rejection
    this.pending.set(key, p);
    this.started.push(p);
  }

  /** the prefetched answer for `key`, once */
  take<T>(key: string): Promise<T> | undefined {
    const p = this.pending.get(key);
    if (p) this.pending.delete(key);
    return p as Promise<T> | undefined;
  }

  /** every read started, taken or not, settled */
  async settled(): Promise<void> {
    await Promise.allSettled(this.started);
  }
}
