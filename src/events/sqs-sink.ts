// The AWS event sink: events go to an SQS queue in batches of up to 10
// (SendMessageBatch), a few milliseconds after they are published. A batch
// that keeps failing (SQS down, throttled) is spooled to
// DATA_DIR/events-undelivered.jsonl and re-sent by the next flush once SQS
// answers again, so an outage loses no event and never blocks a login.
import fs from 'node:fs';
import path from 'node:path';
import { SQSClient, SendMessageBatchCommand } from '@aws-sdk/client-sqs';
import type { AuditEvent, EventSink } from './types.ts';

export interface SqsSinkOptions {
  queueUrl: string;
  region: string;
  endpoint?: string;
  dataDir: string;
  /** FIFO queues: messages of one account stay in order */
  fifo?: boolean;
  flushMs?: number;
  /** how soon spooled events are tried again after a failure */
  retryMs?: number;
  maxBuffer?: number;
  onError?: (err: unknown, spooled: number) => void;
}

export class SqsEventSink implements EventSink {
  readonly kind = 'sqs';
  private readonly client: SQSClient;
  private readonly opts: Required<Omit<SqsSinkOptions, 'endpoint' | 'onError'>> & Pick<SqsSinkOptions, 'endpoint' | 'onError'>;
  private buffer: AuditEvent[] = [];
  private timer: NodeJS.Timeout | undefined;
  private sending: Promise<void> = Promise.resolve();
  private retry: NodeJS.Timeout | undefined;
  private closed = false;
  readonly spoolFile: string;

  constructor(opts: SqsSinkOptions) {
    this.opts = { fifo: opts.queueUrl.endsWith('.fifo'), flushMs: 20, retryMs: 5000, maxBuffer: 10_000, ...opts };
    const local = opts.endpoint !== undefined && /^http:\/\/(127\.0\.0\.1|localhost)[:/]/.test(opts.endpoint);
    this.client = new SQSClient({
      region: opts.region, endpoint: opts.endpoint, maxAttempts: 3,
      ...(local ? { credentials: { accessKeyId: 'local', secretAccessKey: 'local' } } : {}),
      requestHandler: { connectionTimeout: 1000, requestTimeout: 5000 },
    });
    this.spoolFile = path.join(opts.dataDir, 'events-undelivered.jsonl');
  }

  publish(event: AuditEvent): void {
    if (this.buffer.length >= this.opts.maxBuffer) {
      this.spool(this.buffer.splice(0, this.buffer.length));
    }
    this.buffer.push(event);
    this.timer ??= setTimeout(() => {
      this.timer = undefined;
      void this.flush();
    }, this.opts.flushMs);
  }

  private spool(events: AuditEvent[]): void {
    if (events.length === 0) return;
    fs.mkdirSync(path.dirname(this.spoolFile), { recursive: true, mode: 0o700 });
    fs.appendFileSync(this.spoolFile, events.map((e) => `${JSON.stringify(e)}\n`).join(''), { mode: 0o600 });
  }

  private takeSpool(): AuditEvent[] {
    let text: string;
    try {
      text = fs.readFileSync(this.spoolFile, 'utf8');
    } catch {
      return [];
    }
    fs.rmSync(this.spoolFile, { force: true });
    return text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as AuditEvent);
  }

  private async sendBatch(batch: AuditEvent[]): Promise<AuditEvent[]> {
    const r = await this.client.send(new SendMessageBatchCommand({
      QueueUrl: this.opts.queueUrl,
      Entries: batch.map((e, i) => ({
        Id: String(i),
        MessageBody: JSON.stringify(e),
        MessageAttributes: { type: { DataType: 'String', StringValue: e.type } },
        ...(this.opts.fifo ? { MessageGroupId: e.sub ?? e.type, MessageDeduplicationId: e.id } : {}),
      })),
    }));
    return (r.Failed ?? []).map((f) => batch[Number(f.Id)]);
  }

  /** send what is buffered (and anything spooled earlier) */
  flush(): Promise<void> {
    this.sending = this.sending.then(async () => {
      if (this.timer) {
        clearTimeout(this.timer);
        this.timer = undefined;
      }
      const pending = [...this.takeSpool(), ...this.buffer.splice(0, this.buffer.length)];
      for (let i = 0; i < pending.length; i += 10) {
        const batch = pending.slice(i, i + 10);
        try {
          const failed = await this.sendBatch(batch);
          this.spool(failed);
        } catch (err) {
          const rest = pending.slice(i);
          this.spool(rest);
          this.opts.onError?.(err, rest.length);
          if (!this.closed && !this.retry) {
            this.retry = setTimeout(() => {
              this.retry = undefined;
              void this.flush();
            }, this.opts.retryMs);
            this.retry.unref();
          }
          return;
        }
      }
    });
    return this.sending;
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.retry) clearTimeout(this.retry);
    await this.flush();
    this.client.destroy();
  }
}
