// The AWS event sink: SendMessageBatch in batches of up to 10. It only
// delivers: the events table is the spool, and the publisher tries again
// what did not go (publisher.ts), so an SQS outage loses nothing.
import { GetQueueAttributesCommand, SQSClient, SendMessageBatchCommand } from '@aws-sdk/client-sqs';
import type { CloudEvent, EventSink } from './types.ts';

export interface SqsSinkOptions {
  queueUrl: string;
  region: string;
  endpoint?: string;
  /** FIFO queues: events of one subject stay in order, deduplicated by id */
  fifo?: boolean;
}

export class SqsEventSink implements EventSink {
  readonly kind = 'sqs';
  private readonly client: SQSClient;
  private readonly queueUrl: string;
  private readonly fifo: boolean;

  constructor(opts: SqsSinkOptions) {
    this.queueUrl = opts.queueUrl;
    this.fifo = opts.fifo ?? opts.queueUrl.endsWith('.fifo');
    const local = opts.endpoint !== undefined && /^http:\/\/(127\.0\.0\.1|localhost)[:/]/.test(opts.endpoint);
    this.client = new SQSClient({
      region: opts.region, endpoint: opts.endpoint, maxAttempts: 2,
      ...(local ? { credentials: { accessKeyId: 'local', secretAccessKey: 'local' } } : {}),
      requestHandler: { connectionTimeout: 1000, requestTimeout: 5000 },
    });
  }

  async deliver(events: CloudEvent[]): Promise<string[]> {
    const failed: string[] = [];
    for (let i = 0; i < events.length; i += 10) {
      const batch = events.slice(i, i + 10);
      try {
        const r = await this.client.send(new SendMessageBatchCommand({
          QueueUrl: this.queueUrl,
          Entries: batch.map((e, j) => ({
            Id: String(j),
            MessageBody: JSON.stringify(e),
            MessageAttributes: { type: { DataType: 'String', StringValue: e.type } },
            ...(this.fifo ? { MessageGroupId: e.subject ?? e.type, MessageDeduplicationId: e.id } : {}),
          })),
        }));
        for (const f of r.Failed ?? []) failed.push(batch[Number(f.Id)].id);
      } catch (err) {
        if (i === 0) throw err;
        for (const e of events.slice(i)) failed.push(e.id);
        break;
      }
    }
    return failed;
  }

  /** GetQueueAttributes of the queue: reachable, and the queue exists */
  async ping(signal: AbortSignal): Promise<void> {
    await this.client.send(new GetQueueAttributesCommand({ QueueUrl: this.queueUrl, AttributeNames: ['QueueArn'] }), { abortSignal: signal });
  }

  async close(): Promise<void> {
    this.client.destroy();
  }
}
