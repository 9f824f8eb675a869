// The `idp` command as an operator runs it (bin/idp, a real process) on an
// embedded DATA_DIR with no server running: human and --json output, help at
// every level, the one exit-code rule (0 done, 1 failed, 2 usage), secrets
// from stdin, and the store check (no silent new store; the running server's
// store found, or a note that the server will not see the change).
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import * as oidc from 'openid-client';
import { startTestIdp, tempDir, type TestIdp } from './support/idp.ts';
import { UserAgent, readForm } from './support/user-agent.ts';
import { POLICY_MESSAGES } from '../src/passwords/policy.ts';
import { exitCode, run } from '../src/cli/main.ts';
import { flagsOf } from '../src/cli/help.ts';
import { recordRunningServer } from '../src/cli/store.ts';

const BIN = path.resolve('bin/idp');

/** asynchronous, for a CLI that talks to a server in this process */
function idpAsync(args: string[], env: Record<string, string | undefined>, input?: string, cwd?: string): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(BIN, args, { env, cwd });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { stdout += String(d); });
    child.stderr.on('data', (d) => { stderr += String(d); });
    child.on('close', (status) => resolve({ status, stdout, stderr }));
    child.stdin.end(input ?? '');
  });
}

describe('idp command', function () {
  // each bin/idp process loads the whole IdP: seconds each on a busy machine
  this.timeout(180_000);
  const env = { ...process.env, DATA_DIR: tempDir('idp-cli-'), LOG_LEVEL: 'silent' };
  const idp = (...args: string[]) => spawnSync('bin/idp', args, { env, encoding: 'utf8', timeout: 30_000 });

  it('migrates, adds and lists clients and resource servers, for people and as JSON', () => {
    expect(idp('migrate').stdout).to.match(/schema is up to date|migrated schema/);
    const add = idp('clients', 'add', '--id', 'app1', '--redirect-uri', 'https://app.example.test/cb', '--name', 'App One', '--mfa-policy', 'new_device');
    expect(add.status).to.equal(0);
    expect(add.stdout).to.match(/client app1 saved\nclient_secret: \S{40,}  \(shown once; store it now\)/);

    const listed = JSON.parse(idp('clients', 'list', '--json').stdout) as Array<Record<string, unknown>>;
    expect(listed.map((c) => c.client_id)).to.deep.equal(['app1']);
    expect(listed[0].has_secret).to.equal(true);
    expect(listed[0].mfa_policy).to.equal('new_device');
    expect(JSON.stringify(listed)).to.not.match(/client_secret"|sealed/);
    expect(idp('clients', 'list').stdout).to.match(/^ID\s+NAME\s+AUTH.*\bMFA_POLICY\b/m).and.match(/app1\s+App One.*\bnew_device\b/);

    expect(idp('resources', 'add', '--id', 'https://api.example.test', '--scope', 'read write').status).to.equal(0);
    expect(JSON.parse(idp('resources', 'list', '--json').stdout)[0]).to.include({ id: 'https://api.example.test', accessTokenFormat: 'jwt' });

    expect(JSON.parse(idp('clients', 'remove', '--id', 'app1', '--json').stdout)).to.deep.equal({ client_id: 'app1', removed: true });
    const again = idp('clients', 'remove', '--id', 'app1');
    expect([again.status, again.stderr]).to.deep.equal([2, 'idp: no client app1\n']);
  });

  it('clients add refuses an existing id; update changes only the flags given and keeps the secret; show never prints it', async () => {
    // in-process, as the process runs it (exit code from exitCode)
    const cli = (args: string[], stdin = '') => run(args, env, { stdin }).then((o) => ({ code: o.status ?? 0, out: o, err: '' }), (e: Error) => ({ code: exitCode(e), out: undefined, err: e.message }));
    expect((await cli(['clients', 'add', '--id', 'app2', '--secret-stdin', '--redirect-uri', 'https://app.example.test/cb'])).err).to.match(/^--secret-stdin: stdin is empty\nusage:/);
    const add = spawnSync(BIN, ['clients', 'add', '--id', 'app2', '--secret-stdin', '--redirect-uri', 'https://app.example.test/cb', '--name', 'Two', '--first-party', '--json'], { env, encoding: 'utf8', input: 'stdin-secret-0123456789-abcdefghijkl\n' });
    expect(add.status, add.stderr).to.equal(0);
    expect(JSON.parse(add.stdout)).to.deep.include({ client_id: 'app2', client_secret: 'stdin-secret-0123456789-abcdefghijkl' });

    const dup = await cli(['clients', 'add', '--id', 'app2', '--redirect-uri', 'https://other.example.test/cb']);
    expect(dup.code).to.equal(2);
    expect(dup.err).to.match(/^client app2 already exists: change it with `idp clients update --id app2 \.\.\.`/);

    expect((await cli(['clients', 'update', '--id', 'app2', '--name', 'Two Renamed', '--no-first-party', '--mfa-policy', 'required'])).code).to.equal(0);
    const show = async () => (await cli(['clients', 'show', '--id', 'app2', '--json'])).out!.data as Record<string, unknown>;
    const shown = await show();
    expect(shown).to.include({ client_id: 'app2', client_name: 'Two Renamed', first_party: false, mfa_policy: 'required', has_secret: true });
    expect(shown.redirect_uris).to.deep.equal(['https://app.example.test/cb']);
    expect(JSON.stringify(shown)).to.not.match(/stdin-secret|sealed/);
    const text = idp('clients', 'show', '--id', 'app2');
    expect(text.stdout).to.match(/^client_name:\s+Two Renamed$/m).and.match(/^has_secret:\s+true$/m).and.not.match(/stdin-secret/);
    // an empty value clears; a value the validation refuses changes nothing
    expect((await cli(['clients', 'update', '--id', 'app2', '--mfa-policy', ''])).code).to.equal(0);
    expect(await show()).to.not.have.property('mfa_policy');
    const bad = await cli(['clients', 'update', '--id', 'app2', '--redirect-uri', 'not a url']);
    expect([bad.code, bad.err]).to.satisfy(([code, err]: [number, string]) => code === 2 && /invalid client: redirect_uris/.test(err));
    expect((await show()).redirect_uris).to.deep.equal(['https://app.example.test/cb']);
  });

  it('answers bad arguments with a usage line and exit code 2', () => {
    const cases: Array<[string[], RegExp]> = [
      [['clients', 'add', '--id', 'x'], /authorization_code needs at least one --redirect-uri\nusage: idp clients add/],
      [['clients', 'add', '--id', 'x', '--public', '--secret', 's', '--redirect-uri', 'https://x.test/cb'], /exclude each other/],
      [['clients', 'add', '--bogus'], /Unknown option '--bogus'[\s\S]*usage: idp clients add/],
      [['clients', 'add', '--id', 'x', '--redirect-uri', 'not a url'], /invalid client: redirect_uris/],
      [['clients', 'add', '--id', 'x', '--redirect-uri', 'https://x.test/cb', '--mfa-policy', 'sometimes'], /^idp: --mfa-policy must be one of off, optional, required, new_device, got "sometimes"\nusage: idp clients add/],
      [['users', 'add', '--email', 'not-an-email', '--password', 'a long passphrase'], /not a valid e-mail/],
      [['resources', 'add', '--id', 'https://api.test', '--scope', 'a', '--format', 'xml'], /--format must be jwt or opaque/],
      [['frobnicate'], /unknown command "frobnicate"\nusage:/],
      [['help', 'frobnicate'], /unknown command "frobnicate"\nusage:/],
      [['clients'], /^idp: usage:\n  idp clients add/],
      [[], /^idp: usage:/],
    ];
    for (const [args, message] of cases) {
      const r = idp(...args);
      expect(r.status, args.join(' ')).to.equal(2);
      expect(r.stderr, args.join(' ')).to.match(message);
      expect(r.stderr).to.not.match(/\n\s+at /);
    }
  });

  it('users add applies the password policy: a refused password is one line, exit code 2, and nothing written', () => {
    const users = () => (JSON.parse(idp('users', 'list', '--json').stdout) as unknown[]).length;
    const before = users();
    const cases: Array<[string[], string]> = [
      [['--password', 'password'], `Use at least 12 characters. ${POLICY_MESSAGES.common}`],
      [['--password', 'qwerty123456'], POLICY_MESSAGES.common],
      [['--password', 'ravi lakshmi secret', '--name', 'Ravi Lakshmi'], POLICY_MESSAGES.personal],
    ];
    for (const [args, why] of cases) {
      const r = idp('users', 'add', '--email', 'ravi@example.com', ...args, '--email-verified');
      expect(r.status, args.join(' ')).to.equal(2);
      expect(r.stderr, args.join(' ')).to.equal(`idp: --password refused by the password policy: ${why}\n`);
      expect(r.stdout).to.equal('');
    }
    // the policy is the configured one (PASSWORD_MIN_LENGTH)
    const strict = spawnSync('bin/idp', ['users', 'add', '--email', 'ravi@example.com', '--password', 'a fine passphrase 7'], { env: { ...env, PASSWORD_MIN_LENGTH: '24' }, encoding: 'utf8', timeout: 30_000 });
    expect(strict.status).to.equal(2);
    expect(strict.stderr).to.equal('idp: --password refused by the password policy: Use at least 24 characters.\n');
    expect(users(), 'no account written').to.equal(before);

    const ok = idp('users', 'add', '--email', 'ravi@example.com', '--password', 'a fine passphrase 7', '--name', 'Ravi Lakshmi');
    expect(ok.status, ok.stderr).to.equal(0);
    expect(ok.stdout).to.match(/^user \S+ created\n$/);
    expect(users()).to.equal(before + 1);
  });

  it('stops on a bad configuration value with one line and exit code 1', () => {
    const r = spawnSync('bin/idp', ['clients', 'list'], { env: { ...env, KEYS_MODE: 'vault' }, encoding: 'utf8' });
    expect(r.status).to.equal(1);
    expect(r.stderr.trim()).to.equal('configuration error: KEYS_MODE must be one of local, kms-envelope, kms-sign, got "vault"');
  });

  describe('help', () => {
    it('idp --help, -h and help list every command and the exit codes, and exit 0', () => {
      for (const args of [['--help'], ['-h'], ['help']]) {
        const r = idp(...args);
        expect(r.status, args.join(' ')).to.equal(0);
        expect(r.stderr).to.equal('');
        expect(r.stdout).to.match(/^commands:$/m).and.match(/^\s+clients add\s+Register a client\./m).and.match(/^\s+demo\s/m)
          .and.match(/^exit codes:\n\s+0\s+done.*\n\s+1\s+failed.*\n\s+2\s+usage/m).and.match(/--password-stdin/);
      }
    });

    it('every command has help with a line per flag of its usage, as --help, -h and help COMMAND', async () => {
      const commands = /^commands:\n([\s\S]*?)\n\n/m.exec(idp('help').stdout)![1].split('\n').map((l) => /^\s+(\S+(?: [a-z-]+)?)\s{2,}/.exec(l)?.[1] ?? l.trim());
      expect(commands.length).to.be.above(25);
      for (const cmd of commands) {
        const out = await run([...cmd.split(' '), '--help'], env);
        const [usageLine, ...rest] = out.lines;
        expect(usageLine, cmd).to.match(new RegExp(`^usage: idp ${cmd}\\b`));
        const flags = rest.slice(rest.indexOf('flags:') + 1);
        for (const f of [...flagsOf(usageLine), 'json']) {
          expect(flags.some((l) => new RegExp(`^\\s+--(\\[no-\\])?${f}\\b`).test(l)), `${cmd}: a line for --${f}`).to.equal(true);
        }
        expect(rest.join('\n'), cmd).to.not.match(/the ".*" command/); // every command is described
        expect((await run(['help', ...cmd.split(' ')], env)).lines).to.deep.equal(out.lines);
      }
      // as processes: the flag at any place, -h, and group help
      const r = idp('users', 'add', '--email', 'x@example.com', '-h');
      expect([r.status, r.stdout.split('\n')[0]]).to.deep.equal([0, `usage: ${/^\s+(idp users add .*)$/m.exec(idp('users', '--help').stdout)![1]}`]);
      expect(r.stdout).to.match(/^\s+--password-stdin\s+read the password from stdin/m);
      const g = idp('help', 'clients');
      expect(g.status).to.equal(0);
      expect(g.stdout).to.match(/^idp clients: 5 commands/).and.match(/idp clients update --id ID/);
    });
  });

  describe('passwords at a prompt', () => {
    /** bin/idp on a terminal (util-linux `script` makes the pty): answers each prompt as it appears */
    function onTerminal(args: string[], answers: string[]): Promise<{ status: number | null; output: string }> {
      return new Promise((resolve) => {
        const child = spawn('script', ['-qec', [BIN, ...args].map((a) => `'${a}'`).join(' '), '/dev/null'], { env });
        let output = '';
        let asked = 0;
        child.stdout.on('data', (d) => {
          output += String(d);
          const prompts = (output.match(/password for [^:]+(?: again)?: /g) ?? []).length;
          while (asked < prompts && asked < answers.length) child.stdin.write(`${answers[asked++]}\n`);
        });
        child.on('close', (status) => resolve({ status, output }));
      });
    }

    it('asks twice without echoing, and refuses two different entries', async function () {
      if (spawnSync('script', ['--version']).status !== 0) this.skip();
      const ok = await onTerminal(['users', 'add', '--email', 'typed@example.com'], ['horse battery at the prompt', 'horse battery at the prompt']);
      expect(ok.status, ok.output).to.equal(0);
      expect(ok.output).to.match(/password for typed@example\.com: \r?\npassword for typed@example\.com again: \r?\n/).and.match(/user \S+ created/);
      expect(ok.output, 'nothing typed is shown').to.not.include('horse battery');
      const differ = await onTerminal(['users', 'add', '--email', 'differ@example.com'], ['first passphrase here 1', 'second passphrase here 2']);
      expect(differ.status).to.equal(2);
      expect(differ.output).to.match(/idp: the two entries differ/);
    });
  });

  describe('exit codes: 0 done, 1 failed, 2 usage', () => {
    it('each command\'s failure exits with its code, on one line without a stack trace', async () => {
      const sub = '00000000-0000-4000-8000-000000000000';
      const importFile = path.join(env.DATA_DIR, 'import.jsonl');
      fs.writeFileSync(importFile, '{"source":"crm","sourceUserId":"1","email":"imp@example.com","emailVerified":true}\nnot json\n');
      const cases: Array<[string[], number, RegExp]> = [
        [['clients', 'show', '--id', 'nope'], 2, /^idp: no client nope\n$/],
        [['clients', 'update', '--id', 'nope', '--name', 'x'], 2, /^idp: no client nope\n$/],
        [['clients', 'remove', '--id', 'nope'], 2, /^idp: no client nope\n$/],
        [['resources', 'remove', '--id', 'https://nope.test'], 2, /^idp: no resource server https:\/\/nope\.test\n$/],
        [['users', 'show', '--sub', sub], 2, /^idp: no account /],
        [['users', 'delete', '--erase', sub], 2, /^idp: no account /],
        [['users', 'unlock', '--sub', sub], 2, /^idp: no account /],
        [['users', 'unlock', '--email', 'nobody@example.com'], 2, /^idp: no account with that e-mail address\n$/],
        [['users', 'mfa', 'status', '--sub', sub], 2, /^idp: no account /],
        [['users', 'devices', 'list', '--sub', sub], 2, /^idp: no account /],
        [['users', 'merge', '--into', sub, '--from', sub.replace(/0$/, '1')], 2, /^idp: /],
        [['connections', 'links', '--sub', sub], 2, /^idp: no account /],
        [['users', 'add', '--email', 'e@example.com'], 2, /missing the password/],
        [['users', 'import', importFile], 1, /^$/],
        [['clients', 'list', '--bogus'], 2, /Unknown option '--bogus'/],
      ];
      // in-process (the exit code the process would give), then a few as processes
      for (const [args, code, message] of cases) {
        const r = await run(args, env, { stdin: '' }).then((o) => ({ code: o.status ?? 0, message: '' }), (err: Error) => ({ code: exitCode(err), message: `idp: ${err.message}\n` }));
        expect(r.code, args.join(' ')).to.equal(code);
        expect(r.message, args.join(' ')).to.match(message);
      }
      for (const i of [0, 6, 13]) {
        const [args, code, stderr] = cases[i];
        const r = idp(...args);
        expect(r.status, args.join(' ')).to.equal(code);
        expect(r.stderr, args.join(' ')).to.match(stderr).and.not.match(/\n\s+at /);
      }
      // the rejected line is reported on stdout with the summary
      expect(idp('users', 'import', importFile).stdout).to.match(/^line 2: .*\n.*rejected 1\n$/m);
      // an e-mail address in use
      const add = (email: string) => spawnSync(BIN, ['users', 'add', '--email', email, '--password-stdin'], { env, encoding: 'utf8', input: 'a fine passphrase 99\n' });
      expect(add('twice@example.com').status).to.equal(0);
      expect([add('twice@example.com').status, add('twice@example.com').stderr]).to.deep.equal([2, 'idp: an account with e-mail twice@example.com already exists\n']);
    });
  });

  describe('with the server running', () => {
    let server: TestIdp;
    before(async () => {
      server = await startTestIdp({ LOG_LEVEL: 'silent' });
    });
    after(() => server?.close());

    it('a password and a client secret from stdin work: the user signs in, the client gets tokens, after an update too', async () => {
      const password = 'correct horse battery staple 42';
      const secret = 'a-secret-from-stdin-0123456789abcdef';
      const env = { ...process.env, ...server.env };
      const user = await idpAsync(['users', 'add', '--email', 'stdin@example.com', '--password-stdin', '--email-verified'], env, `${password}\n`);
      expect(user.status, user.stderr).to.equal(0);
      const redirect = 'https://rp.example.test/cb';
      const client = await idpAsync(['clients', 'add', '--id', 'stdin-app', '--secret-stdin', '--redirect-uri', redirect, '--first-party', '--grant-types', 'authorization_code,client_credentials'], env, secret);
      expect(client.status, client.stderr).to.equal(0);
      expect(client.stdout).to.equal('client stdin-app saved\n'); // a given secret is not printed
      expect((await idpAsync(['clients', 'update', '--id', 'stdin-app', '--name', 'Stdin App'], env)).status).to.equal(0);

      const rp = await oidc.discovery(new URL(server.issuer), 'stdin-app', secret, undefined, { execute: [oidc.allowInsecureRequests] });
      expect((await oidc.clientCredentialsGrant(rp, { scope: 'openid' }).catch((e: Error) => e)) as unknown).to.not.be.instanceOf(Error);
      const verifier = oidc.randomPKCECodeVerifier();
      const url = oidc.buildAuthorizationUrl(rp, { redirect_uri: redirect, scope: 'openid email', code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256' });
      const ua = new UserAgent(server.issuer);
      const page = await ua.navigate(url.href);
      const form = readForm(await page.res.text());
      const back = await ua.navigate(form.action, { form: { ...form.fields, login: 'stdin@example.com', password } });
      expect(back.offsite, 'signed in and sent back').to.match(/^https:\/\/rp\.example\.test\/cb\?/);
      const tokens = await oidc.authorizationCodeGrant(rp, new URL(back.offsite!), { pkceCodeVerifier: verifier, idTokenExpected: true });
      expect((await oidc.fetchUserInfo(rp, tokens.access_token, tokens.claims()!.sub)).email).to.equal('stdin@example.com');
    });

    it('finds the running server\'s store from another directory, and says so when a command works on another store', async () => {
      const forget = recordRunningServer(server.config);
      try {
        const elsewhere = tempDir('idp-cli-cwd-');
        const { DATA_DIR: _unset, ...noDataDir } = { ...process.env, ...server.env };
        // DATA_DIR unset and no ./data here: the store of the server running for this ISSUER, said on stderr
        const found = await idpAsync(['clients', 'add', '--id', 'found-app', '--public', '--redirect-uri', 'https://rp.example.test/cb'], noDataDir, undefined, elsewhere);
        expect(found.status, found.stderr).to.equal(0);
        expect(found.stderr).to.equal(`idp: using the store of the server running for ${server.issuer} (pid ${process.pid}): DATA_DIR=${server.config.dataDir}\n`);
        expect(fs.existsSync(path.join(elsewhere, 'data')), 'no store made here').to.equal(false);
        expect((await server.cli('clients', 'list') as Array<{ client_id: string }>).map((c) => c.client_id)).to.include('found-app');

        // another DATA_DIR that holds no store: refused, naming the server's
        const other = path.join(elsewhere, 'other-data');
        const refused = await idpAsync(['clients', 'add', '--id', 'lost-app', '--public', '--redirect-uri', 'https://rp.example.test/cb'], { ...noDataDir, DATA_DIR: other });
        expect(refused.status).to.equal(1);
        expect(refused.stderr).to.equal(`idp: no IdP store in ${other} (DATA_DIR). The server running for ${server.issuer} keeps its data in ${server.config.dataDir}: run with DATA_DIR=${server.config.dataDir}. To create a new store there, add --init.\n`);
        expect(fs.existsSync(other)).to.equal(false);

        // with --init it is created, and the note says the running server will not see it
        const init = await idpAsync(['clients', 'add', '--id', 'lost-app', '--public', '--redirect-uri', 'https://rp.example.test/cb', '--init'], { ...noDataDir, DATA_DIR: other });
        expect(init.status, init.stderr).to.equal(0);
        expect(init.stderr).to.equal(`idp: creating a new store in ${other}\nidp: note: the server running for ${server.issuer} (pid ${process.pid}) uses DATA_DIR=${server.config.dataDir}, not ${other}: it will not see what this command changes\n`);
        const again = await idpAsync(['clients', 'list'], { ...noDataDir, DATA_DIR: other });
        expect(again.stderr).to.match(/^idp: note: the server running for .* will not see what this command changes\n$/);
      } finally {
        forget();
      }
    });
  });
});
