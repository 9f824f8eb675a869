// DynamoDB backends for tests: a fresh in-memory dynalite, or DynamoDB Local
// (the official AWS emulator, Java) for the compatibility run, plus storage
// with its own TABLE_PREFIX and migrated tables.
//
//   const backend = await startBackend();           // dynalite, or DynamoDB Local when DYNAMODB_COMPAT=local
//   const storage = await openTestStorage(backend); // unique prefix, `migrate` already run
//   ...
//   await storage.close();                          // drops its tables, destroys the client
//   await backend.close();
//
// DynamoDB Local is fetched by test/support/fetch-dynamodb-local.sh into the
// git-ignored .dynamodb-local/ (not a package.json dependency: it is ~65 MB and
// only the compatibility job needs it). It needs `java` (11+) on PATH or JAVA_HOME.
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Server } from 'node:http';
import { DeleteTableCommand, ListTablesCommand } from '@aws-sdk/client-dynamodb';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { loadConfig } from '../../src/config/index.ts';
import { openStorage, makeClient, type Storage } from '../../src/storage/index.ts';
import { migrate } from '../../migrations/index.ts';

const require = createRequire(import.meta.url);
const here = path.dirname(fileURLToPath(import.meta.url));

export type BackendKind = 'dynalite' | 'dynamodb-local';

export interface TestBackend {
  kind: BackendKind;
  /** http://127.0.0.1:<port> */
  endpoint: string;
  region: string;
  /** milliseconds from start to the first answered request */
  startupMs: number;
  close(): Promise<void>;
}

export interface TestStorage extends Storage {
  /** the TABLE_PREFIX of this storage's tables */
  prefix: string;
}

/** The backend the environment asks for: DYNAMODB_COMPAT=local selects DynamoDB Local, anything else dynalite. */
export function backendKind(env: Record<string, string | undefined> = process.env): BackendKind {
  const v = env.DYNAMODB_COMPAT;
  if (v === undefined || v === '' || v === 'dynalite') return 'dynalite';
  if (v === 'local' || v === 'dynamodb-local') return 'dynamodb-local';
  throw new Error(`DYNAMODB_COMPAT must be "local" (DynamoDB Local) or unset (dynalite), got "${v}"`);
}

export function startBackend(kind: BackendKind = backendKind()): Promise<TestBackend> {
  return kind === 'dynamodb-local' ? startDynamoDBLocal() : startDynalite();
}

/**
 * dynalite on 127.0.0.1:<random port>; in memory unless `path` names a
 * directory for its LevelDB. Table creation/deletion is immediate.
 */
export async function startDynalite(opts: { path?: string; region?: string } = {}): Promise<TestBackend> {
  const t0 = Date.now();
  const dynalite = require('dynalite') as (o: object) => Server;
  const server = dynalite({ path: opts.path, createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as net.AddressInfo).port;
  const endpoint = `http://127.0.0.1:${port}`;
  const region = opts.region ?? 'us-east-1';
  await waitUntilAnswering(endpoint, region, 10_000);
  let closed: Promise<void> | undefined;
  return {
    kind: 'dynalite',
    endpoint,
    region,
    startupMs: Date.now() - t0,
    close() {
      closed ??= new Promise<void>((resolve) => {
        server.closeAllConnections?.();
        server.close(() => resolve());
      });
      return closed;
    },
  };
}

/** Runs test/support/fetch-dynamodb-local.sh (a no-op once fetched); returns the emulator directory. */
export function fetchDynamoDBLocal(): Promise<string> {
  const script = path.join(here, 'fetch-dynamodb-local.sh');
  return new Promise((resolve, reject) => {
    execFile('bash', [script], { maxBuffer: 1 << 20 }, (err, stdout, stderr) => {
      if (err) {
        reject(new Error(`${script} failed: ${stderr.trim() || err.message}`));
        return;
      }
      const lines = stdout.trim().split('\n');
      resolve(lines[lines.length - 1]);
    });
  });
}

const children = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of children) c.kill('SIGKILL');
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/**
 * DynamoDB Local, in memory, on 127.0.0.1:<random port>. Fetches it first if
 * needed, waits until it answers, and kills it on close (and at process exit).
 */
