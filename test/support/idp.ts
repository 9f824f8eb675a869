// Starts the real IdP in-process for tests: its own temp DATA_DIR (embedded
// dynalite on LevelDB), a free port, and the issuer on that port. Logs are
// captured in memory so tests can assert what was (and was not) logged.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';
import { Writable } from 'node:stream';
import { loadConfig, type Config } from '../../src/config/index.ts';
import { createLogger } from '../../src/logging/index.ts';
import { startServer, type RunningServer } from '../../src/server.ts';
import { run as runCli } from '../../src/cli/main.ts';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

export function tempDir(prefix = 'idp-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export interface TestIdp extends RunningServer {
  issuer: string;
  env: Record<string, string>;
  config: Config;
  logs: string[];
  cli(...argv: string[]): Promise<unknown>;
  /** the events delivered to the file sink (DATA_DIR/events.jsonl) once what was recorded so far went out */
  delivered(type?: string): Promise<DeliveredEvent[]>;
}

/** a CloudEvent as the file sink holds it, with the account (`sub`), client and reason lifted out for assertions */
export interface DeliveredEvent {
  id: string;
  type: string;
  subject?: string;
  sub?: string;
  clientId?: string;
  reason?: string;
  data: Record<string, unknown>;
}

export function readDelivered(dataDir: string, type?: string): DeliveredEvent[] {
  const file = path.join(dataDir, 'events.jsonl');
  const lines = fs.existsSync(file) ? fs.readFileSync(file, 'utf8').split('\n').filter(Boolean) : [];
  return lines.map((l) => JSON.parse(l) as { id: string; type: string; subject?: string; data: Record<string, unknown> })
    .filter((e) => type === undefined || e.type === type)
    .map((e) => ({
      ...e,
      sub: typeof e.subject === 'string' && !e.type.startsWith('client.') ? e.subject : undefined,
      clientId: typeof e.data.clientId === 'string' ? e.data.clientId : undefined,
      reason: typeof e.data.reason === 'string' ? e.data.reason : undefined,
    }));
}

export async function startTestIdp(extraEnv: Record<string, string> = {}): Promise<TestIdp> {
  const port = await freePort();
  const env: Record<string, string> = {
    ISSUER: `http://127.0.0.1:${port}`,
    PORT: String(port),
    HOST: '127.0.0.1',
    DATA_DIR: tempDir(),
    LOG_LEVEL: 'info',
    ...extraEnv,
  };
  const config = loadConfig(env);
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      logs.push(String(chunk));
      cb();
    },
  });
  const running = await startServer(config, { log: createLogger(config.logLevel, sink) });
  return {
    ...running,
    issuer: env.ISSUER,
    env,
    config,
    logs,
    // the CLI runs in-process against the same DATA_DIR while the server runs
    cli: async (...argv: string[]) => (await runCli([...argv, '--json'], env)).data,
    async delivered(type?: string) {
      await running.events.settled();
      return readDelivered(config.dataDir, type);
    },
  };
}
