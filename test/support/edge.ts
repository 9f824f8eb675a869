// Fixtures of the forward-auth tests (test/edge*.test.ts): a sites file, the
// resource servers of the site's audience (JWT and opaque access tokens), a
// service client and a user, and the small HTTP steps the tests repeat.
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { tempDir, type TestIdp } from './idp.ts';
import { UserAgent, readForm } from './user-agent.ts';

export const SITE_AUD = 'https://app.edge.test';
export const SECRET = 'edge-secret-0123456789abcdef0123456789';
export const EMAIL = 'grace@example.com';
export const PASSWORD = 'violet harbor lantern 4412';

export const SITES = {
  sites: [{
    id: 'app', audience: SITE_AUD, hosts: ['127.0.0.1'],
    publicRoutes: ['/public/**', { path: '/**', methods: ['OPTIONS'] }],
    routes: [
      { path: '/admin/**', roles: ['admin'] },
      { path: '/api/write/**', methods: ['POST', 'PUT', 'DELETE'], scopes: ['orders:write'] },
      { path: '/api/**', scopes: ['orders:read'] },
      { path: '/app/**' },
    ],
  }, {
    id: 'other', audience: 'https://other.edge.test', hosts: ['other.edge.test'], session: false, routes: ['/**'].map((p) => ({ path: p })),
  }],
};

/** resource servers of the site's audience: one with JWT access tokens, one with opaque ones */
export const RESOURCES = [
  { id: `${SITE_AUD}/jwt`, audience: SITE_AUD, scope: 'orders:read orders:write', accessTokenFormat: 'jwt', jwtAlg: 'ES256' },
  { id: `${SITE_AUD}/opaque`, audience: SITE_AUD, scope: 'orders:read orders:write', accessTokenFormat: 'opaque' },
  { id: 'https://elsewhere.edge.test', scope: 'orders:read', accessTokenFormat: 'jwt', jwtAlg: 'ES256' },
];

/** EDGE_SITES_FILE and SEED_FILE (the resource servers) in a temp dir */
export function edgeFiles(sites: unknown = SITES): { EDGE_SITES_FILE: string; SEED_FILE: string } {
  const dir = tempDir('idp-edge-');
  fs.writeFileSync(path.join(dir, 'sites.json'), JSON.stringify(sites));
  fs.writeFileSync(path.join(dir, 'seed.json'), JSON.stringify({ resourceServers: RESOURCES }));
  return { EDGE_SITES_FILE: path.join(dir, 'sites.json'), SEED_FILE: path.join(dir, 'seed.json') };
}

export async function clientCredentials(idp: TestIdp, resource: string, scope: string): Promise<string> {
  const res = await fetch(`${idp.url}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`svc:${SECRET}`).toString('base64')}` },
    body: new URLSearchParams({ grant_type: 'client_credentials', resource, scope }),
  });
  const body = await res.json() as { access_token: string };
  expect(res.status, JSON.stringify(body)).to.equal(200);
  return body.access_token;
}

export async function revoke(idp: TestIdp, token: string): Promise<void> {
  const res = await fetch(`${idp.url}/token/revocation`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`svc:${SECRET}`).toString('base64')}` },
    body: new URLSearchParams({ token }),
  });
  expect(res.status).to.equal(200);
}

export async function registerEdgeFixtures(idp: TestIdp): Promise<string> {
  await idp.cli('clients', 'add', '--id', 'svc', '--secret', SECRET, '--grant-types', 'client_credentials');
  const user = await idp.cli('users', 'add', '--email', EMAIL, '--password', PASSWORD, '--name', 'Grace', '--email-verified') as { sub: string };
  return user.sub;
}

/** signs in on the login page the browser was sent to; returns the off-IdP Location the IdP sends it back to */
export async function signIn(ua: UserAgent, loginUrl: string): Promise<string> {
  const page = await ua.navigate(loginUrl);
  expect(page.res.status).to.equal(200);
  const form = readForm(await page.res.text());
  const done = await ua.navigate(form.action, { form: { ...form.fields, login: EMAIL, password: PASSWORD } });
  expect(done.offsite, 'sent back to the site').to.be.a('string');
  return done.offsite!;
}

