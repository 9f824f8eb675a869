// Forward-auth (src/edge) in-process, over real HTTP: the sites file is
// checked at start; paths are judged after normalisation; public routes pass;
// a JWT or opaque bearer token for the site's audience gets a 200 with an
// internal JWT that verifies against /jwks; wrong audience, missing scope or
// role, unmatched paths and forged cookies are refused; a browser is sent to
// sign in and comes back with a session that passes; a revoked token passes
// until the cache time and not after; Envoy's path form works; the internal
// JWT is signed by KMS in kms-sign mode.
import { expect } from 'chai';
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { startTestIdp, type TestIdp } from './support/idp.ts';
import { startKmsServer, type KmsTestServer } from './support/kms-server.ts';
import { UserAgent } from './support/user-agent.ts';
import { SITE_AUD, clientCredentials, edgeFiles, registerEdgeFixtures, revoke, signIn } from './support/edge.ts';
import { loadConfig, ConfigError } from '../src/config/index.ts';
import { compileGlob, normalizePath, parseSites } from '../src/edge/sites.ts';

describe('forward-auth: sites file and path rules', () => {
  const cfg = { issuer: 'https://id.example.com', sessionCookieDomain: undefined };

  it('refuses a wrong sites file with one line naming the site and field', () => {
    const cases: Array<[unknown, RegExp]> = [
      [{}, /"sites" must be a non-empty array/],
      [{ sites: [{ id: 'a', audience: 'x', hosts: ['id.example.com'], routes: [{ path: 'api/**' }] }] }, /sites\[0\] \("a"\)\.routes\[0\]\.path must be a path starting with "\/"/],
      [{ sites: [{ id: 'a', audience: 'x', hosts: ['id.example.com'], routes: [{ path: '/x', scope: ['a'] }] }] }, /routes\[0\] has an unknown field "scope"/],
      [{ sites: [{ id: 'a', audience: 'x', hosts: ['app.example.com'], routes: ['/x'] }] }, /"app\.example\.com" is not the issuer's host \(id\.example\.com\): set SESSION_COOKIE_DOMAIN/],
      [{ sites: [{ id: 'a', audience: 'x', routes: ['/x'] }] }, /hosts must list the site's host names/],
      [{ sites: [{ id: 'a', audience: 'x', hosts: ['id.example.com'] }] }, /has no routes/],
      [{ sites: [{ id: 'a', audience: 'x', session: false, routes: ['/x'] }, { id: 'a', audience: 'y', session: false, routes: ['/y'] }] }, /sites\[1\]\.id "a" is used by another site/],
      [{ sites: [{ id: 'a', audience: 'x', hosts: ['id.example.com'], publicRoutes: [{ path: '/p', scopes: ['s'] }] }] }, /is public: it cannot require scopes or roles/],
      [{ sites: [{ id: 'a', audience: 'x', hosts: ['id.example.com'], routes: [{ path: '/x', methods: [] }] }] }, /must name at least one method/],
    ];
    for (const [doc, re] of cases) {
      expect(() => parseSites(doc, 'EDGE_SITES_FILE s.json', cfg), JSON.stringify(doc)).to.throw(ConfigError, re);
    }
    // under SESSION_COOKIE_DOMAIN a sibling host receives the cookie
    expect(parseSites({ sites: [{ id: 'a', audience: 'x', hosts: ['app.example.com:8443'], routes: ['/x'] }] }, 's', { ...cfg, sessionCookieDomain: 'example.com' }).byHost('APP.example.com:8443')?.id).to.equal('a');
  });

  it('checks SESSION_COOKIE_DOMAIN and JWKS_MAX_AGE_SECONDS at start', () => {
    expect(loadConfig({ ISSUER: 'https://id.example.com', SESSION_COOKIE_DOMAIN: '.Example.com' }).sessionCookieDomain).to.equal('example.com');
    expect(() => loadConfig({ ISSUER: 'https://id.example.com', SESSION_COOKIE_DOMAIN: 'other.com' })).to.throw(ConfigError, /SESSION_COOKIE_DOMAIN must be the issuer's host \(id\.example\.com\) or a parent domain/);
    expect(() => loadConfig({ SESSION_COOKIE_DOMAIN: 'http://x' })).to.throw(ConfigError, /SESSION_COOKIE_DOMAIN must be a domain name/);
    expect(loadConfig({}).keys.jwksMaxAgeSeconds).to.equal(3600);
    expect(loadConfig({ KEY_PREPUBLISH_SECONDS: '600', KEYS_REFRESH_SECONDS: '60' }).keys.jwksMaxAgeSeconds).to.equal(269);
    expect(() => loadConfig({ KEY_PREPUBLISH_SECONDS: '600', JWKS_MAX_AGE_SECONDS: '600' })).to.throw(ConfigError, /JWKS_MAX_AGE_SECONDS \(600\) must be below KEY_PREPUBLISH_SECONDS/);
    expect(() => loadConfig({ EDGE_JWT_ALG: 'HS256' })).to.throw(ConfigError, /EDGE_JWT_ALG must be one of/);
  });

  it('normalises paths the way upstreams read them, and refuses what cannot be judged', () => {
    expect(normalizePath('/public/../admin/x?y=1')).to.equal('/admin/x');
    expect(normalizePath('/public/..;/admin')).to.equal('/admin');
    expect(normalizePath('/%70ublic//a/./b/')).to.equal('/public/a/b/');
    expect(normalizePath('/../../etc')).to.equal('/etc');
    expect(normalizePath('/api%2Fadmin')).to.equal(null);
    expect(normalizePath('/a%5cb')).to.equal(null);
    expect(normalizePath('/a%zz')).to.equal(null);
    expect(normalizePath('relative')).to.equal(null);
    const g = compileGlob('/api/**');
    expect(['/api', '/api/', '/api/a/b'].every((p) => g.test(p))).to.equal(true);
    expect(g.test('/apix')).to.equal(false);
    const one = compileGlob('/files/*.png');
    expect(one.test('/files/a.png')).to.equal(true);
    expect(one.test('/files/a/b.png')).to.equal(false);
  });
});

describe('forward-auth against the running IdP', function () {
  this.timeout(60_000);
  let idp: TestIdp;
  let sub: string;
  const fa = (target: string, headers: Record<string, string> = {}, query = '') => fetch(`${idp.url}/forward-auth${query}`, {
    headers: { 'x-original-uri': target, 'x-original-method': 'GET', 'x-forwarded-host': '127.0.0.1:8080', 'x-forwarded-proto': 'http', ...headers },
    redirect: 'manual',
  });
  const internal = async (res: Response, aud = SITE_AUD) => {
    const auth = res.headers.get('authorization') ?? '';
    expect(auth).to.match(/^Bearer /);
    const jwt = auth.slice(7);
    return { jwt, ...await jwtVerify(jwt, createRemoteJWKSet(new URL(`${idp.url}/jwks`)), { issuer: idp.issuer, audience: aud, typ: 'internal+jwt' }) };
  };

  before(async () => {
    idp = await startTestIdp({ LOG_LEVEL: 'warn', EDGE_CACHE_SECONDS: '2', ...edgeFiles() });
    sub = await registerEdgeFixtures(idp);
  });
  after(async () => {
    await idp?.close();
  });

  it('lets public routes through without credentials, and denies unknown sites and unmatched paths', async () => {
    const pub = await fa('/public/logo.png');
    expect(pub.status).to.equal(200);
    expect(pub.headers.get('authorization')).to.equal(null);
    expect((await fa('/app/x', { 'x-original-method': 'OPTIONS' })).status).to.equal(200);
    expect((await fa('/public/x', { 'x-forwarded-host': 'unknown.edge.test' })).status).to.equal(403);
    const unmatched = await fa('/nowhere');
    expect(unmatched.status).to.equal(403);
    expect((await unmatched.json() as { error: string }).error).to.equal('access_denied');
    // a dot-segment does not turn a protected path into a public one
    expect((await fa('/public/../app/x')).status).to.equal(401);
    expect((await fa('/public%2F..%2Fapp')).status).to.equal(400);
    expect((await fa('/public/x', { 'cache-control': 'x' })).headers.get('cache-control')).to.equal('no-store');
  });

  it('answers 401 with WWW-Authenticate; a browser asking for a page also gets the sign-in URL (302 with ?redirect=1)', async () => {
    const api = await fa('/app/x', { accept: 'application/json' });
    expect(api.status).to.equal(401);
    expect(api.headers.get('www-authenticate')).to.equal('Bearer realm="app"');
    expect(api.headers.get('location')).to.equal(null);
    const page = await fa('/app/x?y=1', { accept: 'text/html,application/xhtml+xml' });
    expect(page.status).to.equal(401);
    expect(page.headers.get('location')).to.equal(`${idp.issuer}/forward-auth/start?rd=${encodeURIComponent('http://127.0.0.1:8080/app/x?y=1')}`);
    const traefik = await fa('/app/x', { accept: 'text/html' }, '?redirect=1');
    expect(traefik.status).to.equal(302);
    expect(traefik.headers.get('location')).to.match(/\/forward-auth\/start\?rd=/);
    // a form post is not sent to sign in (its body would be lost)
    expect((await fa('/app/x', { accept: 'text/html', 'x-original-method': 'POST' })).headers.get('location')).to.equal(null);
  });

  it('passes a JWT access token for the site with an internal JWT; refuses other audiences, missing scopes and roles', async () => {
    const token = await clientCredentials(idp, `${SITE_AUD}/jwt`, 'orders:read');
    const ok = await fa('/api/orders', { authorization: `Bearer ${token}` });
    expect(ok.status).to.equal(200);
    expect(ok.headers.get('x-user-sub')).to.equal('svc');
    const { payload, protectedHeader, jwt } = await internal(ok);
    expect(protectedHeader.alg).to.equal('ES256');
    expect(payload).to.include({ iss: idp.issuer, aud: SITE_AUD, sub: 'svc', scope: 'orders:read', client_id: 'svc' });
    expect(payload.roles).to.deep.equal([]);
    expect(payload.exp! - payload.iat!).to.equal(60);
    // the same credential at the same site: the cached JWT
    expect((await internal(await fa('/api/other', { authorization: `Bearer ${token}` }))).jwt).to.equal(jwt);

    const scoped = await fa('/api/write/1', { authorization: `Bearer ${token}`, 'x-original-method': 'POST' });
    expect(scoped.status).to.equal(403);
    expect(scoped.headers.get('www-authenticate')).to.contain('error="insufficient_scope"').and.contain('scope="orders:write"');
    expect((await fa('/admin/x', { authorization: `Bearer ${token}` })).status).to.equal(403);

    const elsewhere = await clientCredentials(idp, 'https://elsewhere.edge.test', 'orders:read');
    const wrongAud = await fa('/api/orders', { authorization: `Bearer ${elsewhere}` });
    expect(wrongAud.status).to.equal(401);
    expect(wrongAud.headers.get('www-authenticate')).to.contain('error="invalid_token"');
    // our own internal JWT is not an access token
    expect((await fa('/api/orders', { authorization: `Bearer ${jwt}` })).status).to.equal(401);
    expect((await fa('/api/orders', { authorization: 'Bearer not-a-token' })).status).to.equal(401);
  });

  it('passes an opaque token by one read; a revoked one keeps passing until the cache time, then 401', async () => {
    const token = await clientCredentials(idp, `${SITE_AUD}/opaque`, 'orders:read orders:write');
    expect(decodeProtectedHeader.bind(null, token)).to.throw();
    const ok = await fa('/api/write/1', { authorization: `Bearer ${token}`, 'x-original-method': 'PUT' });
    expect(ok.status).to.equal(200);
    expect((await internal(ok)).payload.scope).to.equal('orders:read orders:write');
    await revoke(idp, token);
    expect((await fa('/api/orders', { authorization: `Bearer ${token}` })).status, 'cached decision').to.equal(200);
    await new Promise((r) => setTimeout(r, 2100));
    expect((await fa('/api/orders', { authorization: `Bearer ${token}` })).status).to.equal(401);
  });

  it('sends a browser to sign in and back; its session then passes, a forged cookie does not', async () => {
    const ua = new UserAgent(idp.issuer);
    const first = await fa('/app/dashboard', { accept: 'text/html' });
    const login = first.headers.get('location')!;
    const back = await signIn(ua, login);
    expect(back).to.equal('http://127.0.0.1:8080/app/dashboard');
    const cookie = [...ua.jar].map(([k, v]) => `${k}=${v}`).join('; ');
    expect(cookie).to.contain('idp.session=').and.contain('idp.session.sig=');
    const ok = await fa('/app/dashboard', { cookie, accept: 'text/html' });
    expect(ok.status).to.equal(200);
    expect(ok.headers.get('x-user-sub')).to.equal(sub);
    const { payload } = await internal(ok);
    expect(payload).to.include({ sub, scope: '' });
    expect(payload.client_id).to.equal(undefined);
    // a session carries no scopes: scope-guarded routes are for tokens
    expect((await fa('/api/orders', { cookie })).status).to.equal(403);
    const forged = cookie.replace(/idp\.session\.sig=[^;]+/, 'idp.session.sig=AAAAAAAAAAAAAAAAAAAAAAAAAAA');
    expect((await fa('/app/dashboard', { cookie: forged })).status).to.equal(401);
    // a bearer-only site ignores the session
    expect((await fa('/x', { cookie, 'x-edge-site': 'other' })).status).to.equal(401);
  });

  it('never redirects to a host that is not a protected site', async () => {
    const ua = new UserAgent(idp.issuer);
    for (const rd of ['https://evil.example/', 'javascript:alert(1)', 'http://other.edge.test/', '']) {
      const res = await ua.request(`/forward-auth/start?rd=${encodeURIComponent(rd)}`);
      expect(res.status, rd).to.equal(400);
      expect(res.headers.get('location')).to.equal(null);
    }
    const forged = Buffer.from(JSON.stringify({ rd: 'https://evil.example/' })).toString('base64url');
    const cb = await ua.request(`/forward-auth/callback?state=${forged}&code=x`);
    expect(cb.status).to.equal(400);
    expect(cb.headers.get('location')).to.equal(null);
  });

  it('takes the original request from Envoy\'s path form, and the site from X-Edge-Site', async () => {
    const token = await clientCredentials(idp, `${SITE_AUD}/jwt`, 'orders:read');
    const env = await fetch(`${idp.url}/forward-auth/envoy/api/orders?x=1`, { method: 'DELETE', headers: { host: '127.0.0.1:9000', authorization: `Bearer ${token}` } });
    expect(env.status).to.equal(200);
    const del = await fetch(`${idp.url}/forward-auth/envoy/api/write/1`, { method: 'DELETE', headers: { authorization: `Bearer ${token}` } });
    expect(del.status).to.equal(403);
    const browser = await fetch(`${idp.url}/forward-auth/envoy/app/x`, { headers: { accept: 'text/html' }, redirect: 'manual' });
    expect(browser.status).to.equal(302);
    const named = await fa('/public/x', { 'x-forwarded-host': 'whatever.example', 'x-edge-site': 'app' });
    expect(named.status).to.equal(200);
  });
});

describe('forward-auth in KEYS_MODE=kms-sign', function () {
  this.timeout(60_000);
  let kms: KmsTestServer;
  let idp: TestIdp;
  before(async () => {
    kms = await startKmsServer();
    const keyId = (await kms.createKey('SYMMETRIC_DEFAULT')).keyId;
    idp = await startTestIdp({ LOG_LEVEL: 'warn', KEYS_MODE: 'kms-sign', KMS_ENDPOINT: kms.endpoint, KMS_KEY_ID: keyId, ...edgeFiles() });
    await registerEdgeFixtures(idp);
  });
  after(async () => {
    await idp?.close();
    await kms?.close();
  });

  it('signs the internal JWT with the KMS key of EDGE_JWT_ALG, once per credential and site', async () => {
    const token = await clientCredentials(idp, `${SITE_AUD}/jwt`, 'orders:read');
    const signs = kms.calls.Sign;
    const headers = { 'x-original-uri': '/api/orders', 'x-forwarded-host': '127.0.0.1', authorization: `Bearer ${token}` };
    const a = await fetch(`${idp.url}/forward-auth`, { headers });
    const b = await fetch(`${idp.url}/forward-auth`, { headers });
    expect(a.status).to.equal(200);
    expect(b.headers.get('authorization')).to.equal(a.headers.get('authorization'));
    expect(kms.calls.Sign - signs).to.equal(1);
    const { protectedHeader } = await jwtVerify(a.headers.get('authorization')!.slice(7), createRemoteJWKSet(new URL(`${idp.url}/jwks`)), { issuer: idp.issuer, audience: SITE_AUD, typ: 'internal+jwt' });
    expect(protectedHeader.kid).to.equal(idp.keyring.keys().find((k) => k.alg === 'ES256' && k.state === 'active')!.kid);
  });
});
