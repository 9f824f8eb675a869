// Events of the running IdP (issue 15), against real components:
//  - the state-changing actions of the sign-in flows and the CLI each deliver
//    their event (type, subject) as a CloudEvent, and no event carries the
//    users' e-mail addresses, names, phone numbers, passwords or IP addresses;
//  - a process killed with SIGKILL right after a change's write (the
//    EVENTS_TEST_KILL_AFTER_WRITE hook) leaves its event stored: the next
//    server delivers it, with the id it was given;
//  - SQS (fauxqs) stopped during 200 logins and started again: every
//    login.succeeded arrives, each id at least once.
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startFauxqs } from 'fauxqs';
import { SQSClient, ReceiveMessageCommand, DeleteMessageBatchCommand } from '@aws-sdk/client-sqs';
import { freePort, readDelivered, startTestIdp, tempDir, type DeliveredEvent, type TestIdp } from './support/idp.ts';
import { IpAgent, addClient, addUser, signIn, succeeded } from './support/lockout.ts';
import { UserAgent } from './support/user-agent.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const PASSWORD = 'a long and right passphrase 42';

async function until<T>(check: () => T | undefined | Promise<T | undefined>, ms = 20_000, what = 'condition'): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('events of the running IdP', function () {
  this.timeout(120_000);

  describe('every change delivers its event, with no personal data', () => {
    let idp: TestIdp;
    before(async () => {
      idp = await startTestIdp({ TRUST_PROXY_HOPS: '1', MFA_REMEMBER_DAYS: '30', LOCKOUT_MAX_FAILURES: '5', LOCKOUT_ACCOUNT_IP_MAX_FAILURES: '3', LOCKOUT_IP_MAX_FAILURES: '20' });
      await addClient(idp);
      await idp.cli('clients', 'add', '--id', 'svc', '--secret', 'svc-secret-0123456789abcdefghij', '--grant-types', 'client_credentials');
      await idp.cli('resources', 'add', '--id', 'https://api.example.test', '--scope', 'read', '--format', 'opaque');
    });
    after(() => idp?.close());

    it('sign-in, failures, lock and unlock, suspicious sign-in, devices, MFA reset, revocation, key rotation', async () => {
      const people = [
        { email: 'ada.events@example.com', name: 'Ada Lovelace' },
        { email: 'bob.events@example.com', name: 'Bob Babbage' },
      ];
      const [ada, bob] = await Promise.all(people.map((p) => addUser(idp, p.email, PASSWORD, p.name)));
      const clientId = 'app';

      // login.succeeded
      expect(succeeded(await signIn(idp, new IpAgent(idp.issuer, '198.51.100.7'), people[0].email, PASSWORD))).to.equal(true);
      // login.failed ×3 from one address → account.locked (account and IP), then the operator unlocks
      const mallory = new IpAgent(idp.issuer, '203.0.113.9');
      for (let i = 0; i < 3; i++) expect((await signIn(idp, mallory, people[0].email, 'wrong password number one')).status).to.equal(401);
      await idp.cli('users', 'unlock', '--email', people[0].email);
      // login.suspicious: two failures from one address, then a right password from a new browser elsewhere
      for (let i = 0; i < 2; i++) expect((await signIn(idp, new IpAgent(idp.issuer, '192.0.2.44'), people[1].email, 'not the password at all')).status).to.equal(401);
      expect(succeeded(await signIn(idp, new IpAgent(idp.issuer, '198.51.100.200'), people[1].email, PASSWORD))).to.equal(true);
      // device.remembered / device.revoked, mfa.reset
      await idp.mfa.service.rememberDevice(bob, crypto.randomUUID(), 'Mozilla/5.0 test');
      await idp.cli('users', 'devices', 'revoke', '--sub', bob, '--all');
      await idp.cli('users', 'mfa', 'reset', '--sub', bob);
      // token.revoked at the revocation endpoint (an opaque client_credentials token)
      const basic = `Basic ${Buffer.from('svc:svc-secret-0123456789abcdefghij').toString('base64')}`;
      const tok = await (await fetch(`${idp.issuer}/token`, { method: 'POST', headers: { authorization: basic, 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ grant_type: 'client_credentials', scope: 'read', resource: 'https://api.example.test' }) })).json() as { access_token: string };
      const rv = await fetch(`${idp.issuer}/token/revocation`, { method: 'POST', headers: { authorization: basic, 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ token: tok.access_token }) });
      expect(rv.status).to.equal(200);
      // a token that is not there: 200 as RFC 7009 says, and no event
      await fetch(`${idp.issuer}/token/revocation`, { method: 'POST', headers: { authorization: basic, 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ token: 'no-such-token' }) });
      // key.rotated
      await idp.cli('keys', 'rotate', '--alg', 'ES256');
      // an import: user.created, then user.merged for the duplicate (same verified address)
      const file = path.join(tempDir('idp-ev-import-'), 'users.jsonl');
      fs.writeFileSync(file, [
        JSON.stringify({ source: 'shop', sourceUserId: '1', email: 'cy.events@example.com', emailVerified: true, name: 'Cy Coder', phone: '+15550100999', phoneVerified: true }),
        JSON.stringify({ source: 'forum', sourceUserId: '9', email: 'CY.events@example.com', emailVerified: true, name: 'Cy Coder' }),
      ].join('\n'));
      expect(await idp.cli('users', 'import', file)).to.include({ created: 1, merged: 1 });

      const all = await idp.delivered();
      const of = (type: string, subject?: string) => all.filter((e) => e.type === type && (subject === undefined || e.subject === subject));
      expect(of('login.succeeded', ada).map((e) => [e.clientId, e.data.method])).to.deep.equal([[clientId, 'password']]);
      expect(of('login.failed', ada)).to.have.length(3);
      expect(of('account.locked', ada).map((e) => e.reason)).to.include('account_ip_threshold');
      expect(of('account.unlocked', ada)).to.have.length(1);
      expect(of('login.suspicious', bob).map((e) => e.reason)).to.deep.equal(['new_device_after_failures']);
      expect(of('device.remembered', bob)).to.have.length(1);
      expect(of('device.revoked', bob)).to.have.length(1);
      expect(of('mfa.reset', bob)).to.have.length(1);
      expect(of('token.revoked').map((e) => e.subject)).to.deep.equal(['svc']);
      expect(of('key.rotated')).to.have.length(1);
      expect(of('resource.saved').map((e) => [e.data.resource, e.data.format, e.data.actor])).to.deep.equal([['https://api.example.test', 'opaque', 'cli']]);
      const imported = [...of('user.created'), ...of('user.merged')].filter((e) => e.reason === 'import');
      expect(imported.map((e) => [e.type, e.data.source]).sort()).to.deep.equal([['user.created', 'shop'], ['user.merged', 'forum']]);
      // the import's merge names its merge record (the one `users unmerge --merge-id` takes)
      expect(of('user.merged').find((e) => e.reason === 'import')?.data.mergeId).to.match(/^[0-9a-f-]{36}$/);
      expect(new Set(imported.map((e) => e.subject)).size).to.equal(1);

      // the CloudEvents shape, one id each, and the audit log holds the same events
      for (const e of all) {
        expect(e).to.include({ specversion: '1.0', source: idp.issuer, datacontenttype: 'application/json' });
        expect(e.id).to.match(/^[0-9a-f-]{36}$/);
      }
      expect(new Set(all.map((e) => e.id)).size).to.equal(all.length);
      const audit = await idp.events.query({ subject: ada, limit: 200 });
      expect(audit.items.map((e) => e.id).sort()).to.deep.equal(all.filter((e) => e.subject === ada).map((e) => e.id).sort());

      // no personal data: addresses, names, passwords, client IPs
      const text = JSON.stringify(all);
      for (const p of people) {
        expect(text).to.not.include(p.email);
        expect(text).to.not.include(p.name);
      }
      for (const pii of ['cy.events@example.com', 'Cy Coder', '+15550100999']) expect(text.toLowerCase()).to.not.include(pii.toLowerCase());
      for (const secret of [PASSWORD, 'wrong password number one', '203.0.113.9', '192.0.2.44', '198.51.100.200', tok.access_token]) expect(text).to.not.include(secret);
    });
  });

  describe('a process killed right after its write', () => {
    it('leaves the event stored: the next server delivers it, with the same id; a refused change leaves none', async () => {
      const dataDir = tempDir('idp-kill-');
      const env = { ...process.env, DATA_DIR: dataDir, LOG_LEVEL: 'silent', ISSUER: 'http://127.0.0.1:1' };
      const cli = (args: string[], extra: Record<string, string> = {}) => new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>((resolve) => {
        const p = spawn(path.join(ROOT, 'bin', 'idp'), args, { env: { ...env, ...extra }, stdio: ['ignore', 'ignore', 'pipe'] });
        let stderr = '';
        p.stderr.on('data', (d: Buffer) => {
          stderr += d;
        });
        p.on('exit', (code, signal) => resolve({ code, signal, stderr }));
      });
      // the change (a role saved) is written, then the process dies before anything else
      const killed = await cli(['roles', 'add', '--name', 'auditors', '--init'], { EVENTS_TEST_KILL_AFTER_WRITE: '1' });
      expect(killed.signal).to.equal('SIGKILL');
      expect(readDelivered(dataDir, 'role.saved')).to.deep.equal([]);
      // a change refused by its condition (no such role): exit 2, and no event even with the hook
      const refused = await cli(['roles', 'remove', '--name', 'nobody'], { EVENTS_TEST_KILL_AFTER_WRITE: '1' });
      expect([refused.code, refused.signal]).to.deep.equal([2, null]);

      const port = await freePort();
      const idp = await startTestIdp({ DATA_DIR: dataDir, ISSUER: `http://127.0.0.1:${port}`, PORT: String(port), EVENTS_SWEEP_SECONDS: '0.1', EVENTS_RECOVERY_SECONDS: '0.1' });
      try {
        const roles = await idp.cli('roles', 'list') as Array<{ name: string }>;
        expect(roles.map((r) => r.name)).to.include('auditors');
        const [delivered] = await until(() => {
          const got = readDelivered(dataDir, 'role.saved');
          return got.length ? got : undefined;
        }, 20_000, 'the role.saved event');
        expect(delivered.data).to.include({ role: 'auditors', actor: 'cli' });
        // the id it was stored with in the dead process
        const stored = await idp.events.store!.get(delivered.id);
        expect(stored?.st).to.equal('delivered');
        expect(readDelivered(dataDir).filter((e) => e.type === 'role.removed')).to.deep.equal([]);
      } finally {
        await idp.close();
      }
    });
  });

  describe('SQS stopped during 200 logins', () => {
    it('every login.succeeded arrives once SQS is back, each id at least once', async () => {
      const sqsPort = await freePort();
      let sqs = await startFauxqs({ port: sqsPort, logger: false });
      const queueUrl = sqs.createQueue('idp-events').queueUrl;
      const idp = await startTestIdp({
        EVENTS_SINK: 'sqs', SQS_ENDPOINT: sqs.address, SQS_QUEUE_URL: queueUrl, LOG_LEVEL: 'warn',
        EVENTS_SWEEP_SECONDS: '0.2', EVENTS_RETRY_MAX_SECONDS: '1',
      });
      const client = new SQSClient({ region: 'us-east-1', endpoint: sqs.address, credentials: { accessKeyId: 'x', secretAccessKey: 'x' } });
      try {
        await addClient(idp);
        const users = await Promise.all(Array.from({ length: 10 }, (_, i) => addUser(idp, `load${i}@example.com`, PASSWORD)));
        await sqs.stop();
        // 200 logins, 10 at a time, while SQS is down
        for (let round = 0; round < 20; round++) {
          const outcomes = await Promise.all(users.map((_, i) => signIn(idp, new UserAgent(idp.issuer), `load${i}@example.com`, PASSWORD)));
          expect(outcomes.every(succeeded), `round ${round}`).to.equal(true);
        }
        const expected = new Set<string>();
        let cursor: string | undefined;
        do {
          const page = await idp.events.query({ type: 'login.succeeded', limit: 200, cursor });
          for (const e of page.items) expected.add(e.id);
          cursor = page.cursor;
        } while (cursor);
        expect(expected.size).to.equal(200);
        expect((await idp.events.backlog()).size).to.be.at.least(200);

        sqs = await startFauxqs({ port: sqsPort, logger: false });
        expect(sqs.createQueue('idp-events').queueUrl).to.equal(queueUrl);
        const got = new Map<string, number>();
        await until(async () => {
          const r = await client.send(new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1 }));
          for (const m of r.Messages ?? []) {
            const e = JSON.parse(m.Body!) as DeliveredEvent;
            if (e.type === 'login.succeeded') got.set(e.id, (got.get(e.id) ?? 0) + 1);
          }
          if (r.Messages?.length) await client.send(new DeleteMessageBatchCommand({ QueueUrl: queueUrl, Entries: r.Messages.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle! })) }));
          return [...expected].every((id) => got.has(id));
        }, 60_000, 'every login.succeeded on SQS');
        expect([...expected].filter((id) => !got.has(id))).to.deep.equal([]);
        await until(async () => (await idp.events.store!.backlog()).size === 0, 20_000, 'an empty backlog');
      } finally {
        client.destroy();
        await idp.close();
        await sqs.stop();
      }
    });
  });
});
