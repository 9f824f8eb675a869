// Forward-auth behind a real nginx (Debian's, auth_request), configured as
// openid-configuration.md tells operators to, protecting an echo upstream:
// a public route passes without a token (and a client's own Authorization
// never reaches the upstream); a bearer token gets the upstream an internal
// JWT that verifies against our JWKS; a token without the route's scope is
// refused; a revoked token passes until the cache time and is refused after;
// an API client without a token gets 401 with WWW-Authenticate. A real
// browser (Chromium) on another host of the cookie domain is sent to sign in,
// comes back, and the upstream sees who it is.
import { expect } from 'chai';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { chromium, type Browser } from 'playwright-core';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { freePort, startTestIdp, type TestIdp } from './support/idp.ts';
import { startNginx, type TestNginx } from './support/nginx.ts';
import { EMAIL, PASSWORD, SITE_AUD, clientCredentials, edgeFiles, registerEdgeFixtures, revoke } from './support/edge.ts';

const CHROMIUM = '/usr/bin/chromium';
const CACHE_SECONDS = 2;

/** the site behind nginx: the issuer is id.edge.test, the site app.edge.test, the session cookie for edge.test */
const SITES = {
  sites: [{
    id: 'app', audience: SITE_AUD, hosts: ['app.edge.test'],
    publicRoutes: ['/public/**'],
    routes: [{ path: '/api/**', scopes: ['orders:read'] }, { path: '/**' }],
  }],
};

/** the snippet of openid-configuration.md, with the test's ports (and X-Edge-Site: tests reach nginx as 127.0.0.1) */
function nginxConf(port: number, idpPort: number, upstreamPort: number): string {
  return `
  server {
    listen 127.0.0.1:${port};

    location = /_idp_auth {
      internal;
      proxy_pass http://127.0.0.1:${idpPort}/forward-auth;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Original-Method $request_method;
      proxy_set_header X-Original-URI $request_uri;
      proxy_set_header X-Forwarded-Host $http_host;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Edge-Site app;
    }

    location / {
      auth_request /_idp_auth;
      auth_request_set $idp_authorization $upstream_http_authorization;
      auth_request_set $idp_sub $upstream_http_x_user_sub;
      auth_request_set $idp_login $upstream_http_location;
      error_page 401 = @idp_login;
      proxy_set_header Authorization $idp_authorization;
      proxy_set_header X-User-Sub $idp_sub;
      proxy_pass http://127.0.0.1:${upstreamPort};
    }

    location @idp_login {
      if ($idp_login) {
        return 302 $idp_login;
      }
      return 401;
    }
  }`;
}

interface Seen { url: string; authorization?: string; sub?: string }

