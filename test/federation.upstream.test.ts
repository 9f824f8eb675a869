// The upstream client (src/federation/upstream.ts) against real upstreams:
// test/support/upstream.ts runs a second oidc-provider on 127.0.0.2 playing a
// generic OP, Google (hd) and Entra ID multi-tenant ({tenantid} issuer). Each
// flow is a real code flow: the authorization URL from the client, the
// upstream's sign-in page driven by the test user agent, the redirect back,
// and the callback validated by openid-client. The failures: tenant and
// hosted domain not allowed, state and nonce mismatch, a wrong issuer in
// discovery, an unreachable or slow upstream (bounded timeout), access_denied
// and login_required, a response of upstream A handed to connection B
// (mix-up), and a signing-key rotation at the upstream.
import { expect } from 'chai';
import { UpstreamClient, identityOf, newChecks, isMultiFactor } from '../src/federation/upstream.ts';
import { withDefaults } from '../src/federation/connections.ts';
import { UpstreamError, type Connection, type ConnectionInput, type UpstreamErrorReason } from '../src/federation/types.ts';
import { startUpstream, type Upstream } from './support/upstream.ts';
import { UserAgent, readForm } from './support/user-agent.ts';
import { generateSigningJwk } from '../src/keys/generate.ts';

const REDIRECT = 'https://idp.example.test/federation/x/callback';
const TENANT_A = '0a0a0a0a-1111-4222-8333-444444444444';
const TENANT_B = '0b0b0b0b-1111-4222-8333-444444444444';
const OID_1 = '11111111-aaaa-4bbb-8ccc-dddddddddddd';
const OID_2 = '22222222-aaaa-4bbb-8ccc-dddddddddddd';

let version = 0;
function connection(up: Upstream, input: Partial<ConnectionInput> & { id: string }): Connection {
  return {
    ...withDefaults({
      name: input.id, clientId: 'our-idp', clientSecret: 'upstream-secret-of-our-idp',
      issuer: up.issuer, discoveryUrl: up.discoveryUrl, kind: up.kind, ...input,
    }),
    version: ++version,
  };
}

const client = (redirect = REDIRECT) => ({ client_id: 'our-idp', client_secret: 'upstream-secret-of-our-idp', redirect_uris: [redirect] });

/** authorization URL -> upstream sign-in as `login` -> the URL the upstream sends the browser back to */
async function signIn(rp: UpstreamClient, c: Connection, login: string | undefined, checks = newChecks(), redirectUri = REDIRECT): Promise<{ back: URL; checks: ReturnType<typeof newChecks> & { redirectUri: string } }> {
  const url = await rp.authorizationUrl(c, { redirectUri, ...checks });
  const ua = new UserAgent(new URL(url).origin);
  let step = await ua.navigate(url.href);
  if (!step.offsite) {
    expect(step.res.status, await step.res.clone().text()).to.equal(200);
    const form = readForm(await step.res.text(), 'upstream-login');
    step = await ua.navigate(form.action, { form: { ...form.fields, login: login ?? '' } });
  }
  expect(step.offsite, 'redirected back').to.be.a('string');
  return { back: new URL(step.offsite!), checks: { ...checks, redirectUri } };
}

async function refused(p: Promise<unknown>, reason: UpstreamErrorReason): Promise<UpstreamError> {
  let err: unknown;
  await p.catch((e: unknown) => { err = e; });
  expect(err, `expected UpstreamError ${reason}`).to.be.instanceOf(UpstreamError);
  const e = err as UpstreamError;
  expect(e.reason, e.detail).to.equal(reason);
  expect(e.message).to.not.match(/\b(iss|aud|nonce|jwks|kid|oauth|token)\b/i);
  return e;
}

