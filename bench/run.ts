// `npm run bench`: our IdP against bare oidc-provider, in the same run, on the
// same machine. See bench/README.md for what is measured and how to read it.
//
//   npm run bench                    the full run (about 3 minutes on 2 cores)
//   npm run bench -- --no-ddb-local  skip the DynamoDB Local phase
//   npm run bench -- --no-cluster    skip the 2-worker phase
//   npm run bench -- --profile       instead: --cpu-prof on our IdP under the
//                                    client_credentials and introspection
//                                    scenarios; writes bench/results/profile-*.txt
//   BENCH_SECONDS=4 BENCH_LOG_LEVEL=info   measured seconds per scenario, our IdP's LOG_LEVEL
//   BENCH_ONLY=cc-opaque,introspection     a subset of the scenarios
//   BENCH_BUDGET_SECONDS=270               skip the DynamoDB Local phase when it would not fit
//
// Processes: this one (setup, autocannon, the login driver, the report); the
// baseline (bench/baseline.ts); our IdP (src/main.ts, as `npm start` runs it);
// for embedded storage, a dynalite owner (bench/dynalite-owner.ts) that serves
// DATA_DIR's LevelDB as a cluster primary would, so the IdP's CPU time
// excludes the emulator's; for DynamoDB Local, its Java process.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import bcrypt from 'bcrypt';
import { loadConfig } from '../src/config/index.ts';
import { openStorage } from '../src/storage/index.ts';
import { openKeyring } from '../src/keys/index.ts';
import { Registry } from '../src/provider/registry.ts';
import { hashPassword } from '../src/passwords/argon2id.ts';
import { startServer } from '../src/server.ts';
import { createLogger } from '../src/logging/index.ts';
import { run as cli } from '../src/cli/main.ts';
import { freePort } from '../test/support/idp.ts';
import { startDynamoDBLocal, type TestBackend } from '../test/support/dynamo.ts';
import { cannon, basic, form, FORM, type AcRequest, type AcResult } from './lib/load.ts';
import { drive, loginOnce, percentile, PoolEmpty, type LoginTarget, type TokenResponse } from './lib/login.ts';
import { machineInfo, peakRssMiB, processTree, resetPeakRss, treeCpuMs } from './lib/proc.ts';
import type { BaselineSpec, BenchResourceServer } from './lib/spec.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const resultsDir = path.join(root, 'bench', 'results');
const argv = new Set(process.argv.slice(2));
const PROFILE = argv.has('--profile');
const WITH_DDB_LOCAL = !argv.has('--no-ddb-local') && !PROFILE;
const WITH_CLUSTER = !argv.has('--no-cluster') && !PROFILE;
const SECONDS = Number(process.env.BENCH_SECONDS ?? 4);
const WARMUP_SECONDS = 1;
/** the whole run should stay under 5 minutes: the DynamoDB Local phase (about 90 s) is skipped when it would not fit */
const BUDGET_SECONDS = Number(process.env.BENCH_BUDGET_SECONDS ?? 270);
const DDB_LOCAL_PHASE_SECONDS = 95;
const LOG_LEVEL = process.env.BENCH_LOG_LEVEL ?? 'info';
const CONNECTIONS = 10;
const LOGIN_CONCURRENCY = 4;
const REFRESH_CONNECTIONS = 8;

const SECRET = 'bench-secret-0123456789abcdef0123456789';
const REDIRECT = 'https://rp.bench.test/cb';
const EMAIL = 'bench.user@example.com';
const PASSWORD = 'bench correct horse battery staple';
/** imported legacy users (bcrypt, cost 10), each logged in once: their first login upgrades them to argon2id */
const LEGACY_USERS = 200;
const LEGACY_PASSWORD = 'bench legacy password 0123';
const legacyEmail = (i: number) => `legacy.${i}@example.com`;
const RESOURCES: BenchResourceServer[] = [
  { id: 'https://opaque.bench.test', scope: 'api:read', accessTokenFormat: 'opaque' },
  { id: 'https://es256.bench.test', scope: 'api:read', accessTokenFormat: 'jwt', jwtAlg: 'ES256' },
  { id: 'https://rs256.bench.test', scope: 'api:read', accessTokenFormat: 'jwt', jwtAlg: 'RS256' },
];
const TTL = { accessToken: 3600, idToken: 3600, refreshToken: 14 * 86400, session: 14 * 86400, interaction: 3600, grant: 14 * 86400 };

const t0 = Date.now();
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'idp-bench-'));
const children = new Set<ChildProcess>();
const log = (msg: string) => process.stderr.write(`[bench ${((Date.now() - t0) / 1000).toFixed(1).padStart(5)}s] ${msg}\n`);

function killAll(): void {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
}
process.once('exit', () => {
  killAll();
  if (process.env.BENCH_KEEP_TMP) process.stderr.write(`kept ${tmp}\n`);
  else fs.rmSync(tmp, { recursive: true, force: true });
});
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => { killAll(); process.exit(130); });

async function stopChild(c: ChildProcess, timeoutMs = 15_000): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null) return;
  const exited = new Promise<void>((r) => c.once('exit', () => r()));
  c.kill('SIGTERM');
  const t = setTimeout(() => c.kill('SIGKILL'), timeoutMs);
  await exited;
  clearTimeout(t);
  children.delete(c);
}

