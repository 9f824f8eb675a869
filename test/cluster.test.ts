// Cluster mode as `npm start` runs it: WORKERS=2 forks two workers that share
// the primary's embedded dynalite and the keyring; tokens issued by one are
// good on the other; a worker that dies is replaced; SIGTERM stops everything
// and withdraws the storage advert.
import { expect } from 'chai';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import http from 'node:http';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { loadConfig, ConfigError } from '../src/config/index.ts';
import { run as cli } from '../src/cli/main.ts';
import { freePort, tempDir } from './support/idp.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const SECRET = 'cluster-test-secret-0123456789abcdef';

function children(pid: number): number[] {
  try {
    return fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** one request on a connection of its own, so the primary hands it to the next worker */
function post(port: number, p: string, fields: Record<string, string>, auth: string): Promise<{ status: number; body: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const body = new URLSearchParams(fields).toString();
    const req = http.request({
      host: '127.0.0.1', port, path: p, method: 'POST', agent: false,
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: auth, connection: 'close', 'content-length': Buffer.byteLength(body) },
    }, (res) => {
      let text = '';
      res.on('data', (c) => { text += c; });
      res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(text) as Record<string, unknown> }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function until<T>(what: string, fn: () => T | undefined, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('WORKERS (cluster mode)', function () {
  this.timeout(90_000);

  it('reads WORKERS: a number from 1 to 64, or auto', () => {
    expect(loadConfig({}).workers).to.equal(1);
    expect(loadConfig({ WORKERS: '3' }).workers).to.equal(3);
    expect(loadConfig({ WORKERS: 'auto' }).workers).to.equal(Math.min(os.availableParallelism(), 64));
    for (const bad of ['0', '65', 'two', '-1']) expect(() => loadConfig({ WORKERS: bad }), bad).to.throw(ConfigError, /WORKERS/);
    // metrics on the main port would answer for one worker: the primary serves them on METRICS_PORT
    expect(() => loadConfig({ WORKERS: '2', METRICS_TOKEN: 'x'.repeat(32) })).to.throw(ConfigError, /METRICS_PORT must be set when WORKERS > 1/);
  });

  let primary: ChildProcess | undefined;
  let output = '';
  after(() => {
    if (primary && primary.exitCode === null) primary.kill('SIGKILL');
  });

  it('serves from two workers on shared storage, replaces a dead worker, and stops on SIGTERM', async () => {
    const port = await freePort();
    const dataDir = tempDir('idp-cluster-');
    const metricsPort = await freePort();
    const env = { DATA_DIR: dataDir, PORT: String(port), HOST: '127.0.0.1', ISSUER: `http://127.0.0.1:${port}`, LOG_LEVEL: 'info', WORKERS: '2', METRICS_PORT: String(metricsPort) };
    primary = spawn(process.execPath, [path.join(root, 'src', 'main.ts')], { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    primary.stdout!.on('data', (b) => { output += b; });
    primary.stderr!.on('data', (b) => { output += b; });
    await until('cluster listening', () => (output.includes('"cluster listening"') ? true : undefined));
    const workers = children(primary.pid!);
    expect(workers, output).to.have.length(2);

    // the CLI, in this process, uses the primary's advertised dynalite
    await cli(['clients', 'add', '--id', 'svc', '--secret', SECRET, '--grant-types', 'client_credentials'], env);
    await cli(['resources', 'add', '--id', 'https://api.test', '--scope', 'read', '--format', 'opaque'], env);
    const auth = `Basic ${Buffer.from(`svc:${SECRET}`).toString('base64')}`;
    const tokens: string[] = [];
    for (let i = 0; i < 4; i++) {
      const r = await post(port, '/token', { grant_type: 'client_credentials', scope: 'read', resource: 'https://api.test' }, auth);
      expect(r.status, JSON.stringify(r.body)).to.equal(200);
      tokens.push(r.body.access_token as string);
    }
    // the primary's /metrics: both workers' counts, summed
    const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    expect(metrics).to.match(/^idp_tokens_issued_total\{grant_type="client_credentials"\} 4$/m);
    // each token introspected on the next connections, so on the other worker too
    for (const token of tokens) {
      const r = await post(port, '/token/introspection', { token }, auth);
      expect(r.body.active, JSON.stringify(r.body)).to.equal(true);
    }

    process.kill(workers[0], 'SIGKILL');
    const replaced = await until('a replacement worker', () => {
      const now = children(primary!.pid!);
      return now.length === 2 && !now.includes(workers[0]) ? now : undefined;
    });
    expect(replaced).to.include(workers[1]);
    await until('the replacement to listen', () => (output.split('"idp listening"').length - 1 >= 3 ? true : undefined));
    for (let i = 0; i < 4; i++) {
      expect((await post(port, '/token/introspection', { token: tokens[i] }, auth)).body.active).to.equal(true);
    }

    const exited = new Promise<number | null>((resolve) => primary!.once('exit', (code) => resolve(code)));
    primary.kill('SIGTERM');
    expect(await exited).to.equal(0);
    for (const pid of replaced) expect(fs.existsSync(`/proc/${pid}`), `worker ${pid} is gone`).to.equal(false);
    expect(fs.existsSync(path.join(dataDir, 'dynamodb.endpoint')), 'advert withdrawn').to.equal(false);
    fs.rmSync(dataDir, { recursive: true, force: true });
  });
});
