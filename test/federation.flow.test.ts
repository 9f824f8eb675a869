// Federation end to end: openid-client as our relying party, our IdP, and
// real oidc-provider instances on 127.0.0.2 as the upstream IdPs (a generic
// OP, Entra multi-tenant, a second generic OP). Two user agents carry the
// browser's cookies, one per host, and hand redirects to each other. Covers
// sign-in by button, home-realm discovery and hints, just-in-time accounts,
// Entra's tenant allow-list and identity key, linking by proof (password or
// e-mailed code, bound to one interaction), the takeover attempts, the
// errors (none a 500), MFA and lockout after the upstream, the account page's
// links, and upstream logout.
import path from 'node:path';
import crypto from 'node:crypto';
import { expect } from 'chai';
import * as oidc from 'openid-client';
import { startTestIdp, type TestIdp } from './support/idp.ts';
import { UserAgent, readForm } from './support/user-agent.ts';
import { startUpstream, type Upstream } from './support/upstream.ts';
import { redirectUriFor } from '../src/federation/connections.ts';
import type { ConnectionInput } from '../src/federation/types.ts';
import { readOutbox } from '../src/events/messages.ts';

const REDIRECT = 'https://rp.example.test/cb';
const POST_LOGOUT = 'https://rp.example.test/bye';
const SECRET = 'rp-secret-0123456789abcdef0123456789';
const LOCAL_PASSWORD = 'correct horse battery staple 42';
const TENANT_A = '11111111-1111-4111-8111-111111111111';
const TENANT_B = '22222222-2222-4222-8222-222222222222';
const guid = () => crypto.randomUUID();

interface Outcome {
  /** where the IdP sent the browser last: the RP (offsite) or an IdP page */
  offsite?: string;
  res: Response;
  html: string;
  url: string;
}