async function waitFor<T>(what: string, fn: () => Promise<T | undefined> | T | undefined, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

// ─── the servers under test ────────────────────────────────────────────────

interface Target {
  label: string;
  origin: string;
  /** the processes whose CPU time and RSS count as "the server" */
  pids(): number[];
  /** DynamoDB requests served so far, by operation (embedded only) */
  ddbCounts?(): Promise<Record<string, number>>;
  /** the emulator's pid, reported separately (embedded only) */
  storagePid?: number;
  opaqueToken?: string;
  refreshPool: string[];
  /** imported legacy users not logged in yet */
  legacyPool: string[];
  login: LoginTarget;
  stop(): Promise<void>;
}

interface DynaliteOwner {
  child: ChildProcess;
  endpoint: string;
  counts(): Promise<Record<string, number>>;
}

async function startDynaliteOwner(dataDir: string): Promise<DynaliteOwner> {
  const child = fork(path.join(root, 'bench', 'dynalite-owner.ts'), [], {
    env: { ...process.env, DATA_DIR: dataDir }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  children.add(child);
  const endpoint = await new Promise<string>((resolve, reject) => {
    child.once('message', (m: { type: string; endpoint: string }) => resolve(m.endpoint));
    child.once('exit', (code) => reject(new Error(`dynalite owner exited (${code})`)));
  });
  return {
    child, endpoint,
    counts: () => new Promise((resolve) => {
      const onMsg = (m: { type: string; counts: Record<string, number> }) => {
        if (m.type !== 'counts') return;
        child.off('message', onMsg);
        resolve(m.counts);
      };
      child.on('message', onMsg);
      child.send({ type: 'counts' });
    }),
  };
}

/** our IdP as `npm start` runs it: node src/main.ts, configured by environment */
async function startOurs(label: string, env: Record<string, string>, opts: { workers: number; nodeArgs?: string[]; owner?: DynaliteOwner }): Promise<Target> {
  const port = await freePort();
  const origin = `http://127.0.0.1:${port}`;
  const logFile = path.join(tmp, `idp-${label.replace(/\W+/g, '_')}.log`);
  const out = fs.openSync(logFile, 'w');
  const child = spawn(process.execPath, [...(opts.nodeArgs ?? []), path.join(root, 'src', 'main.ts')], {
    cwd: root,
    env: { ...process.env, ...env, ISSUER: origin, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: LOG_LEVEL, WORKERS: String(opts.workers) },
    stdio: ['ignore', out, out],
  });
  fs.closeSync(out);
  children.add(child);
  const marker = opts.workers > 1 ? '"cluster listening"' : '"idp listening"';
  try {
    await waitFor(`${label} to listen`, () => {
      if (child.exitCode !== null) throw new Error(`${label} exited (${child.exitCode}):\n${fs.readFileSync(logFile, 'utf8').slice(-3000)}`);
      return fs.readFileSync(logFile, 'utf8').includes(marker) ? true : undefined;
    });
  } catch (err) {
    await stopChild(child);
    throw err;
  }
  return {
    label, origin,
    pids: () => processTree(child.pid!),
    ddbCounts: opts.owner?.counts,
    storagePid: opts.owner?.child.pid,
    refreshPool: [],
    legacyPool: Array.from({ length: LEGACY_USERS }, (_, i) => legacyEmail(i)),
    login: { origin, clientId: 'webapp', clientSecret: SECRET, redirectUri: REDIRECT, email: EMAIL, password: PASSWORD },
    stop: () => stopChild(child),
  };
}

/** clients, resource servers, the user and the imported legacy users, through the `idp` CLI's run() */
async function setupThroughCli(env: Record<string, string>, bcryptHash: string): Promise<{ sub: string }> {
  await cli(['migrate'], env);
  await cli(['clients', 'add', '--id', 'webapp', '--secret', SECRET, '--name', 'Bench RP', '--redirect-uri', REDIRECT, '--grant-types', 'authorization_code,refresh_token'], env);
  await cli(['clients', 'add', '--id', 'svc', '--secret', SECRET, '--grant-types', 'client_credentials'], env);
  for (const rs of RESOURCES) {
    await cli(['resources', 'add', '--id', rs.id, '--scope', rs.scope, '--format', rs.accessTokenFormat, ...(rs.jwtAlg ? ['--alg', rs.jwtAlg] : [])], env);
  }
  const user = await cli(['users', 'add', '--email', EMAIL, '--password', PASSWORD, '--name', 'Bench User', '--email-verified'], env);
  const file = path.join(tmp, `legacy-${Date.now()}.jsonl`);
  // LEGACY_USERS for the scenario, and 3 more for the round-trip count
  fs.writeFileSync(file, Array.from({ length: LEGACY_USERS + 3 }, (_, i) => JSON.stringify({
    source: 'bench-legacy', sourceUserId: String(i), email: legacyEmail(i), emailVerified: true, name: `Legacy ${i}`,
    password: { scheme: 'bcrypt', hash: bcryptHash },
  })).join('\n') + '\n');
  const imported = (await cli(['users', 'import', file], env)).data as { created?: number; rejected?: number; errors?: unknown[] };
  if (imported.created !== LEGACY_USERS + 3) throw new Error(`idp users import: ${JSON.stringify(imported).slice(0, 500)}`);
  return { sub: (user.data as { sub: string }).sub };
}

/** the same keys, cookie keys and client metadata as the IdP on `env`, for the baseline */
async function readIdpSetup(env: Record<string, string>) {
  const config = loadConfig({ ...env, LOG_LEVEL: 'silent' });
  const storage = await openStorage(config, { role: 'cli' });
  try {
    const keyring = await openKeyring(config, storage);
    const jwks = keyring.signingJwks().filter((k): k is object & { kty: string } => typeof (k as { kty?: unknown }).kty === 'string');
    const cookieKeys = keyring.cookieKeys();
    const clients = (await new Registry(storage, { keyring }).listClientsOpened()).map((c) => {
      const { first_party: _fp, ...rest } = c as Record<string, unknown>;
      return rest;
    });
    (keyring as { close?: () => void }).close?.();
    return { jwks, cookieKeys, clients, argon2: config.argon2 };
  } finally {
    await storage.close();
  }
}

async function startBaseline(spec: Omit<BaselineSpec, 'issuer' | 'port'>): Promise<Target> {
  const port = await freePort();
  const origin = `http://127.0.0.1:${port}`;
  const specFile = path.join(tmp, 'baseline.json');
  fs.writeFileSync(specFile, JSON.stringify({ ...spec, issuer: origin, port }), { mode: 0o600 });
  const child = spawn(process.execPath, [path.join(root, 'bench', 'baseline.ts'), specFile], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
  children.add(child);
  await new Promise<void>((resolve, reject) => {
    let buf = '';
    child.stdout!.on('data', (b: Buffer) => {
      buf += b.toString();
      if (buf.includes('ready ')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`baseline exited (${code})`)));
  });
  return {
    label: 'baseline', origin,
    pids: () => processTree(child.pid!),
    refreshPool: [],
    legacyPool: Array.from({ length: LEGACY_USERS }, (_, i) => legacyEmail(i)),
    login: { origin, clientId: 'webapp', clientSecret: SECRET, redirectUri: REDIRECT, email: EMAIL, password: PASSWORD },
    stop: () => stopChild(child),
  };
}

// ─── scenarios ─────────────────────────────────────────────────────────────

interface Measured {
  rps: number;
  p50ms: number;
  p99ms: number;
  cpuMsPerReq: number;
  peakRssMiB: number;
  requests: number;
  errors: number;
  firstError?: string;
  /** DynamoDB requests served per request (embedded only) */
  ddbPerReq?: number;
  ddbOps?: Record<string, number>;
  /** the emulator's CPU per request, not included in cpuMsPerReq (embedded only) */
  storageCpuMsPerReq?: number;
}

interface Scenario {
  id: string;
  title: string;
  storage: boolean;
  jwt?: boolean;
  /** instead of `run` for the warm-up second */
  warmup?(t: Target): Promise<void>;
  /** before the warm-up and again before the measured run, outside both */
  prepare?(t: Target): Promise<void>;
  run(t: Target, seconds: number): Promise<{ requests: number; ok: number; errors: number; p50: number; p99: number; seconds: number; firstError?: string }>;
}

function fromCannon(r: AcResult) {
  return { requests: r['2xx'] + r.non2xx, ok: r['2xx'], errors: r.non2xx + r.errors + r.timeouts, p50: r.latency.p50, p99: r.latency.p99, seconds: r.duration };
}

const get = (p: string): Scenario['run'] => async (t, seconds) => fromCannon(await cannon({ url: t.origin + p, connections: CONNECTIONS, duration: seconds }));

const clientCredentials = (resource: string): Scenario['run'] => async (t, seconds) => fromCannon(await cannon({
  url: `${t.origin}/token`, connections: CONNECTIONS, duration: seconds, method: 'POST',
  headers: { 'content-type': FORM, authorization: basic('svc', SECRET) },
  body: form({ grant_type: 'client_credentials', scope: 'api:read', resource }),
}));

async function mintOpaque(t: Target): Promise<string> {
  const res = await fetch(`${t.origin}/token`, {
    method: 'POST', headers: { 'content-type': FORM, authorization: basic('svc', SECRET) },
    body: form({ grant_type: 'client_credentials', scope: 'api:read', resource: RESOURCES[0].id }),
  });
  if (res.status !== 200) throw new Error(`minting an opaque token: ${res.status} ${await res.text()}`);
  return ((await res.json()) as TokenResponse).access_token;
}

const introspection: Scenario['run'] = async (t, seconds) => {
  t.opaqueToken ??= await mintOpaque(t);
  return fromCannon(await cannon({
    url: `${t.origin}/token/introspection`, connections: CONNECTIONS, duration: seconds, method: 'POST',
    headers: { 'content-type': FORM, authorization: basic('svc', SECRET) },
    body: form({ token: t.opaqueToken }),
  }));
};

/** enough refresh tokens for every connection, plus those a run abandons in flight, plus spares */
async function fillRefreshPool(t: Target): Promise<void> {
  const need = REFRESH_CONNECTIONS * 3;
  while (t.refreshPool.length < need) {
    const more = await drive(async () => loginOnce(t.login), { concurrency: LOGIN_CONCURRENCY, durationMs: 1 });
    t.refreshPool.push(...more.tokens.map((x) => x.refresh_token!).filter(Boolean));
  }
}

/** refresh rotation chains: each request spends one refresh token from the pool and puts the rotated one back */
const refresh: Scenario['run'] = async (t, seconds) => {
  let firstError: string | undefined;
  const pool = t.refreshPool;
  const req: AcRequest = {
    method: 'POST', path: '/token',
    headers: { 'content-type': FORM, authorization: basic('webapp', SECRET) },
    setupRequest: (r) => ({ ...r, body: form({ grant_type: 'refresh_token', refresh_token: pool.shift() ?? 'pool-empty' }) }),
    onResponse: (status, body) => {
      if (status === 200) {
        const rt = (JSON.parse(body) as TokenResponse).refresh_token;
        if (rt) pool.push(rt);
      } else {
        firstError ??= `${status} ${body.slice(0, 200)}`;
      }
    },
  };
  const r = await cannon({ url: t.origin, connections: REFRESH_CONNECTIONS, duration: seconds, requests: [req] });
  return { ...fromCannon(r), firstError };
};

const login: Scenario['run'] = async (t, seconds) => {
  const r = await drive(() => loginOnce(t.login), { concurrency: LOGIN_CONCURRENCY, durationMs: seconds * 1000 });
  t.refreshPool.push(...r.tokens.map((x) => x.refresh_token!).filter(Boolean));
  const sorted = [...r.latencies].sort((a, b) => a - b);
  return { requests: r.completed + r.errors, ok: r.completed, errors: r.errors, p50: percentile(sorted, 50), p99: percentile(sorted, 99), seconds: r.durationMs / 1000, firstError: r.firstError };
};

const loginWarmup = async (t: Target) => {
  const r = await drive(() => loginOnce(t.login), { concurrency: LOGIN_CONCURRENCY, durationMs: WARMUP_SECONDS * 1000 });
  t.refreshPool.push(...r.tokens.map((x) => x.refresh_token!).filter(Boolean));
};

/** one fresh imported user per login: bcrypt verify, argon2id hash, the upgrade write */
const legacyFlow = (t: Target) => () => {
  const email = t.legacyPool.shift();
  if (!email) throw new PoolEmpty();
  return loginOnce({ ...t.login, email, password: LEGACY_PASSWORD });
};

const legacyLogin: Scenario['run'] = async (t, seconds) => {
  const r = await drive(legacyFlow(t), { concurrency: LOGIN_CONCURRENCY, durationMs: seconds * 1000 });
  const sorted = [...r.latencies].sort((a, b) => a - b);
  return { requests: r.completed + r.errors, ok: r.completed, errors: r.errors, p50: percentile(sorted, 50), p99: percentile(sorted, 99), seconds: r.durationMs / 1000, firstError: r.firstError ?? (t.legacyPool.length === 0 ? `ran out of the ${LEGACY_USERS} imported users` : undefined) };
};

const ALL_SCENARIOS: Scenario[] = [
  { id: 'jwks', title: 'GET /jwks', storage: false, run: get('/jwks') },
  { id: 'discovery', title: 'GET /.well-known/openid-configuration', storage: false, run: get('/.well-known/openid-configuration') },
  { id: 'cc-opaque', title: 'client_credentials, opaque token', storage: true, run: clientCredentials(RESOURCES[0].id) },
  { id: 'cc-jwt-es256', title: 'client_credentials, ES256 JWT', storage: true, jwt: true, run: clientCredentials(RESOURCES[1].id) },
  { id: 'cc-jwt-rs256', title: 'client_credentials, RS256 JWT', storage: true, jwt: true, run: clientCredentials(RESOURCES[2].id) },
  { id: 'introspection', title: 'introspection of an opaque token', storage: true, run: introspection },
  { id: 'login', title: 'full login, argon2id (per login: 7 HTTP requests)', storage: true, warmup: loginWarmup, run: login },
  {
    id: 'legacy-login', title: 'first login of an imported bcrypt user (upgrade to argon2id; 7 HTTP requests)', storage: true,
    warmup: async (t) => { await drive(legacyFlow(t), { concurrency: LOGIN_CONCURRENCY, durationMs: WARMUP_SECONDS * 1000 }); },
    run: legacyLogin,
  },
  { id: 'refresh', title: 'refresh_token rotation', storage: true, prepare: fillRefreshPool, run: refresh },
];

/** BENCH_ONLY=id,id: a subset (for quick comparisons; the full run is the reference) */
const SCENARIOS = process.env.BENCH_ONLY ? ALL_SCENARIOS.filter((s) => process.env.BENCH_ONLY!.split(',').includes(s.id)) : ALL_SCENARIOS;

function sum(o: Record<string, number>): number {
  return Object.values(o).reduce((a, b) => a + b, 0);
}

function diff(after: Record<string, number>, before: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(after)) if (v - (before[k] ?? 0) > 0) out[k] = v - (before[k] ?? 0);
  return out;
}

async function measure(t: Target, s: Scenario, seconds = SECONDS): Promise<Measured> {
  // warm-up (JIT, caches, connections), not counted
  if (s.warmup) await s.warmup(t);
  else {
    await s.prepare?.(t);
    await s.run(t, WARMUP_SECONDS);
  }
  await s.prepare?.(t);
  // let requests the warm-up left in flight finish outside the measurement
  await new Promise((r) => setTimeout(r, 300));
  const pids = t.pids();
  for (const p of pids) resetPeakRss(p);
  const cpu0 = treeCpuMs(pids);
  const st0 = t.storagePid ? treeCpuMs([t.storagePid]) : 0;
  const ddb0 = t.ddbCounts ? await t.ddbCounts() : undefined;
  const r = await s.run(t, seconds);
  const cpu1 = treeCpuMs(pids);
  const st1 = t.storagePid ? treeCpuMs([t.storagePid]) : 0;
  const ddb1 = t.ddbCounts ? await t.ddbCounts() : undefined;
  const n = Math.max(1, r.requests);
  const ops = ddb0 && ddb1 ? diff(ddb1, ddb0) : undefined;
  const m: Measured = {
    rps: round(r.ok / r.seconds, 1),
    p50ms: round(r.p50, 2),
    p99ms: round(r.p99, 2),
    cpuMsPerReq: round((cpu1 - cpu0) / n, 3),
    peakRssMiB: round(pids.map(peakRssMiB).filter((x) => !Number.isNaN(x)).reduce((a, b) => a + b, 0), 1),
    requests: r.requests,
    errors: r.errors,
    ...(r.firstError ? { firstError: r.firstError } : {}),
    ...(ops ? { ddbPerReq: round(sum(ops) / n, 2), ddbOps: Object.fromEntries(Object.entries(ops).map(([k, v]) => [k, round(v / n, 2)])) } : {}),
    ...(t.storagePid ? { storageCpuMsPerReq: round((st1 - st0) / n, 3) } : {}),
  };
  log(`  ${t.label.padEnd(24)} ${s.id.padEnd(14)} ${String(m.rps).padStart(8)} req/s  p50 ${m.p50ms} ms  p99 ${m.p99ms} ms  cpu ${m.cpuMsPerReq} ms/req${m.ddbPerReq !== undefined ? `  ddb ${m.ddbPerReq}/req` : ''}${m.errors ? `  ERRORS ${m.errors}: ${m.firstError ?? ''}` : ''}`);
  return m;
}

function round(x: number, d: number): number {
  const f = 10 ** d;
  return Math.round(x * f) / f;
}

// ─── DynamoDB round trips per request, counted in-process ──────────────────

interface RoundTrips {
  request: string;
  /** DynamoDB requests per HTTP request */
  ddbRequests: number;
  /** sequential waves: how many times this request waited on DynamoDB with nothing else in flight */
  roundTrips: number;
  ops: Record<string, number>;
}

/**
 * Starts a second instance of our IdP inside this process on the same
 * storage, wraps its document client's `send` to count commands and
 * "round trips" (a round trip starts whenever a command is sent while none of
 * this request's commands is in flight), and drives each request kind
 * sequentially so every command belongs to the one HTTP request in flight.
 */
async function countRoundTrips(env: Record<string, string>, reps = 10): Promise<RoundTrips[]> {
  const port = await freePort();
  const origin = `http://127.0.0.1:${port}`;
  const config = loadConfig({ ...env, ISSUER: origin, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'silent', WORKERS: '1' });
  const server = await startServer(config, { log: createLogger('silent') });
  const doc = server.storage.doc as unknown as { send: (...a: unknown[]) => Promise<unknown> };
  const original = doc.send;
  let inflight = 0;
  let waves = 0;
  let ops: Record<string, number> = {};
  doc.send = function (this: unknown, cmd: { constructor: { name: string } }, ...rest: unknown[]) {
    const name = cmd.constructor.name.replace(/Command$/, '');
    ops[name] = (ops[name] ?? 0) + 1;
    if (inflight === 0) waves++;
    inflight++;
    return (original as (...a: unknown[]) => Promise<unknown>).call(this, cmd, ...rest).finally(() => { inflight--; });
  } as typeof doc.send;
  const table = new Map<string, { n: number; waves: number; ops: Record<string, number> }>();
  const realFetch = globalThis.fetch;
  let recording = false;
  let prefix = '';
  globalThis.fetch = (async (input: string | URL | Request, init?: RequestInit) => {
    if (!recording) return realFetch(input, init);
    const u = new URL(input instanceof Request ? input.url : input.toString());
    const body = typeof init?.body === 'string' ? init.body : init?.body instanceof URLSearchParams ? init.body.toString() : '';
    const fields = new URLSearchParams(body);
    const what = [fields.get('grant_type'), fields.get('resource') && new URL(fields.get('resource')!).host.split('.')[0], fields.get('token_type_hint') && `hint=${fields.get('token_type_hint')}`].filter(Boolean).join(', ');
    const key = `${prefix}${init?.method ?? 'GET'} ${u.pathname.replace(/\/interaction\/[^/]+/, '/interaction/:uid').replace(/^\/auth\/[^/]+/, '/auth/:uid')}${what ? ` (${what})` : ''}`;
    ops = {};
    waves = 0;
    const res = await realFetch(input, init);
    await res.clone().arrayBuffer();
    // let fire-and-forget writes after the response settle into this request
    await new Promise((r) => setTimeout(r, 5));
    const row = table.get(key) ?? { n: 0, waves: 0, ops: {} };
    row.n++;
    row.waves += waves;
    for (const [k, v] of Object.entries(ops)) row.ops[k] = (row.ops[k] ?? 0) + v;
    table.set(key, row);
    return res;
  }) as typeof fetch;
  const target: Target = {
    label: 'in-process', origin, pids: () => [], refreshPool: [], legacyPool: [0, 1, 2].map((i) => legacyEmail(LEGACY_USERS + i)),
    login: { origin, clientId: 'webapp', clientSecret: SECRET, redirectUri: REDIRECT, email: EMAIL, password: PASSWORD },
    stop: async () => {},
  };
  const post = (p: string, auth: string, fields: Record<string, string>) => fetch(`${origin}${p}`, {
    method: 'POST', headers: { 'content-type': FORM, authorization: auth }, body: form(fields),
  }).then(async (r) => {
    const text = await r.text();
    if (r.status !== 200) throw new Error(`${p}: ${r.status} ${text.slice(0, 200)}`);
    return JSON.parse(text) as TokenResponse;
  });
  try {
    // warm the caches (client, resource server) and the JIT, unrecorded
    const opaque = await mintOpaque(target);
    const first = await loginOnce(target.login);
    recording = true;
    let rt = first.refresh_token!;
    for (let i = 0; i < reps; i++) {
      for (const rs of RESOURCES) await post('/token', basic('svc', SECRET), { grant_type: 'client_credentials', scope: 'api:read', resource: rs.id });
      await post('/token/introspection', basic('svc', SECRET), { token: opaque });
      await post('/token/introspection', basic('svc', SECRET), { token: opaque, token_type_hint: 'access_token' });
      rt = (await post('/token', basic('webapp', SECRET), { grant_type: 'refresh_token', refresh_token: rt })).refresh_token!;
    }
    for (let i = 0; i < 3; i++) await loginOnce(target.login);
    prefix = 'legacy first login: ';
    for (let i = 0; i < 3; i++) await legacyFlow(target)();
  } finally {
    recording = false;
    globalThis.fetch = realFetch;
    doc.send = original;
    await server.close();
  }
  return [...table.entries()].map(([request, row]) => ({
    request,
    ddbRequests: round(sum(row.ops) / row.n, 2),
    roundTrips: round(row.waves / row.n, 2),
    ops: Object.fromEntries(Object.entries(row.ops).map(([k, v]) => [k, round(v / row.n, 2)])),
  }));
}

// ─── profile mode ──────────────────────────────────────────────────────────

interface CpuProfile {
  nodes: Array<{ id: number; callFrame: { functionName: string; url: string; lineNumber: number }; hitCount?: number; children?: number[] }>;
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

/** lastMs: only the samples of the last lastMs milliseconds before the profile ended (the load, not the start-up) */
function summariseProfile(file: string, lastMs: number, top = 30): string {
  const prof = JSON.parse(fs.readFileSync(file, 'utf8')) as CpuProfile;
  const from = prof.endTime - lastMs * 1000;
  const byNode = new Map<number, number>();
  let at = prof.startTime;
  for (let i = 0; i < prof.samples.length; i++) {
    at += prof.timeDeltas[i] ?? 0;
    if (at < from) continue;
    byNode.set(prof.samples[i], (byNode.get(prof.samples[i]) ?? 0) + (prof.timeDeltas[i] ?? 0));
  }
  const total = [...byNode.values()].reduce((a, b) => a + b, 0);
  const selfBy = new Map<string, number>();
  const byPackage = new Map<string, number>();
  for (const n of prof.nodes) {
    const us = byNode.get(n.id) ?? 0;
    if (!us) continue;
    const url = n.callFrame.url.replace(`file://${root}/`, '');
    const key = `${n.callFrame.functionName || '(anonymous)'}  ${url}:${n.callFrame.lineNumber + 1}`;
    selfBy.set(key, (selfBy.get(key) ?? 0) + us);
    const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)?.[1]
      ?? (url.startsWith('node:') ? 'node core' : url === '' ? `(${n.callFrame.functionName || 'native'})` : url.split('/').slice(0, 2).join('/'));
    byPackage.set(pkg, (byPackage.get(pkg) ?? 0) + us);
  }
  // inclusive time: a sample counts for every area on its stack
  const parent = new Map<number, number>();
  for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const nodeById = new Map(prof.nodes.map((n) => [n.id, n]));
  const AREAS: Array<[string, (url: string, fn: string) => boolean]> = [
    ['AWS SDK (DynamoDB client: middleware, SigV4, HTTP, marshalling)', (u) => /node_modules\/@(aws-sdk|smithy)\//.test(u)],
    ['oidc-provider', (u) => u.includes('node_modules/oidc-provider/')],
    ['jose (JWT signing/encoding)', (u) => u.includes('node_modules/jose/')],
    ['koa + koa-mount + router', (u) => /node_modules\/(koa|koa-mount|@koa\/router|koa-compose)\//.test(u)],
    ['pino (request log lines)', (u) => /node_modules\/(pino|@pinojs|sonic-boom)/.test(u)],
    ['our code (src/, adapters/)', (u) => !u.includes('node_modules') && /\/(src|adapters)\//.test(u)],
    ['garbage collector', (_u, f) => f === '(garbage collector)'],
    ['idle', (_u, f) => f === '(idle)'],
  ];
  const inclusive = new Map<string, number>();
  for (const [id, us] of byNode) {
    const hit = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const n = nodeById.get(cur)!;
      for (const [name, match] of AREAS) if (match(n.callFrame.url, n.callFrame.functionName)) hit.add(name);
    }
    for (const name of hit) inclusive.set(name, (inclusive.get(name) ?? 0) + us);
  }
  const pct = (us: number) => `${((us / total) * 100).toFixed(1).padStart(5)}%`;
  const lines = [`profile ${path.basename(file)}: ${(total / 1000).toFixed(0)} ms sampled`, '', 'inclusive time by area (a sample counts for every area on its stack):'];
  for (const [name] of AREAS) lines.push(`  ${pct(inclusive.get(name) ?? 0)}  ${name}`);
  lines.push('', 'self time by package / area:');
  for (const [k, v] of [...byPackage].sort((a, b) => b[1] - a[1]).slice(0, 20)) lines.push(`  ${pct(v)}  ${k}`);
  lines.push('', `top ${top} functions by self time:`);
  for (const [k, v] of [...selfBy].sort((a, b) => b[1] - a[1]).slice(0, top)) lines.push(`  ${pct(v)}  ${k}`);
  return lines.join('\n');
}

// ─── the run ───────────────────────────────────────────────────────────────

interface Row extends Measured {
  scenario: string;
  title: string;
  target: 'ours';
  storage: 'dynalite' | 'dynamodb-local';
  workers: number;
  baselineRps: number | null;
  baselineCpuMsPerReq: number | null;
  baselineP50ms: number | null;
  baselineP99ms: number | null;
  baselinePeakRssMiB: number | null;
  /** ours rps / baseline rps */
  ratio: number | null;
  /** ours cpuMsPerReq / baseline cpuMsPerReq */
  cpuRatio: number | null;
}

async function main(): Promise<void> {
  const header = { ...machineInfo(), secondsPerScenario: SECONDS, warmupSeconds: WARMUP_SECONDS, connections: CONNECTIONS, loginConcurrency: LOGIN_CONCURRENCY, refreshConnections: REFRESH_CONNECTIONS, idpLogLevel: LOG_LEVEL };
  log(`machine: ${header.cpus} × ${header.model}, node ${header.node}, load ${header.loadAvgAtStart.join(' ')}`);
  const rows: Row[] = [];
  const notes: string[] = [];

  // embedded dynalite, served by its own process
  const dataDir = path.join(tmp, 'embedded');
  fs.mkdirSync(dataDir);
  const embeddedEnv = { DATA_DIR: dataDir, LOG_LEVEL: 'silent' };
  const owner = await startDynaliteOwner(dataDir);
  log(`dynalite owner pid ${owner.child.pid} at ${owner.endpoint}`);
  const bcryptHash = await bcrypt.hash(LEGACY_PASSWORD, 10);
  const { sub } = await setupThroughCli(embeddedEnv, bcryptHash);

  if (PROFILE) {
    // one IdP process per profiled scenario, so each profile holds one workload
    fs.mkdirSync(resultsDir, { recursive: true });
    const written: string[] = [];
    for (const s of ALL_SCENARIOS.filter((x) => (process.env.BENCH_PROFILE ?? 'jwks,cc-opaque,cc-jwt-es256,cc-jwt-rs256,introspection').split(',').includes(x.id))) {
      const profDir = path.join(tmp, `profile-${s.id}`);
      const ours = await startOurs(`ours-profile-${s.id}`, embeddedEnv, { workers: 1, owner, nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${profDir}`] });
      const loadStart = Date.now();
      const m = await measure(ours, s);
      await ours.stop();
      const lastMs = Date.now() - loadStart;
      const file = fs.readdirSync(profDir).filter((f) => f.endsWith('.cpuprofile')).map((f) => path.join(profDir, f))[0];
      if (!file) throw new Error('no .cpuprofile written');
      const summary = `scenario ${s.id} (${s.title}): ${m.rps} req/s, ${m.cpuMsPerReq} ms CPU/req under --cpu-prof\n${summariseProfile(file, lastMs)}`;
      const out = path.join(resultsDir, `profile-${s.id}.txt`);
      fs.writeFileSync(out, `${summary}\n`);
      fs.copyFileSync(file, path.join(resultsDir, `profile-${s.id}.cpuprofile.tmp`));
      written.push(path.relative(root, out));
      process.stdout.write(`${summary}\n\n`);
    }
    process.stdout.write(`written: ${written.join(', ')} (and *.cpuprofile.tmp beside them, for Chrome DevTools)\n`);
    await stopChild(owner.child);
    return;
  }

  const ours = await startOurs('ours (dynalite)', embeddedEnv, { workers: 1, owner });
  const setup = await readIdpSetup(embeddedEnv);
  const baseline = await startBaseline({
    jwks: setup.jwks, cookieKeys: setup.cookieKeys, clients: setup.clients, resourceServers: RESOURCES, ttl: TTL,
    account: { sub, email: EMAIL, name: 'Bench User', passwordHash: await hashPassword(PASSWORD, setup.argon2) },
    legacy: { emails: Array.from({ length: LEGACY_USERS }, (_, i) => legacyEmail(i)), bcryptHash, argon2: setup.argon2 },
  });
  log(`ours pid ${ours.pids().join(',')} at ${ours.origin}; baseline pid ${baseline.pids().join(',')} at ${baseline.origin}; ${setup.jwks.length} signing keys`);

  const base = new Map<string, Measured>();
  log('phase 1: ours on embedded dynalite vs the baseline, scenario by scenario');
  for (const s of SCENARIOS) {
    const m = await measure(ours, s);
    const b = await measure(baseline, s);
    base.set(s.id, b);
    rows.push(row(s, m, b, 'dynalite', 1));
  }

  // cluster: 2 workers on the same storage
  const cluster: Array<{ scenario: string; workers1Rps: number; workers2Rps: number; scaling: number; workers1CpuMsPerReq: number; workers2CpuMsPerReq: number; workers1P50ms: number; workers1P99ms: number; workers2P50ms: number; workers2P99ms: number }> = [];
  if (WITH_CLUSTER) {
    log('phase 2: WORKERS=2 (node:cluster) on the same embedded storage, JWT scenarios, each right after 1 worker again');
    const two = await startOurs('ours (dynalite, 2 workers)', embeddedEnv, { workers: 2, owner });
    log(`  cluster pids ${two.pids().join(',')}`);
    for (const s of SCENARIOS.filter((x) => x.jwt)) {
      const one = await measure(ours, s);
      const m = await measure(two, s);
      rows.push(row(s, m, base.get(s.id)!, 'dynalite', 2));
      cluster.push({
        scenario: s.id, workers1Rps: one.rps, workers2Rps: m.rps, scaling: round(m.rps / one.rps, 2),
        workers1CpuMsPerReq: one.cpuMsPerReq, workers2CpuMsPerReq: m.cpuMsPerReq,
        workers1P50ms: one.p50ms, workers1P99ms: one.p99ms, workers2P50ms: m.p50ms, workers2P99ms: m.p99ms,
      });
    }
    await two.stop();
  } else {
    notes.push('cluster phase skipped (--no-cluster)');
  }
  await ours.stop();

  log('phase 3: DynamoDB round trips per request, counted in-process');
  const roundTrips = await countRoundTrips(embeddedEnv);
  for (const r of roundTrips) log(`  ${r.request.padEnd(44)} ${String(r.ddbRequests).padStart(5)} DynamoDB requests, ${r.roundTrips} round trips  ${JSON.stringify(r.ops)}`);
  await stopChild(owner.child);

  // DynamoDB Local
  let ddbLocal: { status: 'measured' | 'skipped'; reason?: string; startupMs?: number } = { status: 'skipped', reason: '--no-ddb-local' };
  const elapsed = (Date.now() - t0) / 1000;
  if (WITH_DDB_LOCAL && elapsed + DDB_LOCAL_PHASE_SECONDS > BUDGET_SECONDS) {
    ddbLocal = { status: 'skipped', reason: `time budget: ${Math.round(elapsed)} s spent, the phase needs about ${DDB_LOCAL_PHASE_SECONDS} s of ${BUDGET_SECONDS} s (BENCH_BUDGET_SECONDS)` };
    notes.push(`DynamoDB Local skipped: ${ddbLocal.reason}`);
    log(`phase 4 skipped: ${ddbLocal.reason}`);
  } else if (WITH_DDB_LOCAL) {
    log('phase 4: ours on DynamoDB Local (Java) vs the same baseline process');
    let backend: TestBackend | undefined;
    try {
      backend = await startDynamoDBLocal({ startTimeoutMs: 60_000 });
    } catch (err) {
      ddbLocal = { status: 'skipped', reason: (err as Error).message.split('\n')[0] };
      notes.push(`DynamoDB Local skipped: ${ddbLocal.reason}`);
      log(`  skipped: ${ddbLocal.reason}`);
    }
    if (backend) {
      try {
        ddbLocal = { status: 'measured', startupMs: backend.startupMs };
        const localDir = path.join(tmp, 'ddb-local');
        fs.mkdirSync(localDir);
        const env = { DATA_DIR: localDir, DYNAMODB_ENDPOINT: backend.endpoint, AWS_REGION: backend.region, TABLE_PREFIX: 'bench_', LOG_LEVEL: 'silent' };
        await setupThroughCli(env, bcryptHash);
        const local = await startOurs('ours (DynamoDB Local)', env, { workers: 1 });
        for (const s of SCENARIOS.filter((x) => x.storage)) {
          const m = await measure(local, s);
          // the baseline again, right after, so both see the same machine load
          const b = await measure(baseline, s);
          rows.push(row(s, m, b, 'dynamodb-local', 1));
        }
        await local.stop();
      } finally {
        await backend.close();
      }
    }
  } else {
    notes.push('DynamoDB Local phase skipped (--no-ddb-local)');
  }
  await baseline.stop();

  notes.push(`legacy-login: ${LEGACY_USERS} users imported with \`idp users import\` (one bcrypt cost-10 hash); each login is a user's first; the baseline does the same bcrypt check and argon2id hash in memory`);
  notes.push('the login scenario counts one full login (7 HTTP requests: authorize, login page, login POST, resume, consent POST, resume, token) as one "request"');
  notes.push('the embedded dynalite runs in its own process (as under a cluster primary); its CPU time is storageCpuMsPerReq, not part of cpuMsPerReq');
  notes.push('the DynamoDB Local IdP has its own keyring (same algorithms, other keys) since its keys table lives in DynamoDB Local');

  const durationS = round((Date.now() - t0) / 1000, 1);
  const result = {
    header: { ...header, durationS, storage: { dynalite: 'embedded dynalite (LevelDB under DATA_DIR), served by a separate owner process', dynamodbLocal: ddbLocal }, ratio: 'ours rps / baseline rps (1.0 = as fast as bare oidc-provider); cpuRatio = ours cpuMsPerReq / baseline cpuMsPerReq' },
    scenarios: [
      ...rows,
    ],
    cluster,
    roundTrips,
    notes,
  };
  fs.mkdirSync(resultsDir, { recursive: true });
  // a subset run does not replace the full run's results
  const out = process.env.BENCH_ONLY ? 'subset.json.tmp' : 'latest.json';
  fs.writeFileSync(path.join(resultsDir, out), `${JSON.stringify(result, null, 2)}\n`);
  process.stdout.write(`${report(result.header, rows, cluster, roundTrips, notes, durationS).replace('bench/results/latest.json', `bench/results/${out}`)}\n`);
}

function row(s: Scenario, m: Measured, b: Measured, storage: Row['storage'], workers: number): Row {
  return {
    scenario: s.id, title: s.title, target: 'ours', storage, workers, ...m,
    baselineRps: b.rps, baselineCpuMsPerReq: b.cpuMsPerReq, baselineP50ms: b.p50ms, baselineP99ms: b.p99ms, baselinePeakRssMiB: b.peakRssMiB,
    ratio: b.rps ? round(m.rps / b.rps, 3) : null,
    cpuRatio: b.cpuMsPerReq ? round(m.cpuMsPerReq / b.cpuMsPerReq, 2) : null,
  };
}

function report(header: ReturnType<typeof machineInfo> & { durationS?: number }, rows: Row[], cluster: Array<Record<string, number | string>>, rts: RoundTrips[], notes: string[], durationS: number): string {
  const cols = ['scenario', 'storage', 'w', 'ours rps', 'base rps', 'ratio', 'cpu ms/req ours', 'base', 'p50 ours', 'p99 ours', 'p50 base', 'p99 base', 'RSS MiB', 'ddb/req', 'errors'];
  const data = rows.map((r) => [
    r.scenario, r.storage, String(r.workers), String(r.rps), String(r.baselineRps), String(r.ratio), String(r.cpuMsPerReq), String(r.baselineCpuMsPerReq),
    String(r.p50ms), String(r.p99ms), String(r.baselineP50ms), String(r.baselineP99ms), `${r.peakRssMiB}/${r.baselinePeakRssMiB}`, r.ddbPerReq === undefined ? '-' : String(r.ddbPerReq), String(r.errors),
  ]);
  const widths = cols.map((c, i) => Math.max(c.length, ...data.map((d) => d[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i < 3 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  const out = [
    '', `machine: ${header.cpus} CPUs (${header.model}), node ${header.node}, ${header.date}; bench took ${durationS} s`,
    'latencies in ms; ratio = ours rps / baseline rps; RSS = peak RSS during the scenario, ours/baseline', '',
    line(cols), line(widths.map((w) => '-'.repeat(w))), ...data.map(line),
  ];
  if (cluster.length) {
    out.push('', 'cluster (embedded dynalite): 1 → 2 workers, measured back to back (the load generator shares the 2 CPUs)');
    for (const c of cluster) out.push(`  ${String(c.scenario).padEnd(14)} ${c.workers1Rps} → ${c.workers2Rps} req/s (×${c.scaling}); cpu ${c.workers1CpuMsPerReq} → ${c.workers2CpuMsPerReq} ms/req; p50/p99 ${c.workers1P50ms}/${c.workers1P99ms} → ${c.workers2P50ms}/${c.workers2P99ms} ms`);
  }
  out.push('', 'DynamoDB requests and round trips per HTTP request (in-process count, warm caches):');
  for (const r of rts) out.push(`  ${r.request.padEnd(48)} ${String(r.ddbRequests).padStart(5)} requests  ${String(r.roundTrips).padStart(5)} round trips  ${Object.entries(r.ops).map(([k, v]) => `${k}×${v}`).join(' ')}`);
  out.push('', ...notes.map((n) => `note: ${n}`), '', 'written: bench/results/latest.json');
  return out.join('\n');
}

try {
  await main();
  process.exit(0);
} catch (err) {
  log(`failed: ${(err as Error).stack ?? err}`);
  process.exitCode = 1;
  killAll();
  process.exit(1);
}
