// The README's quickstart, run as a new user runs it: its commands as they
// are written, each in its own shell (child processes), on a fresh DATA_DIR;
// then the demo's address in Chromium, signed in through the IdP's pages,
// ends on the demo's page with the ID token's claims and the userinfo answer.
// The README's curl section runs too (the code pasted from the browser's
// address bar is typed into its prompt). While `npm start` runs, a CLI
// pointed at another DATA_DIR says so instead of making a store there.
//
// `npm ci` is the one command not run: the checkout under test is installed
// already, and reinstalling node_modules would pull it from under the other
// tests of this run.
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { type Browser } from 'playwright-core';
import { freePort, tempDir } from './support/idp.ts';
import { launchChromium } from './support/browser.ts';
import { UserAgent, readForm } from './support/user-agent.ts';

const SHOTS = process.env.SCREENSHOT_DIR ?? path.resolve('.test-data/screenshots');
const README = fs.readFileSync('README.md', 'utf8');

/** the ```sh blocks between <!-- NAME:start --> and <!-- NAME:end --> */
function blocks(name: string): string[] {
  const section = new RegExp(`<!-- ${name}:start -->([\\s\\S]*?)<!-- ${name}:end -->`).exec(README)?.[1];
  if (!section) throw new Error(`README has no ${name} section`);
  return [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]);
}

interface Shell { child: ChildProcess; out: () => string; err: () => string; waitFor(re: RegExp, ms?: number): Promise<RegExpExecArray> }