describe('forward-auth behind a real nginx (auth_request)', function () {
  this.timeout(90_000);
  let idp: TestIdp;
  let nginx: TestNginx;
  let upstream: http.Server;
  let site: string;
  let userSub: string;
  const seen: Seen[] = [];

  before(async () => {
    upstream = http.createServer((req, res) => {
      const s: Seen = { url: req.url!, authorization: req.headers.authorization, sub: req.headers['x-user-sub'] as string | undefined };
      seen.push(s);
      res.setHeader('content-type', 'text/html; charset=utf-8');
      res.end(`<!doctype html><title>upstream</title><p id="sub">${s.sub ?? ''}</p><p id="url">${s.url}</p>`);
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', () => r()));
    const idpPort = await freePort();
    idp = await startTestIdp({
      LOG_LEVEL: 'warn', ISSUER: `http://id.edge.test:${idpPort}`, PORT: String(idpPort), SESSION_COOKIE_DOMAIN: 'edge.test',
      EDGE_CACHE_SECONDS: String(CACHE_SECONDS), ...edgeFiles(SITES),
    });
    userSub = await registerEdgeFixtures(idp);
    const port = await freePort();
    nginx = await startNginx(port, nginxConf(port, idpPort, (upstream.address() as AddressInfo).port));
    site = `http://127.0.0.1:${port}`;
  });

  after(async () => {
    await nginx?.close();
    await idp?.close();
    upstream?.close();
  });

  const last = () => seen[seen.length - 1];

  it('lets a public route through without a token, and never forwards the client\'s own Authorization', async () => {
    const before = seen.length;
    const res = await fetch(`${site}/public/a.css`, { headers: { authorization: 'Bearer forged', 'x-user-sub': 'admin' } });
    expect(res.status, nginx.errors()).to.equal(200);
    expect(seen.length).to.equal(before + 1);
    expect(last().authorization).to.equal(undefined);
    expect(last().sub).to.equal(undefined);
  });

  it('forwards a request with a valid bearer token with an internal JWT that verifies against our JWKS', async () => {
    const token = await clientCredentials(idp, `${SITE_AUD}/jwt`, 'orders:read');
    const res = await fetch(`${site}/api/orders?page=2`, { headers: { authorization: `Bearer ${token}` } });
    expect(res.status, nginx.errors()).to.equal(200);
    expect(last().url).to.equal('/api/orders?page=2');
    expect(last().sub).to.equal('svc');
    const jwt = last().authorization!.replace(/^Bearer /, '');
    expect(jwt).to.not.equal(token);
    const { payload } = await jwtVerify(jwt, createRemoteJWKSet(new URL(`${idp.url}/jwks`)), { issuer: idp.issuer, audience: SITE_AUD, typ: 'internal+jwt' });
    expect(payload).to.include({ sub: 'svc', scope: 'orders:read' });
    expect(payload.exp! - payload.iat!).to.equal(60);
  });

  it('refuses a token without the route\'s scope (403) and a request without a token (401 with WWW-Authenticate)', async () => {
    const before = seen.length;
    const token = await clientCredentials(idp, `${SITE_AUD}/jwt`, 'orders:write');
    expect((await fetch(`${site}/api/orders`, { headers: { authorization: `Bearer ${token}` } })).status).to.equal(403);
    const none = await fetch(`${site}/api/orders`, { headers: { accept: 'application/json' }, redirect: 'manual' });
    expect(none.status).to.equal(401);
    expect(none.headers.get('www-authenticate')).to.equal('Bearer realm="app"');
    expect(seen.length, 'nothing reached the upstream').to.equal(before);
  });

  it('refuses a revoked token once the cache time has passed', async () => {
    const token = await clientCredentials(idp, `${SITE_AUD}/opaque`, 'orders:read');
    const call = () => fetch(`${site}/api/orders`, { headers: { authorization: `Bearer ${token}` } });
    expect((await call()).status).to.equal(200);
    await revoke(idp, token);
    const revokedAt = Date.now();
    const cached = await call();
    if (Date.now() - revokedAt < CACHE_SECONDS * 1000 - 200) expect(cached.status, 'still cached').to.equal(200);
    await new Promise((r) => setTimeout(r, CACHE_SECONDS * 1000 + 100));
    const after = await call();
    expect(after.status).to.equal(401);
    expect(after.headers.get('www-authenticate')).to.contain('error="invalid_token"');
  });

  it('sends a browser without a session to sign in and brings it back; the upstream sees the user', async function () {
    if (!fs.existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: .ci/run installs Debian's chromium`);
    const port = new URL(site).port;
    const idpPort = new URL(idp.issuer).port;
    let browser: Browser | undefined;
    try {
      browser = await chromium.launch({
        executablePath: CHROMIUM,
        // app.edge.test and id.edge.test are this machine: the browser sees two hosts of one cookie domain
        args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run',
          '--host-resolver-rules=MAP app.edge.test 127.0.0.1, MAP id.edge.test 127.0.0.1'],
      });
      const page = await browser.newPage();
      const target = `http://app.edge.test:${port}/dashboard?tab=1`;
      await page.goto(target);
      expect(new URL(page.url()).host, 'at the sign-in page').to.equal(`id.edge.test:${idpPort}`);
      await page.getByLabel('Email or phone').fill(EMAIL);
      await page.getByLabel('Password').fill(PASSWORD);
      await Promise.all([page.waitForURL(target), page.getByRole('button', { name: /sign in/i }).click()]);
      expect(await page.locator('#sub').textContent()).to.equal(userSub);
      expect(await page.locator('#url').textContent()).to.equal('/dashboard?tab=1');
      const { payload } = await jwtVerify(last().authorization!.replace(/^Bearer /, ''), createRemoteJWKSet(new URL(`${idp.url}/jwks`)), { issuer: idp.issuer, audience: SITE_AUD, typ: 'internal+jwt' });
      expect(payload.sub).to.equal(userSub);
      const cookies = await page.context().cookies(`http://app.edge.test:${port}/`);
      expect(cookies.find((c) => c.name === 'idp.session')?.domain).to.equal('.edge.test');
      // a second page of the site needs no sign-in
      await page.goto(`http://app.edge.test:${port}/other`);
      expect(await page.locator('#url').textContent()).to.equal('/other');
    } finally {
      await browser?.close();
    }
  });
});
