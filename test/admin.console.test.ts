// The admin console (/admin, src/admin/console.ts) through the real forms:
//  - an admin without a second factor is sent through MFA (set-up) before the
//    console opens; a user without the admin role gets 403 (the API's 403s
//    are in admin.api.test.ts);
//  - the console's session cookie is httpOnly, SameSite=Lax, on /admin;
//  - a form without the CSRF token is refused and changes nothing;
//  - every action from the console is an audit entry with the admin's sub;
//  - the pages carry the strict CSP (no script, frame-ancestors 'none');
//  - the read-only pages (connections, resource servers, legacy migration)
//    show what is stored and never a secret; unlinking a federated sign-in
//    changes the account and is audited (federation.unlinked).
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { generate } from 'otplib';
import { startTestIdp, type TestIdp } from './support/idp.ts';
import { UserAgent, readForm } from './support/user-agent.ts';
import { onMissingTranslation } from '../src/http/i18n.ts';
import { BCRYPT } from './support/accounts-fixture.ts';

const PASSWORD = 'a long enough passphrase 91';
const secretIn = (html: string) => /id="totp-secret">([A-Z2-7 ]+)</.exec(html)?.[1].replace(/ /g, '');

/** /admin → our login → password → TOTP set-up → back to the console; returns each stop */
export async function consoleSignIn(idp: TestIdp, ua: UserAgent, email: string): Promise<{ mfaPage: string; status: number; html: string; url: string }> {
  let step = await ua.navigate(`${idp.issuer}/admin`);
  const login = readForm(await step.res.text());
  step = await ua.navigate(login.action, { form: { ...login.fields, login: email, password: PASSWORD } });
  const mfaPage = await step.res.text();
  const secret = secretIn(mfaPage);
  if (!secret) throw new Error(`no TOTP set-up page: ${step.url}`);
  const enrol = readForm(mfaPage, 'mfa-enrol');
  step = await ua.navigate(enrol.action, { form: { ...enrol.fields, otp: await generate({ secret }) } });
  const codes = await step.res.text();
  const cont = readForm(codes, 'mfa-continue');
  step = await ua.navigate(cont.action, { form: cont.fields });
  return { mfaPage, status: step.res.status, html: await step.res.text(), url: step.url };
}

