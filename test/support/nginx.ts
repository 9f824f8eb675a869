// A real nginx (Debian's package: /usr/sbin/nginx, installed by .ci/run when
// missing) for tests: started in the foreground with its own configuration,
// logs, pid file and temp directories under a fresh temp dir, listening on
// loopback only; works as root (workers run as the same user) and as any
// other user. `server` is the body of the http block (server blocks).
import fs from 'node:fs';
import os from 'node:os';
import net from 'node:net';
import path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { tempDir } from './idp.ts';

export const NGINX = '/usr/sbin/nginx';

export interface TestNginx {
  dir: string;
  /** error log so far (for failure messages) */
  errors(): string;
  close(): Promise<void>;
}

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => {
      s.end();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
}

export async function startNginx(port: number, http: string): Promise<TestNginx> {
  if (!fs.existsSync(NGINX)) throw new Error(`${NGINX} is missing: .ci/run installs Debian's nginx`);
  const dir = tempDir('idp-nginx-');
  const temp = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'];
  for (const t of temp) fs.mkdirSync(path.join(dir, t));
  const asRoot = process.getuid?.() === 0;
  const conf = [
    asRoot ? `user ${os.userInfo().username};` : '',
    'daemon off;', 'master_process on;', 'worker_processes 1;',
    `pid ${dir}/nginx.pid;`, `error_log ${dir}/error.log warn;`,
    'events { worker_connections 256; }',
    'http {',
    `  access_log ${dir}/access.log;`,
    ...temp.map((t) => `  ${t}_temp_path ${dir}/${t};`),
    http,
    '}',
  ].join('\n');
  fs.writeFileSync(path.join(dir, 'nginx.conf'), conf);
  const child: ChildProcess = spawn(NGINX, ['-p', dir, '-c', path.join(dir, 'nginx.conf'), '-e', path.join(dir, 'error.log')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (b: Buffer) => { stderr += b.toString(); });
  const errors = () => `${stderr}${fs.existsSync(path.join(dir, 'error.log')) ? fs.readFileSync(path.join(dir, 'error.log'), 'utf8') : ''}`;
  const deadline = Date.now() + 10_000;
  while (!(await listening(port))) {
    if (child.exitCode !== null) throw new Error(`nginx exited (${child.exitCode}):\n${errors()}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`nginx did not listen on ${port}:\n${errors()}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    dir,
    errors,
    async close() {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise<void>((r) => child.once('exit', () => r()));
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(t);
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
