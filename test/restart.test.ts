// `npm start` as an operator runs it: a real process on embedded dynalite.
// The CLI works against the same data while the server runs; a restart keeps
// clients, users, sessions and refresh tokens; SIGTERM stops it cleanly; no
// "unsupported runtime" warning appears.
import { expect } from 'chai';
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import * as oidc from 'openid-client';
import { freePort, tempDir } from './support/idp.ts';
import { UserAgent, readForm } from './support/user-agent.ts';

const pexec = promisify(execFile);
const REDIRECT = 'https://rp.example.test/cb';
const SECRET = 'restart-secret-0123456789abcdefghijkl';

interface Proc { child: ChildProcess; output: () => string }

async function npmStart(env: Record<string, string>): Promise<Proc> {
  let out = '';
  const child = spawn('npm', ['start', '--silent'], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  child.stdout!.on('data', (d) => { out += d; });
  child.stderr!.on('data', (d) => { out += d; });
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`npm start exited ${child.exitCode}:\n${out}`);
    try {
      const r = await fetch(`${env.ISSUER}/.well-known/openid-configuration`);
      if (r.status === 200) return { child, output: () => out };
    } catch { /* not yet */ }
    await new Promise((r) => setTimeout(r, 200));
  }
  process.kill(-child.pid!, 'SIGKILL');
  throw new Error(`npm start did not answer in time:\n${out}`);
}

/** SIGTERM, as an orchestrator sends it; resolves once the server logged a clean stop and npm exited */
async function stopProc(p: Proc): Promise<boolean> {
  // 'close': every process holding the pipes (npm and the server under it) has exited
  const exited = new Promise<void>((resolve) => p.child.once('close', () => resolve()));
  // to the process group, as an orchestrator does (npm itself does not forward it)
  process.kill(-p.child.pid!, 'SIGTERM');
  await exited;
  return p.output().includes('"msg":"stopped"');
}

describe('npm start: restart keeps state', function () {
  this.timeout(120_000);
  const dataDir = tempDir('idp-restart-');
  let env: Record<string, string>;
  let server: Proc | undefined;

  before(async () => {
    const port = await freePort();
    env = { PORT: String(port), HOST: '127.0.0.1', ISSUER: `http://127.0.0.1:${port}`, DATA_DIR: dataDir, LOG_LEVEL: 'info' };
  });

  after(async () => {
    if (server && server.child.exitCode === null) process.kill(-server.child.pid!, 'SIGKILL');
  });

  const idp = (...args: string[]) => pexec('bin/idp', args, { env: { ...process.env, ...env } });

  it('keeps clients, users, sessions and refresh tokens across a restart', async () => {
    server = await npmStart(env);
    // the CLI, in its own process, writes through the running server's storage
    await idp('clients', 'add', '--id', 'webapp', '--secret', SECRET, '--redirect-uri', REDIRECT, '--grant-types', 'authorization_code,refresh_token', '--first-party');
    await idp('users', 'add', '--email', 'grace@example.com', '--password', 'a long enough password 1', '--email-verified');
    // besides the admin console's own client, made at start-up (src/admin/setup.ts)
    const listed = (JSON.parse((await idp('clients', 'list', '--json')).stdout) as Array<{ client_id: string; client_secret?: string }>).filter((c) => c.client_id !== 'admin-console');
    expect(listed.map((c) => c.client_id)).to.deep.equal(['webapp']);
    expect(listed[0]).to.not.have.property('client_secret');

    const rp = await oidc.discovery(new URL(env.ISSUER), 'webapp', SECRET, undefined, { execute: [oidc.allowInsecureRequests] });
    const ua = new UserAgent(env.ISSUER);
    const login = async (prompt?: string) => {
      const verifier = oidc.randomPKCECodeVerifier();
      const url = oidc.buildAuthorizationUrl(rp, {
        redirect_uri: REDIRECT, scope: 'openid email offline_access', code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256',
        prompt: prompt ?? 'consent',
      });
      let step = await ua.navigate(url.href);
      if (!step.offsite) {
        const form = readForm(await step.res.text());
        step = await ua.navigate(form.action, { form: { ...form.fields, login: 'grace@example.com', password: 'a long enough password 1' } });
      }
      expect(step.offsite, 'first-party client: no consent page').to.match(/^https:\/\/rp\.example\.test\/cb\?/);
      return oidc.authorizationCodeGrant(rp, new URL(step.offsite!), { pkceCodeVerifier: verifier, idTokenExpected: true });
    };
    const before = await login();
    expect(before.refresh_token).to.be.a('string');

    expect(await stopProc(server), 'clean shutdown').to.equal(true);
    server = await npmStart(env);

    // the refresh token still works
    const refreshed = await oidc.refreshTokenGrant(rp, before.refresh_token!);
    expect(refreshed.access_token).to.be.a('string');
    // the session cookie still works: prompt=none logs in silently
    const silent = await login('none');
    expect(silent.id_token).to.be.a('string');
    // tokens signed before the restart still verify (the keys were kept)
    const info = await oidc.fetchUserInfo(rp, refreshed.access_token, silent.claims()!.sub);
    expect(info.email).to.equal('grace@example.com');

    expect(await stopProc(server), 'clean shutdown').to.equal(true);
    expect(server.output()).to.not.match(/unsupported|EBADENGINE|ExperimentalWarning/i);
  });
});
