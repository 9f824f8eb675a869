// JWKS and discovery are answered from a per-provider cache
// (src/provider/metadata-cache.ts): the answers must be exactly what
// oidc-provider gives (a CORS request still goes through it, so the two can be
// compared), per origin for discovery, and fresh after a key rotation. For
// verifiers they carry Cache-Control (max-age below the key pre-publication
// time) and an ETag, with 304 on If-None-Match.
import { expect } from 'chai';
import http from 'node:http';
import { startTestIdp, type TestIdp } from './support/idp.ts';

/** a GET with a Host header of our choosing (fetch does not allow setting it) */
function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    http.get(url, { headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    }).on('error', reject);
  });
}

describe('JWKS and discovery from the metadata cache', function () {
  this.timeout(60_000);
  let idp: TestIdp;
  before(async () => {
    idp = await startTestIdp({ LOG_LEVEL: 'warn', KEYS_REFRESH_SECONDS: '1', KEY_PREPUBLISH_SECONDS: '0' });
  });
  after(async () => {
    await idp?.close();
  });

  it('a repeated GET /jwks gives the same bytes and headers as oidc-provider does for a CORS request', async () => {
    const first = await get(`${idp.url}/jwks`);
    const second = await get(`${idp.url}/jwks`);
    const cors = await get(`${idp.url}/jwks`, { origin: 'https://rp.example' });
    expect(first.status).to.equal(200);
    expect(second.body).to.equal(first.body);
    expect(JSON.parse(second.body)).to.deep.equal(JSON.parse(cors.body));
    expect((JSON.parse(second.body) as { keys: unknown[] }).keys).to.have.length.greaterThan(0);
    for (const h of ['content-type', 'vary', 'access-control-allow-origin']) {
      expect(second.headers[h], h).to.equal(first.headers[h]);
    }
    expect(second.headers['content-type']).to.equal('application/jwk-set+json; charset=utf-8');
    expect(second.headers['access-control-allow-origin']).to.equal('*');
    expect(cors.headers['access-control-allow-origin']).to.equal('https://rp.example');
    expect(second.headers['x-request-id'], 'our own headers are still set per request').to.be.a('string').and.not.equal(first.headers['x-request-id']);
    expect(Number(second.headers['content-length'])).to.equal(Buffer.byteLength(second.body));
  });

  it('discovery is kept per origin: each Host gets URLs of its own origin', async () => {
    const a1 = await get(`${idp.url}/.well-known/openid-configuration`, { host: 'a.example.test' });
    const b = await get(`${idp.url}/.well-known/openid-configuration`, { host: 'b.example.test' });
    const a2 = await get(`${idp.url}/.well-known/openid-configuration`, { host: 'a.example.test' });
    expect(a2.body).to.equal(a1.body);
    expect((JSON.parse(a2.body) as { token_endpoint: string }).token_endpoint).to.equal('http://a.example.test/token');
    expect((JSON.parse(b.body) as { token_endpoint: string }).token_endpoint).to.equal('http://b.example.test/token');
    const direct = await get(`${idp.url}/.well-known/openid-configuration`, { host: 'a.example.test', origin: 'https://rp.example' });
    expect(JSON.parse(a2.body)).to.deep.equal(JSON.parse(direct.body));
  });

  it('HEAD, other methods and unknown paths are not served from the cache', async () => {
    const post = await fetch(`${idp.url}/jwks`, { method: 'POST' });
    expect(post.status).to.not.equal(200);
    const head = await fetch(`${idp.url}/jwks`, { method: 'HEAD' });
    expect(head.status).to.equal(200);
    expect(await head.text()).to.equal('');
  });

  it('carries Cache-Control and an ETag; If-None-Match gets 304 without a body, from the cache and through oidc-provider', async () => {
    const first = await get(`${idp.url}/jwks`);
    const etag = first.headers.etag!;
    expect(etag).to.match(/^"[\w-]{20,}"$/);
    // KEY_PREPUBLISH_SECONDS=0 here: nothing may be cached without revalidation
    expect(first.headers['cache-control']).to.equal('public, no-cache');
    const again = await get(`${idp.url}/jwks`, { 'if-none-match': etag });
    expect(again.status).to.equal(304);
    expect(again.body).to.equal('');
    expect(again.headers.etag).to.equal(etag);
    expect((await get(`${idp.url}/jwks`, { 'if-none-match': '"other"' })).status).to.equal(200);
    const cors = await get(`${idp.url}/jwks`, { origin: 'https://rp.example', 'if-none-match': etag });
    expect(cors.status).to.equal(304);
    const head = await fetch(`${idp.url}/jwks`, { method: 'HEAD' });
    expect(head.headers.get('etag')).to.equal(etag);
    const disco = await get(`${idp.url}/.well-known/openid-configuration`);
    expect(disco.headers.etag).to.be.a('string').and.not.equal(etag);
    expect((await get(`${idp.url}/.well-known/openid-configuration`, { 'if-none-match': `W/${disco.headers.etag}` })).status).to.equal(304);
  });

  it('max-age stays below the key pre-publication time', async () => {
    const other = await startTestIdp({ LOG_LEVEL: 'warn', KEY_PREPUBLISH_SECONDS: '600', KEYS_REFRESH_SECONDS: '60' });
    try {
      const r = await get(`${other.url}/jwks`);
      expect(r.headers['cache-control']).to.equal(`public, max-age=${other.config.keys.jwksMaxAgeSeconds}`);
      expect(other.config.keys.jwksMaxAgeSeconds).to.be.greaterThan(0).and.below(600 - 60);
      expect((await get(`${other.url}/.well-known/openid-configuration`)).headers['cache-control']).to.equal(r.headers['cache-control']);
    } finally {
      await other.close();
    }
  });

  it('after a key rotation the cached JWKS is replaced: the new key is published', async () => {
    const beforeRes = await get(`${idp.url}/jwks`);
    const etagBefore = beforeRes.headers.etag!;
    const before = JSON.parse(beforeRes.body) as { keys: Array<{ kid: string }> };
    const created = await idp.cli('keys', 'rotate', '--alg', 'ES256') as Array<{ kid: string }>;
    const newKid = created[0].kid;
    expect(before.keys.map((k) => k.kid)).to.not.include(newKid);
    const deadline = Date.now() + 15_000;
    let kids: string[] = [];
    while (Date.now() < deadline) {
      kids = (JSON.parse((await get(`${idp.url}/jwks`)).body) as { keys: Array<{ kid: string }> }).keys.map((k) => k.kid);
      if (kids.includes(newKid)) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(kids).to.include(newKid);
    // and its ETag changed with it
    expect((await get(`${idp.url}/jwks`, { 'if-none-match': etagBefore })).status).to.equal(200);
  });
});
