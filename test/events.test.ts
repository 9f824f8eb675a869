// Events and messages against real components: the file sink, and the SQS
// sink through the unmodified @aws-sdk/client-sqs against fauxqs (an SQS
// emulator), including an outage: events are spooled, nothing is lost, and
// they are delivered once SQS answers again.
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { startFauxqs } from 'fauxqs';
import { SQSClient, ReceiveMessageCommand, DeleteMessageBatchCommand } from '@aws-sdk/client-sqs';
import { createEvents } from '../src/events/index.ts';
import { createMessageSender, readOutbox } from '../src/events/messages.ts';
import { createLogger } from '../src/logging/index.ts';
import { tempDir, freePort } from './support/idp.ts';

const silent = createLogger('silent');

async function drain(client: SQSClient, queueUrl: string, want: number, timeoutMs = 5000): Promise<Array<Record<string, unknown>>> {
  const got: Array<Record<string, unknown>> = [];
  const deadline = Date.now() + timeoutMs;
  while (got.length < want && Date.now() < deadline) {
    const r = await client.send(new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1, MessageAttributeNames: ['All'] }));
    for (const m of r.Messages ?? []) got.push(JSON.parse(m.Body!));
    if (r.Messages?.length) {
      await client.send(new DeleteMessageBatchCommand({ QueueUrl: queueUrl, Entries: r.Messages.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle! })) }));
    }
  }
  return got;
}

describe('events', function () {
  this.timeout(30_000);

  it('file sink: appends one JSON line per event and strips personal data', async () => {
    const dir = tempDir('idp-ev-');
    const events = createEvents({ sink: 'file', region: 'us-east-1', dataDir: dir }, silent);
    events.emit('login.failed', { sub: 'u-1', reason: 'bad_password', data: { email: 'ada@example.com', phone: '+2348030000001', attempt: 3, nested: { name: 'Ada', ok: true }, by: 'ops@example.com', list: ['x', 'eve@example.org'] } });
    events.emit('account.locked', { sub: 'u-1', reason: 'account_threshold' });
    await events.close();
    const lines = fs.readFileSync(path.join(dir, 'events.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.map((l) => l.type)).to.deep.equal(['login.failed', 'account.locked']);
    // personal-data keys, and values shaped like an e-mail address under any key
    expect(lines[0].data).to.deep.equal({ attempt: 3, nested: { ok: true }, list: ['x'], reason: 'bad_password' });
    expect(lines[0]).to.include({ specversion: '1.0', subject: 'u-1', datacontenttype: 'application/json' });
    expect(JSON.stringify(lines)).to.not.match(/@example\.(com|org)|2348030000001|"Ada"/);
    expect(lines[0].id).to.match(/^[0-9a-f-]{36}$/);
    expect(fs.statSync(path.join(dir, 'events.jsonl')).mode & 0o777).to.equal(0o600);
  });

  describe('SQS sink on fauxqs', () => {
    let port: number;
    let server: Awaited<ReturnType<typeof startFauxqs>>;
    let client: SQSClient;
    let queueUrl: string;

    before(async () => {
      port = await freePort();
      server = await startFauxqs({ port, logger: false });
      queueUrl = server.createQueue('idp-events').queueUrl;
      client = new SQSClient({ region: 'us-east-1', endpoint: server.address, credentials: { accessKeyId: 'x', secretAccessKey: 'x' } });
    });

    after(async () => {
      client?.destroy();
      await server?.stop();
    });

    it('delivers every event, in batches, with the type as a message attribute', async () => {
      const events = createEvents({ sink: 'sqs', sqsQueueUrl: queueUrl, sqsEndpoint: server.address, region: 'us-east-1', dataDir: tempDir() }, silent);
      const ids = new Set<string>();
      for (let i = 0; i < 25; i++) ids.add(events.emit('login.succeeded', { sub: `u-${i}` }).id);
      await events.close();
      const got = await drain(client, queueUrl, 25);
      expect(new Set(got.map((g) => g.id as string))).to.deep.equal(ids);
    });
  });

  it('message sender (embedded outbox): the code reaches the outbox, the audit event carries no recipient', async () => {
    const dir = tempDir();
    const events = createEvents({ sink: 'file', region: 'us-east-1', dataDir: dir }, silent);
    const sender = createMessageSender({ sender: 'outbox', region: 'us-east-1', dataDir: dir }, events);
    await sender.send({ channel: 'email', to: 'ada@example.com', template: 'login-code', vars: { code: '493027', minutes: '5' }, sub: 'u-1' });
    await events.close();
    const out = readOutbox(path.join(dir, 'outbox.jsonl'));
    expect(out).to.have.length(1);
    expect(out[0].data.to).to.equal('ada@example.com');
    expect(out[0].data.text).to.contain('493027');
    const audit = fs.readFileSync(path.join(dir, 'events.jsonl'), 'utf8');
    expect(audit).to.contain('message.requested');
    expect(audit).to.not.contain('ada@example.com');
    expect(audit).to.not.contain('493027');
  });
});
