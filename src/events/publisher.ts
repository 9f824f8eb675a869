// The publisher: moves recorded events from the events table to the sink.
//
//   fast path  events this process just recorded, with a lease already taken
//              in the same write, go to the sink a few milliseconds later;
//   sweep      every EVENTS_SWEEP_SECONDS, each shard of the `pending` index
//              is read oldest first: prepared events older than
//              EVENTS_RECOVERY_SECONDS are settled (store.ts), deliverable
//              ones whose lease ran out and whose retry time came are claimed
//              with a conditional write — so several publishers (servers,
//              `idp worker`) never deliver one event in a tight loop — and sent.
// Delivered events are marked so on the condition that this publisher still
// holds them; failures are retried with exponential backoff (1 s doubling to
// EVENTS_RETRY_MAX_SECONDS, 5 min) and, after EVENTS_FAILING_AFTER attempts, show as `failing` (still
// retried, counted by `idp events status` and the backlog metric). A crash
// after the sink took an event and before it was marked means it is sent
// again after the lease: consumers de-duplicate by `id`.
import crypto from 'node:crypto';
import type { Logger } from '../logging/index.ts';
import { SHARDS, type EventStore, type StoredEvent } from './store.ts';
import type { CloudEvent, EventSink } from './types.ts';

export interface PublisherOptions {
  leaseMs?: number;
  sweepMs?: number;
  recoveryMs?: number;
  failingAfter?: number;
  /** fast-path batching delay */
  flushMs?: number;
  /** the longest wait between two attempts (the backoff doubles from 1 s up to it) */
  retryMaxMs?: number;
}

const BATCH = 10;

export class Publisher {
  readonly owner = `pub-${process.pid}-${crypto.randomBytes(4).toString('hex')}`;
  private readonly store: EventStore;
  private readonly sink: EventSink;
  private readonly log: Logger;
  private readonly opts: Required<PublisherOptions>;
  private held: CloudEvent[] = [];
  private timer: NodeJS.Timeout | undefined;
  private sweeper: NodeJS.Timeout | undefined;
  private chain: Promise<void> = Promise.resolve();
  private sweeping: Promise<void> | undefined;
  private closed = false;

  constructor(store: EventStore, sink: EventSink, log: Logger, opts: PublisherOptions = {}) {
    this.store = store;
    this.sink = sink;
    this.log = log;
    this.opts = { leaseMs: 30_000, sweepMs: 5_000, recoveryMs: 30_000, failingAfter: 5, flushMs: 10, retryMaxMs: 300_000, ...opts };
  }

  /** a lease for events recorded by this process, taken in the write that records them */
  lease(): { owner: string; until: number } {
    return { owner: this.owner, until: Date.now() + this.opts.leaseMs };
  }

  /** events this process recorded with lease(): sent shortly, in batches */
  hand(events: CloudEvent[]): void {
    if (this.closed) return; // the sweep of a later run sends them when the lease ends
    this.held.push(...events);
    this.timer ??= setTimeout(() => {
      this.timer = undefined;
      void this.flush();
    }, this.opts.flushMs);
  }

  /** sends what is held now; resolves when it was sent (or failed and was marked) */
  flush(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    const batch = this.held.splice(0, this.held.length);
    this.chain = this.chain.then(() => this.send(batch, 0)).catch((err: unknown) => {
      this.log.error({ err: { name: (err as Error).name, message: (err as Error).message } }, 'event publishing failed');
    });
    return this.chain;
  }

  /** sends events this publisher holds; `attempts` is how many times they failed before */
  private async send(events: CloudEvent[], attempts: number | ((e: CloudEvent) => number)): Promise<void> {
    for (let i = 0; i < events.length; i += BATCH) {
      const batch = events.slice(i, i + BATCH);
      let failed: Set<string>;
      let reason = 'not accepted by the sink';
      try {
        failed = new Set(await this.sink.deliver(batch));
      } catch (err) {
        failed = new Set(batch.map((e) => e.id));
        reason = `${(err as Error).name}: ${(err as Error).message}`;
      }
      await Promise.all(batch.map((e) => {
        if (!failed.has(e.id)) return this.store.delivered(e.id, this.owner);
        const n = (typeof attempts === 'function' ? attempts(e) : attempts) + 1;
        const delay = Math.min(1000 * 2 ** (n - 1), this.opts.retryMaxMs) * (0.8 + Math.random() * 0.4);
        return this.store.failed(e.id, this.owner, n, Date.now() + Math.round(delay), reason, this.opts.failingAfter);
      }));
      if (failed.size) this.log.warn({ failed: failed.size, reason }, 'event delivery failed; will retry');
    }
  }

  /** one pass over the pending index (see the file comment) */
  sweep(): Promise<void> {
    this.sweeping ??= this.sweepOnce().finally(() => {
      this.sweeping = undefined;
    });
    return this.sweeping;
  }

  private async sweepOnce(): Promise<void> {
    for (let s = 0; s < SHARDS; s++) {
      let startKey: Record<string, unknown> | undefined;
      let pages = 0;
      do {
        const page = await this.store.pending(`P${s}`, 100, startKey);
        startKey = page.next;
        const now = Date.now();
        const claimed: Array<StoredEvent & { pk: string }> = [];
        for (const item of page.items) {
          if (this.closed) return;
          if (item.st === 'prepared') {
            if (now - Date.parse(item.ev.time) < this.opts.recoveryMs) continue;
            const outcome = await this.store.settle(item);
            this.log.warn({ eventId: item.ev.id, event: item.ev.type, outcome }, 'settled an event its process left prepared');
            if (outcome === 'discarded') continue;
            item.st = 'ready';
          }
          if ((item.lu ?? 0) >= now || (item.next ?? 0) > now) continue;
          if (await this.store.claim(item.ev.id, this.owner, now, now + this.opts.leaseMs)) claimed.push(item);
        }
        if (claimed.length) {
          const attempts = new Map(claimed.map((c) => [c.ev.id, c.n ?? 0]));
          // a settled event's stored copy may carry data.recovery: read it back
          const evs = await Promise.all(claimed.map(async (c) => (await this.store.get(c.ev.id))?.ev ?? c.ev));
          await this.send(evs, (e) => attempts.get(e.id) ?? 0);
        }
      } while (startKey && ++pages < 10);
    }
  }

  /** sweeps every sweepMs until close() */
  start(): void {
    const tick = () => {
      this.sweeper = setTimeout(() => {
        this.sweep().catch((err: unknown) => {
          this.log.warn({ err: { name: (err as Error).name, message: (err as Error).message } }, 'event sweep failed');
        }).finally(() => {
          if (!this.closed) tick();
        });
      }, this.opts.sweepMs);
      this.sweeper.unref();
    };
    tick();
  }

  async close(): Promise<void> {
    await this.flush();
    this.closed = true;
    if (this.sweeper) clearTimeout(this.sweeper);
    await this.sweeping?.catch(() => undefined);
    await this.chain;
  }
}
