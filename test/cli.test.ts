// The `idp` command as an operator runs it (bin/idp, a real process) on an
// embedded DATA_DIR with no server running: human and --json output, and bad
// arguments answered with a usage line and exit code 2.
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { tempDir } from './support/idp.ts';
import { POLICY_MESSAGES } from '../src/passwords/policy.ts';

describe('idp command', function () {
  this.timeout(60_000);
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
    expect(idp('clients', 'remove', '--id', 'app1').stdout.trim()).to.equal('no client app1');
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
});
