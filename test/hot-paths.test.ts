// The request hot paths: the client metadata cache in front of the Client
// model (TTL, invalidation on writes through the Registry, no caching of a
// read that raced a write), the bounded TTL map, and opaque token lengths by
// kind (one DynamoDB read per lookup by value) — against the real adapter on
// dynalite, with the DynamoDB commands counted. Then the DynamoDB round trips
// of each request through the real IdP (a round trip starts whenever a
// command is sent while none is in flight: parallel commands count once),
// with the ceilings we promise, and what the token pipeline
// (src/provider/token-pipeline.ts) must keep: one winner among concurrent
// redemptions, nothing issued when a write or the account check fails.
import crypto from 'node:crypto';
import { expect } from 'chai';
import type { Adapter, AdapterPayload } from 'oidc-provider';
import { QueryCommand } from '@aws-sdk/lib-dynamodb';
import { ClientCache, TtlCache, withClientCache } from '../src/provider/client-cache.ts';
import { bitsOfOpaqueRandomness, hintKey, hintsOf, mayBelongTo, withHints, withTokenKindLookup } from '../src/provider/token-kinds.ts';
import { Registry } from '../src/provider/registry.ts';
import { createDynamoAdapter } from '../adapters/dynamodb.ts';
import { interactionPipeline } from '../src/provider/interaction-pipeline.ts';
import { DynamoAccountStore } from '../src/accounts/dynamo-store.ts';
import { argon2Hasher } from '../src/accounts/hasher.ts';
import { startDynalite, openTestStorage, recordCommands, type TestBackend, type TestStorage } from './support/dynamo.ts';
import { startTestIdp, type TestIdp } from './support/idp.ts';
import { UserAgent, readForm } from './support/user-agent.ts';

