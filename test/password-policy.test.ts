// The password policy: unit checks of src/passwords/policy.ts, then the pages
// that use it over HTTP against the running IdP: reset by e-mailed code,
// change with the current password, and the forced change of an expired one.
import { expect } from 'chai';
import { PasswordPolicy, POLICY_MESSAGES, contextWords } from '../src/passwords/policy.ts';
import { commonPasswords } from '../src/passwords/common-list.ts';
import { hashPassword, verifyArgon2 } from '../src/passwords/argon2id.ts';
import { SELF_SERVICE_MESSAGES } from '../src/lockout/self-service.ts';
import { LoginFailed } from '../src/interactions/errors.ts';
import { startTestIdp, type TestIdp } from './support/idp.ts';
import {
  IpAgent, addClient, addUser, alertText, events, loginForm, outboxCount, post, signIn, succeeded, waitForCode,
} from './support/lockout.ts';
import { readForm } from './support/user-agent.ts';

const OPTS = { minLength: 12, maxLength: 256, commonListSize: 100_000, history: 5 };
const P1 = 'first good passphrase 1917';
const P2 = 'second good passphrase 2024';

/** the text of every <p> inside the alert */
const problemsOf = (html: string) => [...(/<div class="alert"[^>]*>([\s\S]*?)<\/div>/.exec(html)?.[1] ?? '').matchAll(/<p>([\s\S]*?)<\/p>/g)]
  .map((m) => m[1].replace(/&#39;/g, "'").trim());

describe('password policy (unit)', () => {
  const policy = new PasswordPolicy(OPTS, verifyArgon2);

  it('loads the 100 000 most common passwords once, case-insensitively', async () => {
    const set = await commonPasswords(100_000);
    expect(set.size).to.be.greaterThan(95_000); // case variants of one password fold into one entry
    expect(set.has('07011963'), 'line 100 000').to.equal(true);
    expect(set.has('251125'), 'line 150 000').to.equal(false);
    expect(await commonPasswords(100_000)).to.equal(set);
  });

  it('refuses too short, too long and common passwords with a clear message', async () => {
    expect(await policy.problems('short one')).to.deep.equal([POLICY_MESSAGES.tooShort(12)]);
    expect(await policy.problems('x'.repeat(257))).to.deep.equal([POLICY_MESSAGES.tooLong(256)]);
    expect(await policy.problems('qwerty123456')).to.deep.equal([POLICY_MESSAGES.common]);
    expect(await policy.problems('QwErTy123456')).to.deep.equal([POLICY_MESSAGES.common]);
    expect(await policy.problems('1qaz2wsx3edc')).to.deep.equal([POLICY_MESSAGES.common]);
    // length counts code points: 12 emoji are 12 characters
    expect(await policy.problems('🔑'.repeat(12))).to.deep.equal([]);
    expect(await policy.problems(P1)).to.deep.equal([]);
  });

  it('refuses the e-mail address, its parts, the name and the phone number inside the password', async () => {
    const ctx = { email: 'rosa.parkinson@example.com', name: 'Rosa Parkinson', phone: '+447700900123' };
    expect(contextWords(ctx)).to.include.members(['rosa.parkinson@example.com', 'rosa.parkinson', 'rosa', 'parkinson', 'example', 'rosaparkinson', '7700900123'.slice(-7)]);
    for (const pw of ['rosa.parkinson@example.com!', 'I am Parkinson and I rule', 'my ROSA is blooming', 'call 0770 0900123 now!!', 'exampleexample99']) {
      expect(await policy.problems(pw, ctx), pw).to.deep.equal([POLICY_MESSAGES.personal]);
    }
    expect(await policy.problems('a totally unrelated phrase', ctx)).to.deep.equal([]);
  });

  it('refuses the current password and the ones in the history, not older ones', async () => {
    const p = new PasswordPolicy({ ...OPTS, history: 2 }, verifyArgon2);
    const [h0, h1, h2, h3] = await Promise.all(['zero pass phrase', 'one pass phrase', 'two pass phrase', 'three pass phrase'].map((x) => hashPassword(x)));
    expect(await p.reused('zero pass phrase', h0, [h1, h2, h3])).to.equal(true);
    expect(await p.reused('one pass phrase', h0, [h1, h2, h3])).to.equal(true);
    expect(await p.reused('two pass phrase', h0, [h1, h2, h3])).to.equal(true);
    expect(await p.reused('three pass phrase', h0, [h1, h2, h3]), 'beyond the history').to.equal(false);
  });
});

describe('password policy over HTTP: reset and change', function () {
  this.timeout(120_000);
  let idp: TestIdp;
  let n = 0;
  const ua = () => new IpAgent(idp.issuer, `198.51.100.${++n}`);

  before(async () => {
    idp = await startTestIdp({ TRUST_PROXY_HOPS: '1' });
    await addClient(idp);
  });

  after(async () => {
    await idp?.close();
  });

  it('reset by e-mailed code: refuses a short, a common, a personal and a reused password, then sets a good one once', async () => {
    const email = 'rosa@example.com';
    const sub = await addUser(idp, email, P1, 'Rosa Parkinson');
    const browser = ua();
    const login = await loginForm(idp, browser);
    expect(login.fields.csrf).to.be.a('string');
    const page = await browser.navigate(`/interaction/${login.uid}/reset`);
    const ask = readForm(await page.res.text());

    const before = outboxCount(idp);
    const unknown = await post(browser, ask.action, { ...ask.fields, email: 'nobody@example.com' });
    expect(unknown.html).to.contain(SELF_SERVICE_MESSAGES.codeSent);
    const sent = await post(browser, ask.action, { ...ask.fields, email });
    expect(sent.html).to.contain(SELF_SERVICE_MESSAGES.codeSent);
    const code = await waitForCode(idp, email, 'password-reset');
    expect(outboxCount(idp) - before).to.equal(1);
    const verify = readForm(sent.html);

    const attempt = (password: string, confirm = password, c = code) => post(browser, verify.action, { ...verify.fields, code: c, password, confirm });
    const cases: Array<[string, string]> = [
      ['short pw', POLICY_MESSAGES.tooShort(12)],
      ['qwerty123456', POLICY_MESSAGES.common],
      ['parkinson forever and ever', POLICY_MESSAGES.personal],
      [P1, POLICY_MESSAGES.reused],
    ];
    for (const [pw, message] of cases) {
      const r = await attempt(pw);
      expect(r.status, pw).to.equal(400);
      expect(problemsOf(r.html), pw).to.deep.equal([message]);
    }
    const mismatch = await attempt(P2, `${P2}!`);
    expect(problemsOf(mismatch.html)).to.deep.equal([POLICY_MESSAGES.mismatch]);
    // the code is needed before the policy says anything about the account
    const noCode = await attempt('parkinson forever and ever', 'parkinson forever and ever', '00000000');
    expect(noCode.status).to.equal(401);
    expect(alertText(noCode.html)).to.equal(SELF_SERVICE_MESSAGES.badCode);

    const ok = await attempt(P2);
    expect(ok.status).to.equal(200);
    expect(ok.html).to.contain(SELF_SERVICE_MESSAGES.passwordChanged);
    expect(events(idp, 'password.reset').filter((e) => e.sub === sub).map((e) => e.reason)).to.deep.equal(['reset']);
    // the code worked once
    const again = await attempt('third good passphrase 77');
    expect(again.status).to.equal(401);

    expect((await signIn(idp, ua(), email, P1)).status).to.equal(401);
    expect(succeeded(await signIn(idp, ua(), email, P2))).to.equal(true);
  });

  it('change with the current password signs in; changing back to a recent password is refused', async () => {
    const email = 'chang@example.com';
    await addUser(idp, email, P1, 'Chang Lee');
    const browser = ua();
    const open = async () => {
      const login = await loginForm(idp, browser);
      return readForm(await (await browser.navigate(`/interaction/${login.uid}/change`)).res.text());
    };
    let form = await open();
    const wrong = await post(browser, form.action, { ...form.fields, login: email, current: 'not my password', password: P2, confirm: P2 });
    expect(wrong.status).to.equal(401);
    expect(alertText(wrong.html)).to.equal(LoginFailed.MESSAGE);

    const ok = await post(browser, form.action, { ...form.fields, login: email, current: P1, password: P2, confirm: P2 });
    expect(succeeded(ok), 'signed in after the change').to.equal(true);

    form = await open();
    const back = await post(browser, form.action, { ...form.fields, login: email, current: P2, password: P1, confirm: P1 });
    expect(back.status).to.equal(400);
    expect(problemsOf(back.html)).to.deep.equal([POLICY_MESSAGES.reused]);
    expect(succeeded(await signIn(idp, ua(), email, P2))).to.equal(true);
  });
});

describe('password policy over HTTP: maximum age', function () {
  this.timeout(120_000);
  let idp: TestIdp;

  before(async () => {
    idp = await startTestIdp({ TRUST_PROXY_HOPS: '1', PASSWORD_MAX_AGE_SECONDS: '2' });
    await addClient(idp);
  });

  after(async () => {
    await idp?.close();
  });

  it('an expired password sends the user through a change at the next login', async () => {
    const email = 'old@example.com';
    const sub = await addUser(idp, email, P1, 'Olga Old');
    await new Promise((r) => setTimeout(r, 2200));
    const browser = new IpAgent(idp.issuer, '192.0.2.50');
    const first = await signIn(idp, browser, email, P1);
    expect(first.status).to.equal(200);
    expect(first.offsite).to.equal(undefined);
    expect(first.html).to.contain(SELF_SERVICE_MESSAGES.expired);
    const form = readForm(first.html);
    expect(form.action).to.match(/\/interaction\/[^/]+\/password$/);
    // its Cancel posts the abort form with the page's CSRF token
    const cancel = readForm(first.html, 'abort');
    expect(cancel.action).to.equal(form.action.replace(/\/password$/, '/abort'));
    expect(cancel.fields).to.deep.equal({ csrf: form.fields.csrf });

    const same = await post(browser, form.action, { ...form.fields, password: P1, confirm: P1 });
    expect(problemsOf(same.html)).to.deep.equal([POLICY_MESSAGES.reused]);
    const done = await post(browser, form.action, { ...form.fields, password: P2, confirm: P2 });
    expect(succeeded(done), 'the login completes after the change').to.equal(true);
    expect(events(idp, 'password.changed').filter((e) => e.sub === sub).map((e) => e.reason)).to.deep.equal(['expired']);

    // fresh now: straight through
    expect(succeeded(await signIn(idp, new IpAgent(idp.issuer, '192.0.2.51'), email, P2))).to.equal(true);
  });
});

describe('self-service page (views/form.ejs)', () => {
  it('escapes every value it shows', async () => {
    const { createViews } = await import('../src/http/views.ts');
    const X = '"><script>alert(1)</script>';
    const html = await createViews().page('form', {
      heading: X, text: X, error: X, errors: [X], notice: X, action: `/a${X}`, csrf: X, hidden: { email: X },
      fields: [{ name: 'code', label: X, type: 'text', value: X, hint: X }], submit: X, links: [{ href: `/b${X}`, text: X }],
      abortUrl: `/c${X}`,
    });
    expect(html).to.not.contain('<script>');
    expect(html).to.contain('&lt;script&gt;');
    expect(html).to.contain('name="csrf"');
    expect(html).to.match(/<form method="post" action="\/c&#34;&gt;&lt;script&gt;[^"]*" id="abort"/);
  });

  it('Cancel (abortUrl) is a POST form with the CSRF token, not a link', async () => {
    const { createViews } = await import('../src/http/views.ts');
    const html = await createViews().page('form', { heading: 'H', action: '/interaction/u/password', csrf: 'tok', abortUrl: '/interaction/u/abort', links: [] });
    const abort = /<form method="post" action="\/interaction\/u\/abort" id="abort"[^>]*>([\s\S]*?)<\/form>/.exec(html);
    expect(abort, 'the abort form').to.not.equal(null);
    expect(abort![1]).to.contain('<input type="hidden" name="csrf" value="tok">').and.match(/<button type="submit" class="link-button">Cancel<\/button>/);
    expect(html).to.not.match(/href="[^"]*abort/);
  });
});
