// Legacy passwords against today's password policy (LEGACY_PASSWORD_POLICY):
// a legacy password that matches but fails the policy still signs in, then
// (by default, `change`) the user chooses a new one before the sign-in
// completes, on the expired-password page, and the new one replaces the legacy
// credential; cancelled, it is asked again. A source set to `allow` keeps it;
// a legacy password that passes the policy goes straight through.
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { startTestIdp, tempDir, type TestIdp } from './support/idp.ts';
import { BCRYPT, SHA256 } from './support/accounts-fixture.ts';
import { IpAgent, addClient, events, post, signIn, succeeded } from './support/lockout.ts';
import { readForm } from './support/user-agent.ts';
import { SELF_SERVICE_MESSAGES } from '../src/lockout/self-service.ts';
import { POLICY_MESSAGES } from '../src/passwords/policy.ts';

const NEW = 'a brand new passphrase 2026';

describe('legacy passwords and the password policy', function () {
  this.timeout(120_000);
  let idp: TestIdp;

  before(async () => {
    idp = await startTestIdp({ TRUST_PROXY_HOPS: '1', LEGACY_PASSWORD_POLICY: 'kiosk=allow' });
    await addClient(idp);
    // Tr0ub4dor&3 (11 characters) from two sources; a policy-passing one from a third
    const file = path.join(tempDir('idp-legacy-policy-'), 'legacy.jsonl');
    const bcrypt = (await import('bcrypt')).default;
    fs.writeFileSync(file, [
      { source: 'shop', sourceUserId: '1', email: 'weak@example.com', emailVerified: true, name: 'Wanda Weak', password: BCRYPT.credential },
      { source: 'kiosk', sourceUserId: '2', email: 'kiosk@example.com', emailVerified: true, name: 'Kim Kiosk', password: SHA256.credential },
      { source: 'shop', sourceUserId: '3', email: 'strong@example.com', emailVerified: true, name: 'Sam Strong', password: { scheme: 'bcrypt', hash: await bcrypt.hash(NEW, 4) } },
    ].map((l) => JSON.stringify(l)).join('\n'));
    await idp.cli('users', 'import', file);
  });

  after(async () => {
    await idp?.close();
  });

  it('a legacy password that fails the policy signs in, and must be replaced before the sign-in completes (asked again when cancelled)', async () => {
    const kind = async (sub: string) => (await idp.cli('users', 'show', '--sub', sub) as { password: string }).password;
    const cancelled = await signIn(idp, new IpAgent(idp.issuer, '192.0.2.69'), 'weak@example.com', BCRYPT.password);
    expect(cancelled.html).to.contain(SELF_SERVICE_MESSAGES.weak);
    const [weak] = events(idp, 'password.weak');
    expect(weak?.sub, 'password.weak').to.be.a('string');
    expect(await kind(weak.sub!), 'the legacy credential stays until a new password is set').to.equal('legacy');

    const browser = new IpAgent(idp.issuer, '192.0.2.70');
    const first = await signIn(idp, browser, 'weak@example.com', BCRYPT.password);
    expect(first.offsite, 'not signed in yet').to.equal(undefined);
    expect(first.html).to.contain(SELF_SERVICE_MESSAGES.weak).and.contain(POLICY_MESSAGES.tooShort(12));
    const form = readForm(first.html);
    expect(form.action).to.match(/\/interaction\/[^/]+\/password$/);

    // the new one is held to the policy like any other
    expect((await post(browser, form.action, { ...form.fields, password: 'short', confirm: 'short' })).html).to.contain(POLICY_MESSAGES.tooShort(12));
    const done = await post(browser, form.action, { ...form.fields, password: NEW, confirm: NEW });
    expect(succeeded(done), 'the sign-in completes after the change').to.equal(true);
    expect(events(idp, 'password.changed').filter((e) => e.sub === weak.sub).map((e) => e.reason)).to.deep.equal(['expired']);
    expect(await kind(weak.sub!)).to.equal('argon2id');
    // from now on: the new password, straight through; the old one no longer
    expect(succeeded(await signIn(idp, new IpAgent(idp.issuer, '192.0.2.71'), 'weak@example.com', NEW))).to.equal(true);
    expect(succeeded(await signIn(idp, new IpAgent(idp.issuer, '192.0.2.72'), 'weak@example.com', BCRYPT.password))).to.equal(false);
  });

  it('a source set to allow keeps its legacy password; a legacy password that passes the policy goes straight through', async () => {
    expect(succeeded(await signIn(idp, new IpAgent(idp.issuer, '192.0.2.73'), 'kiosk@example.com', SHA256.password)), 'kiosk=allow').to.equal(true);
    expect(succeeded(await signIn(idp, new IpAgent(idp.issuer, '192.0.2.74'), 'strong@example.com', NEW)), 'a strong legacy password').to.equal(true);
    expect(events(idp, 'password.weak')).to.have.length(2); // both from weak@example.com
  });

  it('LEGACY_PASSWORD_POLICY is checked at start', async () => {
    const { loadConfig } = await import('../src/config/index.ts');
    expect(loadConfig({ LEGACY_PASSWORD_POLICY: 'crm=allow, *=allow' }).accounts.legacyPasswordPolicy).to.deep.equal({ '*': 'allow', crm: 'allow' });
    expect(loadConfig({}).accounts.legacyPasswordPolicy).to.deep.equal({ '*': 'change' });
    expect(() => loadConfig({ LEGACY_PASSWORD_POLICY: 'crm=maybe' })).to.throw(/^LEGACY_PASSWORD_POLICY must be source=change or source=allow/);
  });
});