/** one command line in its own shell, in its own process group (stopped as a terminal's Ctrl-C would) */
function shell(command: string, env: NodeJS.ProcessEnv, cwd = process.cwd()): Shell {
  const child = spawn('sh', ['-c', command], { env, cwd, detached: true, stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d) => { out += d; });
  child.stderr!.on('data', (d) => { err += d; });
  return {
    child, out: () => out, err: () => err,
    async waitFor(re, ms = 60_000) {
      const deadline = Date.now() + ms;
      for (;;) {
        const m = re.exec(out);
        if (m) return m;
        if (child.exitCode !== null) throw new Error(`"${command}" exited ${child.exitCode}:\n${out}\n${err}`);
        if (Date.now() > deadline) throw new Error(`"${command}" printed no ${re} in time:\n${out}\n${err}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    },
  };
}

function stop(s: Shell | undefined, signal: NodeJS.Signals = 'SIGINT'): Promise<void> {
  if (!s || s.child.exitCode !== null || s.child.signalCode !== null) return Promise.resolve();
  const closed = new Promise<void>((resolve) => s.child.once('close', () => resolve()));
  try {
    process.kill(-s.child.pid!, signal);
  } catch { /* gone */ }
  const kill = setTimeout(() => { try { process.kill(-s.child.pid!, 'SIGKILL'); } catch { /* gone */ } }, 15_000);
  return closed.finally(() => clearTimeout(kill));
}

describe('the README quickstart, as a new user runs it', function () {
  this.timeout(240_000);
  let env: NodeJS.ProcessEnv;
  let server: Shell | undefined;
  let demo: Shell | undefined;
  let browser: Browser | undefined;
  const work = tempDir('idp-quickstart-');

  before(async () => {
    const port = await freePort();
    // a fresh DATA_DIR (not made yet: the server makes it), and a free port for the issuer
    env = { ...process.env, DATA_DIR: path.join(work, 'data'), PORT: String(port), HOST: '127.0.0.1', ISSUER: `http://127.0.0.1:${port}`, LOG_LEVEL: 'warn' };
  });

  after(async () => {
    await browser?.close();
    await stop(demo);
    await stop(server, 'SIGTERM');
  });

  it('npm start, then idp demo: the printed address signs in and shows the ID token and userinfo', async () => {
    const [first, second] = blocks('quickstart').map((b) => b.split('\n').map((l) => l.trim()).filter(Boolean));
    expect(first).to.deep.equal(['npm ci', 'npm start']);
    expect(second).to.deep.equal(['bin/idp demo']);

    server = shell(first[1], env);
    for (let i = 0; ; i++) {
      const ok = await fetch(`${env.ISSUER}/.well-known/openid-configuration`).then((r) => r.ok, () => false);
      if (ok) break;
      if (server.child.exitCode !== null || i > 300) throw new Error(`npm start did not answer:\n${server.out()}\n${server.err()}`);
      await new Promise((r) => setTimeout(r, 200));
    }

    demo = shell(second[0], env);
    const [, url] = await demo.waitFor(/^open (http:\/\/127\.0\.0\.1:\d+\/) and sign in as$/m);
    const [, email] = await demo.waitFor(/^ {2}e-mail: {3}(\S+)$/m);
    const [, password] = await demo.waitFor(/^ {2}password: (\S+) /m);
    await demo.waitFor(/press Ctrl-C to stop/);
    expect(email).to.equal('demo@example.com');

    browser = await launchChromium();
    const page = await browser.newPage();
    await page.goto(url);
    await page.getByRole('link', { name: 'Sign in' }).click();
    await page.getByLabel('Email or phone').fill(email);
    await page.getByLabel('Password', { exact: true }).fill(password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    // the demo is a third-party application: the consent page
    await page.waitForSelector('text=wants to');
    await page.locator('form#allow button[type=submit].primary').click();
    await page.waitForURL((u) => u.href.startsWith(url));
    expect(await page.locator('h1').innerText()).to.equal('Signed in');
    expect(await page.locator('#signed-in-as').innerText()).to.equal('demo@example.com');
    const claims = JSON.parse(await page.locator('#id-token-claims').innerText()) as Record<string, unknown>;
    expect(claims).to.include({ iss: env.ISSUER, aud: 'demo' });
    expect(claims.sub).to.be.a('string');
    const userinfo = JSON.parse(await page.locator('#userinfo').innerText()) as Record<string, unknown>;
    expect(userinfo).to.include({ sub: claims.sub, email: 'demo@example.com', email_verified: true, name: 'Demo User' });
    fs.mkdirSync(SHOTS, { recursive: true });
    await page.screenshot({ path: path.join(SHOTS, 'quickstart-demo-signed-in.png'), fullPage: true });
  });

  it('the curl section: a hex secret from stdin, PKCE by hand, the code exchanged with client_secret_basic', async () => {
    const [script] = blocks('curl');
    // its own directory (webapp.secret is written there), with the checkout's bin/idp
    const dir = tempDir('idp-quickstart-curl-');
    fs.symlinkSync(path.resolve('bin'), path.join(dir, 'bin'));
    const run = shell(script, env, dir);
    const [, authUrl] = await run.waitFor(/^open: (\S+)$/m);
    await run.waitFor(/paste the code from the address bar/);
    expect(fs.readFileSync(path.join(dir, 'webapp.secret'), 'utf8')).to.match(/^[0-9a-f]{64}\n$/);

    // the browser's part: sign in (the session of the demo test may be gone: a fresh agent), allow
    const password = /^ {2}password: (\S+) /m.exec(demo!.out())![1];
    const ua = new UserAgent(env.ISSUER!);
    let step = await ua.navigate(authUrl);
    const login = readForm(await step.res.text());
    step = await ua.navigate(login.action, { form: { ...login.fields, login: 'demo@example.com', password } });
    if (!step.offsite) {
      const consent = readForm(await step.res.text(), 'allow');
      step = await ua.navigate(consent.action, { form: consent.fields });
    }
    expect(step.offsite).to.match(/^http:\/\/localhost:9999\/cb\?code=/);
    const code = new URL(step.offsite!).searchParams.get('code')!;
    run.child.stdin!.end(`${code}\n`);
    await new Promise<void>((resolve) => run.child.once('close', () => resolve()));
    expect(run.child.exitCode, run.err()).to.equal(0);
    const tokens = JSON.parse(run.out().slice(run.out().lastIndexOf('{"'))) as Record<string, string>;
    expect(tokens).to.include({ token_type: 'Bearer' });
    expect(tokens.id_token).to.match(/^ey[\w-]+\.[\w-]+\.[\w-]+$/);
    const me = await fetch(`${env.ISSUER}/me`, { headers: { authorization: `Bearer ${tokens.access_token}` } });
    expect(((await me.json()) as Record<string, unknown>).email).to.equal('demo@example.com');
  });

  it('while npm start runs, a CLI on another DATA_DIR says so and makes no store; from elsewhere it finds the server\'s', () => {
    const other = path.join(work, 'not-the-servers');
    const r = spawnSync('bin/idp', ['clients', 'list'], { env: { ...env, DATA_DIR: other }, encoding: 'utf8' });
    expect(r.status).to.equal(1);
    expect(r.stderr).to.equal(`idp: no IdP store in ${other} (DATA_DIR). The server running for ${env.ISSUER} keeps its data in ${env.DATA_DIR}: run with DATA_DIR=${env.DATA_DIR}. To create a new store there, add --init.\n`);
    expect(fs.existsSync(other)).to.equal(false);
    const { DATA_DIR: _unset, ...noDataDir } = env;
    const elsewhere = path.join(work, 'elsewhere');
    fs.mkdirSync(elsewhere);
    const found = spawnSync(path.resolve('bin/idp'), ['clients', 'list', '--json'], { env: noDataDir, cwd: elsewhere, encoding: 'utf8' });
    expect(found.status, found.stderr).to.equal(0);
    expect(found.stderr).to.match(/^idp: using the store of the server running for .*: DATA_DIR=/);
    expect((JSON.parse(found.stdout) as Array<{ client_id: string }>).map((c) => c.client_id)).to.include.members(['demo', 'webapp']);
  });

  it('Ctrl-C stops the demo; idp demo --remove takes its client and user away', async () => {
    await stop(demo);
    expect(demo!.out()).to.match(/demo stopped\n$/);
    const r = spawnSync('bin/idp', ['demo', '--remove'], { env, encoding: 'utf8' });
    expect(r.status, r.stderr).to.equal(0);
    expect(r.stdout).to.equal('demo client removed; demo@example.com erased\n');
  });
});