describe('hot paths', function () {
  this.timeout(30_000);

  describe('TtlCache', () => {
    it('expires entries after the TTL, caches undefined, and drops the oldest beyond maxEntries', () => {
      let now = 1000;
      const c = new TtlCache<string | undefined>({ ttlMs: 100, maxEntries: 2, now: () => now });
      c.set('a', 'A');
      c.set('none', undefined);
      expect(c.get('a')).to.deep.equal({ at: 1000, value: 'A' });
      expect(c.get('none')).to.deep.equal({ at: 1000, value: undefined });
      now += 100;
      expect(c.get('a')).to.equal(undefined);
      c.set('a', 'A');
      c.set('b', 'B');
      c.set('c', 'C');
      expect(c.size).to.equal(2);
      expect(c.get('a')).to.equal(undefined);
      expect(c.get('c')?.value).to.equal('C');
    });
  });

  describe('ClientCache', () => {
    it('reads once per TTL, shares concurrent misses, and hands out copies', async () => {
      let now = 0;
      let reads = 0;
      const cache = new ClientCache({ ttlMs: 5000, now: () => now });
      const load = async () => {
        reads++;
        await new Promise((r) => setTimeout(r, 5));
        return { client_id: 'a', redirect_uris: ['https://x.test/cb'] } as AdapterPayload;
      };
      const [one, two] = await Promise.all([cache.find('a', load), cache.find('a', load)]);
      expect(reads).to.equal(1);
      expect(one).to.deep.equal(two);
      expect(one).to.not.equal(two);
      (one!.redirect_uris as string[]).push('https://evil.test/cb');
      expect((await cache.find('a', load))!.redirect_uris).to.deep.equal(['https://x.test/cb']);
      expect(reads).to.equal(1);
      now += 5000;
      await cache.find('a', load);
      expect(reads).to.equal(2);
    });

    it('caches unknown clients too, until invalidated', async () => {
      const cache = new ClientCache();
      let reads = 0;
      const missing = async () => { reads++; return undefined; };
      expect(await cache.find('x', missing)).to.equal(undefined);
      expect(await cache.find('x', missing)).to.equal(undefined);
      expect(reads).to.equal(1);
      cache.invalidate('x');
      await cache.find('x', missing);
      expect(reads).to.equal(2);
    });

    it('does not cache a read that was in flight when the client changed', async () => {
      const cache = new ClientCache();
      let release!: () => void;
      const stale = cache.find('a', () => new Promise((r) => { release = () => r({ client_id: 'a', v: 1 } as AdapterPayload); }));
      cache.invalidate('a');
      release();
      expect(await stale).to.deep.include({ v: 1 });
      expect(await cache.find('a', async () => ({ client_id: 'a', v: 2 } as AdapterPayload))).to.deep.include({ v: 2 });
    });
  });

  describe('on dynalite', () => {
    let backend: TestBackend;
    let storage: TestStorage;
    before(async () => {
      backend = await startDynalite();
      storage = await openTestStorage(backend);
    });
    after(async () => {
      await storage?.close();
      await backend?.close();
    });

    it('serves the Client model from the cache and sees Registry writes at once', async () => {
      const cache = new ClientCache();
      const registry = new Registry(storage, { clientCache: cache });
      const Provider = withClientCache(createDynamoAdapter({ doc: storage.doc, table: storage.tables.oidc }), cache);
      const clients: Adapter = new Provider('Client');
      const log = recordCommands(storage.doc);
      try {
        await registry.putClient({ client_id: 'app', client_secret: 'one' });
        log.reset();
        expect(await clients.find('app')).to.deep.include({ client_secret: 'one' });
        expect(await clients.find('app')).to.deep.include({ client_secret: 'one' });
        expect(log.names).to.deep.equal(['GetCommand']);
        await registry.putClient({ client_id: 'app', client_secret: 'two' });
        expect(await clients.find('app')).to.deep.include({ client_secret: 'two' });
        await registry.removeClient('app');
        expect(await clients.find('app')).to.equal(undefined);
        // other models pass through
        const sessions: Adapter = new Provider('Session');
        log.reset();
        await sessions.find('nope');
        await sessions.find('nope');
        expect(log.names).to.deep.equal(['GetCommand', 'GetCommand']);
      } finally {
        log.restore();
      }
    });

    it('write-behind in an interaction scope: held writes answer reads, keep their order per item, and are all sent before the handler\'s response', async () => {
      const accountsRead: string[] = [];
      const pipeline = interactionPipeline(createDynamoAdapter({ doc: storage.doc, table: storage.tables.oidc }), {
        loadAccount: async (sub) => { accountsRead.push(sub); return { sub }; },
      });
      const sessions: Adapter = new pipeline.Adapter('Session');
      const interactions: Adapter = new pipeline.Adapter('Interaction');
      const removed: string[] = [];
      const run = (method: string, path: string, handler: () => Promise<void>) =>
        pipeline.middleware({ method, path, remove: (h: string) => { removed.push(h); } } as never, handler as never);
      await interactions.upsert('i-old', { uid: 'i-old', kind: 'Interaction', v: 0 } as AdapterPayload, 60);
      await interactions.upsert('i-res', { uid: 'i-res', kind: 'Interaction', result: { login: { accountId: 'sub-1' } } } as AdapterPayload, 60);
      const log = recordCommands(storage.doc);
      try {
        await run('GET', '/interaction/i-old', async () => {
          await sessions.upsert('s1', { uid: 'u1', v: 1 } as AdapterPayload, 60);
          await sessions.upsert('s1', { uid: 'u1', v: 2 } as AdapterPayload, 60);
          await interactions.destroy('i-old');
          expect(await interactions.find('i-old')).to.equal(undefined);
          await interactions.upsert('i-old', { uid: 'i-old', kind: 'Interaction', v: 3 } as AdapterPayload, 60);
          expect(await sessions.find('s1')).to.deep.equal({ uid: 'u1', v: 2 });
          expect(await interactions.find('i-old')).to.deep.include({ v: 3 });
          expect(log.names, 'nothing sent while the handler runs').to.deep.equal([]);
        });
        // sent before the middleware returned: the last save, and the destroy before the save
        expect(await sessions.find('s1')).to.deep.equal({ uid: 'u1', v: 2 });
        expect(await interactions.find('i-old')).to.deep.include({ v: 3 });
        expect(await sessions.findByUid('u1')).to.deep.equal({ uid: 'u1', v: 2 });

        // a call that a held write could change sends the held writes first
        await run('POST', '/interaction/x/consent', async () => {
          await sessions.upsert('s2', { uid: 'u2', v: 1 } as AdapterPayload, 60);
          expect(await sessions.findByUid('u2')).to.deep.equal({ uid: 'u2', v: 1 });
        });

        // a failing handler: its writes are still sent, its error goes on
        const failing = run('POST', '/interaction/x/consent', async () => {
          await sessions.destroy('s2');
          throw new Error('handler failed');
        });
        expect(await failing.then(() => 'resolved', (err: Error) => err.message)).to.equal('handler failed');
        expect(await sessions.find('s2')).to.equal(undefined);

        // a resume reads the Interaction its path names at once, and the account its result names
        log.reset();
        await run('GET', '/auth/i-res', async () => {
          await new Promise((r) => setTimeout(r, 5));
          expect(log.names, 'read before the handler asked').to.deep.equal(['GetCommand']);
          expect(await interactions.find('i-res')).to.deep.include({ uid: 'i-res' });
          expect(log.names).to.have.length(1);
        });
        expect(accountsRead).to.deep.equal(['sub-1']);
        // outside a scope: the adapter as it is
        log.reset();
        await sessions.upsert('s3', { uid: 'u3' } as AdapterPayload, 60);
        expect(log.names).to.deep.equal(['BatchWriteCommand']);
        expect(removed).to.deep.equal([]);
      } finally {
        log.restore();
      }
    });

    it('gives AccessToken, ClientCredentials and RefreshToken values lengths of their own, and reads only the model a value can belong to', async () => {
      const lengths = Object.fromEntries(['AccessToken', 'ClientCredentials', 'RefreshToken', 'AuthorizationCode', 'Session']
        .map((kind) => [kind, Math.ceil(bitsOfOpaqueRandomness(undefined, { kind }) / 6)]));
      expect(lengths).to.deep.equal({ AccessToken: 44, ClientCredentials: 45, RefreshToken: 46, AuthorizationCode: 43, Session: 43 });
      expect(mayBelongTo('ClientCredentials', 'x'.repeat(45))).to.equal(true);
      expect(mayBelongTo('ClientCredentials', 'x'.repeat(44))).to.equal(false);
      expect(mayBelongTo('ClientCredentials', 'x'.repeat(43)), 'tokens issued before: every kind').to.equal(true);
      expect(mayBelongTo('Grant', 'x'.repeat(10))).to.equal(true);

      const Cls = withTokenKindLookup(createDynamoAdapter({ doc: storage.doc, table: storage.tables.oidc }));
      const at: Adapter = new Cls('AccessToken');
      const cc: Adapter = new Cls('ClientCredentials');
      const rt: Adapter = new Cls('RefreshToken');
      const ccValue = 'c'.repeat(45);
      const legacy = 'l'.repeat(43);
      await cc.upsert(ccValue, { clientId: 'svc', kind: 'ClientCredentials' } as AdapterPayload, 60);
      await cc.upsert(legacy, { clientId: 'svc', kind: 'ClientCredentials' } as AdapterPayload, 60);
      const log = recordCommands(storage.doc);
      try {
        // what token_find.js does for a value without a hint
        const found = await Promise.all([at.find(ccValue), cc.find(ccValue), rt.find(ccValue)]);
        expect(found.filter(Boolean)).to.have.length(1);
        expect(log.names).to.deep.equal(['GetCommand']);
        log.reset();
        const old = await Promise.all([at.find(legacy), cc.find(legacy), rt.find(legacy)]);
        expect(old[1]).to.deep.include({ clientId: 'svc' });
        expect(log.names).to.have.length(3);
      } finally {
        log.restore();
      }
    });
  });
});

