// What an outside review found (issue: hardening), each with the test that
// failed before its fix: request bodies that cannot be read are 400/415 (not
// 500 with a stack trace), unknown methods are 405 with Allow (not 501), HSTS
// on every response of an https issuer.
import http from 'node:http';
import zlib from 'node:zlib';
import { expect } from 'chai';
import request from 'supertest';
import { startTestIdp, type TestIdp } from './support/idp.ts';
import { IpAgent, addClient, signIn } from './support/lockout.ts';

function raw(url: string, method: string, headers: Record<string, string> = {}, body?: Buffer | string): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers }, (res) => {
      let data = '';
      res.on('data', (c) => { data += c; });
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: data }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('hardening', function () {
  this.timeout(30_000);
  let idp: TestIdp;

  before(async () => {
    idp = await startTestIdp();
  });

  after(async () => {
    await idp?.close();
  });

  describe('request bodies that cannot be read', () => {
    const forms = ['/interaction/abc/login', '/interaction/abc/consent', '/interaction/abc/federation/link', '/interaction/abc/reset', '/account/recovery', '/account/links/remove'];

    it('an unknown Content-Encoding is 415 on every form we own, with no stack trace and no error logged', async () => {
      for (const path of forms) {
        const before = idp.logs.length;
        const r = await raw(`${idp.issuer}${path}`, 'POST', { 'content-type': 'application/x-www-form-urlencoded', 'content-encoding': 'bogus', accept: 'text/html' }, 'a=b');
        expect(r.status, path).to.equal(415);
        expect(r.body).to.not.match(/at .*\.(ts|js):\d+/);
        expect(idp.logs.slice(before).some((l) => /"level":50/.test(l)), `${path}: nothing logged as an error`).to.equal(false);
      }
    });

    it('a broken or truncated gzip body is 400', async () => {
      const truncated = zlib.gzipSync(Buffer.from('login=a%40b.c&password=x'.repeat(50))).subarray(0, 20);
      for (const path of forms) {
        for (const body of [Buffer.from('not gzip at all'), truncated]) {
          const r = await raw(`${idp.issuer}${path}`, 'POST', { 'content-type': 'application/x-www-form-urlencoded', 'content-encoding': 'gzip' }, body);
          expect(r.status, path).to.equal(400);
          expect(JSON.parse(r.body)).to.deep.equal({ error: 'invalid_request', error_description: 'The request body could not be read.' });
        }
      }
    });
  });

  it('TRACE, PROPFIND and other methods no route takes are 405 with Allow on /account and /interaction', async () => {
    for (const [method, path] of [['TRACE', '/account'], ['PROPFIND', '/account/totp'], ['MKCOL', '/interaction/abc/login'], ['PROPFIND', '/interaction/abc'], ['TRACE', '/federation/corp/callback']] as const) {
      const r = await raw(`${idp.issuer}${path}`, method);
      expect(r.status, `${method} ${path}`).to.equal(405);
      expect(r.headers.allow, `${method} ${path}`).to.be.a('string').and.not.equal('');
    }
  });

  it('introspection: a client sees its own tokens; an API sees tokens for its resource server only when registered as its introspection client; anyone else gets active:false', async () => {
    const secret = 'introspect-secret-0123456789abcdefgh';
    await idp.cli('clients', 'add', '--id', 'svc', '--secret', secret, '--grant-types', 'client_credentials');
    await idp.cli('clients', 'add', '--id', 'orders-api', '--secret', secret, '--grant-types', 'client_credentials');
    await idp.cli('clients', 'add', '--id', 'nosy', '--secret', secret, '--grant-types', 'client_credentials');
    await idp.cli('resources', 'add', '--id', 'https://orders.example.test', '--scope', 'orders:read', '--format', 'opaque', '--introspection-client', 'orders-api');
    const basic = (id: string) => `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;
    const minted = await request(idp.issuer).post('/token').set('authorization', basic('svc')).type('form')
      .send({ grant_type: 'client_credentials', scope: 'orders:read', resource: 'https://orders.example.test' });
    expect(minted.status, JSON.stringify(minted.body)).to.equal(200);
    const introspect = (as: string) => request(idp.issuer).post('/token/introspection').set('authorization', basic(as)).type('form').send({ token: minted.body.access_token });
    expect((await introspect('svc')).body).to.include({ active: true, client_id: 'svc' });
    expect((await introspect('orders-api')).body).to.include({ active: true, aud: 'https://orders.example.test' });
    expect((await introspect('nosy')).body).to.deep.equal({ active: false });
  });

  it('identifiers longer than DynamoDB keys take are refused as the endpoint says (400/401, OAuth errors), never 503', async () => {
    const long = 'x'.repeat(3000);
    const secret = 'bounds-secret-0123456789abcdefghijk';
    await idp.cli('clients', 'add', '--id', 'bounds', '--secret', secret, '--grant-types', 'authorization_code,client_credentials', '--redirect-uri', 'https://rp.example.test/cb');
    const basic = (id: string) => `Basic ${Buffer.from(`${encodeURIComponent(id)}:${secret}`).toString('base64')}`;
    const before = idp.logs.length;
    const code = await request(idp.issuer).post('/token').set('authorization', basic('bounds')).type('form')
      .send({ grant_type: 'authorization_code', code: long, redirect_uri: 'https://rp.example.test/cb', code_verifier: 'v'.repeat(43) });
    expect(code.status, JSON.stringify(code.body)).to.equal(400);
    expect(code.body.error).to.equal('invalid_grant');
    const client = await request(idp.issuer).post('/token').set('authorization', basic(long)).type('form').send({ grant_type: 'client_credentials' });
    expect(client.status, JSON.stringify(client.body)).to.equal(401);
    expect(client.body.error).to.equal('invalid_client');
    const resource = await request(idp.issuer).post('/token').set('authorization', basic('bounds')).type('form')
      .send({ grant_type: 'client_credentials', resource: `https://api.example.test/${long}` });
    expect(resource.status, JSON.stringify(resource.body)).to.equal(400);
    expect(resource.body.error).to.equal('invalid_target');
    const introspected = await request(idp.issuer).post('/token/introspection').set('authorization', basic('bounds')).type('form').send({ token: long });
    expect(introspected.body).to.deep.equal({ active: false });
    const auth = await request(idp.issuer).get('/auth').query({ client_id: long, response_type: 'code', redirect_uri: 'https://rp.example.test/cb', scope: 'openid' });
    expect(auth.status).to.be.within(400, 499);
    expect(idp.logs.slice(before).some((l) => /"level":50/.test(l)), 'nothing logged as an error').to.equal(false);
  });

  it('a forwarded client address of any length or shape is counted under a bounded key, never a 503', async () => {
    const proxied = await startTestIdp({ TRUST_PROXY_HOPS: '1' });
    try {
      await addClient(proxied);
      for (const forwarded of ['y'.repeat(4000), 'not an address', '::ffff:zzz']) {
        const r = await signIn(proxied, new IpAgent(proxied.issuer, forwarded), 'nobody@example.com', 'a wrong password 123');
        expect(r.status, forwarded.slice(0, 20)).to.equal(401);
      }
      expect(proxied.logs.some((l) => /"level":50/.test(l))).to.equal(false);
    } finally {
      await proxied.close();
    }
  });

  it('no Strict-Transport-Security for an http issuer', async () => {
    const r = await request(idp.issuer).get('/healthz');
    expect(r.headers['strict-transport-security']).to.equal(undefined);
  });

  describe('with an https issuer', () => {
    let tls: TestIdp;
    before(async () => {
      tls = await startTestIdp({ ISSUER: 'https://id.example.test' });
    });
    after(async () => {
      await tls?.close();
    });

    it('sends Strict-Transport-Security on every response: pages, JSON, errors, health', async () => {
      const app = request(`http://127.0.0.1:${tls.env.PORT}`);
      for (const path of ['/healthz', '/jwks', '/.well-known/openid-configuration', '/account', '/nope', '/interaction/abc']) {
        const r = await app.get(path);
        expect(r.headers['strict-transport-security'], path).to.equal('max-age=31536000; includeSubDomains');
      }
    });
  });
});
