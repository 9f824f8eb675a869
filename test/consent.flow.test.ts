// Consent that users and admins control, end to end against the running IdP
// (openid-client as the relying party, the UserAgent as the browser, the CLI
// in-process): consent remembered across browsers, incremental consent and
// optional scopes, "Remove access" on the account page (its real form and
// CSRF token) deactivating the app's tokens at introspection, admin consent
// (grant, a scope beyond it, revoke), the roles scope (ID token, JWT access
// token filtered by resource, userinfo and introspection above the size
// threshold), the CLI's checks, the events, and the pure helpers.
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import * as oidc from 'openid-client';
import { createRemoteJWKSet, decodeJwt, jwtVerify } from 'jose';
import { startTestIdp, tempDir, type TestIdp } from './support/idp.ts';
import { UserAgent, readForm } from './support/user-agent.ts';
import { run as runCli } from '../src/cli/main.ts';
import { roleClaims, rolesFromClaims, claimsBytes } from '../src/consent/roles.ts';
import { createViews } from '../src/http/views.ts';
import { describeScopes } from '../src/interactions/describe.ts';

const REDIRECT = 'https://rp.example.test/cb';
const API = 'https://api.example.test';
const OTHER_API = 'https://other.example.test';
const SECRET = 'consent-rp-secret-0123456789abcdef';
const PASSWORD = 'a consent passphrase 1234';