describe('DynamoDB round trips per request (the real IdP)', function () {
  this.timeout(120_000);
  let idp: TestIdp;
  let trips: TripCounter;
  const SECRET = 'round-trip-secret-0123456789abcdef';
  const REDIRECT = 'https://rp.example.test/cb';
  const API = 'https://api.example.test';
  const EMAIL = 'trips@example.com';
  const PASSWORD = 'a long and right passphrase 42';
  const basic = (id: string) => `Basic ${Buffer.from(`${id}:${SECRET}`).toString('base64')}`;
  let sub: string;

  before(async () => {
    // no refresh reuse grace: the concurrent-refresh test below is about one winner (test/refresh-grace.test.ts has the grace)
    // EVENTS_SINK=none: events are still stored with their requests (counted), but no publisher
    // delivers them in the background, where its writes could fall into another request's count
    idp = await startTestIdp({ LOG_LEVEL: 'warn', REFRESH_REUSE_GRACE_SECONDS: '0', EVENTS_SINK: 'none' });
    await idp.cli('clients', 'add', '--id', 'webapp', '--secret', SECRET, '--name', 'RP', '--redirect-uri', REDIRECT, '--grant-types', 'authorization_code,refresh_token');
    await idp.cli('clients', 'add', '--id', 'svc', '--secret', SECRET, '--grant-types', 'client_credentials');
    await idp.cli('resources', 'add', '--id', API, '--scope', 'api:read', '--format', 'opaque');
    sub = (await idp.cli('users', 'add', '--email', EMAIL, '--password', PASSWORD, '--name', 'Trips', '--email-verified') as { sub: string }).sub;
    trips = countTrips(idp);
  });

  after(async () => {
    trips?.restore();
    await idp?.close();
  });

  const token = (client: string, fields: Record<string, string>) => fetch(`${idp.url}/token`, {
    method: 'POST', headers: { authorization: basic(client), 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
    body: new URLSearchParams(fields),
  }).then(async (r) => ({ status: r.status, body: await r.json() as Record<string, string> }));

  /** authorize → login page; the login POST itself is left to the caller */
  async function loginPage(ua: UserAgent, prompt = 'consent') {
    const verifier = crypto.randomBytes(32).toString('base64url');
    const params = new URLSearchParams({
      client_id: 'webapp', response_type: 'code', redirect_uri: REDIRECT, scope: 'openid email offline_access', prompt,
      state: 's', code_challenge: crypto.createHash('sha256').update(verifier).digest('base64url'), code_challenge_method: 'S256',
    });
    const step = await ua.navigate(`/auth?${params}`);
    expect(step.res.status).to.equal(200);
    return { verifier, form: readForm(await step.res.text()) };
  }

  /** the login POST's answer onwards: consent, then the code at the redirect URI */
  async function toCode(ua: UserAgent, res: Response): Promise<string> {
    expect(res.status, await res.clone().text()).to.equal(303);
    let step = await ua.navigate(res.headers.get('location')!);
    if (!step.offsite) {
      const consent = readForm(await step.res.text());
      step = await ua.navigate(consent.action, { form: consent.fields });
    }
    const code = new URL(step.offsite!).searchParams.get('code');
    expect(code).to.be.a('string');
    return code!;
  }

  async function signIn(ua = new UserAgent(idp.issuer)) {
    const { verifier, form } = await loginPage(ua);
    const res = await ua.request(form.action, { form: { ...form.fields, login: EMAIL, password: PASSWORD } });
    return { ua, verifier, code: await toCode(ua, res) };
  }

  const exchange = (code: string, verifier: string) => token('webapp', { grant_type: 'authorization_code', code, redirect_uri: REDIRECT, code_verifier: verifier });

  it('runs refresh and code exchange in the token pipeline (handlers and hinted values)', () => {
    expect(idp.host.pipeline).to.deep.equal({ handlers: true, hints: true });
  });

  it('client_credentials (opaque) ≤ 1, introspection ≤ 1 with and without a hint', async () => {
    await token('svc', { grant_type: 'client_credentials', scope: 'api:read', resource: API }); // warm the caches
    const cc = await trips.measure(() => token('svc', { grant_type: 'client_credentials', scope: 'api:read', resource: API }));
    expect(cc.result.status).to.equal(200);
    expect(cc.trips, JSON.stringify(cc)).to.be.at.most(1);
    const at = cc.result.body.access_token;
    for (const hint of [undefined, 'access_token']) {
      const intro = await trips.measure(() => fetch(`${idp.url}/token/introspection`, {
        method: 'POST', headers: { authorization: basic('svc'), 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ token: at, ...(hint ? { token_type_hint: hint } : {}) }),
      }).then((r) => r.json() as Promise<{ active: boolean }>));
      expect(intro.result.active).to.equal(true);
      expect(intro.trips, JSON.stringify(intro)).to.be.at.most(1);
      expect(intro.calls).to.be.at.most(1);
    }
  });

  it('login POST ≤ 5 round trips for a new browser, ≤ 4 from a known device, ≤ 6 inside a session (was 15, then 6 / 5 / 7)', async () => {
    const first = await signIn(); // warm; its browser is now a known device of the account
    const returning = new UserAgent(idp.issuer);
    returning.jar.set('idp.device', first.ua.jar.get('idp.device')!);
    const cases = [
      { label: 'new browser', ua: new UserAgent(idp.issuer), prompt: 'consent', ceiling: 5 },
      { label: 'known device, no session', ua: returning, prompt: 'consent', ceiling: 4 },
      { label: 'prompt=login inside a session', ua: first.ua, prompt: 'login consent', ceiling: 6 },
    ];
    for (const { label, ua, prompt, ceiling } of cases) {
      const { form } = await loginPage(ua, prompt);
      expect(form.action, label).to.match(/\/login$/);
      const post = await trips.measure(() => ua.request(form.action, { form: { ...form.fields, login: EMAIL, password: PASSWORD } }));
      expect(post.result.status, label).to.equal(303);
      expect(post.trips, `${label}: ${JSON.stringify(post)}`).to.be.at.most(ceiling);
      await toCode(ua, post.result);
    }
  });

  it('the whole login, authorize to tokens (7 HTTP requests): ≤ 20 round trips (was 56, then 34, then 29)', async () => {
    await signIn(); // warm
    const flow = await trips.measure(async () => {
      const { code, verifier } = await signIn();
      return exchange(code, verifier);
    });
    expect(flow.result.status).to.equal(200);
    expect(flow.trips, JSON.stringify(flow)).to.be.at.most(20);
    // 21 reads: the two resumes do not read the MFA factors again, the login step just decided (mfa/policy.ts)
    expect(flow.ops.Get, JSON.stringify(flow)).to.be.at.most(21);
  });

  it('resumes ≤ 3 round trips each, the consent page ≤ 2, the consent POST ≤ 4 (interaction-pipeline.ts; plus the consent record)', async () => {
    await signIn(); // warm
    const ua = new UserAgent(idp.issuer);
    const { form } = await loginPage(ua);
    const post = await ua.request(form.action, { form: { ...form.fields, login: EMAIL, password: PASSWORD } });
    expect(post.status).to.equal(303);
    const resume1 = await trips.measure(() => ua.request(post.headers.get('location')!));
    expect(resume1.result.status).to.equal(303);
    expect(resume1.trips, `resume after login: ${JSON.stringify(resume1)}`).to.be.at.most(3);
    const page = await trips.measure(() => ua.request(resume1.result.headers.get('location')!));
    expect(page.result.status).to.equal(200);
    expect(page.trips, `consent page: ${JSON.stringify(page)}`).to.be.at.most(2);
    const consent = readForm(await page.result.text());
    const approve = await trips.measure(() => ua.request(consent.action, { form: consent.fields }));
    expect(approve.result.status).to.equal(303);
    // 4 since consent belongs to the account (src/consent): the grant's consent record is read
    // before Allow is applied and written with the held writes
    expect(approve.trips, `consent POST: ${JSON.stringify(approve)}`).to.be.at.most(4);
    const resume2 = await trips.measure(() => ua.request(approve.result.headers.get('location')!));
    expect(resume2.result.status).to.equal(303);
    expect(resume2.trips, `resume after consent: ${JSON.stringify(resume2)}`).to.be.at.most(3);
    expect(new URL(resume2.result.headers.get('location')!).searchParams.get('code')).to.be.a('string');
  });

  it('a resume whose held writes fail answers 503 with no redirect and no cookie: no code reaches the browser', async () => {
    await signIn(); // warm
    const ua = new UserAgent(idp.issuer);
    const { form } = await loginPage(ua);
    let res = await ua.request(form.action, { form: { ...form.fields, login: EMAIL, password: PASSWORD } });
    res = await ua.request(res.headers.get('location')!);
    const page = await ua.request(res.headers.get('location')!);
    const consent = readForm(await page.text());
    const approve = await ua.request(consent.action, { form: consent.fields });
    const resumeUrl = approve.headers.get('location')!;
    const before = new Map(ua.jar);
    // the code's save (grant membership and item in one BatchWriteItem) fails in the flush
    const failing = failFirst(idp, 'BatchWriteCommand');
    let failed: Response;
    try {
      failed = await ua.request(resumeUrl);
    } finally {
      failing.restore();
    }
    expect(failing.failed).to.equal(1);
    expect(failed.status).to.equal(503);
    expect(failed.headers.get('location')).to.equal(null);
    expect(failed.headers.getSetCookie()).to.deep.equal([]);
    expect(new Map(ua.jar)).to.deep.equal(before);
    // the browser starts again and gets a fresh code
    const again = await signIn(ua);
    expect((await exchange(again.code, again.verifier)).status).to.equal(200);
  });

  it('code exchange ≤ 2 and refresh ≤ 2 round trips (were 8 each); the refresh token names its grant and account', async () => {
    const { code, verifier } = await signIn();
    const ex = await trips.measure(() => exchange(code, verifier));
    expect(ex.result.status, JSON.stringify(ex.result.body)).to.equal(200);
    expect(ex.trips, JSON.stringify(ex)).to.be.at.most(2);
    expect(ex.calls, JSON.stringify(ex)).to.be.at.most(6);
    let rt = ex.result.body.refresh_token;
    expect(hintsOf('RefreshToken', rt, idp.host.hintKey)).to.deep.include({ accountId: sub });
    // the values handed out name neither the grant nor the account (the hints are sealed)
    const grantId = hintsOf('RefreshToken', rt, idp.host.hintKey).grantId!;
    for (const value of [rt, ex.result.body.access_token as string, code]) {
      expect(value).to.not.contain(grantId);
      expect(value).to.not.contain(Buffer.from(sub, 'utf8').toString('base64url'));
    }
    for (let i = 0; i < 3; i++) {
      const r = await trips.measure(() => token('webapp', { grant_type: 'refresh_token', refresh_token: rt }));
      expect(r.result.status, JSON.stringify(r.result.body)).to.equal(200);
      expect(r.trips, JSON.stringify(r)).to.be.at.most(2);
      expect(r.calls, JSON.stringify(r)).to.be.at.most(6);
      expect(r.result.body.id_token).to.be.a('string');
      rt = r.result.body.refresh_token;
    }
  });

  it('introspection of a user\'s access or refresh token ≤ 1 round trip (token ∥ its grant)', async () => {
    const { code, verifier } = await signIn();
    const t = (await exchange(code, verifier)).body;
    expect(hintsOf('AccessToken', t.access_token, idp.host.hintKey).grantId).to.equal(hintsOf('RefreshToken', t.refresh_token, idp.host.hintKey).grantId);
    for (const value of [t.access_token, t.refresh_token]) {
      const intro = await trips.measure(() => fetch(`${idp.url}/token/introspection`, {
        method: 'POST', headers: { authorization: basic('webapp'), 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ token: value }),
      }).then((r) => r.json() as Promise<{ active: boolean; sub: string }>));
      expect(intro.result).to.include({ active: true, sub });
      expect(intro.trips, JSON.stringify(intro)).to.equal(1);
      expect(intro.calls, JSON.stringify(intro)).to.equal(2);
    }
    // a revoked grant is seen at once: the grant is read, not assumed
    await fetch(`${idp.url}/token/revocation`, {
      method: 'POST', headers: { authorization: basic('webapp'), 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ token: t.refresh_token }),
    });
    const after = await fetch(`${idp.url}/token/introspection`, {
      method: 'POST', headers: { authorization: basic('webapp'), 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ token: t.access_token }),
    }).then((r) => r.json() as Promise<{ active: boolean }>);
    expect(after.active).to.equal(false);
  });

  it('a refresh token issued without hints still works, in ≤ 3 round trips', async () => {
    const { code, verifier } = await signIn();
    const hinted = (await exchange(code, verifier)).body.refresh_token;
    const RefreshTokens: Adapter = new (createDynamoAdapter({ doc: idp.storage.doc, table: idp.storage.tables.oidc }))('RefreshToken');
    const payload = (await RefreshTokens.find(hinted))!;
    const plain = crypto.randomBytes(40).toString('base64url').slice(0, 46);
    await RefreshTokens.upsert(plain, { ...payload, jti: plain }, 3600);
    await RefreshTokens.destroy(hinted);
    const r = await trips.measure(() => token('webapp', { grant_type: 'refresh_token', refresh_token: plain }));
    expect(r.result.status, JSON.stringify(r.result.body)).to.equal(200);
    expect(r.trips, JSON.stringify(r)).to.be.at.most(3);
  });

  it('concurrent refreshes of one token: exactly one gets tokens, the others invalid_grant, and the grant is revoked', async () => {
    const { code, verifier } = await signIn();
    const rt = (await exchange(code, verifier)).body.refresh_token;
    const results = await Promise.all(Array.from({ length: 4 }, () => token('webapp', { grant_type: 'refresh_token', refresh_token: rt })));
    const ok = results.filter((r) => r.status === 200);
    expect(ok, JSON.stringify(results)).to.have.length(1);
    for (const r of results.filter((x) => x.status !== 200)) expect(r.body.error).to.equal('invalid_grant');
    // the reuse revoked the grant: the winner's tokens are dead too
    const again = await token('webapp', { grant_type: 'refresh_token', refresh_token: ok[0].body.refresh_token });
    expect(again.body.error).to.equal('invalid_grant');
    expect(await grantMembers(hintsOf('RefreshToken', rt, idp.host.hintKey).grantId!)).to.deep.equal([]);
  });

  it('code exchange for an account deleted after the login: invalid_grant, and the tokens it wrote are gone', async () => {
    const other = 'gone@example.com';
    const goneSub = (await idp.cli('users', 'add', '--email', other, '--password', PASSWORD, '--name', 'Gone', '--email-verified') as { sub: string }).sub;
    const ua = new UserAgent(idp.issuer);
    const { verifier, form } = await loginPage(ua);
    const code = await toCode(ua, await ua.request(form.action, { form: { ...form.fields, login: other, password: PASSWORD } }));
    const grantId = hintsOf('AuthorizationCode', code, idp.host.hintKey).grantId!;
    await idp.cli('users', 'delete', '--erase', goneSub);
    const r = await exchange(code, verifier);
    expect(r.status).to.equal(400);
    expect(r.body.error).to.equal('invalid_grant');
    expect(r.body).to.not.have.property('access_token');
    // the code is consumed (as before: oidc-provider consumes before it asks for the account); no token of the grant is left
    expect((await grantMembers(grantId)).filter((m) => !m.startsWith('AuthorizationCode#'))).to.deep.equal([]);
  });

  it('a write that fails in the write wave: 503, and the tokens written beside it are destroyed', async () => {
    const { code, verifier } = await signIn();
    const first = await exchange(code, verifier);
    const grantId = hintsOf('RefreshToken', first.body.refresh_token, idp.host.hintKey).grantId!;
    const before = await grantMembers(grantId);
    const failing = failFirst(idp, 'BatchWriteCommand');
    let r;
    try {
      r = await token('webapp', { grant_type: 'refresh_token', refresh_token: first.body.refresh_token });
    } finally {
      failing.restore();
    }
    expect(r.status, JSON.stringify(r.body)).to.equal(503);
    expect(r.body.error).to.equal('temporarily_unavailable');
    expect(failing.failed).to.equal(1);
    expect(await grantMembers(grantId)).to.deep.equal(before);
  });

  it('a value with made-up hints is not found, and the account it names is read but not opened', async () => {
    const { code, verifier } = await signIn();
    const rt = (await exchange(code, verifier)).body.refresh_token;
    const forged = withHints('RefreshToken', crypto.randomBytes(40).toString('base64url').slice(0, 46), hintsOf('RefreshToken', rt, idp.host.hintKey).grantId, sub, idp.host.hintKey);
    const r = await token('webapp', { grant_type: 'refresh_token', refresh_token: forged });
    expect(r.body.error).to.equal('invalid_grant');
    // the store's side of it: read now, opened only once confirmed
    const store = new DynamoAccountStore(idp.storage, argon2Hasher(idp.config.argon2), idp.keyring);
    expect(await store.findBySub(sub, { onlyIf: Promise.resolve(false) })).to.equal(undefined);
    expect(store.cache.misses + store.cache.hits, 'no data key opened').to.equal(0);
    expect(await store.findBySub(sub, { onlyIf: Promise.resolve(true) })).to.deep.include({ sub });
  });

  /** "<Model>#<id>" of every membership item of the grant */
  async function grantMembers(grantId: string): Promise<string[]> {
    const r = await idp.storage.doc.send(new QueryCommand({
      TableName: idp.storage.tables.oidc, KeyConditionExpression: 'pk = :pk', ExpressionAttributeValues: { ':pk': `grant#${grantId}` }, ConsistentRead: true,
    }));
    return (r.Items ?? []).map((i) => i.sk as string).sort();
  }
});

