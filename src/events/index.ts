// Events: build a CloudEvent (id, time, source, subject, redacted data) and
// record it. Two ways in:
//   commit(specs, write)  — events caused by a state change: recorded with it,
//                           or not at all when the write fails (store.ts);
//   emit(type, fields)    — a record of its own (login.failed, ...).
// A publisher moves recorded events to the sink (publisher.ts). emit() never
// throws into a request. subscribe() is for in-process listeners (metrics).
import crypto from 'node:crypto';
import type { Logger } from '../logging/index.ts';
import { FileEventSink } from './file-sink.ts';
import { SqsEventSink } from './sqs-sink.ts';
import { redact, type AuditPage, type AuditQuery, type CloudEvent, type EventFields, type EventSink, type EventSpec } from './types.ts';

export type { AuditEvent, AuditPage, AuditQuery, CloudEvent, EventFields, EventSink, EventSpec } from './types.ts';

export interface EventsConfig {
  sink: 'file' | 'sqs' | 'none';
  sqsQueueUrl?: string;
  sqsEndpoint?: string;
  region: string;
  dataDir: string;
  /** the CloudEvent `source` (the issuer) */
  source?: string;
}

export type EventListener = (event: CloudEvent) => void;

export class Events {
  readonly sink: EventSink | undefined;
  readonly source: string;
  private readonly log: Logger;
  private readonly listeners = new Set<EventListener>();
  private readonly inflight = new Set<Promise<unknown>>();

  constructor(sink: EventSink | undefined, log: Logger, source = 'urn:idp') {
    this.sink = sink;
    this.log = log;
    this.source = source;
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
   * Runs `write` (a state change) and records `specs` with it: when `write`
   * throws (a failed conditional write), no event is recorded and the error
   * goes to the caller.
   */
  async commit<T>(specs: EventSpec | EventSpec[], write: () => Promise<T>): Promise<T> {
    const list = Array.isArray(specs) ? specs : [specs];
    const result = await write();
    for (const s of list) this.record(this.build(s));
    return result;
  }

  /** records an event of its own (not tied to a state write) */
  emit(type: string, fields: EventFields = {}): CloudEvent {
    const event = this.build({ type, ...fields });
    this.record(event);
    return event;
  }

  private record(event: CloudEvent): void {
    const d = event.data;
    this.log.info({ event: event.type, eventId: event.id, subject: event.subject, clientId: d.clientId, reason: d.reason, requestId: d.requestId }, 'event');
    for (const l of this.listeners) {
      try {
        l(event);
      } catch { /* a listener never fails the caller */ }
    }
    if (!this.sink) return;
    const p = this.sink.deliver([event]).catch((err: unknown) => {
      this.log.error({ event: event.type, err: { message: (err as Error).message } }, 'event sink failed');
    }).finally(() => this.inflight.delete(p));
    this.inflight.add(p);
  }

  /** the audit log: recorded events, newest first */
  async query(_q: AuditQuery = {}): Promise<AuditPage> {
    return { items: [] };
  }

  /** events recorded but not yet delivered, and the age of the oldest */
  async backlog(): Promise<{ size: number; oldestAgeSeconds: number }> {
    return { size: 0, oldestAgeSeconds: 0 };
  }

  /** the sink's kind ('none' without one); rejects when the sink cannot take events now (/readyz) */
  async ping(signal: AbortSignal): Promise<{ sink: string }> {
    if (!this.sink) return { sink: 'none' };
    await this.sink.ping?.(signal);
    return { sink: this.sink.kind };
  }

  /** resolves when what was recorded so far was handed to the sink */
  async settled(): Promise<void> {
    await Promise.all([...this.inflight]);
  }

  async close(): Promise<void> {
    await this.settled();
    await this.sink?.close();
  }
}

export function createEvents(cfg: EventsConfig, log: Logger): Events {
  switch (cfg.sink) {
    case 'none':
      return new Events(undefined, log, cfg.source);
    case 'sqs':
      if (!cfg.sqsQueueUrl) throw new Error('EVENTS_SINK=sqs needs SQS_QUEUE_URL');
      return new Events(new SqsEventSink({ queueUrl: cfg.sqsQueueUrl, endpoint: cfg.sqsEndpoint, region: cfg.region }), log, cfg.source);
    default:
      return new Events(new FileEventSink(cfg.dataDir), log, cfg.source);
  }
}
