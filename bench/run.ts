// `npm run bench`: our IdP against bare oidc-provider, in the same run, on the
// same machine. See bench/README.md for what is measured and how to read it.
//
//   npm run bench                    the full run (about 4.5 minutes on 2 cores)
//   npm run bench -- --no-ddb-local  skip the DynamoDB Local phase
//   npm run bench -- --no-cluster    skip the 2-worker phase
//   npm run bench -- --no-kms        skip the keys-modes phase (kms-envelope, kms-sign)
//   npm run bench -- --no-latency    skip the phase with DynamoDB latency (BENCH_LATENCY_MS each way, default 3)
//   npm run bench -- --import-scale  also `idp users import` of BENCH_IMPORT_SCALE_ROWS (300 000) lines, RSS at
//                                    100k and 300k (long: ~15-25 min on dynalite; bench/import-scale.ts)
//   npm run bench -- --profile       instead: --cpu-prof on our IdP under the
//                                    client_credentials and introspection
//                                    scenarios; writes bench/results/profile-*.txt
//   BENCH_SECONDS=4 BENCH_LOG_LEVEL=info   measured seconds per scenario, our IdP's LOG_LEVEL
//   BENCH_ONLY=cc-opaque,introspection     a subset of the scenarios
//   BENCH_BUDGET_SECONDS=285               skip the DynamoDB Local phase when it would not fit
//   BENCH_IMPORT_ROWS=2000                 rows of the generated `idp users import` file
//
// Processes: this one (setup, autocannon, the login driver, the report); the
// baseline (bench/baseline.ts, oidc-provider's memory adapter) and the second
// baseline, the peer (the same with bench/community-dynamodb-adapter.ts on the
// storage of the phase); our IdP (src/main.ts, as `npm start` runs it);
// for embedded storage, a dynalite owner (bench/dynalite-owner.ts) that serves
// DATA_DIR's LevelDB as a cluster primary would, so the IdP's CPU time
// excludes the emulator's; for DynamoDB Local, its Java process; for the
// keys-modes phase, a KMS test server (bench/kms-owner.ts); for the import
// scenario, one `idp users import` process (src/cli/main.ts, as bin/idp runs it).
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
import { UserAgent } from '../test/support/user-agent.ts';
import { machineInfo, peakRssMiB, processTree, reapedChildrenCpuMs, resetPeakRss, treeCpuMs } from './lib/proc.ts';
import { writeImportFile, type ImportFileInfo } from './lib/import-file.ts';
import { importAtScaleOnFreshStorage, type ImportScaleResult } from './import-scale.ts';
import type { BaselineSpec, BenchResourceServer } from './lib/spec.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const resultsDir = path.join(root, 'bench', 'results');
const argv = new Set(process.argv.slice(2));
const PROFILE = argv.has('--profile');
const WITH_DDB_LOCAL = !argv.has('--no-ddb-local') && !PROFILE;
const WITH_CLUSTER = !argv.has('--no-cluster') && !PROFILE;
const WITH_KMS = !argv.has('--no-kms') && !PROFILE;
const WITH_LATENCY = !argv.has('--no-latency') && !PROFILE;
/** the latency phase: each direction of every DynamoDB request held this long (bench/dynalite-owner.ts) */
const LATENCY_MS = Number(process.env.BENCH_LATENCY_MS ?? 3);
/** the community adapter's table (its own, on the same storage as ours) */
const PEER_TABLE = 'bench_community_oidc';
const SECONDS = Number(process.env.BENCH_SECONDS ?? 4);
const WARMUP_SECONDS = 1;
/** logins before the login scenario is measured (see loginWarmup) */
const LOGIN_WARMUP_LOGINS = Number(process.env.BENCH_LOGIN_WARMUP ?? 80);
/** the whole run should stay under 10 minutes: a phase that would not fit (keys modes, DynamoDB Local) is skipped */
const BUDGET_SECONDS = Number(process.env.BENCH_BUDGET_SECONDS ?? 600);
/** seconds each measurement took so far (warm-up, settling pause, window, counters, preparation) */
const measureSeconds: number[] = [];
/** one measurement, as measured so far in this run (about 5.5 s), plus a little */
const perMeasure = () => 0.2 + (measureSeconds.length ? measureSeconds.reduce((a, b) => a + b, 0) / measureSeconds.length : SECONDS + WARMUP_SECONDS + 0.5);
/** DynamoDB Local: the JVM's start (3–10 s), setup, our IdP's and the peer's start, then ours, the baseline and (some) the peer per scenario */
const ddbLocalPhaseSeconds = (measurements: number) => 14 + measurements * perMeasure();
/** keys modes with phase 3 (about 4 s, the set-up beside it), then per JWT scenario both modes and the baseline (about 35 s in all) */
const kmsPhaseSeconds = (measurements: number) => 6 + measurements * perMeasure();
const LOG_LEVEL = process.env.BENCH_LOG_LEVEL ?? 'info';
const CONNECTIONS = 10;
const LOGIN_CONCURRENCY = 4;
const REFRESH_CONNECTIONS = 8;

const SECRET = 'bench-secret-0123456789abcdef0123456789';
const REDIRECT = 'https://rp.bench.test/cb';
const EMAIL = 'bench.user@example.com';
const PASSWORD = 'violet anchor meadow 7421';
/** imported legacy users (bcrypt, cost 10), each logged in once: their first login upgrades them to argon2id */
const LEGACY_USERS = 200;
// passes today's password policy (no part of the users' e-mail or name in it), so the first login completes (LEGACY_PASSWORD_POLICY)
const LEGACY_PASSWORD = 'bench imported password 0123';
const legacyEmail = (i: number) => `legacy.${i}@example.com`;
/** migrated-login: imported users whose first login upgraded them, logged in again round-robin; at least this many */
const MIGRATED_POOL = 8;
/** import: rows of the generated file; every IMPORT_DUP_EVERY-th row is a verified duplicate (merged), every IMPORT_BCRYPT_EVERY-th a bcrypt hash, the rest salted SHA-256 */
const IMPORT_ROWS = Number(process.env.BENCH_IMPORT_ROWS ?? 2000);
const IMPORT_DUP_EVERY = 10;
const IMPORT_BCRYPT_EVERY = 5;
/** import at scale (opt-in: --import-scale or BENCH_ONLY=import-scale): lines of the file, RSS noted at 100k and 300k */
const IMPORT_SCALE_ROWS = Number(process.env.BENCH_IMPORT_SCALE_ROWS ?? 300_000);
/** the KMS modes of the keys-modes phase, and its scenarios (local mode is phase 1) */
const KMS_MODES = ['kms-envelope', 'kms-sign'] as const;
type KmsMode = (typeof KMS_MODES)[number];
const KMS_SCENARIOS = ['cc-jwt-es256', 'cc-jwt-rs256'];
const RESOURCES: BenchResourceServer[] = [
  { id: 'https://opaque.bench.test', scope: 'api:read', accessTokenFormat: 'opaque' },
  { id: 'https://es256.bench.test', scope: 'api:read', accessTokenFormat: 'jwt', jwtAlg: 'ES256' },
  { id: 'https://rs256.bench.test', scope: 'api:read', accessTokenFormat: 'jwt', jwtAlg: 'RS256' },
];
/** forward-auth: one site whose audience is the ES256 resource server, every path behind a signed-in user or a token */
const SITE_AUDIENCE = RESOURCES[1].id;
const SITES = { sites: [{ id: 'bench', audience: SITE_AUDIENCE, hosts: ['127.0.0.1'], publicRoutes: ['/public/**'], routes: [{ path: '/api/**' }] }] };
/** what the gateway sends with every forward-auth request: the original request */
const FORWARDED = { 'x-original-method': 'GET', 'x-original-uri': '/api/orders?page=1', 'x-forwarded-host': '127.0.0.1', 'x-forwarded-proto': 'http' };
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
  /** KMS requests served so far, by operation (keys-modes phase only) */
  kmsCounts?(): Promise<Record<string, number>>;
  /** the KMS test server's pid, reported separately (keys-modes phase only) */
  kmsPid?: number;
  opaqueToken?: string;
  /** forward-auth scenarios: a JWT access token for the site, and a signed-in session's cookies */
  siteToken?: string;
  sessionCookie?: string;
  refreshPool: string[];
  /** imported legacy users not logged in yet */
  legacyPool: string[];
  /** imported users whose first login has upgraded them (argon2id now) */
  migratedPool: string[];
  migratedNext: number;
  login: LoginTarget;
  stop(): Promise<void>;
}

