// Events: build an event (id, time, redaction) and hand it to the sink chosen
// by EVENTS_SINK (file, sqs or none). emit() never throws into a request.
import crypto from 'node:crypto';
import type { Logger } from '../logging/index.ts';
import { FileEventSink } from './file-sink.ts';
import { SqsEventSink } from './sqs-sink.ts';
import { redact, type AuditEvent, type EventSink } from './types.ts';

export type { AuditEvent, EventSink } from './types.ts';

export interface EventsConfig {
  sink: 'file' | 'sqs' | 'none';
  sqsQueueUrl?: string;
  sqsEndpoint?: string;
  region: string;
  dataDir: string;
}

export class Events {
  readonly sink: EventSink | undefined;
  private readonly log: Logger;

  constructor(sink: EventSink | undefined, log: Logger) {
    this.sink = sink;
    this.log = log;
  }

  emit(type: string, fields: Omit<AuditEvent, 'id' | 'type' | 'time'> = {}): AuditEvent {
    const event: AuditEvent = {
      id: crypto.randomUUID(), type, time: new Date().toISOString(),
      ...fields,
      ...(fields.data ? { data: redact(fields.data) } : {}),
    };
    this.log.info({ event: type, eventId: event.id, sub: event.sub, clientId: event.clientId, reason: event.reason, requestId: event.requestId }, 'event');
    try {
      this.sink?.publish(event);
    } catch (err) {
      this.log.error({ event: type, err: { message: (err as Error).message } }, 'event sink failed');
    }
    return event;
  }

  async close(): Promise<void> {
    await this.sink?.close();
  }
}

export function createEvents(cfg: EventsConfig, log: Logger): Events {
  const onError = (err: unknown, spooled?: number) => log.warn({ err: { name: (err as Error).name, message: (err as Error).message }, spooled }, 'event delivery failed; spooled for retry');
  switch (cfg.sink) {
    case 'none':
      return new Events(undefined, log);
    case 'sqs':
      if (!cfg.sqsQueueUrl) throw new Error('EVENTS_SINK=sqs needs SQS_QUEUE_URL');
      return new Events(new SqsEventSink({ queueUrl: cfg.sqsQueueUrl, endpoint: cfg.sqsEndpoint, region: cfg.region, dataDir: cfg.dataDir, onError }), log);
    default:
      return new Events(new FileEventSink(cfg.dataDir, onError), log);
  }
}