describe('federation: sign-in through upstream IdPs', function () {
  this.timeout(60_000);
  let idp: TestIdp;
  let rp: oidc.Configuration;
  let corp: Upstream;
  let entra: Upstream;
  let other: Upstream;

  const events = () => idp.delivered();
  const outbox = () => readOutbox(path.join(idp.env.DATA_DIR, 'outbox.jsonl')).map((m) => m.data);

  async function addConnection(input: Partial<ConnectionInput> & { id: string }) {
    await idp.federation.connections.add({ name: input.id, clientId: 'our-idp', clientSecret: 'upstream-secret-0123456789abcdef', ...input } as ConnectionInput);
  }

  before(async () => {
    idp = await startTestIdp({ MFA_POLICY: 'off' });
    const callback = (id: string) => redirectUriFor(idp.issuer, id);
    const client = (ids: string[]) => ({ client_id: 'our-idp', client_secret: 'upstream-secret-0123456789abcdef', redirect_uris: ids.map(callback), post_logout_redirect_uris: [`${idp.issuer}/federation/logout`] });
    corp = await startUpstream({ kind: 'oidc', clients: [client(['corp', 'corp-b', 'corp-mfa'])] });
    other = await startUpstream({ kind: 'oidc', clients: [client(['other'])] });
    entra = await startUpstream({ kind: 'entra', clients: [client(['entra'])] });
    // the operator's command, with the flags: it checks the issuer's discovery document before it saves
    const added = await idp.cli('connections', 'add', '--id', 'corp', '--name', 'Corp', '--issuer', corp.issuer, '--client-id', 'our-idp',
      '--client-secret', 'upstream-secret-0123456789abcdef', '--domains', 'corp.example,corp.test', '--linking', 'prove', '--allow-signup', '--upstream-logout') as { redirectUri: string };
    expect(added.redirectUri).to.equal(callback('corp'));
    await addConnection({ id: 'corp-mfa', name: 'Corp (MFA trusted)', kind: 'oidc', issuer: corp.issuer, discoveryUrl: corp.discoveryUrl, hidden: true, allowSignup: true, trustUpstreamMfa: true });
    await addConnection({ id: 'corp-b', name: 'Corp B', kind: 'oidc', issuer: corp.issuer, discoveryUrl: corp.discoveryUrl, hidden: true, allowSignup: false, linking: 'prove' });
    await addConnection({ id: 'other', name: 'Other', kind: 'oidc', issuer: other.issuer, discoveryUrl: other.discoveryUrl, allowSignup: true, linking: 'prove' });
    await addConnection({
      id: 'entra', name: 'Contoso (Entra ID)', kind: 'entra', issuer: entra.issuer, discoveryUrl: entra.discoveryUrl,
      tenants: [TENANT_A], allowSignup: true, linking: 'verified-email', trustEmailVerified: true,
    });
    await idp.cli('clients', 'add', '--id', 'webapp', '--secret', SECRET, '--name', 'Web App', '--redirect-uri', REDIRECT, '--post-logout-redirect-uri', POST_LOGOUT);
    await idp.cli('clients', 'add', '--id', 'strict', '--secret', SECRET, '--name', 'Strict App', '--redirect-uri', REDIRECT, '--mfa-policy', 'required');
    rp = await oidc.discovery(new URL(idp.issuer), 'webapp', SECRET, undefined, { execute: [oidc.allowInsecureRequests] });
  });

  after(async () => {
    await Promise.all([corp?.close(), other?.close(), entra?.close()]);
    await idp?.close();
  });

  async function authorize(extra: Record<string, string> = {}, config = rp) {
    const verifier = oidc.randomPKCECodeVerifier();
    const nonce = oidc.randomNonce();
    const state = oidc.randomState();
    const url = oidc.buildAuthorizationUrl(config, {
      redirect_uri: REDIRECT, scope: 'openid email profile', nonce, state,
      code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256', ...extra,
    });
    return { url, verifier, nonce, state };
  }

  async function page(ua: UserAgent, url: string, init: { form?: Record<string, string> } = {}): Promise<Outcome> {
    const step = await ua.navigate(url, init);
    return { offsite: step.offsite, res: step.res, html: step.offsite ? '' : await step.res.text(), url: step.url };
  }

  /** the upstream's sign-in page: type the user's e-mail; returns where the upstream sends the browser back (our callback) */
  async function upstreamSignIn(up: UserAgent, authorizeUrl: string, email: string): Promise<string> {
    const first = await up.navigate(authorizeUrl);
    if (first.offsite) return first.offsite; // an error answered at once
    const html = await first.res.text();
    const form = readForm(html);
    const done = await up.navigate(form.action, { form: { ...form.fields, login: email } });
    expect(done.offsite, `upstream redirects back (got ${done.res.status})`).to.be.a('string');
    return done.offsite!;
  }

  /** RP → our login page → button → upstream sign-in → our callback → whatever comes next at our IdP */
  async function viaButton(connection: string, email: string, upstreamOrigin: string, extra: Record<string, string> = {}) {
    const ua = new UserAgent(idp.issuer);
    const up = new UserAgent(upstreamOrigin);
    const auth = await authorize(extra);
    const login = await page(ua, auth.url.href);
    expect(login.res.status).to.equal(200);
    const form = readForm(login.html);
    const toUpstream = await page(ua, form.action, { form: { csrf: form.fields.csrf, method: 'federation', connection } });
    expect(toUpstream.offsite, 'sent to the upstream').to.be.a('string');
    const back = await upstreamSignIn(up, toUpstream.offsite!, email);
    const after = await page(ua, back);
    return { ua, up, auth, after, back };
  }

  /** consent if asked, then the RP redeems the code */
  async function finish(ua: UserAgent, auth: Awaited<ReturnType<typeof authorize>>, after: Outcome, config = rp) {
    let out = after;
    if (!out.offsite && /wants to/.test(out.html)) {
      const consent = readForm(out.html);
      out = await page(ua, consent.action, { form: consent.fields });
    }
    expect(out.offsite, `back at the RP (status ${out.res.status}): ${out.html.slice(0, 400)}`).to.match(/^https:\/\/rp\.example\.test\/cb\?/);
    return oidc.authorizationCodeGrant(config, new URL(out.offsite!), { pkceCodeVerifier: auth.verifier, expectedState: auth.state, expectedNonce: auth.nonce });
  }

  describe('login page', () => {
    it('shows a button per visible connection, not for hidden ones, and leaves the password optional for home-realm discovery', async () => {
      const ua = new UserAgent(idp.issuer);
      const { url } = await authorize();
      const login = await page(ua, url.href);
      expect(login.html).to.contain('Continue with Corp').and.contain('Continue with Contoso (Entra ID)');
      expect(login.html).to.not.contain('Continue with Corp B');
      expect(login.html).to.match(/name="password"[^>]*>/);
      expect(/<input id="password"[^>]*>/.exec(login.html)![0]).to.not.contain('required');
    });
  });

  describe('just-in-time accounts', () => {
    it('a first sign-in creates an account (provenance federated:corp); the RP gets OUR sub; the next sign-in finds the same account', async () => {
      corp.users.set('new.hire@corp.example', { email: 'new.hire@corp.example', email_verified: true, name: 'New Hire' });
      const first = await viaButton('corp', 'new.hire@corp.example', corp.origin);
      const tokens = await finish(first.ua, first.auth, first.after);
      const claims = tokens.claims()!;
      expect(claims.sub).to.match(/^[0-9a-f-]{36}$/);
      expect(claims.amr).to.include('fed');
      const created = (await events()).find((e) => e.type === 'user.created' && e.sub === claims.sub);
      expect(created?.data?.provenance).to.equal('federated:corp');
      expect((await events()).some((e) => e.type === 'federation.login' && e.sub === claims.sub)).to.equal(true);
      const again = await viaButton('corp', 'new.hire@corp.example', corp.origin);
      const tokens2 = await finish(again.ua, again.auth, again.after);
      expect(tokens2.claims()!.sub).to.equal(claims.sub);
      // the upstream's subject is not ours, and the e-mail came along, verified as the upstream said
      const userinfo = await oidc.fetchUserInfo(rp, tokens2.access_token, claims.sub);
      expect(userinfo.email).to.equal('new.hire@corp.example');
    });
  });

  describe('Entra ID, multi-tenant', () => {
    it('signs in a user of an allowed tenant (issuer from the {tenantid} template; key tid+oid), and refuses a tenant not on the allow-list', async () => {
      const oid = guid();
      entra.users.set('ana@contoso.example', { email: 'ana@contoso.example', tid: TENANT_A, oid, xms_edov: true, name: 'Ana' });
      const ok = await viaButton('entra', 'ana@contoso.example', entra.origin);
      const tokens = await finish(ok.ua, ok.auth, ok.after);
      const sub = tokens.claims()!.sub;
      expect(sub).to.not.equal(oid);
      expect(sub).to.match(/^[0-9a-f-]{36}$/);
      // the same person with a changed e-mail is still the same account: the key is tid+oid
      entra.users.set('ana@contoso.example', { email: 'ana@contoso.example', tid: TENANT_A, oid, xms_edov: true, name: 'Ana Renamed', preferred_username: 'ana.renamed@contoso.example' });
      const again = await viaButton('entra', 'ana@contoso.example', entra.origin);
      expect((await finish(again.ua, again.auth, again.after)).claims()!.sub).to.equal(sub);

      entra.users.set('bo@fabrikam.example', { email: 'bo@fabrikam.example', tid: TENANT_B, oid: guid(), xms_edov: true });
      const refused = await viaButton('entra', 'bo@fabrikam.example', entra.origin);
      expect(refused.after.res.status).to.equal(403);
      expect(refused.after.html).to.contain('cannot sign in here').and.contain('Back to sign-in');
      expect(idp.logs.some((l) => /"reason":"tenant"/.test(l) && /"requestId"/.test(l))).to.equal(true);
    });
  });

  describe('home-realm discovery and hints', () => {
    it('an e-mail typed into the login field whose domain a connection serves goes straight to that IdP (no password)', async () => {
      const ua = new UserAgent(idp.issuer);
      const { url } = await authorize();
      const login = await page(ua, url.href);
      const form = readForm(login.html);
      const next = await page(ua, form.action, { form: { ...form.fields, login: 'someone@corp.example', password: '' } });
      expect(next.offsite).to.be.a('string');
      const to = new URL(next.offsite!);
      expect(to.origin).to.equal(corp.origin);
      expect(to.searchParams.get('login_hint')).to.equal('someone@corp.example');
      expect(to.searchParams.get('code_challenge_method')).to.equal('S256');
      expect(to.searchParams.get('redirect_uri')).to.equal(redirectUriFor(idp.issuer, 'corp'));
    });

    it('login_hint of a served domain, and idp_hint naming a connection (hidden ones too), skip the login page', async () => {
      const ua = new UserAgent(idp.issuer);
      const byLogin = await page(ua, (await authorize({ login_hint: 'x@corp.example' })).url.href);
      expect(new URL(byLogin.offsite!).origin).to.equal(corp.origin);
      const byIdp = await page(new UserAgent(idp.issuer), (await authorize({ idp_hint: 'corp-b' })).url.href);
      expect(new URL(byIdp.offsite!).searchParams.get('redirect_uri')).to.equal(redirectUriFor(idp.issuer, 'corp-b'));
      const unknown = await page(new UserAgent(idp.issuer), (await authorize({ idp_hint: 'nope' })).url.href);
      expect(unknown.res.status).to.equal(200);
      expect(unknown.html).to.contain('name="password"');
    });
  });

  describe('linking (prove)', () => {
    let adaSub: string;
    before(async () => {
      const r = await idp.cli('users', 'add', '--email', 'ada@corp.example', '--password', LOCAL_PASSWORD, '--name', 'Ada', '--email-verified') as { sub: string };
      adaSub = r.sub;
    });

    it('gives no tokens for the local account until its password is given; a wrong password does not link', async () => {
      corp.users.set('ada@corp.example', { email: 'ada@corp.example', email_verified: true, sub: 'corp-ada' });
      const r = await viaButton('corp', 'ada@corp.example', corp.origin);
      expect(r.after.offsite, 'no redirect to the RP before the proof').to.equal(undefined);
      expect(r.after.html).to.contain('Link your account').and.contain('a•••@corp.example');
      const pw = readForm(r.after.html, 'link-password');
      const wrong = await page(r.ua, pw.action, { form: { ...pw.fields, password: 'not the password 123' } });
      expect(wrong.res.status).to.equal(401);
      expect(wrong.offsite).to.equal(undefined);
      const right = await page(r.ua, pw.action, { form: { ...readForm(wrong.html, 'link-password').fields, password: LOCAL_PASSWORD } });
      const tokens = await finish(r.ua, r.auth, right);
      expect(tokens.claims()!.sub).to.equal(adaSub);
      expect(tokens.claims()!.amr).to.include.members(['fed', 'pwd']);
      expect((await events()).some((e) => e.type === 'federation.linked' && e.sub === adaSub && e.data?.via === 'prove')).to.equal(true);
      // linked now: the next upstream sign-in goes straight through
      const again = await viaButton('corp', 'ada@corp.example', corp.origin);
      expect((await finish(again.ua, again.auth, again.after)).claims()!.sub).to.equal(adaSub);
    });

    it('an e-mailed code proves the account too; a code from one interaction does not work in another', async () => {
      await idp.cli('users', 'add', '--email', 'cy@corp.example', '--password', LOCAL_PASSWORD, '--email-verified');
      corp.users.set('cy@corp.example', { email: 'cy@corp.example', email_verified: true, sub: 'corp-cy' });
      const a = await viaButton('corp', 'cy@corp.example', corp.origin);
      const b = await viaButton('corp', 'cy@corp.example', corp.origin);
      expect(a.after.html).to.contain('Link your account');
      expect(b.after.html).to.contain('Link your account');
      const send = readForm(a.after.html, 'link-send');
      const sent = await page(a.ua, send.action, { form: send.fields });
      expect(sent.html).to.contain('We sent a 6-digit code');
      const code = /\b(\d{6})\b/.exec(outbox().filter((m) => m.to === 'cy@corp.example' && m.template === 'link-code').at(-1)!.text)![1];
      // interaction B (its own cookies and CSRF token) cannot use A's code: B never asked for one
      const bSend = readForm(b.after.html, 'link-send');
      const bCodeAction = bSend.action.replace(/\/send$/, '/code');
      const stolen = await page(b.ua, bCodeAction, { form: { csrf: bSend.fields.csrf, code } });
      expect(stolen.res.status).to.equal(401);
      // nor can A's form be posted with B's cookies
      const cross = await page(b.ua, readForm(sent.html, 'link-code').action, { form: { ...readForm(sent.html, 'link-code').fields, code } });
      expect(cross.res.status).to.be.oneOf([400, 403]);
      const ok = await page(a.ua, readForm(sent.html, 'link-code').action, { form: { ...readForm(sent.html, 'link-code').fields, code } });
      const tokens = await finish(a.ua, a.auth, ok);
      expect(tokens.claims()!.amr).to.include('email');
    });
  });

  describe('operator CLI', () => {
    it('idp connections links lists a user\'s links; unlink removes one, and the next sign-in must prove the account again', async () => {
      const sub = (await idp.cli('users', 'add', '--email', 'op@corp.example', '--password', LOCAL_PASSWORD, '--email-verified') as { sub: string }).sub;
      corp.users.set('op@corp.example', { email: 'op@corp.example', email_verified: true, sub: 'corp-op' });
      const r = await viaButton('corp', 'op@corp.example', corp.origin);
      const pw = readForm(r.after.html, 'link-password');
      await finish(r.ua, r.auth, await page(r.ua, pw.action, { form: { ...pw.fields, password: LOCAL_PASSWORD } }));
      const links = await idp.cli('connections', 'links', '--sub', sub) as Array<{ connection: string; subject: string; via: string }>;
      expect(links).to.have.length(1);
      expect(links[0]).to.include({ connection: 'corp', subject: 'corp-op', via: 'prove' });
      const refused = await idp.cli('connections', 'unlink', '--sub', sub, '--connection', 'other').then(() => undefined, (err: Error) => err);
      expect(refused?.message).to.match(/no link to connection other/);
      expect(await idp.cli('connections', 'unlink', '--sub', sub, '--connection', 'corp')).to.include({ removed: 1 });
      expect(await idp.cli('connections', 'links', '--sub', sub)).to.deep.equal([]);
      expect((await events()).some((e) => e.type === 'federation.unlinked' && e.sub === sub && e.data?.by === 'operator')).to.equal(true);
      const again = await viaButton('corp', 'op@corp.example', corp.origin);
      expect(again.after.html).to.contain('Link your account');
    });
  });

  describe('takeover attempts', () => {
    let victim: string;
    before(async () => {
      victim = (await idp.cli('users', 'add', '--email', 'victim@example.org', '--password', LOCAL_PASSWORD, '--email-verified') as { sub: string }).sub;
    });

    it('an upstream account with an UNVERIFIED e-mail equal to a local user\'s never reaches that account', async () => {
      other.users.set('victim@example.org', { email: 'victim@example.org', email_verified: false, sub: 'attacker-1' });
      const r = await viaButton('other', 'victim@example.org', other.origin);
      const tokens = await finish(r.ua, r.auth, r.after);
      expect(tokens.claims()!.sub).to.not.equal(victim);
      const info = await oidc.fetchUserInfo(rp, tokens.access_token, tokens.claims()!.sub);
      expect(info.email_verified).to.equal(false);
      // and the victim's password login still leads to the victim
      expect((await events()).some((e) => e.type === 'federation.linked' && e.sub === victim)).to.equal(false);
    });

    it('an Entra user whose email was changed to a local user\'s address (no xms_edov) is not linked to it', async () => {
      entra.users.set('victim@example.org', { email: 'victim@example.org', tid: TENANT_A, oid: guid(), xms_edov: false });
      const r = await viaButton('entra', 'victim@example.org', entra.origin);
      const tokens = await finish(r.ua, r.auth, r.after);
      expect(tokens.claims()!.sub).to.not.equal(victim);
    });

    it('a second connection asserting the same sub gets no access to the first connection\'s account', async () => {
      corp.users.set('shared@corp.example', { email: 'shared@corp.example', email_verified: true, sub: 'same-sub-42' });
      const first = await viaButton('corp', 'shared@corp.example', corp.origin);
      const sub = (await finish(first.ua, first.auth, first.after)).claims()!.sub;
      other.users.set('someone@else.example', { email: 'someone@else.example', email_verified: true, sub: 'same-sub-42' });
      const second = await viaButton('other', 'someone@else.example', other.origin);
      expect((await finish(second.ua, second.auth, second.after)).claims()!.sub).to.not.equal(sub);
    });

    it('a response from upstream A delivered to connection B\'s callback is refused (mix-up)', async () => {
      corp.users.set('mix@corp.example', { email: 'mix@corp.example', email_verified: true });
      const ua = new UserAgent(idp.issuer);
      const up = new UserAgent(corp.origin);
      const auth = await authorize();
      const login = await page(ua, auth.url.href);
      const form = readForm(login.html);
      const toUpstream = await page(ua, form.action, { form: { csrf: form.fields.csrf, method: 'federation', connection: 'corp' } });
      const back = new URL(await upstreamSignIn(up, toUpstream.offsite!, 'mix@corp.example'));
      back.pathname = '/federation/other/callback';
      const r = await page(ua, back.href);
      expect(r.res.status).to.equal(400);
      expect(r.html).to.contain('different sign-in service');
      expect(idp.logs.some((l) => /"reason":"mixup"/.test(l))).to.equal(true);
    });
  });

  describe('errors end on our error page (none a 500), or as an OAuth error at the RP', () => {
    async function startAt(connection: string) {
      const ua = new UserAgent(idp.issuer);
      const auth = await authorize();
      const login = await page(ua, auth.url.href);
      const form = readForm(login.html);
      return { ua, auth, form, go: () => page(ua, form.action, { form: { csrf: form.fields.csrf, method: 'federation', connection } }) };
    }

    it('access_denied and login_required from upstream: error page with the way back; giving up sends access_denied to the RP', async () => {
      for (const error of ['access_denied', 'login_required'] as const) {
        const s = await startAt('corp');
        corp.failNext(error);
        const out = await s.go();
        const back = await upstreamSignIn(new UserAgent(corp.origin), out.offsite!, 'x@corp.example');
        const r = await page(s.ua, back);
        expect(r.res.status, error).to.equal(403);
        expect(r.html).to.contain('Back to sign-in');
        // back to sign-in, then Cancel: the RP gets a proper OAuth error
        const href = /href="(\/interaction\/[^"]+)"/.exec(r.html)![1];
        const again = await page(s.ua, href);
        const abort = readForm(again.html, 'abort');
        const rpGot = await page(s.ua, abort.action, { form: abort.fields });
        expect(new URL(rpGot.offsite!).searchParams.get('error')).to.equal('access_denied');
      }
    });

    it('an unreachable upstream: 502 error page, bounded in time, logged with its reason', async () => {
      await addConnection({ id: 'dead', name: 'Dead', kind: 'oidc', issuer: 'http://127.0.0.2:9/', discoveryUrl: 'http://127.0.0.2:9/.well-known/openid-configuration', hidden: true });
      const s = await startAt('dead');
      const t0 = Date.now();
      const r = await s.go();
      expect(r.res.status).to.equal(502);
      expect(Date.now() - t0).to.be.lessThan(15_000);
      expect(r.html).to.contain('Back to sign-in').and.not.contain('Error:').and.not.contain(' at ');
      expect(idp.logs.some((l) => /"event":"federation.failed"/.test(l) && /"reason":"(unreachable|discovery)"/.test(l))).to.equal(true);
    });

    it('a callback without this browser\'s state, a replayed callback, and a forged state: 400, nothing signed in', async () => {
      corp.users.set('st@corp.example', { email: 'st@corp.example', email_verified: true });
      const s = await startAt('corp');
      const out = await s.go();
      const back = await upstreamSignIn(new UserAgent(corp.origin), out.offsite!, 'st@corp.example');
      // another browser (no state cookie) opens the callback URL
      const stranger = await page(new UserAgent(idp.issuer), back);
      expect(stranger.res.status).to.equal(400);
      const forged = new URL(back);
      forged.searchParams.set('state', 'forged');
      expect((await page(s.ua, forged.href)).res.status).to.equal(400);
      // the real one works once, not twice
      const ok = await page(s.ua, back);
      expect(ok.res.status).to.be.lessThan(500);
      const replay = await page(s.ua, back);
      expect(replay.res.status).to.equal(400);
    });
  });

  describe('after the upstream', () => {
    it('our MFA policy still applies (a client with mfa_policy=required asks for the second step)', async () => {
      corp.users.set('mfa@corp.example', { email: 'mfa@corp.example', email_verified: true });
      const strict = await oidc.discovery(new URL(idp.issuer), 'strict', SECRET, undefined, { execute: [oidc.allowInsecureRequests] });
      const ua = new UserAgent(idp.issuer);
      const auth = await authorize({}, strict);
      const login = await page(ua, auth.url.href);
      const form = readForm(login.html);
      const out = await page(ua, form.action, { form: { csrf: form.fields.csrf, method: 'federation', connection: 'corp' } });
      const back = await upstreamSignIn(new UserAgent(corp.origin), out.offsite!, 'mfa@corp.example');
      const r = await page(ua, back);
      expect(r.url).to.match(/\/mfa$/);
      expect(r.offsite).to.equal(undefined);
    });

    it('an upstream MFA counts only where the connection trusts it', async () => {
      corp.users.set('strong@corp.example', { email: 'strong@corp.example', email_verified: true, amr: ['pwd', 'otp', 'mfa'] });
      const strict = await oidc.discovery(new URL(idp.issuer), 'strict', SECRET, undefined, { execute: [oidc.allowInsecureRequests] });
      const ua = new UserAgent(idp.issuer);
      const auth = await authorize({}, strict);
      const login = await page(ua, auth.url.href);
      const form = readForm(login.html);
      const out = await page(ua, form.action, { form: { csrf: form.fields.csrf, method: 'federation', connection: 'corp-mfa' } });
      const back = await upstreamSignIn(new UserAgent(corp.origin), out.offsite!, 'strong@corp.example');
      const tokens = await finish(ua, auth, await page(ua, back), strict);
      expect(tokens.claims()!.acr).to.equal('urn:idp:acr:mfa');
      expect(tokens.claims()!.amr).to.include.members(['fed', 'mfa']);
    });

    it('a connection\'s role mapping gives its users roles from their upstream groups, set again at each sign-in', async () => {
      await idp.cli('roles', 'add', '--name', 'engineer', '--permissions', 'repo:write');
      await idp.cli('connections', 'update', '--id', 'corp', '--role-claim', 'groups', '--role-map', 'eng=engineer', '--role-map', 'ops=engineer,operator');
      expect((await idp.cli('connections', 'show', '--id', 'corp') as { roleMapping?: unknown }).roleMapping).to.deep.equal({ claim: 'groups', values: { eng: ['engineer'], ops: ['engineer', 'operator'] } });
      idp.federation.connections.forget(); // the CLI is another store: the server would see it within 10 s
      corp.users.set('dev@corp.example', { email: 'dev@corp.example', email_verified: true, groups: ['eng', 'other'] });
      const r = await viaButton('corp', 'dev@corp.example', corp.origin, { scope: 'openid email roles' });
      const tokens = await finish(r.ua, r.auth, r.after);
      expect(tokens.claims()!.roles).to.deep.equal(['engineer']);
      expect(tokens.claims()!.permissions).to.deep.equal(['repo:write']);
      // the upstream drops the group: the next sign-in drops the role
      corp.users.set('dev@corp.example', { email: 'dev@corp.example', email_verified: true, groups: [] });
      const again = await viaButton('corp', 'dev@corp.example', corp.origin, { scope: 'openid email roles' });
      expect((await finish(again.ua, again.auth, again.after)).claims()!.roles ?? []).to.deep.equal([]);
      await idp.cli('connections', 'update', '--id', 'corp', '--role-claim', '');
      idp.federation.connections.forget();
    });

    it('an interaction that is gone when the browser comes back: an error page, no tokens, no 500', async () => {
      corp.users.set('late@corp.example', { email: 'late@corp.example', email_verified: true });
      const ua = new UserAgent(idp.issuer);
      const auth = await authorize();
      const login = await page(ua, auth.url.href);
      const form = readForm(login.html);
      const out = await page(ua, form.action, { form: { csrf: form.fields.csrf, method: 'federation', connection: 'corp' } });
      const back = await upstreamSignIn(new UserAgent(corp.origin), out.offsite!, 'late@corp.example');
      for (const name of [...ua.jar.keys()]) if (name.startsWith('idp.interaction')) ua.jar.delete(name);
      const r = await page(ua, back);
      expect(r.offsite).to.equal(undefined);
      expect(r.res.status).to.be.within(400, 499);
      expect(r.html).to.contain('Something went wrong').and.not.contain(' at ');
    });

    it('an account locked by strangers\' failures gets no tokens through the upstream without a second factor, which lifts the lock', async () => {
      corp.users.set('locked@corp.example', { email: 'locked@corp.example', email_verified: true });
      const first = await viaButton('corp', 'locked@corp.example', corp.origin);
      const sub = (await finish(first.ua, first.auth, first.after)).claims()!.sub;
      const g = idp.lockout.guard;
      for (let i = 0; i < 12; i++) {
        const a = { kind: 'password' as const, ip: `10.0.0.${i}`, accountId: sub };
        await g.check(a);
        await g.failed(a);
      }
      expect((await g.state(sub)).locked).to.equal(true);
      const r = await viaButton('corp', 'locked@corp.example', corp.origin);
      expect(r.after.offsite, 'no code without the second factor').to.equal(undefined);
      expect(r.after.url).to.match(/\/mfa$/);
      expect(r.after.html).to.not.contain('/mfa/enrol');
      const send = readForm(r.after.html, 'mfa-send-email');
      const sent = await page(r.ua, send.action, { form: send.fields });
      const code = /\b(\d{6})\b/.exec(outbox().filter((m) => m.to === 'locked@corp.example' && m.template === 'login-code').at(-1)!.text)![1];
      const form = readForm(sent.html, 'mfa-code');
      const tokens = await finish(r.ua, r.auth, await page(r.ua, form.action, { form: { ...form.fields, otp: code } }));
      expect(tokens.claims()!.sub).to.equal(sub);
      expect((await g.state(sub)).locked).to.equal(false);
    });
  });

  describe('account page and logout', () => {
    it('lists linked sign-ins; removes one, but not the only way into an account without a password', async () => {
      corp.users.set('page@corp.example', { email: 'page@corp.example', email_verified: true, sub: 'corp-page' });
      const r = await viaButton('corp', 'page@corp.example', corp.origin);
      await finish(r.ua, r.auth, r.after);
      const only = await page(r.ua, '/account');
      expect(only.html).to.contain('Sign-ins from other services').and.contain('Corp').and.contain('your only way to sign in');
      expect(only.html).to.not.contain('/account/links/remove');

      // an account with a password, linked by proof: its link can go
      const sub = (await idp.cli('users', 'add', '--email', 'rm@corp.example', '--password', LOCAL_PASSWORD, '--email-verified') as { sub: string }).sub;
      corp.users.set('rm@corp.example', { email: 'rm@corp.example', email_verified: true, sub: 'corp-rm' });
      const l = await viaButton('corp', 'rm@corp.example', corp.origin);
      const pw = readForm(l.after.html, 'link-password');
      await finish(l.ua, l.auth, await page(l.ua, pw.action, { form: { ...pw.fields, password: LOCAL_PASSWORD } }));
      const acct = await page(l.ua, '/account');
      const remove = readForm(acct.html, 'links-0');
      expect(remove.action).to.equal('/account/links/remove');
      const bad = await page(l.ua, remove.action, { form: { ...remove.fields, csrf: 'wrong' } });
      expect(bad.res.status).to.equal(403);
      const done = await page(l.ua, remove.action, { form: remove.fields });
      expect(done.html).to.contain('The sign-in was removed');
      expect((await events()).some((e) => e.type === 'federation.unlinked' && e.sub === sub)).to.equal(true);
      // unlinked: the next upstream sign-in must prove the account again
      const again = await viaButton('corp', 'rm@corp.example', corp.origin);
      expect(again.after.html).to.contain('Link your account');
    });

    it('RP-initiated logout ends our session, then visits the upstream\'s end-session endpoint and comes back to the RP', async () => {
      corp.users.set('bye@corp.example', { email: 'bye@corp.example', email_verified: true });
      const r = await viaButton('corp', 'bye@corp.example', corp.origin);
      const tokens = await finish(r.ua, r.auth, r.after);
      const end = oidc.buildEndSessionUrl(rp, { id_token_hint: tokens.id_token!, post_logout_redirect_uri: POST_LOGOUT, state: 'bye' });
      const confirm = await page(r.ua, end.href);
      const form = readForm(confirm.html);
      const ended = await page(r.ua, form.action, { form: { ...form.fields, logout: 'yes' } });
      expect(ended.offsite, 'to the upstream end-session endpoint').to.be.a('string');
      const upstreamEnd = new URL(ended.offsite!);
      expect(upstreamEnd.origin).to.equal(corp.origin);
      expect(upstreamEnd.searchParams.get('post_logout_redirect_uri')).to.equal(`${idp.issuer}/federation/logout`);
      // the upstream confirms and sends the browser back to us, then on to the RP
      const upStep = await r.up.navigate(upstreamEnd.href);
      let back = upStep.offsite;
      if (!back) {
        const upForm = readForm(await upStep.res.text());
        back = (await r.up.navigate(upForm.action, { form: { ...upForm.fields, logout: 'yes' } })).offsite;
      }
      expect(back).to.match(new RegExp(`^${idp.issuer}/federation/logout`));
      const final = await page(r.ua, back!);
      expect(final.offsite).to.match(/^https:\/\/rp\.example\.test\/bye/);
    });
  });
});
