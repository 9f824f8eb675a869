// Events: build a CloudEvent (id, time, source, subject, redacted data) and
// record it in the events table (store.ts). Ways in:
//   commit(specs, write)  — events caused by a state change: stored with it,
//                           or not at all when the write fails;
//   emit(type, fields)    — a record of its own (login.failed, ...), stored in
//                           the background; append() is the same, awaited.
// The publisher moves recorded events to the sink (publisher.ts). emit() never
// throws into a request. subscribe() is for in-process listeners (metrics).
// Without a store (unit tests of sinks), events go straight to the sink.
import crypto from 'node:crypto';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { Logger } from '../logging/index.ts';
import type { Config } from '../config/index.ts';
import type { Storage } from '../storage/index.ts';
import { writeScopes, type WriteScope } from '../storage/write-scope.ts';
import { FileEventSink } from './file-sink.ts';
import { SqsEventSink } from './sqs-sink.ts';
import { EventStore } from './store.ts';
import { Publisher, type PublisherOptions } from './publisher.ts';
import { redact, type AuditPage, type AuditQuery, type CloudEvent, type EventFields, type EventRecorder, type EventSink, type EventSpec, type EventType, type Specs } from './types.ts';

export type { AuditEvent, AuditPage, AuditQuery, CloudEvent, EventFields, EventRecorder, EventSink, EventSpec, EventType, Specs } from './types.ts';
export { EVENT_TYPES } from './types.ts';
export { EventsInvalid } from './store.ts';

export interface EventsConfig {
  sink: 'file' | 'sqs' | 'none';
  sqsQueueUrl?: string;
  sqsEndpoint?: string;
  region: string;
  dataDir: string;
  /** the CloudEvent `source` (the issuer) */
  source?: string;
  /** where events are stored: the document client and the events table (absent: straight to the sink) */
  store?: { doc: DynamoDBDocumentClient; table: string };
  retentionDays?: number;
  /** run the sweep in this process (servers, `idp worker`); the CLI only sends what it recorded */
  sweep?: boolean;
  publisher?: PublisherOptions;
  /** test hook: SIGKILL this process right after a change's write, before its events are confirmed */
  killAfterWrite?: boolean;
}

export type EventListener = (event: CloudEvent) => void;

export interface EventsOptions {
  source?: string;
  store?: EventStore;
  publisher?: PublisherOptions;
  sweep?: boolean;
  killAfterWrite?: boolean;
}

export class Events implements EventRecorder {
  readonly sink: EventSink | undefined;
  readonly source: string;
  readonly store: EventStore | undefined;
  readonly publisher: Publisher | undefined;
  private readonly log: Logger;
  private readonly killAfterWrite: boolean;
  private readonly listeners = new Set<EventListener>();
  private readonly inflight = new Set<Promise<unknown>>();
  private backlogCache: { at: number; value: Promise<{ size: number; failing: number; oldestAgeSeconds: number }> } | undefined;

  constructor(sink: EventSink | undefined, log: Logger, opts: EventsOptions = {}) {
    this.sink = sink;
    this.log = log;
    this.source = opts.source ?? 'urn:idp';
    this.store = opts.store;
    this.killAfterWrite = opts.killAfterWrite === true;
    if (this.store && sink) {
      this.publisher = new Publisher(this.store, sink, log, opts.publisher);
      if (opts.sweep) this.publisher.start();
    }
  }

  /** builds the CloudEvent for a spec: subject is the sub, else the client id; personal data stripped */
  build(spec: EventSpec): CloudEvent {
    const { type, sub, clientId, actor, requestId, reason, data } = spec;
    return {
      specversion: '1.0', id: crypto.randomUUID(), type, source: this.source, time: new Date().toISOString(),
      ...(sub ?? clientId ? { subject: sub ?? clientId } : {}),
      datacontenttype: 'application/json',
      data: {
        ...redact(data),
        ...(clientId ? { clientId } : {}), ...(actor ? { actor } : {}), ...(reason ? { reason } : {}), ...(requestId ? { requestId } : {}),
      },
    };
  }