describe('admin console', function () {
  this.timeout(120_000);
  let idp: TestIdp;
  let adminSub: string;
  let userSub: string;

  before(async () => {
    idp = await startTestIdp({ MFA_POLICY: 'off', LEGACY_SUNSET: 'shop=2031-06-30' });
    adminSub = (await idp.cli('users', 'add', '--email', 'root@example.com', '--password', PASSWORD, '--email-verified') as { sub: string }).sub;
    userSub = (await idp.cli('users', 'add', '--email', 'joe@example.com', '--password', PASSWORD, '--email-verified') as { sub: string }).sub;
    await idp.cli('admins', 'add', '--email', 'root@example.com');
  });
  after(async () => {
    await idp?.close();
  });

  it('a user without the admin role gets 403 at /admin, after signing in', async () => {
    const ua = new UserAgent(idp.issuer);
    const r = await consoleSignIn(idp, ua, 'joe@example.com');
    expect(r.status).to.equal(403);
    expect(r.html).to.contain('id="admin-denied"');
    expect(r.html).to.not.contain('admin-nav');
    // no console session: /admin again goes through the (single) sign-on and is refused again
    const again = await ua.navigate(`${idp.issuer}/admin/users`);
    expect(again.res.status).to.equal(403);
  });

  it('idp admins add|remove|list: by sub or e-mail, audited; an unknown address is a usage error', async () => {
    expect(await idp.cli('admins', 'list')).to.deep.equal([{ sub: adminSub, assigned: true, connections: [] }]);
    const amy = (await idp.cli('users', 'add', '--email', 'amy@example.com', '--password', PASSWORD, '--email-verified') as { sub: string }).sub;
    expect(await idp.cli('admins', 'add', '--sub', amy)).to.deep.include({ sub: amy, admin: true });
    expect((await idp.cli('admins', 'list') as Array<{ sub: string }>).map((a) => a.sub).sort()).to.deep.equal([adminSub, amy].sort());
    expect(await idp.admin.isAdmin(amy)).to.equal(true);
    expect(await idp.cli('admins', 'remove', '--email', 'AMY@example.com')).to.deep.include({ sub: amy, admin: false });
    expect(await idp.cli('admins', 'list')).to.deep.equal([{ sub: adminSub, assigned: true, connections: [] }]);
    await idp.events.settled();
    const ev = (await idp.events.query({ subject: amy, type: 'roles.' })).items.map((e) => [e.type, e.data.actor, e.data.roles]);
    expect(ev).to.deep.equal([['roles.unassigned', 'cli', ['admin']], ['roles.assigned', 'cli', ['admin']]]);
    for (const [argv, msg] of [
      [['admins', 'add', '--email', 'nobody@example.com'], /no account with the e-mail address nobody@example.com/],
      [['admins', 'add'], /give --sub or --email/],
      [['admins', 'add', '--sub', 'no-such-sub'], /no account/],
    ] as const) {
      const err = await idp.cli(...argv).then(() => undefined, (e: Error) => e);
      expect(err?.message, argv.join(' ')).to.match(msg);
    }
  });

  describe('an admin', () => {
    let agent: UserAgent;
    let csrf: string;

    it('without a second factor is sent through MFA set-up first, then the console opens', async () => {
      agent = new UserAgent(idp.issuer);
      const r = await consoleSignIn(idp, agent, 'root@example.com');
      expect(r.mfaPage).to.contain('id="mfa-enrol"');
      expect(r.status).to.equal(200);
      expect(r.url).to.equal(`${idp.issuer}/admin`);
      expect(r.html).to.contain('class="admin-nav"');
      csrf = /name="csrf" value="([^"]+)"/.exec(r.html)![1];
      const res = await agent.request(`${idp.issuer}/admin`);
      const csp = res.headers.get('content-security-policy')!;
      expect(csp).to.contain("script-src 'none'").and.contain("frame-ancestors 'none'");
      const cookie = (await agent.request(`${idp.issuer}/admin/users`)).headers.getSetCookie().find((c) => c.startsWith('idp.admin='))!;
      expect(cookie).to.match(/path=\/admin/i).and.match(/httponly/i).and.match(/samesite=lax/i);
    });

    it('finds a user by e-mail, disables them (audited with the admin as actor); a form without CSRF changes nothing', async () => {
      const search = await (await agent.navigate(`${idp.issuer}/admin/users?q=${encodeURIComponent('joe@example.com')}`)).res.text();
      expect(search).to.contain(`/admin/users/${userSub}`);
      const forged = await agent.navigate(`${idp.issuer}/admin/users/${userSub}/disable`, { form: { csrf: 'nope' } });
      expect(forged.res.status).to.equal(403);
      expect((await idp.admin.getUser(userSub, { id: 'test' })).status).to.equal('active');
      const done = await agent.navigate(`${idp.issuer}/admin/users/${userSub}/disable`, { form: { csrf } });
      expect(done.res.status).to.equal(200);
      expect(done.url).to.contain('done=disabled');
      expect((await idp.admin.getUser(userSub, { id: 'test' })).status).to.equal('disabled');
      await idp.events.settled();
      const events = (await idp.events.query({ subject: userSub, type: 'user.disabled' })).items;
      expect(events).to.have.length(1);
      expect(events[0].data.actor).to.equal(adminSub);
    });

    it('a refused password names the field in the page; erasing needs the id typed', async () => {
      const weak = await agent.navigate(`${idp.issuer}/admin/users/${userSub}/password`, { form: { csrf, password: 'short' } });
      expect(weak.res.status).to.equal(400);
      expect(await weak.res.text()).to.contain('id="form-error"');
      const noConfirm = await agent.navigate(`${idp.issuer}/admin/users/${userSub}/erase`, { form: { csrf, confirm: 'x' } });
      expect(noConfirm.res.status).to.equal(400);
      expect(await idp.admin.getUser(userSub, { id: 'test' })).to.include({ sub: userSub });
    });

    it('sends a password reset: a code to the verified address (password.reset_requested with the admin as actor); none without one', async () => {
      const ann = (await idp.cli('users', 'add', '--email', 'ann@example.com', '--password', PASSWORD, '--email-verified') as { sub: string }).sub;
      const page = await (await agent.navigate(`${idp.issuer}/admin/users/${ann}`)).res.text();
      const form = readForm(page, 'user-password-reset');
      const done = await agent.navigate(form.action, { form: form.fields });
      expect(done.url).to.contain('done=reset-sent');
      expect(await done.res.text()).to.contain('A password reset code was sent');
      const outbox = fs.readFileSync(path.join(idp.config.dataDir, 'outbox.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { data: { to: string; template: string; text: string } });
      const msg = outbox.filter((m) => m.data.to === 'ann@example.com');
      expect(msg.map((m) => m.data.template)).to.deep.equal(['password-reset-admin']);
      expect(msg[0].data.text).to.match(/code is \d{6,}/);
      await idp.events.settled();
      const events = (await idp.events.query({ subject: ann, type: 'password.reset_requested' })).items;
      expect(events.map((e) => e.data.actor)).to.deep.equal([adminSub]);
      // an address that was never verified gets nothing: a form message, 409
      const bo = (await idp.cli('users', 'add', '--email', 'bo@example.com', '--password', PASSWORD) as { sub: string }).sub;
      const refused = await agent.navigate(`${idp.issuer}/admin/users/${bo}/password-reset`, { form: { csrf } });
      expect(refused.res.status).to.equal(409);
      expect(await refused.res.text()).to.contain('id="form-error"').and.contain('no verified e-mail address');
      expect(fs.readFileSync(path.join(idp.config.dataDir, 'outbox.jsonl'), 'utf8')).to.not.contain('bo@example.com');
    });

    it('viewing the profile is audited (user.viewed)', async () => {
      const page = await (await agent.navigate(`${idp.issuer}/admin/users/${userSub}?reveal=1`)).res.text();
      expect(page).to.contain('joe@example.com');
      await idp.events.settled();
      const viewed = (await idp.events.query({ subject: userSub, type: 'user.viewed' })).items;
      expect(viewed.map((e) => e.data.actor)).to.deep.equal([adminSub]);
      expect(JSON.stringify(viewed)).to.not.contain('joe@example.com');
    });

    it('lists the federation connections (no secret) and the resource servers', async () => {
      await idp.federation.connections.add({ id: 'corp', name: 'Corp SSO', issuer: 'https://sso.corp.example', clientId: 'our-idp', clientSecret: 'very-secret-value-42', allowSignup: true, linking: 'verified-email' });
      const res = await agent.navigate(`${idp.issuer}/admin/connections`);
      expect(res.res.status).to.equal(200);
      const page = await res.res.text();
      expect(page).to.contain('id="connection-list"').and.contain('Corp SSO').and.contain('https://sso.corp.example').and.contain('verified-email');
      expect(page).to.not.contain('very-secret-value-42').and.not.contain('our-idp');
      const rs = await agent.navigate(`${idp.issuer}/admin/resources`);
      expect(rs.res.status).to.equal(200);
      const html = await rs.res.text();
      expect(html).to.contain('id="resource-list"').and.contain(`${idp.issuer}/admin/api/v1`).and.contain('jwt');
    });

    it('shows the legacy migration per source: still legacy, migrated, and the sunset', async () => {
      const file = path.join(idp.env.DATA_DIR, 'admin-legacy.jsonl');
      fs.writeFileSync(file, [
        JSON.stringify({ source: 'shop', sourceUserId: '1', email: 'old1@example.com', emailVerified: true, password: BCRYPT.credential }),
        JSON.stringify({ source: 'shop', sourceUserId: '2', email: 'old2@example.com', emailVerified: true, password: BCRYPT.credential }),
      ].join('\n') + '\n');
      await idp.cli('users', 'import', file);
      const accounts = idp.admin.deps.accounts;
      const moved = (await accounts.findByLogin('old2@example.com'))!;
      await accounts.completeLegacyLogin(moved, await idp.admin.deps.hasher.hash(PASSWORD), { source: 'shop', scheme: 'bcrypt' });
      const status = await idp.admin.migrationStatus();
      expect(status.capped).to.equal(false);
      expect(status.sources.find((r) => r.source === 'shop')).to.deep.include({ accounts: 2, legacy: 1, migrated: 1, sunset: '2031-06-30T00:00:00.000Z' });
      const capped = await idp.admin.migrationStatus({ cap: 1 });
      expect(capped.capped).to.equal(true);
      const res = await agent.navigate(`${idp.issuer}/admin/migration`);
      expect(res.res.status).to.equal(200);
      const page = await res.res.text();
      expect(page).to.contain('id="migration-list"').and.contain('<code>shop</code>').and.contain('2031-06-30');
      expect(page).to.not.contain('old1@example.com').and.not.contain(String(BCRYPT.credential.hash));
    });

    it('shows a user\'s federated sign-ins and unlinks one (federation.unlinked with the admin as actor)', async () => {
      const key = { connection: 'corp', issuer: 'https://sso.corp.example', subject: 'upstream-sub-123' };
      await idp.admin.deps.accounts.linkFederated(userSub, { ...key, via: 'admin' });
      // a second one stays (the translation check below renders it)
      await idp.admin.deps.accounts.linkFederated(userSub, { ...key, subject: 'upstream-sub-456', via: 'admin' });
      const page = await (await agent.navigate(`${idp.issuer}/admin/users/${userSub}`)).res.text();
      expect(page).to.contain('id="user-federated"').and.contain('upstream-sub-123').and.contain('Corp SSO');
      const ref = new RegExp(`upstream-sub-123[\\s\\S]*?name="link" value="([^"]+)"`).exec(page)![1];
      const forged = await agent.navigate(`${idp.issuer}/admin/users/${userSub}/unlink`, { form: { csrf: 'nope', link: ref } });
      expect(forged.res.status).to.equal(403);
      expect((await idp.admin.getUser(userSub, { id: 'test' })).federated).to.have.length(2);
      const done = await agent.navigate(`${idp.issuer}/admin/users/${userSub}/unlink`, { form: { csrf, link: ref } });
      expect(done.url).to.contain('done=unlinked');
      expect(await done.res.text()).to.not.contain('upstream-sub-123');
      expect((await idp.admin.getUser(userSub, { id: 'test' })).federated.map((l) => l.subject)).to.deep.equal(['upstream-sub-456']);
      await idp.events.settled();
      const events = (await idp.events.query({ subject: userSub, type: 'federation.unlinked' })).items;
      expect(events).to.have.length(1);
      expect(events[0].data.actor).to.equal(adminSub);
      const again = await agent.navigate(`${idp.issuer}/admin/users/${userSub}/unlink`, { form: { csrf, link: ref } });
      expect(again.res.status).to.equal(404);
    });

    it('every console page is translated: fr and ar ask for no text the catalogues lack', async () => {
      const misses: string[] = [];
      const stop = onMissingTranslation((text, locale) => misses.push(`${locale}: ${text}`));
      try {
        for (const lang of ['fr', 'ar']) {
          for (const p of ['/admin', '/admin/users?q=joe%40example.com', `/admin/users/${userSub}`, `/admin/users/${userSub}?reveal=1`, '/admin/clients', '/admin/clients/new', '/admin/clients/app', '/admin/keys', '/admin/audit', '/admin/audit?from=nonsense',
            '/admin/connections', '/admin/resources', '/admin/migration']) {
            const res = await agent.request(`${idp.issuer}${p}`, { headers: { 'accept-language': lang } });
            const html = await res.text();
            expect(html, `${lang} ${p}`).to.contain(`<html lang="${lang}"`);
          }
          // a refused form, in the page's language
          const res = await agent.request(`${idp.issuer}/admin/users/${userSub}/password`, { method: 'POST', form: { csrf, password: 'short' }, headers: { 'accept-language': lang } });
          expect(res.status).to.equal(400);
        }
      } finally {
        stop();
      }
      expect(misses).to.deep.equal([]);
    });

    it('merges a duplicate into a user and undoes it (user.merged, user.unmerged with the admin as actor)', async () => {
      const keep = (await idp.cli('users', 'add', '--email', 'keep@example.com', '--password', PASSWORD, '--email-verified') as { sub: string }).sub;
      const dup = (await idp.cli('users', 'add', '--email', 'keep.dup@example.com', '--password', PASSWORD, '--email-verified') as { sub: string }).sub;
      const merged = await agent.navigate(`${idp.issuer}/admin/users/${keep}/merge`, { form: { csrf, from: dup } });
      expect(merged.url).to.contain('done=merged');
      const page = await merged.res.text();
      const mergeId = /action="\/admin\/merges\/([^/]+)\/undo"/.exec(page)?.[1];
      expect(mergeId, 'an undo form').to.be.a('string');
      const bad = await agent.navigate(`${idp.issuer}/admin/users/${keep}/merge`, { form: { csrf, from: 'no-such-user' } });
      expect(bad.res.status).to.equal(404);
      expect(await bad.res.text()).to.contain('id="form-error"');
      const undone = await agent.navigate(`${idp.issuer}/admin/merges/${mergeId}/undo`, { form: { csrf, sub: keep } });
      expect(undone.url).to.contain('done=unmerged');
      await idp.events.settled();
      const types = (await idp.events.query({ actor: adminSub, type: 'user.' })).items.map((e) => e.type);
      expect(types).to.include.members(['user.merged', 'user.unmerged']);
    });

    it('lists the keys and rotates them (key.rotated with the admin as actor)', async () => {
      const page = await (await agent.navigate(`${idp.issuer}/admin/keys`)).res.text();
      expect(page).to.contain('id="key-list"').and.contain('active');
      const done = await agent.navigate(`${idp.issuer}/admin/keys/rotate`, { form: { csrf, alg: 'ES256' } });
      expect(done.url).to.contain('done=rotated');
      expect(await done.res.text()).to.contain('>next<');
      await idp.events.settled();
      expect((await idp.events.query({ type: 'key.rotated', actor: adminSub })).items.length).to.be.above(0);
    });

    it('a console session ends after ADMIN_SESSION_IDLE_SECONDS (900) without a request, and when the role is taken away', async () => {
      // a session cookie as the console signs it (Koa's signed cookies: HMAC-SHA1 under the first cookie key)
      const session = (seenAgo: number, sub = adminSub) => {
        const t = Math.floor(Date.now() / 1000);
        const value = Buffer.from(JSON.stringify({ sub, at: t - seenAgo - 10, seen: t - seenAgo, csrf: 'x'.repeat(32) })).toString('base64url');
        const sig = crypto.createHmac('sha1', idp.keyring.cookieKeys()[0]).update(`idp.admin=${value}`).digest('base64').replace(/\/|\+|=/g, (x) => ({ '/': '_', '+': '-', '=': '' })[x]!);
        const ua = new UserAgent(idp.issuer);
        ua.jar.set('idp.admin', value);
        ua.jar.set('idp.admin.sig', sig);
        return ua;
      };
      expect((await session(60).request(`${idp.issuer}/admin/users`)).status).to.equal(200);
      const idle = await session(901).request(`${idp.issuer}/admin/users`);
      expect(idle.status).to.equal(303);
      expect(idle.headers.get('location')).to.match(/^\/admin\/login/);
      // a signed cookie of someone who is not (or no longer) an admin: 403
      expect((await session(60, userSub).request(`${idp.issuer}/admin/users`)).status).to.equal(403);
    });

    it('signing out ends the console session', async () => {
      const out = await agent.navigate(`${idp.issuer}/admin/logout`, { form: { csrf } });
      expect(out.res.status).to.equal(200);
      const next = await agent.request(`${idp.issuer}/admin/users`);
      expect(next.status).to.equal(303);
      expect(next.headers.get('location')).to.match(/^\/admin\/login/);
    });
  });
});
