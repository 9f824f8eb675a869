// Which store the CLI works on, said out loud. The server (`npm start`,
// src/main.ts) records itself in a per-user runtime directory: its pid,
// issuer, DATA_DIR or DynamoDB endpoint. Before a command opens storage:
//
//   - DATA_DIR unset, and the default ./data holds no store, while a server
//     for the same ISSUER runs: the CLI uses that server's DATA_DIR, and says so;
//   - a DATA_DIR with no store is refused (exit 1), naming the running
//     server's DATA_DIR when there is one, unless --init is given or the
//     directory is empty (made for the store). So a CLI started in the wrong
//     directory never creates a store and master key the server does not see;
//   - a store that is not the one a running server for the same ISSUER uses
//     is opened, with a note on stderr that the server will not see the change.
//
// Embedded stores only: with DYNAMODB_ENDPOINT the tables are where they are
// (`idp migrate` creates them).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Config } from '../config/index.ts';

/** no store where the CLI would open one: exit 1 with what to do */
export class StoreMissing extends Error {
  override name = 'StoreMissing';
}

export interface RunningServer { pid: number; issuer: string; dataDir: string; dynamodbEndpoint?: string; url?: string; startedAt: string }

function runtimeDir(): string {
  const uid = typeof process.getuid === 'function' ? process.getuid() : 'user';
  return path.join(os.tmpdir(), `idp-servers-${uid}`);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** the server records itself while it runs (removed at exit; a dead pid's record is ignored and cleaned up) */
export function recordRunningServer(config: Config): () => void {
  const dir = runtimeDir();
  const file = path.join(dir, `${process.pid}.json`);
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const entry: RunningServer = {
      pid: process.pid, issuer: config.issuer, dataDir: config.dataDir, startedAt: new Date().toISOString(),
      ...(config.dynamodbEndpoint ? { dynamodbEndpoint: config.dynamodbEndpoint } : {}),
    };
    fs.writeFileSync(file, JSON.stringify(entry), { mode: 0o600 });
  } catch {
    return () => {}; // a read-only /tmp costs only the CLI's hints
  }
  const remove = () => fs.rmSync(file, { force: true });
  process.once('exit', remove);
  return remove;
}

export function runningServers(): RunningServer[] {
  const dir = runtimeDir();
  let names: string[];
  try {
    names = fs.readdirSync(dir).filter((n) => n.endsWith('.json'));
  } catch {
    return [];
  }
  const out: RunningServer[] = [];
  for (const n of names) {
    try {
      const s = JSON.parse(fs.readFileSync(path.join(dir, n), 'utf8')) as RunningServer;
      if (alive(s.pid)) out.push(s);
      else fs.rmSync(path.join(dir, n), { force: true });
    } catch { /* being written, or not ours */ }
  }
  return out;
}

/** DATA_DIR holds an embedded store (LevelDB files), or a live process serves one from it */
export function hasStore(dataDir: string): boolean {
  try {
    return fs.readdirSync(path.join(dataDir, 'dynamodb')).length > 0;
  } catch {
    return false;
  }
}

function isEmptyDir(dir: string): boolean {
  try {
    return fs.readdirSync(dir).length === 0;
  } catch {
    return false;
  }
}

export interface StoreChoice {
  /** the configuration to open (dataDir may be the running server's) */
  config: Config;
  /** lines for stderr: which store, and anything the operator should know */
  notes: string[];
}

/**
 * The store a command will open. `dataDirSet`: DATA_DIR was given (not the
 * default ./data); `init`: --init was given.
 */
export function chooseStore(config: Config, opts: { dataDirSet: boolean; init: boolean }): StoreChoice {
  if (config.dynamodbEndpoint) return { config, notes: [] };
  const servers = runningServers().filter((s) => s.issuer === config.issuer);
  const serverFor = (dir: string) => servers.find((s) => !s.dynamodbEndpoint && path.resolve(s.dataDir) === dir);
  const embedded = servers.filter((s) => !s.dynamodbEndpoint);
  const notes: string[] = [];

  if (!hasStore(config.dataDir)) {
    // the wrong directory, most likely: use the store of the server that runs for this issuer
    if (!opts.dataDirSet && !opts.init && embedded.length === 1) {
      const dataDir = path.resolve(embedded[0].dataDir);
      return { config: { ...config, dataDir }, notes: [`using the store of the server running for ${config.issuer} (pid ${embedded[0].pid}): DATA_DIR=${dataDir}`] };
    }
    if (!opts.init && !isEmptyDir(config.dataDir)) {
      const hint = embedded.length > 0
        ? ` The server running for ${config.issuer} keeps its data in ${embedded.map((s) => s.dataDir).join(' and ')}: run with DATA_DIR=${embedded[0].dataDir}.`
        : ' Run the command where the server runs, or set DATA_DIR to the server\'s data directory.';
      throw new StoreMissing(`no IdP store in ${config.dataDir} (DATA_DIR${opts.dataDirSet ? '' : ' unset, so ./data'}).${hint} To create a new store there, add --init.`);
    }
    notes.push(`creating a new store in ${config.dataDir}`);
  }
  const other = embedded.filter((s) => path.resolve(s.dataDir) !== config.dataDir);
  if (!serverFor(config.dataDir) && other.length > 0) {
    notes.push(`note: the server running for ${config.issuer} (pid ${other[0].pid}) uses DATA_DIR=${other[0].dataDir}, not ${config.dataDir}: it will not see what this command changes`);
  }
  return { config, notes };
}
