// The message-sender seam: one-time codes and links to users by e-mail or SMS.
//   outbox  (embedded): DATA_DIR/outbox.jsonl, mode 0600, one message a line;
//           developers read codes there (`tail -f data/outbox.jsonl`).
//   sqs     (production): a `message.requested` message on MESSAGES_QUEUE_URL
//           for the company's own mail/SMS service. It carries the recipient
//           and the text, so that queue must use SSE-KMS and only the mail
//           service may read it. The audit stream gets a PII-free event.
import crypto from 'node:crypto';
import fs from 'node:fs';
import { FileEventSink } from './file-sink.ts';
import { SqsEventSink } from './sqs-sink.ts';
import type { Events } from './index.ts';
import type { AuditEvent, EventSink } from './types.ts';

export type Channel = 'email' | 'sms';

export interface OutgoingMessage {
  channel: Channel;
  /** e-mail address or E.164 phone number */
  to: string;
  /** template name, e.g. "login-code", "unlock-code", "password-reset" */
  template: string;
  vars: Record<string, string>;
  /** the account it concerns */
  sub?: string;
}

const TEMPLATES: Record<string, { subject: string; text: string }> = {
  'login-code': { subject: 'Your sign-in code', text: 'Your sign-in code is {code}. It expires in {minutes} minutes. If you did not try to sign in, ignore this message.' },
  'unlock-code': { subject: 'Unlock your account', text: 'Your unlock code is {code}. It expires in {minutes} minutes.' },
  'link-code': { subject: 'Confirm it is you', text: 'Your code to link a sign-in from {connection} to your account is {code}. It expires in {minutes} minutes. If you did not try to sign in, ignore this message and do not give the code to anyone.' },
  'password-reset': { subject: 'Reset your password', text: 'Your password reset code is {code}. It expires in {minutes} minutes. If you did not ask for it, ignore this message.' },
};

export function renderMessage(m: OutgoingMessage): { subject: string; text: string } {
  const t = TEMPLATES[m.template] ?? { subject: m.template, text: Object.entries(m.vars).map(([k, v]) => `${k}: ${v}`).join('\n') };
  const fill = (s: string) => s.replace(/\{(\w+)\}/g, (_, k: string) => m.vars[k] ?? '');
  return { subject: fill(t.subject), text: fill(t.text) };
}

export class MessageSender {
  private readonly sink: EventSink;
  private readonly events: Events;

  constructor(sink: EventSink, events: Events) {
    this.sink = sink;
    this.events = events;
  }

  get kind(): string {
    return this.sink.kind === 'file' ? 'outbox' : this.sink.kind;
  }

  async send(m: OutgoingMessage): Promise<void> {
    const rendered = renderMessage(m);
    const message: AuditEvent = {
      id: crypto.randomUUID(), type: 'message.requested', time: new Date().toISOString(), sub: m.sub,
      data: { channel: m.channel, to: m.to, template: m.template, ...rendered },
    };
    this.sink.publish(message);
    await this.sink.flush();
    this.events.emit('message.requested', { sub: m.sub, data: { channel: m.channel, template: m.template } });
  }

  close(): Promise<void> {
    return this.sink.close();
  }
}

export interface SenderConfig {
  sender: 'outbox' | 'sqs';
  messagesQueueUrl?: string;
  sqsEndpoint?: string;
  region: string;
  dataDir: string;
}

export function createMessageSender(cfg: SenderConfig, events: Events): MessageSender {
  if (cfg.sender === 'sqs') {
    if (!cfg.messagesQueueUrl) throw new Error('MESSAGE_SENDER=sqs needs MESSAGES_QUEUE_URL');
    return new MessageSender(new SqsEventSink({ queueUrl: cfg.messagesQueueUrl, endpoint: cfg.sqsEndpoint, region: cfg.region, dataDir: cfg.dataDir }), events);
  }
  return new MessageSender(new FileEventSink(cfg.dataDir, undefined, 'outbox.jsonl'), events);
}

/** Reads the embedded outbox (for developers and tests). */
export function readOutbox(file: string): Array<AuditEvent & { data: { channel: Channel; to: string; template: string; subject: string; text: string } }> {
  let text = '';
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  return text.split('\n').filter(Boolean).map((l) => JSON.parse(l));
}