describe('federation upstream client', function () {
  this.timeout(30_000);

  describe('generic OIDC', () => {
    let up: Upstream;
    const rp = new UpstreamClient({ timeoutMs: 1000 });
    before(async () => {
      up = await startUpstream({
        kind: 'oidc',
        users: [
          { sub: 'alice-1', email: 'Alice@Corp.example', email_verified: true, name: 'Alice Example', given_name: 'Alice', amr: ['pwd', 'otp'] },
          { sub: 'bob-1', email: 'bob@corp.example', email_verified: false, name: 'Bob' },
        ],
        clients: [client()],
      });
    });
    after(() => up.close());

    it('completes a code flow and gives the identity (iss, sub), its verified e-mail, profile and MFA', async () => {
      const c = connection(up, { id: 'generic' });
      const url = await rp.authorizationUrl(c, { redirectUri: REDIRECT, ...newChecks(), loginHint: 'alice@corp.example' });
      expect(Object.fromEntries(url.searchParams)).to.include({ response_type: 'code', code_challenge_method: 'S256', scope: 'openid email profile', redirect_uri: REDIRECT, login_hint: 'alice@corp.example' });
      const { back, checks } = await signIn(rp, c, 'alice@corp.example');
      expect(back.searchParams.get('iss'), 'RFC 9207 iss sent by a generic OP').to.equal(up.issuer);
      const r = await rp.callback(c, back, checks);
      expect(r.claims).to.include({ iss: up.issuer, sub: 'alice-1', aud: 'our-idp', nonce: checks.nonce });
      expect(r.idToken.split('.')).to.have.length(3);
      const id = identityOf(c, r.claims);
      expect(id).to.deep.include({ issuer: up.issuer, subject: 'alice-1', email: 'alice@corp.example', emailVerified: true, upstreamMfa: true, amr: ['pwd', 'otp'] });
      expect(id.profile).to.deep.include({ name: 'Alice Example', givenName: 'Alice' });
      // the code was redeemed once: the same answer again is refused
      await refused(rp.callback(c, back, checks), 'upstream_error');
    });

    it('keeps an unverified upstream e-mail unverified', async () => {
      const c = connection(up, { id: 'generic' });
      const { back, checks } = await signIn(rp, c, 'bob@corp.example');
      const id = identityOf(c, (await rp.callback(c, back, checks)).claims);
      expect(id).to.deep.include({ subject: 'bob-1', email: 'bob@corp.example', emailVerified: false, upstreamMfa: false });
      // an e-mail taken from another claim never counts as verified
      const mapped = connection(up, { id: 'generic', claimMapping: { email: 'name' } });
      expect(identityOf(mapped, { iss: up.issuer, sub: 's', name: 'x@corp.example', email_verified: true }).emailVerified).to.equal(false);
    });

    it('refuses a state mismatch and a nonce mismatch', async () => {
      const c = connection(up, { id: 'generic' });
      const a = await signIn(rp, c, 'alice@corp.example');
      await refused(rp.callback(c, a.back, { ...a.checks, state: 'another-state' }), 'state');
      const b = await signIn(rp, c, 'alice@corp.example');
      await refused(rp.callback(c, b.back, { ...b.checks, nonce: 'another-nonce' }), 'nonce');
    });

    it('reports access_denied and login_required from upstream', async () => {
      const c = connection(up, { id: 'generic' });
      up.failNext('access_denied');
      const a = await signIn(rp, c, undefined);
      expect(a.back.searchParams.get('error')).to.equal('access_denied');
      const e = await refused(rp.callback(c, a.back, a.checks), 'denied');
      expect(e.upstreamError).to.equal('access_denied');
      up.failNext('login_required');
      const b = await signIn(rp, c, undefined);
      await refused(rp.callback(c, b.back, b.checks), 'login_required');
    });

    it('verifies the ID token\'s signature: a token changed on its way is refused', async () => {
      // a man in the middle of the token response rewrites the e-mail in the ID token's payload
      const tampering: typeof fetch = async (input, init) => {
        const res = await fetch(input, init);
        if (!String(input).endsWith('/token') || res.status !== 200) return res;
        const body = await res.json() as { id_token: string };
        const [h, p, s] = body.id_token.split('.');
        const payload = { ...JSON.parse(Buffer.from(p, 'base64url').toString()), email: 'victim@corp.example' };
        body.id_token = [h, Buffer.from(JSON.stringify(payload)).toString('base64url'), s].join('.');
        return new Response(JSON.stringify(body), { status: 200, headers: { 'content-type': 'application/json' } });
      };
      const mitm = new UpstreamClient({ timeoutMs: 2000, fetch: tampering });
      const c = connection(up, { id: 'generic' });
      const { back, checks } = await signIn(mitm, c, 'alice@corp.example');
      const e = await refused(mitm.callback(c, back, checks), 'invalid_token');
      expect(e.detail).to.match(/signature/);
    });

    it('refuses a discovery document naming another issuer', async () => {
      const c = connection(up, { id: 'wrong-issuer', issuer: 'https://someone-else.example' });
      const e = await refused(rp.discover(c), 'discovery');
      expect(e.detail).to.match(/names issuer "http:\/\/127\.0\.0\.2:\d+", expected "https:\/\/someone-else\.example"/);
    });

    it('gives up on an unreachable or slow upstream within the timeout, and recovers', async () => {
      const c = connection(up, { id: 'down' });
      await up.stop();
      let t0 = Date.now();
      await refused(rp.discover(c), 'unreachable');
      expect(Date.now() - t0).to.be.below(2000);
      await up.restart();
      up.delay(3000);
      t0 = Date.now();
      await refused(rp.discover(c), 'unreachable');
      expect(Date.now() - t0).to.be.within(900, 2000);
      up.delay(0);
      expect((await rp.discover(c)).serverMetadata().issuer).to.equal(up.issuer);
    });

    it('picks up a rotated signing key (new kid) at once', async () => {
      const rotating = new UpstreamClient({ timeoutMs: 2000 });
      const c = connection(up, { id: 'rotation' });
      const first = await signIn(rotating, c, 'alice@corp.example');
      await rotating.callback(c, first.back, first.checks);
      const jwksBefore = up.hits.get('/jwks') ?? 0;
      const kid = await up.rotateKey({ dropOld: true });
      const second = await signIn(rotating, c, 'alice@corp.example');
      const r = await rotating.callback(c, second.back, second.checks);
      expect(r.claims.sub).to.equal('alice-1');
      expect(JSON.parse(Buffer.from(r.idToken.split('.')[0], 'base64url').toString()).kid).to.equal(kid);
      expect(up.hits.get('/jwks'), 'the key set was fetched again').to.equal(jwksBefore + 1);
      // within jwksRefetchMinMs a second unknown kid is not fetched again: refused as a key problem
      await up.rotateKey({ dropOld: true });
      const third = await signIn(rotating, c, 'alice@corp.example');
      await refused(rotating.callback(c, third.back, third.checks), 'jwks');
      expect(up.hits.get('/jwks')).to.equal(jwksBefore + 1);
    });
  });

  describe('client authentication at the token endpoint', () => {
    let up: Upstream;
    const rp = new UpstreamClient({ timeoutMs: 2000 });
    const users = [{ sub: 'ivy-1', email: 'ivy@corp.example', email_verified: true }];
    before(async () => {
      up = await startUpstream({ kind: 'oidc', users });
    });
    after(() => up.close());

    it('client_secret_post', async () => {
      up.clients.set('post-client', { client_id: 'post-client', client_secret: 'post-secret', redirect_uris: [REDIRECT], token_endpoint_auth_method: 'client_secret_post' });
      const c = connection(up, { id: 'post', clientId: 'post-client', clientSecret: 'post-secret', clientAuth: 'client_secret_post' });
      const { back, checks } = await signIn(rp, c, 'ivy@corp.example');
      expect((await rp.callback(c, back, checks)).claims.sub).to.equal('ivy-1');
      // a wrong secret is the upstream's refusal
      const wrong = connection(up, { id: 'post', clientId: 'post-client', clientSecret: 'not-the-secret', clientAuth: 'client_secret_post' });
      const again = await signIn(rp, wrong, 'ivy@corp.example');
      const e = await refused(rp.callback(wrong, again.back, again.checks), 'upstream_error');
      expect(e.upstreamError).to.equal('invalid_client');
    });

    it('private_key_jwt with the connection\'s own key (its public half registered upstream)', async () => {
      const jwk = await generateSigningJwk('RS256');
      const { kty, n, e, kid, alg, use } = jwk;
      const publicJwk = { kty, n, e, kid, alg, use };
      up.clients.set('pk-client', { client_id: 'pk-client', redirect_uris: [REDIRECT], token_endpoint_auth_method: 'private_key_jwt', token_endpoint_auth_signing_alg: 'RS256', jwks: { keys: [publicJwk as never] } });
      const c = { ...connection(up, { id: 'pk', clientId: 'pk-client', clientAuth: 'private_key_jwt', clientSecret: undefined }), signingKey: { kid: kid!, publicJwk, privateJwk: jwk } };
      const { back, checks } = await signIn(rp, c, 'ivy@corp.example');
      expect((await rp.callback(c, back, checks)).claims.sub).to.equal('ivy-1');
    });
  });

  describe('Google', () => {
    let up: Upstream;
    const rp = new UpstreamClient({ timeoutMs: 2000 });
    before(async () => {
      up = await startUpstream({
        kind: 'google',
        users: [
          { sub: '1001', email: 'carol@corp.example', email_verified: true, hd: 'corp.example', name: 'Carol' },
          { sub: '1002', email: 'dave@gmail.example', email_verified: true, name: 'Dave' },
          { sub: '1003', email: 'erin@other.example', email_verified: true, hd: 'other.example' },
        ],
        clients: [client()],
      });
    });
    after(() => up.close());

    it('sends hd and accepts an ID token of the hosted domain', async () => {
      const c = connection(up, { id: 'google', kind: 'google', hostedDomain: 'corp.example' });
      const url = await rp.authorizationUrl(c, { redirectUri: REDIRECT, ...newChecks() });
      expect(url.searchParams.get('hd')).to.equal('corp.example');
      const { back, checks } = await signIn(rp, c, 'carol@corp.example');
      const r = await rp.callback(c, back, checks);
      expect(identityOf(c, r.claims)).to.deep.include({ issuer: up.issuer, subject: '1001', email: 'carol@corp.example', emailVerified: true });
    });

    it('refuses an ID token without hd or with another hd', async () => {
      const c = connection(up, { id: 'google', kind: 'google', hostedDomain: 'corp.example' });
      for (const login of ['dave@gmail.example', 'erin@other.example']) {
        const { back, checks } = await signIn(rp, c, login);
        await refused(rp.callback(c, back, checks), 'hosted_domain');
      }
      // without a hosted domain, any Google account
      const open = connection(up, { id: 'google-open', kind: 'google' });
      const { back, checks } = await signIn(rp, open, 'dave@gmail.example');
      expect((await rp.callback(open, back, checks)).claims.sub).to.equal('1002');
    });
  });

  describe('Entra ID multi-tenant', () => {
    let up: Upstream;
    const rp = new UpstreamClient({ timeoutMs: 2000 });
    before(async () => {
      up = await startUpstream({
        kind: 'entra',
        users: [
          { oid: OID_1, tid: TENANT_A, email: 'frank@corp.example', xms_edov: true, name: 'Frank' },
          { oid: OID_2, tid: TENANT_B, email: 'grace@partner.example', xms_edov: false, name: 'Grace' },
        ],
        clients: [client()],
      });
    });
    after(() => up.close());

    it('validates the token of an allowed tenant against the tenant\'s issuer; the key is (tid, oid)', async () => {
      const c = connection(up, { id: 'entra', tenants: [TENANT_A, TENANT_B] });
      expect(c.issuer).to.equal('https://login.example/{tenantid}/v2.0');
      const { back, checks } = await signIn(rp, c, 'frank@corp.example');
      expect(back.searchParams.has('iss'), 'Entra sends no iss parameter').to.equal(false);
      const r = await rp.callback(c, back, checks);
      expect(r.claims).to.include({ iss: `https://login.example/${TENANT_A}/v2.0`, tid: TENANT_A, oid: OID_1, email: 'frank@corp.example', preferred_username: 'frank@corp.example', xms_edov: true });
      expect(r.claims.sub).to.not.equal(OID_1);
      const id = identityOf(c, r.claims);
      expect(id).to.deep.include({ issuer: `https://login.example/${TENANT_A}/v2.0`, subject: `${TENANT_A}:${OID_1}`, tenant: TENANT_A, email: 'frank@corp.example', emailVerified: true });
    });

    it('keeps an e-mail unverified without xms_edov, and a changed e-mail does not change the key', async () => {
      const c = connection(up, { id: 'entra', tenants: [TENANT_A, TENANT_B] });
      const { back, checks } = await signIn(rp, c, 'grace@partner.example');
      const id = identityOf(c, (await rp.callback(c, back, checks)).claims);
      expect(id).to.deep.include({ subject: `${TENANT_B}:${OID_2}`, email: 'grace@partner.example', emailVerified: false });
      // the tenant admin changes Grace's e-mail to someone else's address: same key, still unverified
      const grace = up.users.get('grace@partner.example')!;
      up.users.delete('grace@partner.example');
      up.users.set('frank.victim@corp.example', { ...grace, email: 'frank.victim@corp.example' });
      try {
        const again = await signIn(rp, c, 'frank.victim@corp.example');
        const id2 = identityOf(c, (await rp.callback(c, again.back, again.checks)).claims);
        expect(id2).to.deep.include({ subject: `${TENANT_B}:${OID_2}`, email: 'frank.victim@corp.example', emailVerified: false });
      } finally {
        up.users.delete('frank.victim@corp.example');
        up.users.set('grace@partner.example', grace);
      }
    });

    it('refuses a token of a tenant not on the allow-list', async () => {
      const c = connection(up, { id: 'entra', tenants: [TENANT_A] });
      const { back, checks } = await signIn(rp, c, 'grace@partner.example');
      const e = await refused(rp.callback(c, back, checks), 'tenant');
      expect(e.detail).to.equal(`tenant ${TENANT_B} is not allowed`);
    });

    it('never trusts the unverified tid it reads first: a token moved to an allowed tenant is refused', async () => {
      // Grace (tenant B) signs in; on the way, her ID token claims tenant A (and A's issuer)
      const moveTenant = (withIssuer: boolean): typeof fetch => async (input, init) => {
        const res = await fetch(input, init);
        if (!String(input).endsWith('/token') || res.status !== 200) return res;
        const body = await res.json() as { id_token: string };
        const [h, p, sig] = body.id_token.split('.');
        const payload = { ...JSON.parse(Buffer.from(p, 'base64url').toString()), tid: TENANT_A, ...(withIssuer ? { iss: up.tenantIssuer(TENANT_A) } : {}) };
        body.id_token = [h, Buffer.from(JSON.stringify(payload)).toString('base64url'), sig].join('.');
        return new Response(JSON.stringify(body), { status: 200, headers: { 'content-type': 'application/json' } });
      };
      const c = connection(up, { id: 'entra', tenants: [TENANT_A] });
      const tidOnly = new UpstreamClient({ timeoutMs: 2000, fetch: moveTenant(false) });
      const a = await signIn(tidOnly, c, 'grace@partner.example');
      await refused(tidOnly.callback(c, a.back, a.checks), 'issuer');
      const both = new UpstreamClient({ timeoutMs: 2000, fetch: moveTenant(true) });
      const b = await signIn(both, c, 'grace@partner.example');
      const e = await refused(both.callback(c, b.back, b.checks), 'invalid_token');
      expect(e.detail).to.match(/signature/);
    });

    it('accepts an iss parameter naming the tenant\'s issuer, refuses one of a tenant not allowed', async () => {
      const c = connection(up, { id: 'entra', tenants: [TENANT_A] });
      const a = await signIn(rp, c, 'frank@corp.example');
      a.back.searchParams.set('iss', up.tenantIssuer(TENANT_A));
      expect((await rp.callback(c, a.back, a.checks)).claims.tid).to.equal(TENANT_A);
      const b = await signIn(rp, c, 'frank@corp.example');
      b.back.searchParams.set('iss', up.tenantIssuer(TENANT_B));
      const tokenHits = up.hits.get('/token') ?? 0;
      await refused(rp.callback(c, b.back, b.checks), 'tenant');
      expect(up.hits.get('/token'), 'the code was not sent').to.equal(tokenHits);
    });

    it('reports the token endpoint\'s refusal (a wrong client secret)', async () => {
      const c = connection(up, { id: 'entra', tenants: [TENANT_A], clientSecret: 'wrong' });
      const { back, checks } = await signIn(rp, c, 'frank@corp.example');
      const e = await refused(rp.callback(c, back, checks), 'upstream_error');
      expect(e.upstreamError).to.equal('invalid_client');
    });

    it('single tenant: the tenant\'s own discovery document and issuer', async () => {
      const c = connection(up, { id: 'entra-single', issuer: up.tenantIssuer(TENANT_A), discoveryUrl: up.tenantDiscoveryUrl(TENANT_A) });
      const ok = await signIn(rp, c, 'frank@corp.example');
      expect(identityOf(c, (await rp.callback(c, ok.back, ok.checks)).claims).subject).to.equal(`${TENANT_A}:${OID_1}`);
      const other = await signIn(rp, c, 'grace@partner.example');
      await refused(rp.callback(c, other.back, other.checks), 'issuer');
    });
  });

  describe('mix-up', () => {
    let a: Upstream;
    let b: Upstream;
    let entra: Upstream;
    const rp = new UpstreamClient({ timeoutMs: 2000 });
    before(async () => {
      const users = [{ sub: 'same-sub', oid: OID_1, tid: TENANT_A, email: 'henry@corp.example', email_verified: true }];
      a = await startUpstream({ kind: 'oidc', users, clients: [client()] });
      b = await startUpstream({ kind: 'oidc', users, clients: [client()] });
      entra = await startUpstream({ kind: 'entra', users, clients: [client()] });
    });
    after(async () => {
      await a.close();
      await b.close();
      await entra.close();
    });

    it('refuses a response of upstream A handed to connection B, before its code is sent anywhere', async () => {
      const connA = connection(a, { id: 'a' });
      const connB = connection(b, { id: 'b' });
      const connEntra = connection(entra, { id: 'entra', tenants: [TENANT_A] });
      // the browser started at B (B's state, nonce, verifier), but the answer came from A
      const fromA = await signIn(rp, connA, 'henry@corp.example');
      const tokenHitsB = b.hits.get('/token') ?? 0;
      const e = await refused(rp.callback(connB, fromA.back, fromA.checks), 'issuer');
      expect(e.detail).to.match(/"iss"/);
      expect(b.hits.get('/token') ?? 0, 'no code went to B').to.equal(tokenHitsB);
      // an Entra connection refuses an iss that is not its template with an allowed tenant
      const tokenHitsEntra = entra.hits.get('/token') ?? 0;
      await refused(rp.callback(connEntra, fromA.back, fromA.checks), 'issuer');
      expect(entra.hits.get('/token') ?? 0).to.equal(tokenHitsEntra);
      // and A's own connection still accepts it
      expect((await rp.callback(connA, fromA.back, fromA.checks)).claims.sub).to.equal('same-sub');
    });

    it('refuses an Entra answer (no iss parameter) handed to a generic connection that expects one', async () => {
      const connEntra = connection(entra, { id: 'entra', tenants: [TENANT_A] });
      const connB = connection(b, { id: 'b' });
      const fromEntra = await signIn(rp, connEntra, 'henry@corp.example');
      await refused(rp.callback(connB, fromEntra.back, fromEntra.checks), 'issuer');
    });
  });

  it('counts MFA from amr: "mfa", or two kinds of factor', () => {
    expect(isMultiFactor(['mfa'])).to.equal(true);
    expect(isMultiFactor(['pwd', 'otp'])).to.equal(true);
    expect(isMultiFactor(['pwd'])).to.equal(false);
    expect(isMultiFactor(['otp', 'sms'])).to.equal(false);
    expect(isMultiFactor(undefined)).to.equal(false);
  });

  it('identityOf refuses a missing key claim', () => {
    const fake = { issuer: 'https://up.example', discoveryUrl: 'https://up.example/.well-known/openid-configuration' } as Upstream;
    const c = connection(fake, { id: 'x', kind: 'oidc' });
    expect(() => identityOf(c, { iss: 'https://up.example' })).to.throw(UpstreamError).with.property('reason', 'missing_claim');
    const e = connection(fake, { id: 'e', kind: 'entra', issuer: 'https://login.example/{tenantid}/v2.0', tenants: [TENANT_A] });
    expect(() => identityOf(e, { iss: 'x', sub: 's', tid: TENANT_A, email: 'a@b.example', preferred_username: 'a@b.example' })).to.throw(UpstreamError).with.property('reason', 'missing_claim');
  });
});