export async function startDynamoDBLocal(opts: { region?: string; startTimeoutMs?: number } = {}): Promise<TestBackend> {
  const t0 = Date.now();
  const dir = await fetchDynamoDBLocal();
  const java = process.env.JAVA_HOME ? path.join(process.env.JAVA_HOME, 'bin', 'java') : 'java';
  const region = opts.region ?? 'us-east-1';
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const child = spawn(java, [
      `-Djava.library.path=${path.join(dir, 'DynamoDBLocal_lib')}`,
      '-jar', path.join(dir, 'DynamoDBLocal.jar'),
      '-inMemory', '-port', String(port), '-disableTelemetry',
    ], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    let output = '';
    const collect = (b: Buffer) => { if (output.length < 20_000) output += b.toString(); };
    child.stdout!.on('data', collect);
    child.stderr!.on('data', collect);
    const exited = new Promise<void>((resolve) => child.once('exit', () => { children.delete(child); resolve(); }));
    const spawnError = new Promise<never>((_, reject) => child.once('error', reject));
    const endpoint = `http://127.0.0.1:${port}`;
    try {
      await Promise.race([
        waitUntilAnswering(endpoint, region, opts.startTimeoutMs ?? 60_000),
        exited.then(() => { throw new Error(`DynamoDB Local exited during start-up:\n${output}`); }),
        spawnError,
      ]);
    } catch (err) {
      lastError = err;
      child.kill('SIGKILL');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 2000))]);
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') break; // no java
      continue;
    }
    let closed: Promise<void> | undefined;
    return {
      kind: 'dynamodb-local',
      endpoint,
      region,
      startupMs: Date.now() - t0,
      close() {
        closed ??= (async () => {
          if (child.exitCode === null && child.signalCode === null) {
            child.kill('SIGTERM');
            const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
            await exited;
            clearTimeout(timer);
          }
        })();
        return closed;
      },
    };
  }
  throw new Error(`could not start DynamoDB Local: ${String((lastError as Error)?.message ?? lastError)}`);
}

async function waitUntilAnswering(endpoint: string, region: string, timeoutMs: number): Promise<void> {
  const client = makeClient(endpoint, region);
  const deadline = Date.now() + timeoutMs;
  try {
    for (;;) {
      try {
        await client.send(new ListTablesCommand({ Limit: 1 }));
        return;
      } catch (err) {
        if (Date.now() > deadline) throw new Error(`${endpoint} did not answer within ${timeoutMs} ms: ${String((err as Error).message)}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  } finally {
    client.destroy();
  }
}

/** A TABLE_PREFIX unique to this call, e.g. "t_lq3k9x_8f2a1c_". */
export function uniquePrefix(label = 't'): string {
  return `${label.replace(/[^A-Za-z0-9]/g, '')}_${Date.now().toString(36)}_${randomBytes(3).toString('hex')}_`;
}

/**
 * Storage on `backend` through the real seam (loadConfig + openStorage) with a
 * unique TABLE_PREFIX; `migrate` has created its tables unless migrate: false.
 * close() deletes its tables (unless drop: false) and destroys the client; it
 * does not stop the backend.
 */
export async function openTestStorage(
  backend: TestBackend,
  opts: { prefix?: string; migrate?: boolean; drop?: boolean; env?: Record<string, string> } = {},
): Promise<TestStorage> {
  const prefix = opts.prefix ?? uniquePrefix();
  const config = loadConfig({
    DYNAMODB_ENDPOINT: backend.endpoint,
    AWS_REGION: backend.region,
    TABLE_PREFIX: prefix,
    LOG_LEVEL: 'silent',
    ...opts.env,
  });
  const storage = await openStorage(config, { role: 'cli' });
  if (opts.migrate !== false) await migrate(storage);
  const closeClient = storage.close.bind(storage);
  let closed: Promise<void> | undefined;
  return {
    ...storage,
    prefix,
    close() {
      closed ??= (async () => {
        if (opts.drop !== false) await dropTables(storage);
        await closeClient();
      })();
      return closed;
    },
  };
}

/** Deletes the storage's tables; missing ones are fine. */
export async function dropTables(storage: Storage): Promise<void> {
  for (const name of Object.values(storage.tables)) {
    try {
      await storage.raw.send(new DeleteTableCommand({ TableName: name }));
    } catch (err) {
      if ((err as Error).name !== 'ResourceNotFoundException') throw err;
    }
  }
}

export interface CommandLog {
  /** command class names in the order sent, e.g. ["QueryCommand", "BatchWriteCommand"] */
  readonly names: string[];
  reset(): void;
  /** puts the original send back */
  restore(): void;
}

/** Records the name of every command sent through `doc` (patches this instance's send). */
export function recordCommands(doc: DynamoDBDocumentClient): CommandLog {
  const names: string[] = [];
  const original = doc.send;
  const patched = function (this: DynamoDBDocumentClient, cmd: { constructor: { name: string } }, ...rest: unknown[]) {
    names.push(cmd.constructor.name);
    return (original as (...a: unknown[]) => unknown).call(this, cmd, ...rest);
  };
  (doc as { send: unknown }).send = patched;
  return {
    names,
    reset() { names.length = 0; },
    restore() { (doc as { send: unknown }).send = original; },
  };
}
