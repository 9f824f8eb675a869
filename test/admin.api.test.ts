// The admin API (/admin/api/v1, src/admin/api.ts), in-process:
//  - client_credentials tokens of this IdP for <issuer>/admin/api/v1: admin:users
//    finds a user by e-mail (blind index) and unlocks them; admin:clients only is
//    403; a token of another issuer (or none) is 401 with WWW-Authenticate; a
//    scope the client was not granted (admin_scopes) does not count;
//  - problem+json naming the field; cursor pagination; Idempotency-Key replays;
//  - the OpenAPI document lists exactly the routes of the router;
//  - every action leaves an audit entry with the client as actor.
import crypto from 'node:crypto';
import { expect } from 'chai';
import { SignJWT, generateKeyPair } from 'jose';
import { ScanCommand } from '@aws-sdk/lib-dynamodb';
import { startTestIdp, type TestIdp } from './support/idp.ts';
import { UserAgent, readForm } from './support/user-agent.ts';
import { addClient, loginForm, post, signIn, succeeded, waitForCode, outboxCount } from './support/lockout.ts';
import { adminApiRouter } from '../src/admin/api.ts';

const PASSWORD = 'a long enough passphrase 77';

describe('admin API', function () {
  this.timeout(120_000);
  let idp: TestIdp;
  let api: string;
  const secrets: Record<string, string> = {};

  before(async () => {
    idp = await startTestIdp({ LOCKOUT_MAX_FAILURES: '3', LOCKOUT_ACCOUNT_IP_MAX_FAILURES: '50', LOCKOUT_IP_MAX_FAILURES: '100' });
    api = `${idp.issuer}/admin/api/v1`;
    await addClient(idp);
    const cli = { id: 'cli' };
    for (const [id, scopes] of [['ops', ['admin:users', 'admin:clients', 'admin:sessions', 'admin:audit', 'admin:keys']], ['clients-only', ['admin:clients']], ['ungranted', []]] as const) {
      const r = await idp.admin.createClient({ client_id: id, grant_types: ['client_credentials'], admin_scopes: [...scopes] }, cli);
      secrets[id] = r.client_secret!;
    }
  });
  after(async () => {
    await idp?.close();
  });

  async function token(clientId: string, scope: string): Promise<string> {
    const res = await fetch(`${idp.issuer}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`${clientId}:${secrets[clientId]}`).toString('base64')}` },
      body: new URLSearchParams({ grant_type: 'client_credentials', scope, resource: api }),
    });
    const body = await res.json() as { access_token?: string };
    expect(res.status, JSON.stringify(body)).to.equal(200);
    return body.access_token!;
  }

  const call = (path: string, tok: string | undefined, init: { method?: string; body?: unknown; headers?: Record<string, string> } = {}) => fetch(`${api}${path}`, {
    method: init.method ?? 'GET',
    headers: { ...(tok ? { authorization: `Bearer ${tok}` } : {}), ...(init.body !== undefined ? { 'content-type': 'application/json' } : {}), ...init.headers },
    body: init.body === undefined ? undefined : JSON.stringify(init.body),
  });

  async function auditOf(q: Record<string, string>) {
    await idp.events.settled();
    return (await idp.events.query(q)).items;
  }

  it('admin:users finds a user by e-mail through the blind index and unlocks them; each action is audited', async () => {
    const sub = (await idp.cli('users', 'add', '--email', 'locked@example.com', '--password', PASSWORD, '--email-verified') as { sub: string }).sub;
    const ua = new UserAgent(idp.issuer);
    for (let i = 0; i < 3; i++) await signIn(idp, ua, 'locked@example.com', 'wrong password, surely');
    expect((await idp.lockout.guard.state(sub)).locked, 'locked by the failures').to.equal(true);

    const tok = await token('ops', 'admin:users');
    const found = await call(`/users?email=${encodeURIComponent('LOCKED@example.com')}`, tok);
    expect(found.status).to.equal(200);
    const list = await found.json() as { items: Array<{ sub: string; status: string }> };
    expect(list.items.map((u) => u.sub)).to.deep.equal([sub]);
    expect(JSON.stringify(list), 'no personal data in a search answer').to.not.contain('locked@example.com');
    const none = await (await call('/users?email=nobody@example.com', tok)).json() as { items: unknown[] };
    expect(none.items).to.deep.equal([]);

    const unlocked = await call(`/users/${sub}/unlock`, tok, { method: 'POST' });
    expect(unlocked.status).to.equal(200);
    expect(await unlocked.json()).to.include({ sub, wasLocked: true });
    expect((await idp.lockout.guard.state(sub)).locked).to.equal(false);
    const events = await auditOf({ subject: sub, type: 'account.unlocked' });
    expect(events).to.have.length(1);
    expect(events[0].data).to.include({ actor: 'ops', reason: 'admin' });

    // disable and enable: the account cannot sign in while disabled
    expect((await call(`/users/${sub}/disable`, tok, { method: 'POST' })).status).to.equal(200);
    const refused = await signIn(idp, new UserAgent(idp.issuer), 'locked@example.com', PASSWORD);
    expect(refused.offsite).to.equal(undefined);
    expect((await call(`/users/${sub}/enable`, tok, { method: 'POST' })).status).to.equal(200);
    expect((await signIn(idp, new UserAgent(idp.issuer), 'locked@example.com', PASSWORD)).offsite).to.be.a('string');
    expect((await auditOf({ subject: sub, type: 'user.' })).map((e) => e.type)).to.include.members(['user.disabled', 'user.enabled']);
  });

  it('admin:users sends a password reset: the code goes to the verified address only, the user sets a new password with it; limited per hour', async () => {
    const sub = (await idp.cli('users', 'add', '--email', 'forgetful@example.com', '--password', PASSWORD, '--email-verified') as { sub: string }).sub;
    const unverified = (await idp.cli('users', 'add', '--email', 'unverified@example.com', '--password', PASSWORD) as { sub: string }).sub;
    const tok = await token('ops', 'admin:users');
    const sent = await call(`/users/${sub}/password-reset`, tok, { method: 'POST' });
    expect(sent.status).to.equal(200);
    const answer = await sent.text();
    expect(JSON.parse(answer)).to.deep.equal({ sub, sent: true });
    const code = await waitForCode(idp, 'forgetful@example.com', 'password-reset-admin');
    expect(answer, 'the admin never sees the code').to.not.contain(code);
    // no verified address: 409 naming why, and no message
    const before = outboxCount(idp, 'unverified@example.com');
    const refused = await call(`/users/${unverified}/password-reset`, tok, { method: 'POST' });
    expect(refused.status).to.equal(409);
    expect(refused.headers.get('content-type')).to.match(/^application\/problem\+json/);
    expect((await refused.json() as { detail: string }).detail).to.match(/no verified e-mail address/);
    expect(outboxCount(idp, 'unverified@example.com')).to.equal(before);

    // the user: "Forgot your password?" → "I already have a code" → code and a new password
    const ua = new UserAgent(idp.issuer);
    const form = await loginForm(idp, ua);
    const resetPage = await (await ua.navigate(`${idp.issuer}/interaction/${form.uid}/reset`)).res.text();
    expect(resetPage).to.contain(`/interaction/${form.uid}/reset/code`);
    const codeForm = readForm(await (await ua.navigate(`${idp.issuer}/interaction/${form.uid}/reset/code`)).res.text());
    expect(Object.keys(codeForm.fields)).to.include.members(['csrf', 'email', 'code', 'password', 'confirm']);
    const NEW = 'a brand new passphrase for 2027';
    const wrong = await post(ua, codeForm.action, { ...codeForm.fields, email: 'forgetful@example.com', code: code === '000000' ? '111111' : '000000', password: NEW, confirm: NEW });
    expect(wrong.status).to.equal(401);
    const done = await post(ua, codeForm.action, { ...codeForm.fields, email: 'forgetful@example.com', code, password: NEW, confirm: NEW });
    expect(done.status, done.html.slice(0, 500)).to.equal(200);
    expect(succeeded(await signIn(idp, new UserAgent(idp.issuer), 'forgetful@example.com', NEW)), 'signs in with the new password').to.equal(true);
    expect(succeeded(await signIn(idp, new UserAgent(idp.issuer), 'forgetful@example.com', PASSWORD)), 'not with the old one').to.equal(false);

    // audited with the client as actor; the code is never in an event
    const audit = await auditOf({ subject: sub });
    expect(audit.map((e) => [e.type, e.data?.actor])).to.deep.include.members([['password.reset_requested', 'ops'], ['password.reset', undefined]]);
    expect(JSON.stringify(audit)).to.not.contain(code);

    // LOCKOUT_CODE_MAX_SENDS an hour: then 429, problem+json
    let last = 200;
    for (let i = 0; i < 10 && last === 200; i++) last = (await call(`/users/${sub}/password-reset`, tok, { method: 'POST' })).status;
    expect(last).to.equal(429);
  });

  it('a token with only admin:clients gets 403 at the users routes, problem+json; it can list clients', async () => {
    const tok = await token('clients-only', 'admin:clients');
    const res = await call('/users?email=locked@example.com', tok);
    expect(res.status).to.equal(403);
    expect(res.headers.get('content-type')).to.match(/^application\/problem\+json/);
    const p = await res.json() as { status: number; detail: string };
    expect(p.status).to.equal(403);
    expect(p.detail).to.contain('admin:users');
    expect((await call('/clients', tok)).status).to.equal(200);
  });

  it('a scope the client was not granted (admin_scopes) does not count', async () => {
    const tok = await token('ungranted', 'admin:users');
    expect((await call('/users?email=locked@example.com', tok)).status).to.equal(403);
  });

  it('an operator grants admin scopes from the CLI (clients add|update --admin-scopes); an unknown scope is refused', async () => {
    secrets['ops-cli'] = 'ops-cli-secret-0123456789abcdefghij';
    await idp.cli('clients', 'add', '--id', 'ops-cli', '--secret', secrets['ops-cli'], '--grant-types', 'client_credentials', '--admin-scopes', 'admin:audit:read');
    expect((await call('/users?email=locked@example.com', await token('ops-cli', 'admin:users'))).status).to.equal(403);
    // (a client's metadata is cached by the server for a few seconds: a second client shows the grant at once)
    secrets['ops-cli2'] = secrets['ops-cli'];
    await idp.cli('clients', 'add', '--id', 'ops-cli2', '--secret', secrets['ops-cli'], '--grant-types', 'client_credentials', '--admin-scopes', 'admin:users:read admin:audit:read');
    expect((await call('/users?email=locked@example.com', await token('ops-cli2', 'admin:users:read'))).status).to.equal(200);
    await idp.cli('clients', 'update', '--id', 'ops-cli', '--admin-scopes', 'admin:users:read');
    expect(await idp.cli('clients', 'show', '--id', 'ops-cli')).to.include({ admin_scopes: 'admin:users:read' });
    const err = await idp.cli('clients', 'update', '--id', 'ops-cli', '--admin-scopes', 'admin:everything').then(() => undefined, (e: unknown) => e as Error);
    expect(err?.message).to.match(/--admin-scopes: admin:everything is not an admin scope/);
  });

  it('no token, a forged one, and a token of another issuer get 401 with WWW-Authenticate', async () => {
    const none = await call('/users?email=a@example.com', undefined);
    expect(none.status).to.equal(401);
    expect(none.headers.get('www-authenticate')).to.match(/^Bearer realm="admin"/);
    expect(none.headers.get('content-type')).to.match(/^application\/problem\+json/);
    const { privateKey } = await generateKeyPair('ES256');
    for (const iss of ['https://other-idp.example', idp.issuer]) {
      const forged = await new SignJWT({ scope: 'admin:users', client_id: 'ops' }).setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: 'x' })
        .setIssuer(iss).setAudience(api).setIssuedAt().setExpirationTime('5m').setSubject('ops').setJti(crypto.randomUUID()).sign(privateKey);
      const res = await call('/users?email=a@example.com', forged);
      expect(res.status, iss).to.equal(401);
      expect(res.headers.get('www-authenticate')).to.contain('error="invalid_token"');
    }
    expect((await call('/users?email=a@example.com', 'opaque-nonsense')).status).to.equal(401);
    expect((await call('/users?email=a@example.com', 'x'.repeat(5000))).status).to.equal(401);
  });

  it('bad input is a problem naming the field; lists page with a cursor', async () => {
    const tok = await token('ops', 'admin:clients admin:users');
    const bad = await call('/users?email=not-an-address', tok);
    expect(bad.status).to.equal(400);
    expect(await bad.json()).to.include({ field: 'email' });
    const badLimit = await call('/clients?limit=0', tok);
    expect(await badLimit.json()).to.include({ field: 'limit' });
    const badClient = await call('/clients', tok, { method: 'POST', body: { client_id: 'web', redirect_uris: ['not a uri'], grant_types: ['authorization_code'] } });
    expect(badClient.status).to.equal(400);
    expect(await badClient.json()).to.include({ field: 'redirect_uris' });
    const notJson = await fetch(`${api}/clients`, { method: 'POST', headers: { authorization: `Bearer ${tok}`, 'content-type': 'application/json' }, body: '{nope' });
    expect(notJson.status).to.equal(400);
    expect(notJson.headers.get('content-type')).to.match(/problem\+json/);

    const seen: string[] = [];
    let cursor: string | undefined;
    for (let i = 0; i < 10; i++) {
      const page = await (await call(`/clients?limit=2${cursor ? `&cursor=${cursor}` : ''}`, tok)).json() as { items: Array<{ client_id: string }>; cursor?: string };
      expect(page.items.length).to.be.at.most(2);
      seen.push(...page.items.map((c) => c.client_id));
      cursor = page.cursor;
      if (!cursor) break;
    }
    expect(seen).to.include.members(['admin-console', 'app', 'clients-only', 'ops', 'ungranted']);
    expect(new Set(seen).size).to.equal(seen.length);
  });

  it('clients: create (secret once), read, patch, delete, each audited; Idempotency-Key replays the first response', async () => {
    const tok = await token('ops', 'admin:clients');
    const headers = { 'idempotency-key': 'create-shop-1' };
    const body = { client_id: 'shop', client_name: 'Shop', redirect_uris: ['https://shop.example/cb'], mfa_policy: 'optional' };
    const first = await call('/clients', tok, { method: 'POST', body, headers });
    expect(first.status).to.equal(201);
    const created = await first.json() as { client: Record<string, unknown>; client_secret: string };
    expect(created.client_secret).to.be.a('string');
    expect(created.client).to.include({ client_id: 'shop', has_secret: true });
    const again = await call('/clients', tok, { method: 'POST', body, headers });
    expect(again.status).to.equal(201);
    expect(again.headers.get('idempotent-replayed')).to.equal('true');
    expect(await again.json()).to.deep.equal(created);
    // the kept response (with the secret) is not readable at rest
    const meta = JSON.stringify((await idp.storage.doc.send(new ScanCommand({ TableName: idp.storage.tables.meta }))).Items);
    expect(meta).to.contain('idem#');
    expect(meta).to.not.contain(created.client_secret);
    const other = await call('/clients', tok, { method: 'POST', body: { ...body, client_name: 'Other' }, headers });
    expect(other.status).to.equal(422);
    // without the key, the same request is a conflict: the client exists
    expect((await call('/clients', tok, { method: 'POST', body })).status).to.equal(409);

    const got = await (await call('/clients/shop', tok)).json() as Record<string, unknown>;
    expect(got).to.not.have.property('client_secret');
    const patched = await call('/clients/shop', tok, { method: 'PATCH', body: { client_name: 'Shop 2', tos_uri: 'https://shop.example/tos' } });
    expect(patched.status).to.equal(200);
    expect(await patched.json()).to.include({ client_name: 'Shop 2', tos_uri: 'https://shop.example/tos', mfa_policy: 'optional' });
    expect((await call('/clients/shop', tok, { method: 'DELETE' })).status).to.equal(200);
    expect((await call('/clients/shop', tok)).status).to.equal(404);
    expect((await call('/clients/admin-console', tok, { method: 'DELETE' })).status).to.equal(409);
    const types = (await auditOf({ subject: 'shop', actor: 'ops' })).map((e) => e.type);
    expect(types.filter((t) => t === 'client.created'), 'one event for the replayed create').to.have.length(1);
    expect(types).to.include.members(['client.updated', 'client.deleted']);
  });

  it('sessions: list and revoke a user\'s session through the API; audit readable with admin:audit', async () => {
    const sub = (await idp.cli('users', 'add', '--email', 'sess@example.com', '--password', PASSWORD, '--email-verified') as { sub: string }).sub;
    expect((await signIn(idp, new UserAgent(idp.issuer), 'sess@example.com', PASSWORD)).offsite).to.be.a('string');
    const tok = await token('ops', 'admin:sessions admin:audit');
    const list = await (await call(`/users/${sub}/sessions`, tok)).json() as { items: Array<{ kind: string; id: string; clients: string[] }> };
    const session = list.items.find((e) => e.kind === 'session');
    expect(session?.clients).to.include('app');
    expect((await call(`/users/${sub}/sessions/${session!.id}`, tok, { method: 'DELETE' })).status).to.equal(200);
    const after = await (await call(`/users/${sub}/sessions`, tok)).json() as { items: Array<{ kind: string }> };
    expect(after.items.filter((e) => e.kind === 'session')).to.deep.equal([]);
    expect((await call(`/users/${sub}/sessions/${session!.id}`, tok, { method: 'DELETE' })).status).to.equal(404);
    await idp.events.settled();
    const audit = await (await call(`/audit?subject=${sub}&type=token.revoked`, tok)).json() as { items: Array<{ type: string; data: Record<string, unknown> }> };
    expect(audit.items).to.have.length(1);
    expect(audit.items[0].data).to.include({ actor: 'ops' });
  });

  it('keys: list the states, rotate one algorithm (key.rotated); a bad alg names the field', async () => {
    const read = await token('ops', 'admin:keys:read');
    const keys = await (await call('/keys', read)).json() as { items: Array<{ kind: string; state: string; alg?: string }> };
    expect(keys.items.some((k) => k.kind === 'signing' && k.state === 'active')).to.equal(true);
    expect(JSON.stringify(keys)).to.not.match(/"d"|private/i);
    expect((await call('/keys/rotate', read, { method: 'POST', body: {} })).status, 'read only').to.equal(403);
    const write = await token('ops', 'admin:keys');
    const bad = await call('/keys/rotate', write, { method: 'POST', body: { alg: 'HS256' } });
    expect(bad.status).to.equal(400);
    expect(await bad.json()).to.include({ field: 'alg' });
    const rotated = await call('/keys/rotate', write, { method: 'POST', body: { alg: 'ES256' } });
    expect(rotated.status).to.equal(200);
    const { actions } = await rotated.json() as { actions: Array<{ action: string; alg?: string }> };
    expect(actions.some((a) => a.action === 'create' && a.alg === 'ES256')).to.equal(true);
    const events = await auditOf({ type: 'key.rotated', actor: 'ops' });
    expect(events.length).to.equal(actions.filter((a) => a.action !== 'skip').length);
    expect(events.map((e) => e.data.alg)).to.include('ES256');
  });

  it('the CLI runs the same actions (actor cli): users disable|enable|set-password, sessions list|revoke, audit', async () => {
    const sub = (await idp.cli('users', 'add', '--email', 'cli-user@example.com', '--password', PASSWORD, '--email-verified') as { sub: string }).sub;
    expect(await idp.cli('users', 'disable', '--sub', sub)).to.include({ sub, status: 'disabled' });
    expect(await idp.cli('users', 'enable', '--sub', sub)).to.include({ sub, status: 'active' });
    await idp.cli('users', 'set-password', '--sub', sub, '--password', 'another long passphrase 12');
    expect((await signIn(idp, new UserAgent(idp.issuer), 'cli-user@example.com', 'another long passphrase 12')).offsite).to.be.a('string');
    const sessions = await idp.cli('sessions', 'list', '--sub', sub) as { items: Array<{ kind: string; id: string }> };
    const s = sessions.items.find((e) => e.kind === 'session')!;
    expect(await idp.cli('sessions', 'revoke', '--sub', sub, '--id', s.id)).to.include({ kind: 'session', id: s.id });
    const audit = await idp.cli('audit', '--subject', sub) as { items: Array<{ type: string; data: Record<string, unknown> }> };
    expect(audit.items.map((e) => e.type)).to.include.members(['user.created', 'user.disabled', 'user.enabled', 'password.reset', 'token.revoked']);
    const ours = ['user.created', 'user.disabled', 'user.enabled', 'password.reset', 'token.revoked'];
    for (const e of audit.items.filter((x) => ours.includes(x.type))) expect(e.data.actor, e.type).to.equal('cli');
    // clients from the CLI are audited too
    await idp.cli('clients', 'add', '--id', 'cli-app', '--public', '--redirect-uri', 'https://cli-app.example/cb');
    await idp.cli('clients', 'update', '--id', 'cli-app', '--name', 'CLI app');
    await idp.cli('clients', 'remove', '--id', 'cli-app');
    const clientEvents = await idp.cli('audit', '--subject', 'cli-app') as { items: Array<{ type: string; data: Record<string, unknown> }> };
    expect(clientEvents.items.map((e) => [e.type, e.data.actor])).to.deep.equal([['client.deleted', 'cli'], ['client.updated', 'cli'], ['client.created', 'cli']]);
    // refusals exit 2 with one line: an unknown account, a weak password, a bad limit
    for (const argv of [['users', 'disable', '--sub', 'nope'], ['users', 'set-password', '--sub', sub, '--password', 'short'], ['audit', '--limit', '0']]) {
      const err = await idp.cli(...argv).then(() => undefined, (e: Error) => e);
      expect(err?.constructor.name, argv.join(' ')).to.equal('UsageError');
    }
  });

  it('the OpenAPI 3.1 document lists exactly the routes of the router', async () => {
    const doc = await (await fetch(`${api}/openapi.json`)).json() as { openapi: string; paths: Record<string, Record<string, unknown>> };
    expect(doc.openapi).to.equal('3.1.0');
    const documented = Object.entries(doc.paths).flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} /admin/api/v1${p}`)).sort();
    const router = adminApiRouter({ issuer: idp.issuer, service: idp.admin, provider: () => idp.host.provider, jwks: () => [], storage: idp.storage, log: idp.log });
    const routed = router.stack.flatMap((l) => l.methods.filter((m) => m !== 'HEAD').map((m) => `${m} ${String(l.path).replace(/:(\w+)/g, '{$1}')}`)).sort();
    expect(routed.length).to.be.above(15);
    expect(documented).to.deep.equal(routed);
  });
});