interface DynaliteOwner {
  child: ChildProcess;
  endpoint: string;
  counts(): Promise<Record<string, number>>;
}

/** asks a forked owner process for its counters over IPC */
function askCounts(child: ChildProcess, type: 'counts' | 'calls'): Promise<Record<string, number>> {
  return new Promise((resolve) => {
    const onMsg = (m: { type: string } & Record<string, unknown>) => {
      if (m.type !== type) return;
      child.off('message', onMsg);
      resolve(m[type] as Record<string, number>);
    };
    child.on('message', onMsg);
    child.send({ type });
  });
}

interface KmsOwner {
  child: ChildProcess;
  endpoint: string;
  /** the symmetric key: KMS_KEY_ID of both KMS modes */
  keyId: string;
  calls(): Promise<Record<string, number>>;
}

/** the KMS test server, in a process of its own (bench/kms-owner.ts) */
async function startKmsOwner(): Promise<KmsOwner> {
  const child = fork(path.join(root, 'bench', 'kms-owner.ts'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  children.add(child);
  const ready = await new Promise<{ endpoint: string; keyId: string }>((resolve, reject) => {
    child.once('message', (m: { type: string; endpoint: string; keyId: string }) => resolve(m));
    child.once('exit', (code) => reject(new Error(`KMS server exited (${code})`)));
  });
  return { child, ...ready, calls: () => askCounts(child, 'calls') };
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
  return { child, endpoint, counts: () => askCounts(child, 'counts') };
}

/** the latency phase's proxy (bench/latency-proxy.ts) in front of `target`, in a process of its own */
async function startLatencyProxy(target: string, ms: number): Promise<{ child: ChildProcess; endpoint: string }> {
  const child = fork(path.join(root, 'bench', 'latency-proxy.ts'), [], {
    env: { ...process.env, TARGET: target, LATENCY_MS: String(ms) }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  children.add(child);
  const endpoint = await new Promise<string>((resolve, reject) => {
    child.once('message', (m: { type: string; endpoint: string }) => resolve(m.endpoint));
    child.once('exit', (code) => reject(new Error(`latency proxy exited (${code})`)));
  });
  return { child, endpoint };
}

/** our IdP as `npm start` runs it: node src/main.ts, configured by environment */
async function startOurs(label: string, env: Record<string, string>, opts: { workers: number; nodeArgs?: string[]; owner?: DynaliteOwner; kms?: KmsOwner }): Promise<Target> {
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
    ...target(label, origin, child),
    ddbCounts: opts.owner?.counts,
    storagePid: opts.owner?.child.pid,
    kmsCounts: opts.kms?.calls,
    kmsPid: opts.kms?.child.pid,
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

/** what every load target has: its processes, the login it drives, its token and user pools */
function target(label: string, origin: string, child: ChildProcess): Target {
  return {
    label, origin,
    pids: () => processTree(child.pid!),
    refreshPool: [],
    legacyPool: Array.from({ length: LEGACY_USERS }, (_, i) => legacyEmail(i)),
    migratedPool: [],
    migratedNext: 0,
    login: { origin, clientId: 'webapp', clientSecret: SECRET, redirectUri: REDIRECT, email: EMAIL, password: PASSWORD },
    stop: () => stopChild(child),
  };
}

/**
 * bare oidc-provider (bench/baseline.ts): with `spec.storage`, the peer on the
 * community DynamoDB adapter; `owner` then counts its DynamoDB requests
 */
async function startBaseline(spec: Omit<BaselineSpec, 'issuer' | 'port'>, label = 'baseline', owner?: DynaliteOwner, nodeArgs: string[] = []): Promise<Target> {
  const port = await freePort();
  const origin = `http://127.0.0.1:${port}`;
  const specFile = path.join(tmp, `${label.replace(/\W+/g, '_')}.json`);
  fs.writeFileSync(specFile, JSON.stringify({ ...spec, issuer: origin, port }), { mode: 0o600 });
  const child = spawn(process.execPath, [...nodeArgs, path.join(root, 'bench', 'baseline.ts'), specFile], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
  children.add(child);
  await new Promise<void>((resolve, reject) => {
    let buf = '';
    child.stdout!.on('data', (b: Buffer) => {
      buf += b.toString();
      if (buf.includes('ready ')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`${label} exited (${code})`)));
  });
  return { ...target(label, origin, child), ddbCounts: owner?.counts, storagePid: owner?.child.pid };
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
  /** KMS requests served per request, in all and by operation (keys-modes phase only) */
  kmsPerReq?: number;
  kmsOps?: Record<string, number>;
  /** the KMS test server's CPU per request, not included in cpuMsPerReq (keys-modes phase only) */
  kmsCpuMsPerReq?: number;
}

interface Scenario {
  id: string;
  title: string;
  storage: boolean;
  jwt?: boolean;
  /** false: not run again in the DynamoDB Local phase (time budget) */
  ddbLocal?: boolean;
  /** measured seconds, when not BENCH_SECONDS (cheap, steady scenarios: time budget) */
  seconds?: number;
  /** the second baseline (oidc-provider on the community DynamoDB adapter) runs it too */
  peer?: boolean;
  /** run again in the latency phase, ours and the peer */
  latency?: boolean;
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

/** GET /forward-auth as nginx's auth_request sends it, with the credential of `credential` */
const forwardAuth = (credential: (t: Target) => Promise<Record<string, string>>): Scenario['run'] => async (t, seconds) => fromCannon(await cannon({
  url: `${t.origin}/forward-auth`, connections: CONNECTIONS, duration: seconds, headers: { ...FORWARDED, ...await credential(t) },
}));

const siteToken = async (t: Target) => {
  if (!t.siteToken) {
    const res = await fetch(`${t.origin}/token`, {
      method: 'POST', headers: { 'content-type': FORM, authorization: basic('svc', SECRET) },
      body: form({ grant_type: 'client_credentials', scope: 'api:read', resource: SITE_AUDIENCE }),
    });
    if (res.status !== 200) throw new Error(`minting a JWT for the site: ${res.status} ${await res.text()}`);
    t.siteToken = ((await res.json()) as TokenResponse).access_token;
  }
  return { authorization: `Bearer ${t.siteToken}` };
};

/** the cookies of one login on this target (the session cookie among them) */
const sessionCookie = async (t: Target) => {
  if (!t.sessionCookie) {
    const ua = new UserAgent(t.origin);
    await loginOnce(t.login, ua);
    t.sessionCookie = [...ua.jar].map(([k, v]) => `${k}=${v}`).join('; ');
  }
  return { cookie: t.sessionCookie, accept: 'text/html' };
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

const loginAt = (concurrency: number): Scenario['run'] => async (t, seconds) => {
  const r = await drive(() => loginOnce(t.login), { concurrency, durationMs: seconds * 1000 });
  t.refreshPool.push(...r.tokens.map((x) => x.refresh_token!).filter(Boolean));
  const sorted = [...r.latencies].sort((a, b) => a - b);
  return { requests: r.completed + r.errors, ok: r.completed, errors: r.errors, p50: percentile(sorted, 50), p99: percentile(sorted, 99), seconds: r.durationMs / 1000, firstError: r.firstError };
};

/**
 * The login warm-up is a number of logins, not a second: each login runs its
 * code once, so after one second (a handful of logins) most of it is still
 * unoptimised. Measured here: about 118 ms CPU per login after 5 logins,
 * 52–76 ms after 300. The same count warms the baseline.
 */
const loginWarmup = async (t: Target) => {
  let left = LOGIN_WARMUP_LOGINS;
  const counted = () => {
    if (left-- <= 0) throw new PoolEmpty();
    return loginOnce(t.login);
  };
  const r = await drive(counted, { concurrency: LOGIN_CONCURRENCY, durationMs: 60_000 });
  t.refreshPool.push(...r.tokens.map((x) => x.refresh_token!).filter(Boolean));
};

/** one fresh imported user per login: bcrypt verify, argon2id hash, the upgrade write */
const legacyFlow = (t: Target) => async () => {
  const email = t.legacyPool.shift();
  if (!email) throw new PoolEmpty();
  const tokens = await loginOnce({ ...t.login, email, password: LEGACY_PASSWORD });
  t.migratedPool.push(email);
  return tokens;
};

/** an imported user whose first login already upgraded them, round-robin over the pool: argon2id verify */
const migratedFlow = (t: Target) => () => {
  const email = t.migratedPool[t.migratedNext++ % t.migratedPool.length];
  return loginOnce({ ...t.login, email, password: LEGACY_PASSWORD });
};

/** enough upgraded users that the virtual users do not share one: first logins of imported users, when legacy-login did not run */
async function fillMigratedPool(t: Target): Promise<void> {
  while (t.migratedPool.length < MIGRATED_POOL) {
    if (t.legacyPool.length === 0) throw new Error(`no imported legacy user left to migrate (${t.migratedPool.length} migrated)`);
    await Promise.all(Array.from({ length: Math.min(LOGIN_CONCURRENCY, MIGRATED_POOL - t.migratedPool.length) }, legacyFlow(t)));
  }
}

const migratedLogin: Scenario['run'] = async (t, seconds) => {
  const r = await drive(migratedFlow(t), { concurrency: LOGIN_CONCURRENCY, durationMs: seconds * 1000 });
  const sorted = [...r.latencies].sort((a, b) => a - b);
  return { requests: r.completed + r.errors, ok: r.completed, errors: r.errors, p50: percentile(sorted, 50), p99: percentile(sorted, 99), seconds: r.durationMs / 1000, firstError: r.firstError };
};

const legacyLogin: Scenario['run'] = async (t, seconds) => {
  const r = await drive(legacyFlow(t), { concurrency: LOGIN_CONCURRENCY, durationMs: seconds * 1000 });
  const sorted = [...r.latencies].sort((a, b) => a - b);
  return { requests: r.completed + r.errors, ok: r.completed, errors: r.errors, p50: percentile(sorted, 50), p99: percentile(sorted, 99), seconds: r.durationMs / 1000, firstError: r.firstError ?? (t.legacyPool.length === 0 ? `ran out of the ${LEGACY_USERS} imported users` : undefined) };
};

const ALL_SCENARIOS: Scenario[] = [
  { id: 'jwks', title: 'GET /jwks', storage: false, run: get('/jwks') },
  { id: 'discovery', title: 'GET /.well-known/openid-configuration', storage: false, run: get('/.well-known/openid-configuration') },
  { id: 'cc-opaque', title: 'client_credentials, opaque token', storage: true, peer: true, latency: true, run: clientCredentials(RESOURCES[0].id) },
  { id: 'cc-jwt-es256', title: 'client_credentials, ES256 JWT', storage: true, jwt: true, run: clientCredentials(RESOURCES[1].id) },
  { id: 'cc-jwt-rs256', title: 'client_credentials, RS256 JWT', storage: true, jwt: true, run: clientCredentials(RESOURCES[2].id) },
  { id: 'introspection', title: 'introspection of an opaque token', storage: true, peer: true, latency: true, run: introspection },
  { id: 'login', title: 'full login, argon2id (per login: 7 HTTP requests)', storage: true, peer: true, warmup: loginWarmup, run: loginAt(LOGIN_CONCURRENCY) },
  // one virtual user: the latency of a login without queueing behind others (the "moderate load" of the goal)
  { id: 'login-1', title: 'full login, one at a time (latency without queueing)', storage: true, ddbLocal: false, peer: true, latency: true, run: loginAt(1) },
  {
    id: 'legacy-login', title: 'first login of an imported bcrypt user (upgrade to argon2id; 7 HTTP requests)', storage: true,
    warmup: async (t) => { await drive(legacyFlow(t), { concurrency: LOGIN_CONCURRENCY, durationMs: WARMUP_SECONDS * 1000 }); },
    run: legacyLogin,
  },
  {
    id: 'migrated-login', title: 'login of an imported user already upgraded to argon2id by a first login (7 HTTP requests)', storage: true, ddbLocal: false,
    prepare: fillMigratedPool, run: migratedLogin,
  },
  { id: 'refresh', title: 'refresh_token rotation', storage: true, peer: true, latency: true, prepare: fillRefreshPool, run: refresh },
  // forward-auth: decisions and internal JWTs come from the decision cache after the first request (no DynamoDB);
  // thousands of requests a second, so 2 s measure them steadily and keep the whole run within its budget
  { id: 'fa-jwt', title: 'GET /forward-auth, bearer ES256 JWT access token (internal JWT in the answer)', storage: false, seconds: 2, run: forwardAuth(siteToken) },
  { id: 'fa-session', title: 'GET /forward-auth, session cookie (internal JWT in the answer)', storage: false, seconds: 2, run: forwardAuth(sessionCookie) },
];

/** BENCH_ONLY=id,id: a subset (for quick comparisons; the full run is the reference); ids also `import` and `<scenario>@<KMS mode>` */
const ONLY = process.env.BENCH_ONLY ? new Set(process.env.BENCH_ONLY.split(',').map((x) => x.trim())) : undefined;
const selected = (id: string) => !ONLY || ONLY.has(id);
const SCENARIOS = ALL_SCENARIOS.filter((s) => selected(s.id));

function sum(o: Record<string, number>): number {
  return Object.values(o).reduce((a, b) => a + b, 0);
}

function diff(after: Record<string, number>, before: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(after)) if (v - (before[k] ?? 0) > 0) out[k] = v - (before[k] ?? 0);
  return out;
}

async function measure(t: Target, s: Scenario, seconds = s.seconds ?? SECONDS): Promise<Measured> {
  const started = performance.now();
  try {
    return await measureOnce(t, s, seconds);
  } finally {
    measureSeconds.push((performance.now() - started) / 1000);
  }
}

async function measureOnce(t: Target, s: Scenario, seconds: number): Promise<Measured> {
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
  const kms0 = t.kmsCounts ? await t.kmsCounts() : undefined;
  const km0 = t.kmsPid ? treeCpuMs([t.kmsPid]) : 0;
  const r = await s.run(t, seconds);
  const cpu1 = treeCpuMs(pids);
  const st1 = t.storagePid ? treeCpuMs([t.storagePid]) : 0;
  const km1 = t.kmsPid ? treeCpuMs([t.kmsPid]) : 0;
  const ddb1 = t.ddbCounts ? await t.ddbCounts() : undefined;
  const kms1 = t.kmsCounts ? await t.kmsCounts() : undefined;
  const n = Math.max(1, r.requests);
  const ops = ddb0 && ddb1 ? diff(ddb1, ddb0) : undefined;
  const kmsOps = kms0 && kms1 ? diff(kms1, kms0) : undefined;
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
    ...(kmsOps ? { kmsPerReq: round(sum(kmsOps) / n, 2), kmsOps: Object.fromEntries(Object.entries(kmsOps).map(([k, v]) => [k, round(v / n, 2)])) } : {}),
    ...(t.kmsPid ? { kmsCpuMsPerReq: round((km1 - km0) / n, 3) } : {}),
  };
  log(`  ${t.label.padEnd(24)} ${s.id.padEnd(14)} ${String(m.rps).padStart(8)} req/s  p50 ${m.p50ms} ms  p99 ${m.p99ms} ms  cpu ${m.cpuMsPerReq} ms/req${m.ddbPerReq !== undefined ? `  ddb ${m.ddbPerReq}/req` : ''}${m.kmsPerReq !== undefined ? `  kms ${JSON.stringify(m.kmsOps)}/req` : ''}${m.errors ? `  ERRORS ${m.errors}: ${m.firstError ?? ''}` : ''}`);
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
async function countRoundTrips(env: Record<string, string>, reps = 10): Promise<{ table: RoundTrips[]; perLogin: number }> {
  const port = await freePort();
  const origin = `http://127.0.0.1:${port}`;
  const config = loadConfig({ ...env, ISSUER: origin, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'silent', WORKERS: '1' });
  const server = await startServer(config, { log: createLogger('silent') });
  const doc = server.storage.doc as unknown as { send: (...a: unknown[]) => Promise<unknown> };
  const original = doc.send;
  let inflight = 0;
  let waves = 0;
  /** every wave since the last reset (a whole login: the sum over its HTTP requests, which run one after the other) */
  let allWaves = 0;
  let ops: Record<string, number> = {};
  doc.send = function (this: unknown, cmd: { constructor: { name: string } }, ...rest: unknown[]) {
    const name = cmd.constructor.name.replace(/Command$/, '');
    ops[name] = (ops[name] ?? 0) + 1;
    if (inflight === 0) {
      waves++;
      allWaves++;
    }
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
  let perLogin = 0;
  const target: Target = {
    label: 'in-process', origin, pids: () => [], refreshPool: [], legacyPool: [0, 1, 2].map((i) => legacyEmail(LEGACY_USERS + i)), migratedPool: [], migratedNext: 0,
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
    allWaves = 0;
    for (let i = 0; i < 3; i++) await loginOnce(target.login);
    // let the last request's writes after its answer settle
    await new Promise((r) => setTimeout(r, 10));
    perLogin = allWaves / 3;
    prefix = 'legacy first login: ';
    for (let i = 0; i < 3; i++) await legacyFlow(target)();
    prefix = 'migrated login: ';
    for (let i = 0; i < 3; i++) await migratedFlow(target)();
  } finally {
    recording = false;
    globalThis.fetch = realFetch;
    doc.send = original;
    await server.close();
  }
  return {
    perLogin: round(perLogin, 2),
    table: [...table.entries()].map(([request, row]) => ({
      request,
      ddbRequests: round(sum(row.ops) / row.n, 2),
      roundTrips: round(row.waves / row.n, 2),
      ops: Object.fromEntries(Object.entries(row.ops).map(([k, v]) => [k, round(v / row.n, 2)])),
    })),
  };
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
  // who a busy sample works for: from the leaf up, the first frame that names an owner (HTTP and
  // stream internals name none: a socket write is the DynamoDB client's under _http_client, the
  // response's under Koa's respond)
  const OWNERS: Array<[string, RegExp]> = [
    ['DynamoDB client (lean client, coalescing, adapters, SDK marshalling, its HTTP)', /\/src\/storage\/|\/adapters\/|node_modules\/@(aws-sdk|smithy)\/|^node:_http_(client|agent)$/],
    ['request log (pino)', /node_modules\/(pino|sonic-boom|@pinojs)\//],
    ['oidc-provider and jose', /node_modules\/(oidc-provider|jose)\//],
    ['Koa, routers, HTTP server, cookies', /node_modules\/(koa|@koa|koa-compose|koa-mount|delegates|type-is|on-finished|vary|negotiator|accepts|cookies|keygrip|tsscmp|content-type|raw-body|co-body|http-errors|statuses)\/|^node:_http_server$/],
    ['our other code (src/, bench/baseline.ts)', /\/src\/|\/bench\/baseline\.ts$/],
  ];
  const owned = new Map<string, number>();
  let busy = 0;
  for (const [id, us] of byNode) {
    const leaf = nodeById.get(id)!.callFrame.functionName;
    if (leaf === '(idle)') continue;
    busy += us;
    let owner = leaf === '(garbage collector)' ? 'garbage collector' : leaf === '(program)' ? '(program: V8 outside JS)' : undefined;
    for (let cur: number | undefined = id; !owner && cur !== undefined; cur = parent.get(cur)) {
      const url = nodeById.get(cur)!.callFrame.url;
      owner = OWNERS.find(([, re]) => re.test(url))?.[0];
    }
    owner ??= 'node core, not attributed';
    owned.set(owner, (owned.get(owner) ?? 0) + us);
  }
  lines.push('', 'busy time by who it works for (% of the busy, non-idle samples):');
  for (const [k, v] of [...owned].sort((a, b) => b[1] - a[1])) lines.push(`  ${((v / busy) * 100).toFixed(1).padStart(5)}%  ${k}`);
  lines.push('', 'self time by package / area:');
  for (const [k, v] of [...byPackage].sort((a, b) => b[1] - a[1]).slice(0, 20)) lines.push(`  ${pct(v)}  ${k}`);
  lines.push('', `top ${top} functions by self time:`);
  for (const [k, v] of [...selfBy].sort((a, b) => b[1] - a[1]).slice(0, top)) lines.push(`  ${pct(v)}  ${k}`);
  return lines.join('\n');
}

// ─── import: `idp users import` as an operator runs it ──────────────────────

interface ImportDetails extends Omit<ImportFileInfo, 'file' | 'offsets'> {
  /** the import summary the command printed (--json), without the per-line errors */
  summary: { read: number; created: number; merged: number; updated: number; unchanged: number; rejected: number };
  /** `--concurrency` (the command's default) */
  concurrency: number;
  /** the whole process: start, storage and keyring, the rows, exit */
  wallMs: number;
  /** the same command on an empty file, just before: start-up and exit */
  startupMs: number;
  /** rows / (wallMs - startupMs) */
  rowsPerSecondAfterStartup: number;
}

interface CliProcessRun {
  code: number | null;
  stdout: string;
  stderr: string;
  wallMs: number;
  cpuMs: number;
  peakRssMiB: number;
}

/** `idp ARGS` (src/cli/main.ts, what bin/idp runs) as a process of its own; its CPU time from our reaped children's, its peak RSS polled */
async function idpProcess(args: string[], env: Record<string, string>): Promise<CliProcessRun> {
  const cpu0 = reapedChildrenCpuMs();
  const start = performance.now();
  const child = spawn(process.execPath, [path.join(root, 'src', 'cli', 'main.ts'), ...args], { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (b: Buffer) => { stdout += b.toString(); });
  child.stderr!.on('data', (b: Buffer) => { stderr += b.toString(); });
  let peak = 0;
  // VmHWM only grows: the last reading before the exit is the peak, within the 20 ms before it
  const poll = setInterval(() => { peak = Math.max(peak, peakRssMiB(child.pid!) || 0); }, 20);
  const code = await new Promise<number | null>((resolve) => child.once('close', (c) => resolve(c)));
  clearInterval(poll);
  children.delete(child);
  return { code, stdout, stderr, wallMs: performance.now() - start, cpuMs: reapedChildrenCpuMs() - cpu0, peakRssMiB: peak };
}

/**
 * rows/s of `idp users import FILE --json`, run as a separate process against
 * the running IdP's embedded storage (through the dynalite owner, as an
 * operator's command would while the server runs). No baseline: bare
 * oidc-provider has no accounts to import into.
 */
async function measureImport(owner: DynaliteOwner, env: Record<string, string>): Promise<Row> {
  const info = await writeImportFile(path.join(tmp, 'import.jsonl'), { rows: IMPORT_ROWS, dupEvery: IMPORT_DUP_EVERY, bcryptEvery: IMPORT_BCRYPT_EVERY });
  const empty = path.join(tmp, 'import-empty.jsonl');
  fs.writeFileSync(empty, '');
  const startup = await idpProcess(['users', 'import', empty, '--json'], env);
  if (startup.code !== 0) throw new Error(`idp users import (empty file) exited ${startup.code}: ${startup.stderr.slice(-2000)}`);
  const st0 = treeCpuMs([owner.child.pid!]);
  const ddb0 = await owner.counts();
  const r = await idpProcess(['users', 'import', info.file, '--json'], env);
  const st1 = treeCpuMs([owner.child.pid!]);
  const ops = diff(await owner.counts(), ddb0);
  if (r.code !== 0) throw new Error(`idp users import exited ${r.code}: ${r.stderr.slice(-2000)}`);
  const full = JSON.parse(r.stdout) as ImportDetails['summary'] & { errors: Array<{ line: number; reason: string }> };
  const summary = { read: full.read, created: full.created, merged: full.merged, updated: full.updated, unchanged: full.unchanged, rejected: full.rejected };
  const n = Math.max(1, info.rows);
  const ok = summary.created + summary.merged + summary.updated + summary.unchanged;
  const { file: _file, offsets: _offsets, ...file } = info;
  const details: ImportDetails = {
    ...file, summary, concurrency: 8,
    wallMs: round(r.wallMs, 0), startupMs: round(startup.wallMs, 0),
    rowsPerSecondAfterStartup: round(ok / Math.max(0.001, (r.wallMs - startup.wallMs) / 1000), 1),
  };
  const unexpected = summary.created !== info.expected.created || summary.merged !== info.expected.merged;
  const firstError = full.errors[0] ? `line ${full.errors[0].line}: ${full.errors[0].reason}`
    : unexpected ? `expected ${JSON.stringify(info.expected)}, the summary says ${JSON.stringify(summary)}` : undefined;
  const m: Row = {
    scenario: 'import', title: `idp users import of ${info.rows} rows (a separate CLI process; 1 in ${IMPORT_DUP_EVERY} a verified duplicate to merge)`,
    target: 'ours', storage: 'dynalite', workers: 1, keysMode: 'local',
    rps: round(ok / (r.wallMs / 1000), 1),
    p50ms: null, p99ms: null,
    cpuMsPerReq: round(r.cpuMs / n, 3),
    peakRssMiB: round(r.peakRssMiB, 1),
    requests: info.rows,
    errors: summary.rejected + (unexpected && !summary.rejected ? 1 : 0),
    ...(firstError ? { firstError } : {}),
    ddbPerReq: round(sum(ops) / n, 2), ddbOps: Object.fromEntries(Object.entries(ops).map(([k, v]) => [k, round(v / n, 2)])),
    storageCpuMsPerReq: round((st1 - st0) / n, 3),
    baselineRps: null, baselineCpuMsPerReq: null, baselineP50ms: null, baselineP99ms: null, baselinePeakRssMiB: null,
    ratio: null, cpuRatio: null,
    import: details,
  };
  log(`  ${'idp users import'.padEnd(24)} ${'import'.padEnd(14)} ${String(m.rps).padStart(8)} rows/s  ${info.rows} rows in ${details.wallMs} ms (start-up ${details.startupMs} ms)  cpu ${m.cpuMsPerReq} ms/row  peak RSS ${m.peakRssMiB} MiB  ddb ${m.ddbPerReq}/row  ${JSON.stringify(summary)}${firstError ? `  ERROR: ${firstError}` : ''}`);
  return m;
}

// ─── keys modes: the IdP in kms-envelope and kms-sign ──────────────────────

const RESOURCE_OF: Record<string, string> = { 'cc-jwt-es256': RESOURCES[1].id, 'cc-jwt-rs256': RESOURCES[2].id };

/**
 * KMS requests per token, exactly: `n` client_credentials tokens one after
 * the other (under load, kmsOps also counts the requests still in flight
 * when the window closed, which autocannon does not count as answered)
 */
async function kmsPerToken(t: Target, resource: string, n = 20): Promise<Record<string, number>> {
  // the requests autocannon left in flight are still being answered: wait until KMS is quiet
  let before = await t.kmsCounts!();
  for (let quiet = 0; quiet < 2;) {
    await new Promise((r) => setTimeout(r, 100));
    const now = await t.kmsCounts!();
    quiet = sum(now) === sum(before) ? quiet + 1 : 0;
    before = now;
  }
  for (let i = 0; i < n; i++) {
    const res = await fetch(`${t.origin}/token`, {
      method: 'POST', headers: { 'content-type': FORM, authorization: basic('svc', SECRET) },
      body: form({ grant_type: 'client_credentials', scope: 'api:read', resource }),
    });
    const body = await res.text();
    if (res.status !== 200) throw new Error(`${t.label}: token request ${res.status} ${body.slice(0, 200)}`);
  }
  return Object.fromEntries(Object.entries(diff(await t.kmsCounts!(), before)).map(([k, v]) => [k, round(v / n, 2)]));
}

interface KeysModes {
  wanted: Array<{ id: string; mode: KmsMode }>;
  targets: Map<KmsMode, Target>;
  stop(): Promise<void>;
}

/**
 * Our IdP with KEYS_MODE=kms-envelope and kms-sign, each on its own tables
 * (TABLE_PREFIX) of the same embedded storage, against one KMS test server
 * process: the set-up (it measures nothing, so it runs beside phase 3).
 */
async function startKeysModes(owner: DynaliteOwner, dataDir: string): Promise<KeysModes> {
  const wanted = KMS_SCENARIOS.flatMap((id) => KMS_MODES.map((mode) => ({ id, mode }))).filter((w) => selected(`${w.id}@${w.mode}`));
  const modes = KMS_MODES.filter((mode) => wanted.some((w) => w.mode === mode));
  const kms = await startKmsOwner();
  log(`  KMS test server pid ${kms.child.pid} at ${kms.endpoint}, envelope key ${kms.keyId}`);
  const targets = new Map<KmsMode, Target>();
  const stop = async () => {
    for (const t of targets.values()) await t.stop();
    await stopChild(kms.child);
  };
  try {
    const envs = new Map(modes.map((mode) => [mode, {
      DATA_DIR: dataDir, TABLE_PREFIX: mode === 'kms-envelope' ? 'kmsenv_' : 'kmssign_',
      KEYS_MODE: mode, KMS_KEY_ID: kms.keyId, KMS_ENDPOINT: kms.endpoint, AWS_REGION: 'us-east-1', LOG_LEVEL: 'silent',
    }]));
    for (const [, env] of envs) {
      await cli(['migrate'], env);
      await cli(['clients', 'add', '--id', 'svc', '--secret', SECRET, '--grant-types', 'client_credentials'], env);
      for (const rs of RESOURCES.filter((x) => x.jwtAlg)) await cli(['resources', 'add', '--id', rs.id, '--scope', rs.scope, '--format', 'jwt', '--alg', rs.jwtAlg!], env);
    }
    const started = await Promise.allSettled(modes.map((mode) => startOurs(`ours (${mode})`, envs.get(mode)!, { workers: 1, owner, kms })));
    started.forEach((r, i) => { if (r.status === 'fulfilled') targets.set(modes[i], r.value); });
    const failed = started.find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
    log(`  ${[...targets.values()].map((t) => `${t.label} pid ${t.pids().join(',')}`).join('; ')}`);
  } catch (err) {
    await stop();
    throw err;
  }
  return { wanted, targets, stop };
}

/** per JWT scenario: the first mode, the baseline, the second mode */
async function measureKeysModes({ wanted, targets }: KeysModes, baseline: Target, rows: Row[]): Promise<void> {
  for (const id of KMS_SCENARIOS) {
    const s = ALL_SCENARIOS.find((x) => x.id === id)!;
    const these = wanted.filter((x) => x.id === id);
    if (!these.length) continue;
    const measured: Array<[KmsMode, Scenario, Measured, Record<string, number>]> = [];
    let b: Measured | undefined;
    // first mode, the baseline, second mode: the baseline is next to both
    for (const [i, w] of these.entries()) {
      if (i === 1) b = await measure(baseline, s);
      const t = targets.get(w.mode)!;
      const sm: Scenario = { ...s, id: `${id}@${w.mode}`, title: `${s.title}, KEYS_MODE=${w.mode}` };
      const m = await measure(t, sm);
      measured.push([w.mode, sm, m, await kmsPerToken(t, RESOURCE_OF[id])]);
    }
    b ??= await measure(baseline, s);
    for (const [mode, sm, m, perToken] of measured) rows.push({ ...row(sm, m, b, 'dynalite', 1, mode), kmsOpsPerToken: perToken });
  }
}

// ─── the run ───────────────────────────────────────────────────────────────

interface Row extends Omit<Measured, 'p50ms' | 'p99ms'> {
  scenario: string;
  title: string;
  target: 'ours';
  storage: 'dynalite' | 'dynamodb-local';
  workers: number;
  /** KEYS_MODE of our IdP: local except in the keys-modes phase */
  keysMode: 'local' | KmsMode;
  /** null for import (a CLI process reports no per-row latency) */
  p50ms: number | null;
  p99ms: number | null;
  baselineRps: number | null;
  baselineCpuMsPerReq: number | null;
  baselineP50ms: number | null;
  baselineP99ms: number | null;
  baselinePeakRssMiB: number | null;
  /** ours rps / baseline rps */
  ratio: number | null;
  /** ours cpuMsPerReq / baseline cpuMsPerReq */
  cpuRatio: number | null;
  /** the second baseline, oidc-provider on the community DynamoDB adapter, measured right after (scenarios it runs) */
  dynamoBaselineRps?: number;
  dynamoBaselineCpuMsPerReq?: number;
  dynamoBaselineP50ms?: number;
  dynamoBaselineP99ms?: number;
  dynamoBaselineDdbPerReq?: number;
  dynamoBaselineStorageCpuMsPerReq?: number;
  dynamoBaselineErrors?: number;
  /** ours rps / the second baseline's rps */
  dynamoRatio?: number;
  /** ours cpuMsPerReq / the second baseline's */
  dynamoCpuRatio?: number;
  /** the latency phase (LATENCY_MS each way on every DynamoDB request): ours and the second baseline's p50 */
  latencyP50ms?: number;
  dynamoBaselineLatencyP50ms?: number;
  /** import only: the file, the summary, start-up and wall time */
  import?: ImportDetails;
  /** keys-modes phase only: KMS requests per token by operation, from tokens requested one at a time after the window */
  kmsOpsPerToken?: Record<string, number>;
}

async function main(): Promise<void> {
  const header = { ...machineInfo(), secondsPerScenario: SECONDS, warmupSeconds: WARMUP_SECONDS, loginWarmupLogins: LOGIN_WARMUP_LOGINS, connections: CONNECTIONS, loginConcurrency: LOGIN_CONCURRENCY, refreshConnections: REFRESH_CONNECTIONS, idpLogLevel: LOG_LEVEL };
  log(`machine: ${header.cpus} × ${header.model}, node ${header.node}, load ${header.loadAvgAtStart.join(' ')}`);
  const rows: Row[] = [];
  const notes: string[] = [];

  // embedded dynalite, served by its own process
  const dataDir = path.join(tmp, 'embedded');
  fs.mkdirSync(dataDir);
  const sitesFile = path.join(tmp, 'sites.json');
  fs.writeFileSync(sitesFile, JSON.stringify(SITES));
  const embeddedEnv = { DATA_DIR: dataDir, LOG_LEVEL: 'silent', EDGE_SITES_FILE: sitesFile };
  const owner = await startDynaliteOwner(dataDir);
  log(`dynalite owner pid ${owner.child.pid} at ${owner.endpoint}`);
  const bcryptHash = await bcrypt.hash(LEGACY_PASSWORD, 10);
  const { sub } = await setupThroughCli(embeddedEnv, bcryptHash);

  const setup = await readIdpSetup(embeddedEnv);
  const baselineSpec = {
    jwks: setup.jwks, cookieKeys: setup.cookieKeys, clients: setup.clients, resourceServers: RESOURCES, ttl: TTL, forwardAuth: { audience: SITE_AUDIENCE },
    account: { sub, email: EMAIL, name: 'Bench User', passwordHash: await hashPassword(PASSWORD, setup.argon2) },
    legacy: { emails: Array.from({ length: LEGACY_USERS }, (_, i) => legacyEmail(i)), bcryptHash, argon2: setup.argon2 },
  };

  if (PROFILE) {
    // one process per profiled scenario and target, so each profile holds one workload;
    // BENCH_PROFILE_TARGETS=ours,baseline,peer profiles the baselines too (default: ours)
    fs.mkdirSync(resultsDir, { recursive: true });
    const written: string[] = [];
    const targets = (process.env.BENCH_PROFILE_TARGETS ?? 'ours').split(',');
    for (const s of ALL_SCENARIOS.filter((x) => (process.env.BENCH_PROFILE ?? 'jwks,cc-opaque,cc-jwt-es256,cc-jwt-rs256,introspection').split(',').includes(x.id))) {
      for (const which of targets) {
        const profDir = path.join(tmp, `profile-${s.id}-${which}`);
        const nodeArgs = ['--cpu-prof', `--cpu-prof-dir=${profDir}`];
        const t = which === 'ours' ? await startOurs(`ours-profile-${s.id}`, embeddedEnv, { workers: 1, owner, nodeArgs })
          : which === 'baseline' ? await startBaseline(baselineSpec, `baseline-profile-${s.id}`, undefined, nodeArgs)
          : await startBaseline({ ...baselineSpec, storage: { endpoint: owner.endpoint, region: 'us-east-1', table: PEER_TABLE } }, `peer-profile-${s.id}`, owner, nodeArgs);
        const loadStart = Date.now();
        const m = await measure(t, s);
        await t.stop();
        const lastMs = Date.now() - loadStart;
        const file = fs.readdirSync(profDir).filter((f) => f.endsWith('.cpuprofile')).map((f) => path.join(profDir, f))[0];
        if (!file) throw new Error('no .cpuprofile written');
        const summary = `scenario ${s.id} (${s.title}), ${which}: ${m.rps} req/s, ${m.cpuMsPerReq} ms CPU/req under --cpu-prof\n${summariseProfile(file, lastMs)}`;
        const suffix = which === 'ours' ? '' : `-${which}`;
        const out = path.join(resultsDir, `profile-${s.id}${suffix}.txt`);
        fs.writeFileSync(out, `${summary}\n`);
        fs.copyFileSync(file, path.join(resultsDir, `profile-${s.id}${suffix}.cpuprofile.tmp`));
        written.push(path.relative(root, out));
        process.stdout.write(`${summary}\n\n`);
      }
    }
    process.stdout.write(`written: ${written.join(', ')} (and *.cpuprofile.tmp beside them, for Chrome DevTools)\n`);
    await stopChild(owner.child);
    return;
  }

  const ours = await startOurs('ours (dynalite)', embeddedEnv, { workers: 1, owner });
  const baseline = await startBaseline(baselineSpec);
  const peerScenarios = SCENARIOS.filter((x) => x.peer);
  const peer = peerScenarios.length
    ? await startBaseline({ ...baselineSpec, storage: { endpoint: owner.endpoint, region: 'us-east-1', table: PEER_TABLE } }, 'peer (community adapter)', owner)
    : undefined;
  log(`ours pid ${ours.pids().join(',')} at ${ours.origin}; baseline pid ${baseline.pids().join(',')} at ${baseline.origin}${peer ? `; peer pid ${peer.pids().join(',')} at ${peer.origin}` : ''}; ${setup.jwks.length} signing keys`);

  const base = new Map<string, Measured>();
  log('phase 1: ours on embedded dynalite vs the baseline (and the peer on the community DynamoDB adapter), scenario by scenario');
  for (const s of SCENARIOS) {
    const m = await measure(ours, s);
    const b = await measure(baseline, s);
    const d = s.peer && peer ? await measure(peer, s) : undefined;
    base.set(s.id, b);
    rows.push(row(s, m, b, 'dynalite', 1, 'local', d));
  }
  await peer?.stop();
  if (selected('import')) rows.push(await measureImport(owner, embeddedEnv));

  // latency: ours and the peer again, every DynamoDB request through the delaying proxy
  const latency: LatencyRow[] = [];
  const latencyScenarios = SCENARIOS.filter((x) => x.latency);
  if (WITH_LATENCY && latencyScenarios.length) {
    log(`phase 1b: DynamoDB ${LATENCY_MS} ms away (each way, a proxy process in front of the storage process): ours vs the peer`);
    const proxy = await startLatencyProxy(owner.endpoint, LATENCY_MS);
    const delayed = { DATA_DIR: dataDir, DYNAMODB_ENDPOINT: proxy.endpoint, AWS_REGION: 'us-east-1', LOG_LEVEL: 'silent' };
    const [oursLat, peerLat] = await Promise.all([
      startOurs(`ours (+${LATENCY_MS} ms)`, delayed, { workers: 1, owner }),
      startBaseline({ ...baselineSpec, storage: { endpoint: proxy.endpoint, region: 'us-east-1', table: PEER_TABLE } }, `peer (+${LATENCY_MS} ms)`, owner),
    ]);
    try {
      for (const scenario of latencyScenarios) {
        // fresh processes: a login scenario first warms up with logins (as the login scenario of phase 1 does)
        const s = scenario.id.startsWith('login') ? { ...scenario, warmup: loginWarmup } : scenario;
        const m = await measure(oursLat, s);
        const d = await measure(peerLat, s);
        latency.push({
          scenario: s.id, latencyMs: LATENCY_MS, rps: m.rps, p50ms: m.p50ms, p99ms: m.p99ms, cpuMsPerReq: m.cpuMsPerReq, ddbPerReq: m.ddbPerReq, errors: m.errors,
          dynamoBaselineRps: d.rps, dynamoBaselineP50ms: d.p50ms, dynamoBaselineP99ms: d.p99ms, dynamoBaselineCpuMsPerReq: d.cpuMsPerReq, dynamoBaselineDdbPerReq: d.ddbPerReq, dynamoBaselineErrors: d.errors,
          dynamoRatio: d.rps ? round(m.rps / d.rps, 3) : 0,
        });
        const r = rows.find((x) => x.scenario === s.id && x.storage === 'dynalite' && x.workers === 1);
        if (r) Object.assign(r, { latencyP50ms: m.p50ms, dynamoBaselineLatencyP50ms: d.p50ms });
      }
    } finally {
      await Promise.all([oursLat.stop(), peerLat.stop()]);
      await stopChild(proxy.child);
    }
  } else if (!WITH_LATENCY) {
    notes.push('latency phase skipped (--no-latency)');
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

  // keys modes: kms-envelope and kms-sign against a KMS test server; decided here, set up beside phase 3
  let kmsPhase: { status: 'measured' | 'skipped'; reason?: string; durationS?: number } = { status: 'skipped', reason: '--no-kms' };
  const kmsWanted = KMS_SCENARIOS.filter((id) => KMS_MODES.some((mode) => selected(`${id}@${mode}`)));
  const kmsMeasurements = kmsWanted.length + KMS_SCENARIOS.flatMap((id) => KMS_MODES.filter((mode) => selected(`${id}@${mode}`))).length;
  const kmsSeconds = Math.round(kmsPhaseSeconds(kmsMeasurements));
  const kmsElapsed = (Date.now() - t0) / 1000;
  let keysModes: Promise<KeysModes> | undefined;
  if (!WITH_KMS) {
    notes.push('keys-modes phase skipped (--no-kms)');
  } else if (!kmsWanted.length) {
    kmsPhase = { status: 'skipped', reason: 'no keys-modes scenario in BENCH_ONLY' };
  } else if (kmsElapsed + kmsSeconds > BUDGET_SECONDS) {
    kmsPhase = { status: 'skipped', reason: `time budget: ${Math.round(kmsElapsed)} s spent, the phase needs about ${kmsSeconds} s of ${BUDGET_SECONDS} s (BENCH_BUDGET_SECONDS)` };
    notes.push(`keys-modes phase skipped: ${kmsPhase.reason}`);
    log(`phase 4 skipped: ${kmsPhase.reason}`);
  } else {
    log('phase 4 set-up, beside phase 3 (which only counts): the KMS test server, the kms-envelope and kms-sign tables and IdPs');
    keysModes = startKeysModes(owner, dataDir);
    keysModes.catch(() => {}); // awaited after phase 3
  }

  log('phase 3: DynamoDB round trips per request, counted in-process');
  const { table: roundTrips, perLogin: roundTripsPerLogin } = await countRoundTrips(embeddedEnv);
  for (const r of roundTrips) log(`  ${r.request.padEnd(44)} ${String(r.ddbRequests).padStart(5)} DynamoDB requests, ${r.roundTrips} round trips  ${JSON.stringify(r.ops)}`);
  log(`  the whole login (authorize to tokens): ${roundTripsPerLogin} round trips`);

  if (keysModes) {
    const km = await keysModes;
    try {
      log('phase 4: KEYS_MODE=kms-envelope and kms-sign against a KMS test server, JWT scenarios, the baseline between the two modes');
      await measureKeysModes(km, baseline, rows);
    } finally {
      await km.stop();
    }
    kmsPhase = { status: 'measured', durationS: round((Date.now() - t0) / 1000 - kmsElapsed, 1) };
    log(`  phase 4 took ${kmsPhase.durationS} s (with phase 3)`);
  }
  await stopChild(owner.child);

  // DynamoDB Local
  let ddbLocal: { status: 'measured' | 'skipped'; reason?: string; startupMs?: number } = { status: 'skipped', reason: '--no-ddb-local' };
  const elapsed = (Date.now() - t0) / 1000;
  const localScenarios = SCENARIOS.filter((x) => x.storage && x.ddbLocal !== false);
  const ddbLocalSeconds = Math.round(ddbLocalPhaseSeconds(localScenarios.length * 2 + localScenarios.filter((x) => x.peer).length));
  if (WITH_DDB_LOCAL && !SCENARIOS.some((x) => x.storage && x.ddbLocal !== false)) {
    ddbLocal = { status: 'skipped', reason: 'no DynamoDB Local scenario in BENCH_ONLY' };
    log(`phase 5 skipped: ${ddbLocal.reason}`);
  } else if (WITH_DDB_LOCAL && elapsed + ddbLocalSeconds > BUDGET_SECONDS) {
    ddbLocal = { status: 'skipped', reason: `time budget: ${Math.round(elapsed)} s spent, the phase needs about ${ddbLocalSeconds} s of ${BUDGET_SECONDS} s (BENCH_BUDGET_SECONDS)` };
    notes.push(`DynamoDB Local skipped: ${ddbLocal.reason}`);
    log(`phase 5 skipped: ${ddbLocal.reason}`);
  } else if (WITH_DDB_LOCAL) {
    log('phase 5: ours on DynamoDB Local (Java) vs the same baseline process, and the peer on DynamoDB Local');
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
        const [local, localPeer] = await Promise.all([
          startOurs('ours (DynamoDB Local)', env, { workers: 1 }),
          localScenarios.some((x) => x.peer)
            ? startBaseline({ ...baselineSpec, storage: { endpoint: backend.endpoint, region: backend.region, table: PEER_TABLE } }, 'peer (DynamoDB Local)')
            : undefined,
        ]);
        try {
          for (const s of localScenarios) {
            const m = await measure(local, s);
            // the baselines again, right after, so all see the same machine load
            const b = await measure(baseline, s);
            const d = s.peer && localPeer ? await measure(localPeer, s) : undefined;
            rows.push(row(s, m, b, 'dynamodb-local', 1, 'local', d));
          }
        } finally {
          await Promise.all([local.stop(), localPeer?.stop()]);
        }
      } finally {
        await backend.close();
      }
    }
  } else {
    notes.push('DynamoDB Local phase skipped (--no-ddb-local)');
  }
  await baseline.stop();

  // import at scale: a long run on a storage of its own, only when asked for
  let importScale: ImportScaleResult | undefined;
  if (argv.has('--import-scale') || ONLY?.has('import-scale')) {
    log(`import at scale: idp users import of ${IMPORT_SCALE_ROWS} generated lines on a fresh embedded storage`);
    const at = IMPORT_SCALE_ROWS >= 300_000 ? [100_000, 300_000] : [Math.round(IMPORT_SCALE_ROWS / 3), IMPORT_SCALE_ROWS];
    importScale = await importAtScaleOnFreshStorage({ rows: IMPORT_SCALE_ROWS, at, log });
    notes.push(`import at scale: one \`idp users import\` process over ${IMPORT_SCALE_ROWS} generated lines on a fresh embedded storage (bench/import-scale.ts); RSS read from /proc as its read position passes each checkpoint line`);
  }

  notes.push(`legacy-login: ${LEGACY_USERS} users imported with \`idp users import\` (one bcrypt cost-10 hash); each login is a user's first; the baseline does the same bcrypt check and argon2id hash in memory`);
  notes.push('the login scenario counts one full login (7 HTTP requests: authorize, login page, login POST, resume, consent POST, resume, token) as one "request"');
  notes.push('the embedded dynalite runs in its own process (as under a cluster primary); its CPU time is storageCpuMsPerReq, not part of cpuMsPerReq');
  notes.push('the DynamoDB Local IdP has its own keyring (same algorithms, other keys) since its keys table lives in DynamoDB Local');
  if (rows.some((r) => r.scenario === 'migrated-login')) notes.push(`migrated-login: imported users whose first login (legacy-login, or the scenario's own preparation) already replaced the bcrypt hash with argon2id, logged in again round-robin (at least ${MIGRATED_POOL}); the baseline does the same for its upgraded users (argon2id verify, as in its login)`);
  if (rows.some((r) => r.scenario === 'import')) notes.push(`import: \`idp users import FILE --json\` as a separate process (src/cli/main.ts) against the running IdP's embedded storage, ${IMPORT_ROWS} rows, default --concurrency 8; rps = rows/s of the whole process (start-up included; import.rowsPerSecondAfterStartup without it), cpuMsPerReq and peakRssMiB are the import process's, per row; p50ms/p99ms null, no baseline (baselineRps, ratio null)`);
  if (rows.some((r) => r.keysMode !== 'local')) notes.push('keys modes (`<scenario>@kms-envelope`, `@kms-sign`): our IdP against a KMS test server (test/support/kms-server.ts) in its own process on 127.0.0.1, without AWS KMS\'s network latency and quota; its CPU time is kmsCpuMsPerReq, not part of cpuMsPerReq; kmsOpsPerToken = KMS requests per token, counted over 20 sequential tokens (kms-sign: Sign ×1)');

  const durationS = round((Date.now() - t0) / 1000, 1);
  const result = {
    header: { ...header, durationS, importRows: IMPORT_ROWS, roundTripsPerLogin, latencyMs: WITH_LATENCY ? LATENCY_MS : null, storage: { dynalite: 'embedded dynalite (LevelDB under DATA_DIR), served by a separate owner process', dynamodbLocal: ddbLocal }, keysModes: kmsPhase, ratio: 'ours rps / baseline rps (1.0 = as fast as bare oidc-provider); cpuRatio = ours cpuMsPerReq / baseline cpuMsPerReq' },
    scenarios: [
      ...rows,
    ],
    latency,
    ...(importScale ? { importScale } : {}),
    cluster,
    roundTrips,
    notes,
  };
  fs.mkdirSync(resultsDir, { recursive: true });
  // a subset run does not replace the full run's results
  const out = process.env.BENCH_ONLY ? 'subset.json.tmp' : 'latest.json';
  fs.writeFileSync(path.join(resultsDir, out), `${JSON.stringify(result, null, 2)}\n`);
  process.stdout.write(`${report(result.header, rows, cluster, roundTrips, notes, durationS, latency, roundTripsPerLogin, importScale).replace('bench/results/latest.json', `bench/results/${out}`)}\n`);
}

function row(s: Scenario, m: Measured, b: Measured, storage: Row['storage'], workers: number, keysMode: Row['keysMode'] = 'local', d?: Measured): Row {
  return {
    scenario: s.id, title: s.title, target: 'ours', storage, workers, keysMode, ...m,
    baselineRps: b.rps, baselineCpuMsPerReq: b.cpuMsPerReq, baselineP50ms: b.p50ms, baselineP99ms: b.p99ms, baselinePeakRssMiB: b.peakRssMiB,
    ratio: b.rps ? round(m.rps / b.rps, 3) : null,
    cpuRatio: b.cpuMsPerReq ? round(m.cpuMsPerReq / b.cpuMsPerReq, 2) : null,
    ...(d ? {
      dynamoBaselineRps: d.rps, dynamoBaselineCpuMsPerReq: d.cpuMsPerReq, dynamoBaselineP50ms: d.p50ms, dynamoBaselineP99ms: d.p99ms, dynamoBaselineErrors: d.errors,
      ...(d.ddbPerReq !== undefined ? { dynamoBaselineDdbPerReq: d.ddbPerReq, dynamoBaselineStorageCpuMsPerReq: d.storageCpuMsPerReq } : {}),
      dynamoRatio: d.rps ? round(m.rps / d.rps, 3) : undefined,
      dynamoCpuRatio: d.cpuMsPerReq ? round(m.cpuMsPerReq / d.cpuMsPerReq, 2) : undefined,
    } : {}),
  };
}

/** one scenario of the latency phase: ours and the peer, both through the delaying proxy */
interface LatencyRow {
  scenario: string;
  latencyMs: number;
  rps: number; p50ms: number; p99ms: number; cpuMsPerReq: number; ddbPerReq?: number; errors: number;
  dynamoBaselineRps: number; dynamoBaselineP50ms: number; dynamoBaselineP99ms: number; dynamoBaselineCpuMsPerReq: number; dynamoBaselineDdbPerReq?: number; dynamoBaselineErrors: number;
  /** ours rps / the peer's rps */
  dynamoRatio: number;
}

function report(header: ReturnType<typeof machineInfo> & { durationS?: number }, rows: Row[], cluster: Array<Record<string, number | string>>, rts: RoundTrips[], notes: string[], durationS: number, latency: LatencyRow[], perLogin: number, importScale?: ImportScaleResult): string {
  const cols = ['scenario', 'storage', 'w', 'ours rps', 'base rps', 'ratio', 'cpu ms/req ours', 'base', 'p50 ours', 'p99 ours', 'p50 base', 'p99 base', 'RSS MiB', 'ddb/req', 'errors', 'peer rps', 'peer ratio', 'peer cpu', 'peer cpu ratio', 'peer p50'];
  const v = (x: number | null | undefined) => (x === null || x === undefined ? '-' : String(x));
  const data = rows.map((r) => [
    r.scenario, r.storage, String(r.workers), String(r.rps), v(r.baselineRps), v(r.ratio), String(r.cpuMsPerReq), v(r.baselineCpuMsPerReq),
    v(r.p50ms), v(r.p99ms), v(r.baselineP50ms), v(r.baselineP99ms), `${r.peakRssMiB}/${v(r.baselinePeakRssMiB)}`, v(r.ddbPerReq), String(r.errors),
    v(r.dynamoBaselineRps), v(r.dynamoRatio), v(r.dynamoBaselineCpuMsPerReq), v(r.dynamoCpuRatio), v(r.dynamoBaselineP50ms),
  ]);
  const widths = cols.map((c, i) => Math.max(c.length, ...data.map((d) => d[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i < 3 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  const out = [
    '', `machine: ${header.cpus} CPUs (${header.model}), node ${header.node}, ${header.date}; bench took ${durationS} s`,
    'latencies in ms; ratio = ours rps / baseline rps; RSS = peak RSS during the scenario, ours/baseline', '',
    line(cols), line(widths.map((w) => '-'.repeat(w))), ...data.map(line),
    '', 'peer = bare oidc-provider on the community DynamoDB adapter (bench/community-dynamodb-adapter.ts), same storage; peer ratio = ours rps / peer rps',
  ];
  if (latency.length) {
    out.push('', `latency phase: every DynamoDB request ${latency[0].latencyMs} ms each way (a proxy process in front of the storage), ours vs the peer`);
    for (const l of latency) out.push(`  ${l.scenario.padEnd(14)} ours ${l.rps} req/s p50/p99 ${l.p50ms}/${l.p99ms} ms cpu ${l.cpuMsPerReq} ms  |  peer ${l.dynamoBaselineRps} req/s p50/p99 ${l.dynamoBaselineP50ms}/${l.dynamoBaselineP99ms} ms cpu ${l.dynamoBaselineCpuMsPerReq} ms  (×${l.dynamoRatio})${l.errors || l.dynamoBaselineErrors ? `  ERRORS ${l.errors}/${l.dynamoBaselineErrors}` : ''}`);
  }
  if (cluster.length) {
    out.push('', 'cluster (embedded dynalite): 1 → 2 workers, measured back to back (the load generator shares the 2 CPUs)');
    for (const c of cluster) out.push(`  ${String(c.scenario).padEnd(14)} ${c.workers1Rps} → ${c.workers2Rps} req/s (×${c.scaling}); cpu ${c.workers1CpuMsPerReq} → ${c.workers2CpuMsPerReq} ms/req; p50/p99 ${c.workers1P50ms}/${c.workers1P99ms} → ${c.workers2P50ms}/${c.workers2P99ms} ms`);
  }
  const kmsRows = rows.filter((r) => r.keysMode !== 'local');
  if (kmsRows.length) {
    out.push('', 'keys modes (embedded dynalite, 1 worker): tokens/s (ratio to the baseline measured with them); local is phase 1');
    for (const id of KMS_SCENARIOS) {
      const local = rows.find((r) => r.scenario === id && r.storage === 'dynalite' && r.workers === 1);
      const cells = [local ? `local ${local.rps} (×${local.ratio})` : undefined];
      for (const r of kmsRows.filter((x) => x.scenario.startsWith(`${id}@`))) {
        cells.push(`${r.keysMode} ${r.rps} (×${r.ratio}, cpu ${r.cpuMsPerReq} ms, p50/p99 ${r.p50ms}/${r.p99ms} ms, KMS/token ${Object.entries(r.kmsOpsPerToken ?? {}).map(([k, n]) => `${k}×${n}`).join(' ') || '0'}, KMS server cpu ${r.kmsCpuMsPerReq} ms)`);
      }
      if (cells.length > 1) out.push(`  ${id.padEnd(14)} ${cells.filter(Boolean).join('; ')}`);
    }
  }
  const imp = rows.find((r) => r.import);
  if (imp?.import) {
    const i = imp.import;
    out.push('', `import (idp users import, a separate process, --concurrency ${i.concurrency}): ${i.rows} rows in ${i.wallMs} ms = ${imp.rps} rows/s (${i.rowsPerSecondAfterStartup} after the ${i.startupMs} ms start-up); ` +
      `cpu ${imp.cpuMsPerReq} ms/row, peak RSS ${imp.peakRssMiB} MiB, DynamoDB ${imp.ddbPerReq}/row; created ${i.summary.created}, merged ${i.summary.merged}, rejected ${i.summary.rejected}; ` +
      `passwords ${Object.entries(i.schemes).map(([k, n]) => `${k} ×${n}`).join(', ')}`);
  }
  if (importScale) {
    out.push('', `import at scale: ${importScale.rows} lines in ${importScale.wallS} s = ${importScale.rowsPerSecond} rows/s, peak RSS ${importScale.peakRssMiB} MiB; ${JSON.stringify(importScale.summary)}`);
    for (const c of importScale.checkpoints) out.push(`  at line ${c.line}: RSS ${c.rssMiB} MiB (peak so far ${c.peakRssMiB}), ${c.atS} s`);
  }
  out.push('', `DynamoDB round trips of a whole login (authorize to tokens): ${perLogin}`);
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
