// Embedded DynamoDB: dynalite on LevelDB under DATA_DIR/dynamodb. LevelDB is
// single-process, so the process that opens it serves it on loopback and
// advertises the endpoint in DATA_DIR/dynamodb.endpoint; any other process
// (the CLI while the server runs, cluster workers) uses that endpoint instead.
import fs from 'node:fs';
import path from 'node:path';
import net from 'node:net';
import { createRequire } from 'node:module';
import type { Server } from 'node:http';

const require = createRequire(import.meta.url);

export interface Embedded {
  endpoint: string;
  owner: boolean;
  close(): Promise<void>;
}

interface Advert { endpoint: string; pid: number }

function readAdvert(file: string): Advert | undefined {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as Advert;
  } catch {
    return undefined;
  }
}

function reachable(endpoint: string, timeoutMs = 500): Promise<boolean> {
  const u = new URL(endpoint);
  return new Promise((resolve) => {
    const sock = net.connect({ host: u.hostname, port: Number(u.port) });
    const done = (ok: boolean) => { sock.destroy(); resolve(ok); };
    sock.setTimeout(timeoutMs, () => done(false));
    sock.once('connect', () => done(true));
    sock.once('error', () => done(false));
  });
}

/** true when another process holds the LevelDB lock on dir */
async function lockedElsewhere(dir: string): Promise<boolean> {
  const { ClassicLevel } = require('classic-level') as { ClassicLevel: new (d: string) => { open(): Promise<void>; close(): Promise<void> } };
  const db = new ClassicLevel(dir);
  try {
    await db.open();
    await db.close();
    return false;
  } catch (err) {
    if ((err as { code?: string }).code === 'LEVEL_LOCKED' || /lock/i.test(String((err as Error).cause ?? err))) return true;
    throw err;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function listen(dir: string): Promise<{ server: Server; port: number }> {
  const dynalite = require('dynalite') as (o: object) => Server & { close(cb?: (e?: Error) => void): void };
  const server = dynalite({ path: dir, createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as net.AddressInfo).port;
  // LevelDB opens lazily: probe it, so a lock held by another process shows now.
  const res = await fetch(`http://127.0.0.1:${port}/`, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-amz-json-1.0',
      'x-amz-target': 'DynamoDB_20120810.ListTables',
      authorization: 'AWS4-HMAC-SHA256 Credential=local/20200101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=0',
      'x-amz-date': '20200101T000000Z',
    },
    body: '{}',
  });
  if (res.status !== 200) {
    await new Promise((r) => server.close(() => r(undefined)));
    throw new Error(`embedded DynamoDB could not open ${dir} (${res.status}): ${(await res.text()).slice(0, 200)}`);
  }
  return { server, port };
}

export async function startEmbedded(dataDir: string, role: 'server' | 'cli'): Promise<Embedded> {
  const dir = path.join(dataDir, 'dynamodb');
  const advertFile = path.join(dataDir, 'dynamodb.endpoint');
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });

  const deadline = Date.now() + 15_000;
  let lastError: unknown;
  while (Date.now() < deadline) {
    const advert = readAdvert(advertFile);
    if (advert && alive(advert.pid) && await reachable(advert.endpoint)) {
      return { endpoint: advert.endpoint, owner: false, close: async () => {} };
    }
    try {
      if (await lockedElsewhere(dir)) throw new Error('LevelDB is locked by another process');
      const { server, port } = await listen(dir);
      const endpoint = `http://127.0.0.1:${port}`;
      fs.writeFileSync(advertFile, JSON.stringify({ endpoint, pid: process.pid, role }), { mode: 0o600 });
      return {
        endpoint,
        owner: true,
        close: () => new Promise<void>((resolve) => {
          const current = readAdvert(advertFile);
          if (current?.pid === process.pid) fs.rmSync(advertFile, { force: true });
          server.closeAllConnections?.();
          server.close(() => resolve());
        }),
      };
    } catch (err) {
      // another process holds the LevelDB lock and has not advertised yet
      lastError = err;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  throw new Error(`embedded DynamoDB under ${dir} is held by another process that does not answer: ${String((lastError as Error)?.message ?? lastError)}`);
}
