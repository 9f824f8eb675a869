// The examples under examples/, against the running IdP: the Koa API accepts
// a token for its audience with the route's scope, and refuses a wrong
// audience, a missing scope, an expired token (signed with the IdP's own
// key) and tokens signed by a key that is not in the JWKS; the API Gateway
// authorizer returns Allow and Deny policies the same way, and 401 without
// a token.
import { expect } from 'chai';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { SignJWT, generateKeyPair, importJWK, type JWK } from 'jose';

type SigningKey = Parameters<SignJWT['sign']>[0];
import { startTestIdp, type TestIdp } from './support/idp.ts';
import { createApi } from '../examples/koa-api/server.ts';
import { createAuthorizer, handler, type AuthorizerEvent } from '../examples/api-gateway-authorizer/index.ts';

const API = 'https://orders.example.test';
const OTHER = 'https://other.example.test';
const SECRET = 'examples-secret-0123456789abcdef0123';
const ARN = 'arn:aws:execute-api:eu-west-1:123456789012:abcdef1234/prod/GET/orders';

describe('examples: verifying access tokens in an API', function () {
  this.timeout(60_000);
  let idp: TestIdp;
  let api: http.Server;
  let apiUrl: string;
  const tokens: Record<string, string> = {};

  async function token(resource: string, scope: string): Promise<string> {
    const res = await fetch(`${idp.url}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`svc:${SECRET}`).toString('base64')}` },
      body: new URLSearchParams({ grant_type: 'client_credentials', resource, scope }),
    });
    expect(res.status).to.equal(200);
    return ((await res.json()) as { access_token: string }).access_token;
  }

  /** a token as the IdP would issue it, but with claims of our choosing, signed by `key` */
  async function forged(key: SigningKey, kid: string, claims: Record<string, unknown>): Promise<string> {
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({ iss: idp.issuer, aud: API, sub: 'svc', iat: now - 7200, exp: now + 600, scope: 'orders:read', client_id: 'svc', ...claims })
      .setProtectedHeader({ alg: 'ES256', kid, typ: 'at+jwt' })
      .sign(key);
  }

  before(async () => {
    idp = await startTestIdp({ LOG_LEVEL: 'warn' });
    await idp.cli('clients', 'add', '--id', 'svc', '--secret', SECRET, '--grant-types', 'client_credentials');
    await idp.cli('resources', 'add', '--id', API, '--scope', 'orders:read orders:write', '--format', 'jwt', '--alg', 'ES256');
    await idp.cli('resources', 'add', '--id', OTHER, '--scope', 'orders:read', '--format', 'jwt', '--alg', 'ES256');
    tokens.read = await token(API, 'orders:read');
    tokens.write = await token(API, 'orders:write');
    tokens.other = await token(OTHER, 'orders:read');
    // the IdP's own active ES256 key (local mode: a private JWK in memory)
    const kid = idp.keyring.keys().find((k) => k.alg === 'ES256' && k.state === 'active')!.kid;
    const jwk = idp.keyring.signingJwks().find((k) => (k as JWK).kid === kid) as JWK;
    const now = Math.floor(Date.now() / 1000);
    tokens.expired = await forged(await importJWK(jwk, 'ES256'), kid, { exp: now - 120 });
    tokens.validForged = await forged(await importJWK(jwk, 'ES256'), kid, {});
    const stranger = await generateKeyPair('ES256');
    tokens.foreignSameKid = await forged(stranger.privateKey, kid, {});
    tokens.foreignKid = await forged(stranger.privateKey, 'not-in-the-jwks', {});

    const app = await createApi({ issuer: idp.issuer, audience: API });
    api = http.createServer(app.callback());
    await new Promise<void>((r) => api.listen(0, '127.0.0.1', () => r()));
    apiUrl = `http://127.0.0.1:${(api.address() as AddressInfo).port}`;
  });

  after(async () => {
    api?.close();
    await idp?.close();
  });

  const call = (method: string, token?: string) => fetch(`${apiUrl}/orders`, { method, headers: token ? { authorization: `Bearer ${token}` } : {} });

  it('the Koa API accepts its audience with the route\'s scope', async () => {
    const r = await call('GET', tokens.read);
    expect(r.status).to.equal(200);
    expect(await r.json()).to.deep.equal({ orders: [], for: 'svc' });
    expect((await call('POST', tokens.write)).status).to.equal(201);
    // the control for the forged tokens below: the IdP's key and claims pass
    expect((await call('GET', tokens.validForged)).status).to.equal(200);
    expect((await fetch(`${apiUrl}/health`)).status).to.equal(200);
  });

  it('the Koa API refuses a wrong audience, a missing scope, an expired token and keys not in the JWKS', async () => {
    for (const name of ['other', 'expired', 'foreignSameKid', 'foreignKid']) {
      const r = await call('GET', tokens[name]);
      expect(r.status, name).to.equal(401);
      expect(r.headers.get('www-authenticate'), name).to.contain('error="invalid_token"');
    }
    const noScope = await call('POST', tokens.read);
    expect(noScope.status).to.equal(403);
    expect(noScope.headers.get('www-authenticate')).to.contain('scope="orders:write"');
    expect((await call('GET')).status).to.equal(401);
  });

  it('the API Gateway authorizer returns Allow and Deny policies, and 401 without a token', async () => {
    const authorize = createAuthorizer({ issuer: idp.issuer, audience: API, scope: 'orders:read' });
    const ev = (t?: string): AuthorizerEvent => ({ type: 'TOKEN', methodArn: ARN, ...(t ? { authorizationToken: `Bearer ${t}` } : {}) });
    const allow = await authorize(ev(tokens.read));
    expect(allow).to.deep.equal({
      principalId: 'svc',
      policyDocument: { Version: '2012-10-17', Statement: [{ Action: 'execute-api:Invoke', Effect: 'Allow', Resource: ARN }] },
      context: { sub: 'svc', scope: 'orders:read', clientId: 'svc' },
    });
    for (const name of ['write', 'other', 'expired', 'foreignSameKid', 'foreignKid']) {
      const r = await authorize(ev(tokens[name]));
      expect(r.policyDocument.Statement[0].Effect, name).to.equal('Deny');
      expect(r.policyDocument.Statement[0].Resource).to.equal(ARN);
      expect(r.context, name).to.equal(undefined);
    }
    let thrown: unknown;
    await authorize(ev()).catch((e: unknown) => { thrown = e; });
    expect((thrown as Error)?.message).to.equal('Unauthorized');

    // the Lambda entry point, configured from the environment; a REQUEST authorizer event
    Object.assign(process.env, { ISSUER: idp.issuer, AUDIENCE: API, SCOPE: 'orders:read' });
    try {
      const viaHandler = await handler({ type: 'REQUEST', methodArn: ARN, headers: { Authorization: `Bearer ${tokens.read}` } });
      expect(viaHandler.policyDocument.Statement[0].Effect).to.equal('Allow');
    } finally {
      for (const k of ['ISSUER', 'AUDIENCE', 'SCOPE']) delete process.env[k];
    }
  });
});