describe('consent, admin consent and roles (the running IdP)', function () {
  this.timeout(120_000);
  let idp: TestIdp;
  const rps: Record<string, oidc.Configuration> = {};
  const subs: Record<string, string> = {};

  before(async () => {
    const dir = tempDir('idp-consent-seed-');
    const seed = path.join(dir, 'seed.json');
    const client = (id: string, extra: Record<string, unknown> = {}) => ({
      client_id: id, client_secret: SECRET, client_name: `App ${id}`, redirect_uris: [REDIRECT],
      grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'], token_endpoint_auth_method: 'client_secret_basic', ...extra,
    });
    fs.writeFileSync(seed, JSON.stringify({
      clients: [
        client('notes', {
          client_name: 'Notes', logo_uri: 'https://rp.example.test/logo.png', policy_uri: 'https://rp.example.test/privacy',
          tos_uri: 'https://rp.example.test/terms', optional_scopes: 'phone',
        }),
        client('crm'), client('roles-app'),
      ],
      resourceServers: [
        { id: API, scope: 'orders roles', accessTokenFormat: 'jwt', jwtAlg: 'ES256' },
        { id: OTHER_API, scope: 'stock roles', accessTokenFormat: 'opaque' },
      ],
    }));
    // admin consents and roles are read at once (no cache), so CLI changes show on the next request
    idp = await startTestIdp({ SEED_FILE: seed, CONSENT_CACHE_SECONDS: '0', ROLES_CLAIMS_MAX_BYTES: '1024' });
    for (const who of ['ana', 'ben', 'cai', 'dee', 'eve']) {
      subs[who] = (await idp.cli('users', 'add', '--email', `${who}@example.com`, '--password', PASSWORD, '--name', who, '--email-verified') as { sub: string }).sub;
    }
    for (const id of ['notes', 'crm', 'roles-app']) {
      rps[id] = await oidc.discovery(new URL(idp.issuer), id, SECRET, undefined, { execute: [oidc.allowInsecureRequests] });
    }
  });

  after(async () => {
    await idp?.close();
  });

  interface Started { url: URL; verifier: string; state: string; nonce: string }

  async function authorize(client: string, scope: string, extra: Record<string, string> = {}): Promise<Started> {
    const verifier = oidc.randomPKCECodeVerifier();
    const state = oidc.randomState();
    const nonce = oidc.randomNonce();
    const url = oidc.buildAuthorizationUrl(rps[client], {
      redirect_uri: REDIRECT, scope, state, nonce, code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256', ...extra,
    });
    return { url, verifier, state, nonce };
  }

  /** signs in; answers the consent page (its HTML and form) or the redirect to the RP */
  async function signIn(ua: UserAgent, a: Started, who: string): Promise<{ consent?: string; offsite?: string }> {
    let step = await ua.navigate(a.url.href);
    let html = await step.res.text();
    if (html.includes('name="password"')) {
      const login = readForm(html);
      step = await ua.navigate(login.action, { form: { ...login.fields, login: `${who}@example.com`, password: PASSWORD } });
      if (step.offsite) return { offsite: step.offsite };
      html = await step.res.text();
    }
    if (step.offsite) return { offsite: step.offsite };
    expect(html, 'consent page').to.contain('wants to');
    return { consent: html };
  }

  /** Allow; `drop`: the optional scope to leave unticked (the test clients offer at most one) */
  async function allow(ua: UserAgent, html: string, drop?: string): Promise<string> {
    const form = readForm(html);
    const fields = { ...form.fields };
    if (drop) {
      expect(fields.offered).to.equal(drop);
      delete fields.optional;
    }
    const res = await ua.request(form.action, { form: fields });
    expect(res.status, await res.clone().text()).to.equal(303);
    const step = await ua.navigate(res.headers.get('location')!);
    expect(step.offsite, 'back at the RP').to.be.a('string');
    return step.offsite!;
  }

  const asked = (html: string) => [...html.split('You already allowed')[0].matchAll(/<li data-name="([^"]+)"/g)].map((m) => m[1]);
  const already = (html: string) => [...(html.split('You already allowed')[1] ?? '').matchAll(/<li data-name="([^"]+)"/g)].map((m) => m[1]);

  async function tokens(client: string, a: Started, offsite: string, params: Record<string, string> = {}) {
    return oidc.authorizationCodeGrant(rps[client], new URL(offsite), { pkceCodeVerifier: a.verifier, expectedState: a.state, expectedNonce: a.nonce }, params);
  }

  const introspect = async (client: string, token: string) => oidc.tokenIntrospection(rps[client], token);

  const events = () => idp.delivered();

  it('remembers consent across browsers; "Remove access" on the account page revokes every token of the app and brings the screen back', async () => {
    // first sign-in: the consent screen, with the client's logo, links and the account
    const ua1 = new UserAgent(idp.issuer);
    const a = await authorize('notes', 'openid email offline_access', { prompt: 'consent' });
    const first = await signIn(ua1, a, 'ana');
    expect(first.consent).to.contain('src="https://rp.example.test/logo.png"').and.contain('href="https://rp.example.test/privacy"')
      .and.contain('href="https://rp.example.test/terms"').and.contain('Signed in as <strong>ana@example.com</strong>').and.contain('Not you?');
    const t1 = await tokens('notes', a, await allow(ua1, first.consent!));
    expect(t1.refresh_token).to.be.a('string');

    // another browser, no prompt: straight back to the app (the consent is the account's, not the session's)
    const ua2 = new UserAgent(idp.issuer);
    const b = await authorize('notes', 'openid email');
    const second = await signIn(ua2, b, 'ana');
    expect(second.consent, 'no consent screen the second time').to.equal(undefined);
    const t2 = await tokens('notes', b, second.offsite!);
    for (const t of [t1.access_token, t1.refresh_token!, t2.access_token]) expect((await introspect('notes', t)).active).to.equal(true);

    // the account page lists the app, in the consent screen's words
    let page = await ua1.navigate('/account/login');
    let html = await page.res.text();
    expect(page.url).to.match(/\/account$/);
    expect(html).to.contain('Connected apps').and.contain('Notes').and.contain('See your email address')
      .and.contain('Stay signed in').and.contain('src="https://rp.example.test/logo.png"').and.match(/Allowed \d{4}-\d{2}-\d{2}, last signed in \d{4}-\d{2}-\d{2}/);
    const remove = readForm(html, 'apps-0');
    expect(remove.action).to.equal('/account/apps/remove');
    expect(remove.fields).to.include({ client: 'notes' });

    // without the page's CSRF token: refused, nothing revoked
    const forged = await ua1.request(remove.action, { form: { ...remove.fields, csrf: 'forged' } });
    expect(forged.status).to.equal(403);
    expect((await introspect('notes', t1.refresh_token!)).active).to.equal(true);

    const res = await ua1.request(remove.action, { form: remove.fields });
    expect(res.status).to.equal(303);
    expect(res.headers.get('location')).to.equal('/account?done=app-removed');
    // every token of every grant of the app, from both browsers, at once
    for (const t of [t1.access_token, t1.refresh_token!, t2.access_token]) expect((await introspect('notes', t)).active, t).to.equal(false);
    const refreshed = await oidc.refreshTokenGrant(rps.notes, t1.refresh_token!).then(() => null, (e) => e);
    expect(refreshed?.error).to.equal('invalid_grant');
    page = await ua1.navigate('/account?done=app-removed');
    html = await page.res.text();
    expect(html).to.contain('no longer has access').and.contain('None. Apps you allow');

    // the next sign-in asks again, in either browser
    const c = await authorize('notes', 'openid email');
    expect((await signIn(ua2, c, 'ana')).consent).to.be.a('string');

    const ev = await events();
    expect(ev.filter((e) => e.type === 'consent.granted' && e.sub === subs.ana && e.clientId === 'notes')).to.have.length(1);
    const revoked = ev.find((e) => e.type === 'consent.revoked' && e.sub === subs.ana);
    expect(revoked?.data).to.include({ by: 'user' });
    // each of the app's two grants went, with every token under it
    expect(ev.filter((e) => e.type === 'token.revoked' && e.sub === subs.ana && e.clientId === 'notes' && e.data.why === 'consent_revoked')).to.have.length(2);
  });

  it('incremental consent asks only for what is new; an optional scope left unticked is not granted and not asked again', async () => {
    const ua = new UserAgent(idp.issuer);
    const a = await authorize('notes', 'openid email');
    const first = await signIn(ua, a, 'ben');
    expect(asked(first.consent!)).to.deep.equal(['openid', 'email']);
    await allow(ua, first.consent!);

    // one more scope (and an optional one), in a new browser: only those are asked, the rest is shown as allowed before
    const ua2 = new UserAgent(idp.issuer);
    const b = await authorize('notes', 'openid email profile phone');
    const second = await signIn(ua2, b, 'ben');
    expect(asked(second.consent!)).to.deep.equal(['profile', 'phone']);
    expect(already(second.consent!)).to.deep.equal(['openid', 'email']);
    expect(second.consent).to.match(/<input type="checkbox" name="optional" value="phone" checked>/);
    expect(second.consent).to.not.match(/name="optional" value="profile"/);
    const t = await tokens('notes', b, await allow(ua2, second.consent!, 'phone'));
    expect(t.scope?.split(' ').sort()).to.deep.equal(['email', 'openid', 'profile']);

    // the declined optional scope is not asked again
    const ua3 = new UserAgent(idp.issuer);
    const c = await authorize('notes', 'openid email profile phone');
    const third = await signIn(ua3, c, 'ben');
    expect(third.consent).to.equal(undefined);
    const ev = (await events()).filter((e) => e.type === 'consent.granted' && e.sub === subs.ben);
    expect(ev.map((e) => e.data?.scopes)).to.deep.equal([['openid', 'email'], ['profile']]);
    expect(ev[1].data?.declined).to.deep.equal(['phone']);
  });

  it('"Not you?" posts the page\'s CSRF token and starts the same request again with a sign-in', async () => {
    const ua = new UserAgent(idp.issuer);
    const a = await authorize('crm', 'openid email');
    const page = await signIn(ua, a, 'cai');
    const sw = readForm(page.consent!, 'switch');
    expect((await ua.request(sw.action, { form: { csrf: 'forged' } })).status).to.equal(403);
    const res = await ua.request(sw.action, { form: sw.fields });
    expect(res.status).to.equal(303);
    const again = new URL(res.headers.get('location')!, idp.issuer);
    expect(again.pathname).to.equal('/auth');
    expect(Object.fromEntries(again.searchParams)).to.include({ client_id: 'crm', state: a.state, prompt: 'login', scope: 'openid email' });
    // another account signs in and the app gets its answer, for that account
    const step = await ua.navigate(again.href);
    const login = readForm(await step.res.text());
    let next = await ua.navigate(login.action, { form: { ...login.fields, login: 'dee@example.com', password: PASSWORD } });
    let html = await next.res.text();
    if (!html.includes('wants to')) {
      // oidc-provider ends cai's session first, with a form a browser submits by itself
      const end = readForm(html);
      next = await ua.navigate(end.action, { form: end.fields });
      html = await next.res.text();
    }
    expect(html).to.contain('Signed in as <strong>dee@example.com</strong>');
    const t = await tokens('crm', a, await allow(ua, html));
    expect(t.claims()!.sub).to.equal(subs.dee);
  });

  it('admin consent: a new user reaches the code without the screen, a scope beyond it shows the screen, revoking brings it back', async () => {
    await idp.cli('consent', 'grant-admin', '--client', 'crm', '--scopes', 'openid email', '--by', 'ops@example.com');
    const ua = new UserAgent(idp.issuer);
    const a = await authorize('crm', 'openid email');
    const first = await signIn(ua, a, 'eve');
    expect(first.consent, 'no screen under admin consent').to.equal(undefined);
    const t = await tokens('crm', a, first.offsite!);
    expect(t.scope?.split(' ').sort()).to.deep.equal(['email', 'openid']);
    // beyond it: only what is beyond is asked
    const b = await authorize('crm', 'openid email profile');
    const beyond = await signIn(new UserAgent(idp.issuer), b, 'eve');
    expect(asked(beyond.consent!)).to.deep.equal(['profile']);

    const listed = await idp.cli('consent', 'list') as Array<{ clientId: string; scope: string[]; grantedBy: string }>;
    expect(listed).to.deep.equal([{ ...listed[0], clientId: 'crm', scope: ['openid', 'email'], grantedBy: 'ops@example.com' }]);

    await idp.cli('consent', 'revoke-admin', '--client', 'crm', '--by', 'ops@example.com');
    const c = await authorize('crm', 'openid email');
    const after = await signIn(new UserAgent(idp.issuer), c, 'eve');
    expect(asked(after.consent!)).to.deep.equal(['openid', 'email']);

    // recorded: who, when, what; and emitted
    const history = await idp.cli('consent', 'list', '--history', '--client', 'crm') as Array<{ action: string; by: string; at: string; scope: string[] }>;
    expect(history.map((h) => [h.action, h.by, h.scope])).to.deep.equal([['granted', 'ops@example.com', ['openid', 'email']], ['revoked', 'ops@example.com', ['openid', 'email']]]);
    for (const h of history) expect(Date.parse(h.at)).to.be.closeTo(Date.now(), 60_000);
    const ev = (await events()).filter((e) => e.type.startsWith('consent.admin.'));
    // the operator's --by stays in the consent record (consent list); an e-mail address never reaches an event
    expect(ev.map((e) => [e.type, e.clientId, e.data?.actor, e.data?.by])).to.deep.equal([['consent.admin.granted', 'crm', 'cli', undefined], ['consent.admin.revoked', 'crm', 'cli', undefined]]);
  });

  it('the CLI refuses unknown clients, scopes, roles and accounts with exit 2 (usage), and revoking what is not there', async () => {
    const usage = async (...argv: string[]) => {
      const err = await runCli([...argv, '--json'], idp.env).then(() => null, (e: Error) => e);
      expect(err?.constructor.name, argv.join(' ')).to.equal('UsageError');
      return err!.message;
    };
    expect(await usage('consent', 'grant-admin', '--client', 'nope', '--scopes', 'openid')).to.match(/no client nope/);
    expect(await usage('consent', 'grant-admin', '--client', 'crm', '--scopes', 'openid orders')).to.match(/orders: neither an OpenID scope/);
    expect(await usage('consent', 'grant-admin', '--client', 'crm')).to.match(/missing --scopes/);
    expect(await usage('consent', 'revoke-admin', '--client', 'crm')).to.match(/no admin consent for client crm/);
    expect(await usage('roles', 'add', '--name', 'bad name')).to.match(/role name "bad name"/);
    expect(await usage('roles', 'add', '--name', 'x', '--resource', 'https://unknown.example.test', '--permissions', 'a')).to.match(/no resource server/);
    expect(await usage('users', 'roles', 'add', '--sub', subs.ana, '--role', 'no-such-role')).to.match(/no role "no-such-role"/);
    expect(await usage('users', 'roles', 'add', '--sub', 'no-such-sub', '--role', 'x')).to.match(/no account no-such-sub/);
    expect(await usage('users', 'roles', 'grant', '--sub', subs.ana)).to.match(/unknown action "grant"/);
    // a resource server's scope is accepted with --resource
    const ok = await idp.cli('consent', 'grant-admin', '--client', 'roles-app', '--scopes', 'openid orders', '--resource', API) as { resources: Record<string, string[]> };
    expect(ok.resources).to.deep.equal({ [API]: ['orders'] });
    await idp.cli('consent', 'revoke-admin', '--client', 'roles-app');
  });

  it('roles: in the ID token and the JWT access token, permissions filtered by resource; above the threshold left out and served by userinfo and introspection', async () => {
    await idp.cli('roles', 'add', '--name', 'clerk', '--description', 'Order desk', '--resource', API, '--permissions', 'orders:read orders:write');
    await idp.cli('roles', 'add', '--name', 'clerk', '--permissions', 'reports:view');
    await idp.cli('roles', 'add', '--name', 'stocker', '--resource', OTHER_API, '--permissions', 'stock:count');
    const many = Array.from({ length: 120 }, (_, i) => `orders:region-${String(i).padStart(3, '0')}:approve`);
    await idp.cli('roles', 'add', '--name', 'approver', '--resource', API, '--permissions', many.join(' '));
    await idp.cli('users', 'roles', 'add', '--sub', subs.cai, '--role', 'clerk', '--role', 'stocker');
    await idp.cli('users', 'roles', 'add', '--sub', subs.dee, '--role', 'clerk', '--role', 'approver');
    const roles = await idp.cli('roles', 'list') as Array<{ name: string; description?: string; permissions: Array<{ value: string; resource?: string }> }>;
    expect(roles.find((r) => r.name === 'clerk')).to.deep.include({ description: 'Order desk', permissions: [{ value: 'orders:read', resource: API }, { value: 'orders:write', resource: API }, { value: 'reports:view' }] });
    const jwks = createRemoteJWKSet(new URL(rps['roles-app'].serverMetadata().jwks_uri!));

    async function withRoles(who: string, resource?: string) {
      const ua = new UserAgent(idp.issuer);
      const a = await authorize('roles-app', resource ? 'openid roles orders' : 'openid roles', resource ? { resource } : {});
      const r = await signIn(ua, a, who);
      const offsite = r.offsite ?? await allow(ua, r.consent!);
      return tokens('roles-app', a, offsite, resource ? { resource } : {});
    }

    // under the threshold: everything in the tokens
    const t = await withRoles('cai', API);
    const id = (await jwtVerify(t.id_token!, jwks, { issuer: idp.issuer, audience: 'roles-app' })).payload;
    expect(id.roles).to.deep.equal(['clerk', 'stocker']);
    expect(id.permissions).to.deep.equal(['orders:read', 'orders:write', 'reports:view', 'stock:count']);
    const at = (await jwtVerify(t.access_token, jwks, { issuer: idp.issuer, audience: API, typ: 'at+jwt' })).payload;
    expect(at.roles).to.deep.equal(['clerk', 'stocker']);
    expect(at.permissions, 'only the permissions of this resource server').to.deep.equal(['orders:read', 'orders:write']);
    expect(String(at.scope).split(' ').sort()).to.deep.equal(['orders', 'roles']);

    // without the roles scope: no roles anywhere
    const ua = new UserAgent(idp.issuer);
    const plain = await authorize('roles-app', 'openid email');
    const p = await signIn(ua, plain, 'cai');
    const pt = await tokens('roles-app', plain, p.offsite ?? await allow(ua, p.consent!));
    expect(decodeJwt(pt.id_token!)).to.not.have.any.keys('roles', 'permissions', '_claim_names');
    expect((await oidc.fetchUserInfo(rps['roles-app'], pt.access_token, subs.cai))).to.not.have.any.keys('roles', 'permissions');

    // above the threshold: left out of both tokens, which say where they are
    const big = await withRoles('dee', API);
    const bigId = (await jwtVerify(big.id_token!, jwks, { issuer: idp.issuer, audience: 'roles-app' })).payload as Record<string, unknown>;
    expect(bigId).to.not.have.any.keys('roles', 'permissions');
    expect(bigId._claim_names).to.deep.equal({ roles: 'roles_source', permissions: 'roles_source' });
    expect(bigId._claim_sources).to.deep.equal({ roles_source: { endpoint: `${idp.issuer}/me` } });
    const bigAt = (await jwtVerify(big.access_token, jwks, { issuer: idp.issuer, audience: API, typ: 'at+jwt' })).payload as Record<string, unknown>;
    expect(bigAt).to.not.have.any.keys('roles', 'permissions');
    expect(big.access_token.length, 'the token stays small').to.be.below(1500);
    const source = (bigAt._claim_sources as Record<string, { endpoint: string; access_token: string }>).roles_source;
    expect(source.endpoint).to.equal(`${idp.issuer}/token/introspection`);
    // the resource server introspects the reference it was given: the permissions of its resource only
    const viaRef = await introspect('roles-app', source.access_token);
    expect(viaRef).to.include({ active: true, sub: subs.dee, aud: API });
    expect(viaRef.roles).to.deep.equal(['approver', 'clerk']);
    expect(viaRef.permissions).to.deep.equal([...many, 'orders:read', 'orders:write'].sort());

    // userinfo (and introspection of the userinfo access token) serve them in full
    const uiT = await withRoles('dee');
    expect(decodeJwt(uiT.id_token!)).to.not.have.any.keys('roles', 'permissions');
    const info = await oidc.fetchUserInfo(rps['roles-app'], uiT.access_token, subs.dee);
    expect(info.roles).to.deep.equal(['approver', 'clerk']);
    expect(info.permissions).to.have.length(123).and.include('reports:view');
    const intro = await introspect('roles-app', uiT.access_token);
    expect(intro.roles).to.deep.equal(['approver', 'clerk']);
    expect(intro.permissions).to.have.length(123);

    // an opaque resource server gets its own permissions at introspection
    const opaque = await withRoles('cai', OTHER_API);
    const oi = await introspect('roles-app', opaque.access_token);
    expect(oi).to.include({ active: true, aud: OTHER_API });
    expect(oi.permissions).to.deep.equal(['stock:count']);

    // taking a role away shows in the next tokens (no cache in this test IdP)
    await idp.cli('users', 'roles', 'remove', '--sub', subs.cai, '--role', 'stocker');
    const again = await withRoles('cai', API);
    expect(decodeJwt(again.id_token!).roles).to.deep.equal(['clerk']);
    await idp.cli('roles', 'remove', '--name', 'clerk');
    const gone = await withRoles('cai', API);
    expect(decodeJwt(gone.id_token!).roles).to.deep.equal([]);
    const ev = (await events()).filter((e) => e.type.startsWith('role'));
    expect(ev.map((e) => e.type)).to.include.members(['role.saved', 'roles.assigned', 'roles.unassigned', 'role.removed']);

    // discovery names the scope and the claims
    const md = rps['roles-app'].serverMetadata();
    expect(md.scopes_supported).to.include('roles');
    expect(md.claims_supported).to.include.members(['roles', 'permissions']);
  });

  it('lists a user\'s connected apps for the operator, and erases them with the account', async () => {
    const apps = await idp.cli('consent', 'list', '--user', subs.ben) as Array<{ clientId: string; scope: string[]; declined: string[]; grants: number }>;
    expect(apps.map((x) => [x.clientId, x.scope, x.declined])).to.deep.equal([['notes', ['openid', 'email', 'profile'], ['phone']]]);
    expect(apps[0].grants).to.equal(3);
    await idp.cli('users', 'delete', '--erase', subs.ben);
    expect(await idp.consent.store.listApps(subs.ben)).to.deep.equal([]);
  });
});