describe('token value hints (token-kinds.ts)', () => {
  const key = hintKey(crypto.randomBytes(32));
  it('refresh tokens name grant and account, codes and access tokens only the grant — sealed, so the value shows neither; other kinds and bad ids get none', () => {
    const rt = withHints('RefreshToken', 'r'.repeat(46), 'G_rant-1', 'user:ü/1', key);
    expect(rt.startsWith(`${'r'.repeat(46)}~`)).to.equal(true);
    expect(rt).to.not.contain('G_rant-1');
    expect(rt).to.not.contain(Buffer.from('user:ü/1').toString('base64url'));
    expect(hintsOf('RefreshToken', rt, key)).to.deep.equal({ grantId: 'G_rant-1', accountId: 'user:ü/1' });
    const code = withHints('AuthorizationCode', 'c'.repeat(43), 'G1', 'someone', key);
    expect(code).to.not.contain('G1').and.not.contain('someone');
    expect(hintsOf('AuthorizationCode', code, key)).to.deep.equal({ grantId: 'G1' });
    const at = withHints('AccessToken', 'a'.repeat(44), 'G1', 'x', key);
    expect(hintsOf('AccessToken', at, key)).to.deep.equal({ grantId: 'G1' });
    // a fresh nonce each time: two tokens of one grant do not share their hint
    expect(withHints('AccessToken', 'a'.repeat(44), 'G1', 'x', key)).to.not.equal(at);
    expect(withHints('ClientCredentials', 'c'.repeat(45), 'G1', 'x', key)).to.equal('c'.repeat(45));
    expect(withHints('RefreshToken', 'r'.repeat(46), 'bad id', 'x', key)).to.equal('r'.repeat(46));
    expect(hintsOf('RefreshToken', 'r'.repeat(46), key)).to.deep.equal({});
    expect(hintsOf('RefreshToken', `${'r'.repeat(46)}~g~a~b`, key)).to.deep.equal({});
  });

  it('a hint that was tampered with, sealed under another key, or an old plaintext one, is no hint', () => {
    const rt = withHints('RefreshToken', 'r'.repeat(46), 'G1', 'sub-1', key);
    const [random, sealed] = rt.split('~');
    const raw = Buffer.from(sealed, 'base64url');
    raw[14] ^= 1;
    expect(hintsOf('RefreshToken', `${random}~${raw.toString('base64url')}`, key)).to.deep.equal({});
    expect(hintsOf('RefreshToken', rt, hintKey(crypto.randomBytes(32)))).to.deep.equal({});
    expect(hintsOf('RefreshToken', `${'r'.repeat(46)}~G1~${Buffer.from('sub-1').toString('base64url')}`, key)).to.deep.equal({});
  });

  it('a hinted value may be only what it says (by the length of its random part)', () => {
    const rt = withHints('RefreshToken', 'r'.repeat(46), 'G1', 's', key);
    expect(mayBelongTo('RefreshToken', rt)).to.equal(true);
    expect(mayBelongTo('AccessToken', rt)).to.equal(false);
    expect(mayBelongTo('ClientCredentials', rt)).to.equal(false);
    expect(mayBelongTo('RefreshToken', `${'r'.repeat(45)}~G1`)).to.equal(false);
    expect(mayBelongTo('AuthorizationCode', `${'c'.repeat(43)}~G1`)).to.equal(true);
    const at = withHints('AccessToken', 'a'.repeat(44), 'G1', 's', key);
    expect(mayBelongTo('AccessToken', at)).to.equal(true);
    expect(mayBelongTo('RefreshToken', at)).to.equal(false);
    expect(mayBelongTo('ClientCredentials', at)).to.equal(false);
  });
});

