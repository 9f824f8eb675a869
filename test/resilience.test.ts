// Availability: with DynamoDB unreachable the IdP answers 503
// temporarily_unavailable (JSON or page) without crashing or leaking a stack
// trace, /readyz says 503, and it serves again once DynamoDB is back, with no
// restart. Also: a bad configuration value stops start-up with one line.
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import type { Server } from 'node:http';
import { startTestIdp, tempDir, freePort, type TestIdp } from './support/idp.ts';
import { run as runCli } from '../src/cli/main.ts';

const require = createRequire(import.meta.url);

function dynaliteOn(port: number, dir: string): Promise<Server> {
  const dynalite = require('dynalite') as (o: object) => Server;
  const server = dynalite({ path: dir, createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
}

function stop(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

describe('DynamoDB outage', function () {
  this.timeout(60_000);
  let idp: TestIdp;
  let db: Server;
  let port: number;
  const dir = tempDir('idp-ddb-');
  const basic = `Basic ${Buffer.from('svc:svc-secret-0123456789abcdefghij').toString('base64')}`;

  before(async () => {
    port = await freePort();
    db = await dynaliteOn(port, dir);
    // READY_CACHE_MS=0: /readyz asks DynamoDB at each call here, so it sees the outage and the recovery at once
    const env = { DYNAMODB_ENDPOINT: `http://127.0.0.1:${port}`, TABLE_PREFIX: 'outage_', READY_CACHE_MS: '0' };
    // an external endpoint is migrated by the operator, not by the server
    await runCli(['migrate'], { ...env, DATA_DIR: tempDir() });
    idp = await startTestIdp(env);
    await idp.cli('clients', 'add', '--id', 'svc', '--secret', 'svc-secret-0123456789abcdefghij', '--grant-types', 'client_credentials');
  });

  after(async () => {
    await idp?.close();
    await stop(db).catch(() => {});
  });

  const token = () => fetch(`${idp.url}/token`, {
    method: 'POST',
    headers: { authorization: basic, 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
    body: 'grant_type=client_credentials',
  });

  it('serves while DynamoDB is up', async () => {
    expect((await fetch(`${idp.url}/readyz`)).status).to.equal(200);
    expect((await token()).status).to.equal(200);
  });

  it('answers 503 temporarily_unavailable while DynamoDB is down, and recovers without a restart', async () => {
    await stop(db);

    const ready = await fetch(`${idp.url}/readyz`);
    expect(ready.status).to.equal(503);
    expect(await ready.json()).to.deep.include({ status: 'unavailable', reason: 'down: dynamodb' });
    expect((await fetch(`${idp.url}/healthz`)).status).to.equal(200);

    const t = await token();
    expect(t.status).to.equal(503);
    const body = await t.json() as { error: string; error_description?: string };
    expect(body.error).to.equal('temporarily_unavailable');
    expect(JSON.stringify(body)).to.not.match(/at \w|ECONNREFUSED|node_modules/);

    // a client id not seen before: known clients are served from a short cache (src/provider/client-cache.ts)
    const page = await fetch(`${idp.url}/auth?client_id=not-cached&response_type=code&scope=openid&redirect_uri=https%3A%2F%2Fx.test%2Fcb`, { headers: { accept: 'text/html' }, redirect: 'manual' });
    expect(page.status).to.equal(503);
    const html = await page.text();
    expect(html).to.contain('temporarily_unavailable');
    expect(html).to.not.match(/at \w+ \(|node_modules|ECONNREFUSED/);

    db = await dynaliteOn(port, dir);
    expect((await fetch(`${idp.url}/readyz`)).status).to.equal(200);
    expect((await token()).status).to.equal(200);
  });
});

describe('configuration errors', () => {
  it('stop start-up with one clear line naming the variable', () => {
    const r = spawnSync(process.execPath, ['src/main.ts'], { env: { ...process.env, PORT: 'eighty', DATA_DIR: tempDir() }, encoding: 'utf8', timeout: 20_000 });
    expect(r.status).to.equal(1);
    expect(r.stderr.trim()).to.equal('configuration error: PORT must be a whole number from 0 to 65535, got "eighty"');
  });

  it('refuse an ISSUER that is not a URL', () => {
    const r = spawnSync(process.execPath, ['src/main.ts'], { env: { ...process.env, ISSUER: 'localhost:3000', DATA_DIR: tempDir() }, encoding: 'utf8', timeout: 20_000 });
    expect(r.status).to.equal(1);
    expect(r.stderr).to.match(/^configuration error: ISSUER must be an absolute http\(s\) URL/);
  });
});
