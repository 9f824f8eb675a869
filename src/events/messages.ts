// The message-sender seam: one-time codes and links to users by e-mail or SMS.
//   outbox  (embedded): DATA_DIR/outbox.jsonl, mode 0600, one message a line;
//           developers read codes there (`tail -f data/outbox.jsonl`).
//   sqs     (production): a `message.requested` message on MESSAGES_QUEUE_URL
//           for the company's own mail/SMS service. It carries the recipient
//           and the text, so that queue must use SSE-KMS and only the mail
//           service may read it. The audit stream gets a PII-free event.
import crypto from 'node:crypto';
import fs from 'node:fs';
import { ServiceUnavailable } from '../storage/errors.ts';
import { FileEventSink } from './file-sink.ts';
import { SqsEventSink } from './sqs-sink.ts';
import type { Events } from './index.ts';
import type { CloudEvent, EventSink } from './types.ts';

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
  'password-reset-admin': { subject: 'Choose a new password', text: 'An administrator asked you to choose a new password. Your code is {code}; it expires in {minutes} minutes. On the sign-in page, choose "Forgot your password?", then "I already have a code".' },
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
    // the message itself (with the recipient) goes straight to the mail service's queue, never to the events table
    const message: CloudEvent = {
      specversion: '1.0', id: crypto.randomUUID(), type: 'message.requested', source: this.events.source, time: new Date().toISOString(),
      ...(m.sub ? { subject: m.sub } : {}), datacontenttype: 'application/json',
      data: { channel: m.channel, to: m.to, template: m.template, ...rendered },
    };
    // holds a recipient and a code: never stored in the events table, so an outage is a 503 the user can retry
    let failed: string[];
    try {
      failed = await this.sink.deliver([message]);
    } catch (err) {
      throw new ServiceUnavailable('the message service is temporarily unavailable, try again shortly', { cause: err });
    }
    if (failed.length) throw new ServiceUnavailable('the message service is temporarily unavailable, try again shortly');
    this.events.emit('message.requested', { sub: m.sub, data: { channel: m.channel, template: m.template, messageId: message.id } });
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
    return new MessageSender(new SqsEventSink({ queueUrl: cfg.messagesQueueUrl, endpoint: cfg.sqsEndpoint, region: cfg.region }), events);
  }
  return new MessageSender(new FileEventSink(cfg.dataDir, 'outbox.jsonl'), events);
}

/** Reads the embedded outbox (for developers and tests). */
export function readOutbox(file: string): Array<CloudEvent & { sub?: string; data: { channel: Channel; to: string; template: string; subject: string; text: string } }> {
  let text = '';
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  return text.split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

/** bytes of an open file from `pos` to its current end */
async function readFrom(fh: fs.promises.FileHandle, pos: number): Promise<Buffer> {
  const size = (await fh.stat()).size;
  if (size <= pos) return Buffer.alloc(0);
  const buf = Buffer.alloc(size - pos);
  let got = 0;
  while (got < buf.length) {
    const { bytesRead } = await fh.read(buf, got, buf.length - got, pos + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return buf.subarray(0, got);
}

/**
 * Removes an erased account's messages from the embedded outbox: every line
 * whose `sub` is one of `subs` or whose recipient is one of `recipients` (its
 * e-mail addresses and phone numbers). Atomic: the kept lines go to a new file
 * that is renamed over the old one, so a reader sees the old file or the new,
 * never half of one. A line the server appended to the old file between the
 * read and the rename is carried over (filtered too): the old file is read
 * again, through the handle opened before. Returns how many lines went.
 */
export async function eraseFromOutbox(file: string, subs: readonly string[], recipients: readonly string[] = []): Promise<number> {
  let fh: fs.promises.FileHandle;
  try {
    fh = await fs.promises.open(file, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw err;
  }
  const bySub = new Set(subs);
  const byTo = new Set(recipients.map((r) => r.toLowerCase()));
  let removed = 0;
  const keep = (text: string) => text.split('\n').filter((line) => {
    if (!line) return false;
    let m: { subject?: unknown; sub?: unknown; data?: { to?: unknown } };
    try {
      m = JSON.parse(line);
    } catch {
      return true;
    }
    const gone = (typeof m.subject === 'string' && bySub.has(m.subject)) || (typeof m.sub === 'string' && bySub.has(m.sub)) || (typeof m.data?.to === 'string' && byTo.has(m.data.to.toLowerCase()));
    if (gone) removed++;
    return !gone;
  }).map((l) => `${l}\n`).join('');
  try {
    const first = await readFrom(fh, 0);
    const kept = keep(first.toString('utf8'));
    if (removed === 0) return 0;
    const tmp = `${file}.${process.pid}.${crypto.randomBytes(6).toString('hex')}.tmp`;
    await fs.promises.writeFile(tmp, kept, { mode: 0o600 });
    await fs.promises.rename(tmp, file);
    const late = keep((await readFrom(fh, first.length)).toString('utf8'));
    if (late) await fs.promises.appendFile(file, late, { mode: 0o600 });
    return removed;
  } finally {
    await fh.close();
  }
}