  /** in-process listeners, called once per recorded event (metrics); returns the unsubscribe */
  subscribe(listener: EventListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Runs `write` (a state change) and stores `specs` with it (store.ts): when
   * `write` throws (a failed conditional write), no event is recorded and the
   * error goes to the caller. `specs` may be a function: it is called at the
   * change's first write (or after `write`), when ids made inside are known.
   * When nothing was written inside `write`, the events are recorded after it,
   * unless `onlyIfWritten` (then: no change, no event).
   */
  async commit<T>(specs: Specs, write: () => Promise<T>, opts: { onlyIfWritten?: boolean } = {}): Promise<T> {
    let events: CloudEvent[] | undefined;
    const built = () => (events ??= [typeof specs === 'function' ? specs() : specs].flat().map((s) => this.build(s)));
    const store = this.store;
    if (!store) {
      const result = await write();
      if (!opts.onlyIfWritten) this.after(built());
      return result;
    }
    const scope: WriteScope = { marker: crypto.randomUUID(), writes: 0, beforeFirstWrite: (ref) => store.prepare(built(), ref, scope.marker) };
    let result: T;
    try {
      result = await writeScopes.run(scope, write);
    } catch (err) {
      if (scope.first && events) {
        const ids = events.map((e) => e.id);
        await store.discard(ids).catch((e2: unknown) => this.log.warn({ err: { message: (e2 as Error).message } }, 'prepared events not discarded; the sweep settles them'));
      }
      throw err;
    }
    if (!scope.first && opts.onlyIfWritten) return result;
    if (this.killAfterWrite && scope.first) process.kill(process.pid, 'SIGKILL');
    const lease = this.publisher?.lease();
    const delivered = !this.sink;
    const list = built();
    if (list.length === 0) return result;
    if (scope.first) await store.confirm(list, { lease, delivered });
    else await store.record(list, { lease, delivered });
    this.after(list);
    return result;
  }

  async commitIf(specs: Specs, write: () => Promise<boolean>): Promise<boolean> {
    const notDone = new Error('not done');
    try {
      return await this.commit(specs, async () => {
        if (!(await write())) throw notDone;
        return true;
      });
    } catch (err) {
      if (err === notDone) return false;
      throw err;
    }
  }

  /** records an event of its own (not tied to a state write), in the background */
  emit(type: EventType, fields: EventFields = {}): CloudEvent {
    const event = this.build({ type, ...fields });
    const p = this.save(event).catch((err: unknown) => {
      this.log.error({ event: type, eventId: event.id, err: { name: (err as Error).name, message: (err as Error).message } }, 'event not recorded');
    }).finally(() => this.inflight.delete(p));
    this.inflight.add(p);
    return event;
  }

  /** emit(), resolved once the event is stored (it throws when it could not be) */
  async append(type: EventType, fields: EventFields = {}): Promise<CloudEvent> {
    const event = this.build({ type, ...fields });
    await this.save(event);
    return event;
  }

  private async save(event: CloudEvent): Promise<void> {
    if (this.store) await this.store.record([event], { lease: this.publisher?.lease(), delivered: !this.sink });
    this.after([event]);
  }

  /** after events were recorded: the log line, listeners, and the sink */
  private after(events: CloudEvent[]): void {
    for (const event of events) {
      const d = event.data;
      this.log.info({ event: event.type, eventId: event.id, subject: event.subject, clientId: d.clientId, actor: d.actor, reason: d.reason, requestId: d.requestId }, 'event');
      for (const l of this.listeners) {
        try {
          l(event);
        } catch { /* a listener never fails the caller */ }
      }
    }
    if (this.publisher) {
      this.publisher.hand(events);
    } else if (this.sink && !this.store) {
      const p = this.sink.deliver(events).catch((err: unknown) => {
        this.log.error({ err: { message: (err as Error).message } }, 'event sink failed');
      }).finally(() => this.inflight.delete(p));
      this.inflight.add(p);
    }
  }

  /** the audit log: recorded events, newest first */
  async query(q: AuditQuery = {}): Promise<AuditPage> {
    if (!this.store) return { items: [] };
    return this.store.query(q);
  }

  /** events recorded but not yet delivered (failing: after many attempts), and the age of the oldest; cached 5 s */
  backlog(): Promise<{ size: number; failing: number; oldestAgeSeconds: number }> {
    const store = this.store;
    if (!store) return Promise.resolve({ size: 0, failing: 0, oldestAgeSeconds: 0 });
    if (!this.backlogCache || Date.now() - this.backlogCache.at > 5000) {
      const value = store.backlog().then((b) => ({ size: b.size, failing: b.failing, oldestAgeSeconds: b.oldest ? Math.max(0, (Date.now() - Date.parse(b.oldest)) / 1000) : 0 }));
      this.backlogCache = { at: Date.now(), value };
      value.catch(() => {
        this.backlogCache = undefined;
      });
    }
    return this.backlogCache.value;
  }

  /** the sink's kind ('none' without one); rejects when the sink cannot take events now (/readyz) */
  async ping(signal: AbortSignal): Promise<{ sink: string }> {
    if (!this.sink) return { sink: 'none' };
    await this.sink.ping?.(signal);
    return { sink: this.sink.kind };
  }

  /** resolves when what was emitted so far was stored and what this process holds was sent */
  async settled(): Promise<void> {
    await Promise.all([...this.inflight]);
    await this.publisher?.flush();
  }

  async close(): Promise<void> {
    await this.settled();
    await this.publisher?.close();
    await this.sink?.close();
  }
}

export function createEvents(cfg: EventsConfig, log: Logger): Events {
  const opts: EventsOptions = {
    source: cfg.source, sweep: cfg.sweep, publisher: cfg.publisher, killAfterWrite: cfg.killAfterWrite,
    store: cfg.store ? new EventStore(cfg.store.doc, cfg.store.table, { retentionDays: cfg.retentionDays ?? 400 }) : undefined,
  };
  switch (cfg.sink) {
    case 'none':
      return new Events(undefined, log, opts);
    case 'sqs':
      if (!cfg.sqsQueueUrl) throw new Error('EVENTS_SINK=sqs needs SQS_QUEUE_URL');
      return new Events(new SqsEventSink({ queueUrl: cfg.sqsQueueUrl, endpoint: cfg.sqsEndpoint, region: cfg.region }), log, opts);
    default:
      return new Events(new FileEventSink(cfg.dataDir), log, opts);
  }
}

/**
 * Events as configured, stored in the events table of `storage`. `role`:
 * a server sweeps when EVENTS_PUBLISHER=in-process, `idp worker` always
 * sweeps, other CLI commands only send what they record themselves.
 */
export function eventsFor(config: Config, storage: Storage, log: Logger, role: 'server' | 'worker' | 'cli'): Events {
  const e = config.events;
  return createEvents({
    sink: e.sink, sqsQueueUrl: e.sqsQueueUrl, sqsEndpoint: e.sqsEndpoint, region: config.awsRegion, dataDir: config.dataDir,
    source: config.issuer, store: { doc: storage.doc, table: storage.tables.events }, retentionDays: e.retentionDays,
    sweep: role === 'worker' || (role === 'server' && e.publisher === 'in-process'),
    publisher: { sweepMs: e.sweepSeconds * 1000, recoveryMs: e.recoverySeconds * 1000, failingAfter: e.failingAfter, retryMaxMs: e.retryMaxSeconds * 1000 },
    killAfterWrite: e.testKillAfterWrite,
  }, log);
}
