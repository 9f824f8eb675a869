// Lockout through the real sign-in form over HTTP, against the running IdP
// (embedded dynalite). Client IPs come from X-Forwarded-For behind one trusted
// proxy. Limits here: 5 failures per account, 3 per (account, IP), 20 per IP.
import { expect } from 'chai';
import { startTestIdp, type TestIdp } from './support/idp.ts';
import {
  IpAgent, addClient, addUser, alertText, events, loginForm, outboxCount, post, signIn, succeeded, waitForCode,
} from './support/lockout.ts';
import { readForm } from './support/user-agent.ts';
import { TRY_LATER } from '../src/lockout/types.ts';
import { LoginFailed } from '../src/interactions/errors.ts';
import { SELF_SERVICE_MESSAGES } from '../src/lockout/self-service.ts';

const PASSWORD = 'a long and right passphrase 42';

describe('lockout over the sign-in form', function () {
  this.timeout(120_000);
  let idp: TestIdp;
  let n = 0;
  const ip = () => `198.51.100.${++n}`;

  before(async () => {
    idp = await startTestIdp({
      TRUST_PROXY_HOPS: '1', LOG_LEVEL: 'info',
      LOCKOUT_MAX_FAILURES: '5', LOCKOUT_ACCOUNT_IP_MAX_FAILURES: '3', LOCKOUT_IP_MAX_FAILURES: '20',
      LOCKOUT_WAIT_SECONDS: '600',
    });
    await addClient(idp);
  });

  after(async () => {
    await idp?.close();
  });

  const verifies = () => idp.lockout.hashCalls!.verify + idp.lockout.hashCalls!.dummyVerify;

  it('50 parallel wrong passwords lock the account for strangers; its known browser still signs in, and a new one needs a second factor, which lifts the lock', async () => {
    const email = 'victim@example.com';
    const sub = await addUser(idp, email, PASSWORD);

    // the owner signed in before from this browser: the device is known for the account
    const home = new IpAgent(idp.issuer, '192.0.2.10');
    expect(succeeded(await signIn(idp, home, email, PASSWORD))).to.equal(true);
    expect(home.hasDeviceCookie).to.equal(true);

    // the attack: 50 wrong passwords at once, from 50 addresses, on one interaction
    const attacker = new IpAgent(idp.issuer, ip());
    const form = await loginForm(idp, attacker);
    const before = verifies();
    const started = Date.now();
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => {
      attacker.ip = `203.0.113.${i + 1}`;
      return post(attacker, form.action, { ...form.fields, login: email, password: `wrong guess ${i}` });
    }));
    const ms = Date.now() - started;
    const statuses = results.map((r) => r.status);
    const checked = verifies() - before;
    console.log(`      50 parallel attempts in ${ms} ms: ${statuses.filter((s) => s === 401).length} before the lock (401), ${statuses.filter((s) => s === 429).length} on the locked account (429), ${checked} argon2 verifications`);
    // the first 5 count towards the lock; after it every password is still checked (a right one
    // leads to a second factor), and a wrong one is refused as on any locked account
    expect(statuses.filter((s) => s === 401)).to.have.length(5);
    expect(statuses.filter((s) => s === 429)).to.have.length(45);
    expect(checked, 'hashes run').to.equal(50);
    for (const r of results) expect(alertText(r.html)).to.equal(r.status === 401 ? LoginFailed.MESSAGE : TRY_LATER);
    expect(events(idp, 'login.failed').filter((e) => e.sub === sub && e.reason === 'bad_credentials'), 'failures').to.have.length(50);
    expect(events(idp, 'account.locked').filter((e) => e.sub === sub).map((e) => e.reason)).to.deep.equal(['account_threshold']);
    expect(await idp.lockout.guard.state(sub)).to.include({ locked: true, failures: 5, permanent: false });

    // the right password from a new address and browser: a second factor, not "try again later"
    const owner = new IpAgent(idp.issuer, ip());
    const challenged = await signIn(idp, owner, email, PASSWORD);
    expect(challenged.offsite, 'no code before the second factor').to.equal(undefined);
    expect(challenged.status).to.equal(200);
    expect(challenged.html).to.contain('Two-step verification');
    // no enrolment of an app here: whoever has the password could enrol one of their own
    expect(challenged.html).to.not.contain('/mfa/enrol');
    expect((await idp.lockout.guard.state(sub)).locked, 'still locked until the second factor').to.equal(true);
    const sent = outboxCount(idp, email);
    const send = readForm(challenged.html, 'mfa-send-email');
    const codeForm = await post(owner, send.action, send.fields);
    const code = await waitForCode(idp, email, 'login-code', 0);
    expect(outboxCount(idp, email)).to.equal(sent + 1);
    const wrong = readForm(codeForm.html, 'mfa-code');
    expect((await post(owner, wrong.action, { ...wrong.fields, otp: code === '000000' ? '111111' : '000000' })).status).to.equal(401);
    const done = await post(owner, wrong.action, { ...wrong.fields, otp: code });
    expect(succeeded(done), 'signed in after the second factor').to.equal(true);
    expect((await idp.lockout.guard.state(sub)).locked, 'the lock is lifted').to.equal(false);
    expect(events(idp, 'account.unlocked').filter((e) => e.sub === sub).map((e) => e.reason)).to.include('second_factor');
    // and this browser is known for the account from now on, as the owner's other one still is
    expect(succeeded(await signIn(idp, owner, email, PASSWORD))).to.equal(true);
    expect(succeeded(await signIn(idp, home, email, PASSWORD))).to.equal(true);
  });

  it('a known browser signs in while the account is locked by strangers', async () => {
    const email = 'homebody@example.com';
    await addUser(idp, email, PASSWORD);
    const home = new IpAgent(idp.issuer, '192.0.2.11');
    expect(succeeded(await signIn(idp, home, email, PASSWORD))).to.equal(true);
    await lock(email);
    expect(succeeded(await signIn(idp, home, email, PASSWORD))).to.equal(true);
  });

  it('per (account, IP): an address that failed 3 times is throttled for that account, others are not', async () => {
    const email = 'shared@example.com';
    const sub = await addUser(idp, email, PASSWORD);
    const bad = new IpAgent(idp.issuer, ip());
    for (let i = 0; i < 3; i++) expect((await signIn(idp, bad, email, `nope ${i}`)).status).to.equal(401);
    const fourth = await signIn(idp, bad, email, PASSWORD);
    expect(fourth.status).to.equal(429);
    expect(alertText(fourth.html)).to.equal(TRY_LATER);
    expect(events(idp, 'account.locked').filter((e) => e.sub === sub).map((e) => e.reason)).to.deep.equal(['account_ip_threshold']);
    expect(succeeded(await signIn(idp, new IpAgent(idp.issuer, ip()), email, PASSWORD))).to.equal(true);
  });

  it('per IP across accounts (credential stuffing): the 21st failure from one address is refused, unknown identifiers included', async () => {
    const stuffer = new IpAgent(idp.issuer, ip());
    const form = await loginForm(idp, stuffer);
    for (let i = 0; i < 20; i++) {
      const r = await post(stuffer, form.action, { ...form.fields, login: `nobody${i}@example.com`, password: `Summer2024!${i}` });
      expect(r.status, `attempt ${i + 1}`).to.equal(401);
    }
    const h0 = verifies();
    const r = await post(stuffer, form.action, { ...form.fields, login: 'nobody-else@example.com', password: 'x' });
    expect(r.status).to.equal(429);
    expect(alertText(r.html)).to.equal(TRY_LATER);
    expect(verifies() - h0).to.equal(0);
    expect(events(idp, 'ip.throttled').map((e) => e.reason)).to.include('ip_throttle');
    expect(idp.logs.some((l) => l.includes('"reason":"ip_throttle"') && l.includes('attempt refused by lockout'))).to.equal(true);
  });

  it('an unknown identifier locks like an account: the same answers, so a lock tells nothing', async () => {
    const outcomes: number[] = [];
    for (let i = 0; i < 6; i++) outcomes.push((await signIn(idp, new IpAgent(idp.issuer, ip()), 'ghost@example.com', `guess ${i}`)).status);
    expect(outcomes).to.deep.equal([401, 401, 401, 401, 401, 429]);
  });

  async function lock(email: string) {
    for (let i = 0; i < 5; i++) expect((await signIn(idp, new IpAgent(idp.issuer, ip()), email, `wrong ${i}`)).status).to.equal(401);
    // locked: a wrong password is refused, the right one asks for a second factor (no code without it)
    expect((await signIn(idp, new IpAgent(idp.issuer, ip()), email, 'still wrong')).status).to.equal(429);
    const right = await signIn(idp, new IpAgent(idp.issuer, ip()), email, PASSWORD);
    expect(right.offsite).to.equal(undefined);
    expect(right.html).to.contain('Two-step verification');
  }

  it('self-service unlock: an e-mailed code unlocks once; the page never says whether the account exists', async () => {
    const email = 'selfie@example.com';
    const sub = await addUser(idp, email, PASSWORD);
    await lock(email);

    const ua = new IpAgent(idp.issuer, ip());
    const login = await loginForm(idp, ua);
    const page = await ua.navigate(`/interaction/${login.uid}/unlock`);
    const pageHtml = await page.res.text();
    expect(pageHtml).to.contain('Unlock your account');
    const ask = readForm(pageHtml);

    // an unknown address gets the very same answer, and no message is sent
    const sentBefore = outboxCount(idp);
    const unknown = await post(ua, ask.action, { ...ask.fields, email: 'nobody-here@example.com' });
    expect(unknown.status).to.equal(200);
    expect(unknown.html).to.contain(SELF_SERVICE_MESSAGES.codeSent);

    const known = await post(ua, ask.action, { ...ask.fields, email });
    expect(known.status).to.equal(200);
    expect(known.html).to.contain(SELF_SERVICE_MESSAGES.codeSent);
    const strip = (h: string) => h.replace(/value="[^"]*"/g, '');
    expect(strip(known.html), 'same page for a known and an unknown address').to.equal(strip(unknown.html));
    const code = await waitForCode(idp, email, 'unlock-code');
    expect(code).to.match(/^\d{8}$/);
    expect(outboxCount(idp) - sentBefore, 'one message: to the account only').to.equal(1);

    const verify = readForm(known.html);
    const wrong = await post(ua, verify.action, { ...verify.fields, code: code === '00000000' ? '11111111' : '00000000' });
    expect(wrong.status).to.equal(401);
    expect(alertText(wrong.html)).to.equal(SELF_SERVICE_MESSAGES.badCode);

    const ok = await post(ua, verify.action, { ...verify.fields, code });
    expect(ok.status).to.equal(200);
    expect(ok.html).to.contain(SELF_SERVICE_MESSAGES.unlocked);
    expect(events(idp, 'account.unlocked').filter((e) => e.sub === sub).map((e) => e.reason)).to.deep.equal(['self_service']);

    // single use
    const again = await post(ua, verify.action, { ...verify.fields, code });
    expect(again.status).to.equal(401);
    expect(alertText(again.html)).to.equal(SELF_SERVICE_MESSAGES.badCode);

    expect(succeeded(await signIn(idp, new IpAgent(idp.issuer, ip()), email, PASSWORD))).to.equal(true);
  });

  it('a code allows few tries, even in parallel', async () => {
    const email = 'tries@example.com';
    await addUser(idp, email, PASSWORD);
    const ua = new IpAgent(idp.issuer, ip());
    const login = await loginForm(idp, ua);
    const ask = readForm(await (await ua.navigate(`/interaction/${login.uid}/unlock`)).res.text());
    const sent = await post(ua, ask.action, { ...ask.fields, email });
    const code = await waitForCode(idp, email, 'unlock-code');
    const verify = readForm(sent.html);
    const wrongs = Array.from({ length: 12 }, (_, i) => String((Number(code) + 1 + i) % 1e8).padStart(8, '0'));
    const results = await Promise.all(wrongs.map((c) => post(ua, verify.action, { ...verify.fields, code: c })));
    expect(results.every((r) => r.status === 401)).to.equal(true);
    // the 5 tries are used up: the right code no longer works
    const late = await post(ua, verify.action, { ...verify.fields, code });
    expect(late.status).to.equal(401);
  });

  it('admin unlock: idp users unlock --email and --sub', async () => {
    const email = 'admin-me@example.com';
    const sub = await addUser(idp, email, PASSWORD);
    await lock(email);
    const r = await idp.cli('users', 'unlock', '--email', email) as { sub: string; wasLocked: boolean; cleared: number };
    expect(r).to.include({ sub, wasLocked: true });
    expect(r.cleared).to.be.greaterThan(0);
    expect(succeeded(await signIn(idp, new IpAgent(idp.issuer, ip()), email, PASSWORD))).to.equal(true);

    await lock(email);
    expect(await idp.cli('users', 'unlock', '--sub', sub)).to.include({ sub, wasLocked: true });
    expect(succeeded(await signIn(idp, new IpAgent(idp.issuer, ip()), email, PASSWORD))).to.equal(true);
    expect(await idp.cli('users', 'unlock', '--sub', sub)).to.include({ wasLocked: false });
  });

  it('MFA codes (kind mfa) have their own counters; a device is known for MFA only after an MFA success from it', async () => {
    const email = 'twofactor@example.com';
    const sub = await addUser(idp, email, PASSWORD);
    const g = idp.lockout.guard;
    const home = 'home-device-0123456789abcdef';
    const thief = 'thief-device-0123456789abcdef';
    // a password success makes a device known for passwords only
    const pw = { kind: 'password' as const, ip: ip(), accountId: sub, deviceId: thief };
    expect(await g.check(pw)).to.deep.equal({ allowed: true });
    await g.succeeded(pw);
    const ok = { kind: 'mfa' as const, ip: ip(), accountId: sub, deviceId: home };
    expect(await g.check(ok)).to.deep.equal({ allowed: true });
    await g.succeeded(ok);
    // the thief's browser passed the password, so it is not known for MFA: the account's MFA counter (5) judges it
    for (let i = 0; i < 5; i++) {
      const a = { kind: 'mfa' as const, ip: ip(), accountId: sub, deviceId: thief };
      expect(await g.check(a)).to.deep.equal({ allowed: true });
      await g.failed(a);
    }
    const refused = await g.check({ kind: 'mfa', ip: ip(), accountId: sub, deviceId: thief });
    expect(refused).to.include({ allowed: false, reason: 'account_threshold' });
    // the owner's device, known for MFA, is judged by its own counter; passwords are not affected
    expect(await g.check({ kind: 'mfa', ip: ip(), accountId: sub, deviceId: home })).to.deep.equal({ allowed: true });
    expect(succeeded(await signIn(idp, new IpAgent(idp.issuer, ip()), email, PASSWORD))).to.equal(true);
    expect(await g.state(sub, 'mfa')).to.include({ locked: true, failures: 5 });
  });

  it('a right password ends the consecutive failures', async () => {
    const email = 'typo@example.com';
    const sub = await addUser(idp, email, PASSWORD);
    for (let i = 0; i < 2; i++) await signIn(idp, new IpAgent(idp.issuer, ip()), email, `typo ${i}`);
    expect((await idp.lockout.guard.state(sub)).failures).to.equal(2);
    expect(succeeded(await signIn(idp, new IpAgent(idp.issuer, ip()), email, PASSWORD))).to.equal(true);
    expect((await idp.lockout.guard.state(sub)).failures).to.equal(0);
  });
});