describe('roles helpers', () => {
  it('roleClaims: unknown roles dropped, permissions of the named resource only (all without one), sorted', () => {
    const defs = [
      { name: 'a', permissions: [{ value: 'p1', resource: 'https://r1' }, { value: 'g' }], updatedAt: '' },
      { name: 'b', permissions: [{ value: 'p2', resource: 'https://r2' }, { value: 'p1', resource: 'https://r1' }], updatedAt: '' },
    ];
    expect(roleClaims(defs, ['b', 'a', 'gone', 'a'])).to.deep.equal({ roles: ['a', 'b'], permissions: ['g', 'p1', 'p2'] });
    expect(roleClaims(defs, ['a', 'b'], 'https://r1')).to.deep.equal({ roles: ['a', 'b'], permissions: ['p1'] });
    expect(roleClaims(defs, [], 'https://r1')).to.deep.equal({ roles: [], permissions: [] });
    expect(claimsBytes({ roles: ['a'], permissions: [] })).to.equal(Buffer.byteLength('"roles":["a"],"permissions":[]'));
  });

  it('rolesFromClaims: a string or an array claim, mapped values only, nothing without a mapping', () => {
    const mapping = { claim: 'groups', values: { 'g-admins': ['admin', 'clerk'], 'g-sales': ['clerk'], __proto__: ['x'] } as Record<string, string[]> };
    expect(rolesFromClaims(mapping, { groups: ['g-sales', 'g-admins', 'other', 7] })).to.deep.equal(['admin', 'clerk']);
    expect(rolesFromClaims(mapping, { groups: 'g-sales' })).to.deep.equal(['clerk']);
    expect(rolesFromClaims(mapping, { groups: 'toString' })).to.deep.equal([]);
    expect(rolesFromClaims(mapping, {})).to.deep.equal([]);
    expect(rolesFromClaims(undefined, { groups: ['g-admins'] })).to.deep.equal([]);
  });
});