interface Measured<T> { result: T; calls: number; trips: number; ops: Record<string, number> }
interface TripCounter {
  measure<T>(fn: () => Promise<T>): Promise<Measured<T>>;
  restore(): void;
}

type Sendable = { constructor: { name: string }; input: { TableName?: string; RequestItems?: Record<string, unknown> } };
type Send = (cmd: Sendable, ...rest: unknown[]) => Promise<unknown>;

/**
 * Counts the commands to the oidc and accounts tables (not the keys table,
 * which a background refresh reads) and the round trips: a round trip starts
 * whenever a command is sent while none is in flight.
 */
function countTrips(idp: TestIdp): TripCounter {
  const doc = idp.storage.doc as unknown as { send: Send };
  const original = doc.send;
  const tables = new Set([idp.storage.tables.oidc, idp.storage.tables.accounts]);
  let inflight = 0;
  let calls = 0;
  let waves = 0;
  let ops: Record<string, number> = {};
  doc.send = function (this: unknown, cmd: Sendable, ...rest: unknown[]) {
    const table = cmd.input.TableName ?? Object.keys(cmd.input.RequestItems ?? {})[0];
    if (!tables.has(table ?? '')) return original.call(this, cmd, ...rest);
    calls++;
    const name = cmd.constructor.name.replace(/Command$/, '');
    ops[name] = (ops[name] ?? 0) + 1;
    if (inflight === 0) waves++;
    inflight++;
    return original.call(this, cmd, ...rest).finally(() => { inflight--; });
  };
  return {
    async measure(fn) {
      calls = 0;
      waves = 0;
      ops = {};
      const result = await fn();
      // let anything the request started after its answer settle into it
      await new Promise((r) => setTimeout(r, 20));
      return { result, calls, trips: waves, ops };
    },
    restore() {
      doc.send = original;
    },
  };
}

/** makes the next command of class `name` fail as a network error would */
function failFirst(idp: TestIdp, name: string): { failed: number; restore(): void } {
  const doc = idp.storage.doc as unknown as { send: Send };
  const original = doc.send;
  const state = {
    failed: 0,
    restore() { doc.send = original; },
  };
  doc.send = function (this: unknown, cmd: Sendable, ...rest: unknown[]) {
    if (state.failed === 0 && cmd.constructor.name === name) {
      state.failed++;
      return Promise.reject(Object.assign(new Error('socket hang up'), { name: 'TimeoutError' }));
    }
    return original.call(this, cmd, ...rest);
  };
  return state;
}