describe('consent and account page views', () => {
  const views = createViews();
  const XSS = '<script>alert(1)</script>';
  const base = {
    action: '/interaction/u1/consent', abortUrl: '/interaction/u1/abort', csrf: 'tok-1', account: { display: 'a@example.com' },
    claims: [], resources: [],
  };

  it('consent: an https logo only, optional scopes as ticked boxes with what was offered, what was allowed before, "Not you?" as a POST form', async () => {
    const html = await views.page('consent', {
      ...base, client: { name: 'Notes', logoUri: 'https://n.example/logo.png' },
      scopes: describeScopes(['profile', 'phone']), optional: ['phone'], granted: describeScopes(['openid', 'email']),
      switchAction: '/interaction/u1/switch',
    });
    expect(html).to.contain('<img class="client-logo" src="https://n.example/logo.png"');
    expect(html).to.contain('<li data-name="profile">See your name and basic profile</li>');
    expect(html).to.match(/<input type="hidden" name="offered" value="phone"><label><input type="checkbox" name="optional" value="phone" checked> See your phone number/);
    expect(html.split('You already allowed it to:')[1]).to.contain('<li data-name="email">See your email address</li>');
    const sw = readForm(html, 'switch');
    expect(sw).to.deep.equal({ action: '/interaction/u1/switch', fields: { csrf: 'tok-1' } });
    expect(html).to.contain('<button type="submit" class="link-button" form="switch">Not you?</button>');
    for (const logoUri of ['http://n.example/logo.png', 'javascript:alert(1)', 'data:image/png;base64,AAAA', 'https://n.example/a logo.png']) {
      const other = await views.page('consent', { ...base, client: { name: 'N', logoUri }, scopes: [] });
      expect(other, logoUri).to.not.contain('client-logo');
    }
    const quoted = await views.page('consent', { ...base, client: { name: 'N', logoUri: 'https://x.example/"><script>' }, scopes: [] });
    expect(quoted).to.contain('src="https://x.example/&#34;&gt;&lt;script&gt;"');
    expect(quoted).to.not.contain('<script');
    const escaped = await views.page('consent', { ...base, client: { name: 'N' }, scopes: [{ name: XSS, description: XSS }], optional: [XSS], granted: [{ name: XSS, description: XSS }] });
    expect(escaped).to.not.contain('<script');
  });

  it('account page: connected apps with an https logo, what each can see, and its Remove access form', async () => {
    const html = await views.page('account', {
      display: 'a@example.com', csrf: 'tok-2', devices: [],
      sections: [{ id: 'apps', title: 'Connected apps', empty: 'None.', items: [
        { text: 'Notes', logoUri: 'https://n.example/logo.png', lines: ['See your email address', XSS], detail: 'Allowed 2025-01-01', action: { url: '/account/apps/remove', fields: { client: 'notes' }, button: 'Remove access' } },
        { text: 'Other', logoUri: 'http://o.example/logo.png' },
      ] }],
    });
    expect(html).to.contain('<img class="app-logo" src="https://n.example/logo.png"');
    expect(html).to.not.contain('http://o.example/logo.png');
    expect(html).to.contain('<li>See your email address</li>').and.not.contain('<script');
    expect(readForm(html, 'apps-0')).to.deep.equal({ action: '/account/apps/remove', fields: { csrf: 'tok-2', client: 'notes' } });
  });
});
