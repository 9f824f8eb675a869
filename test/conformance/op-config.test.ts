// The OpenID Foundation's Config OP plan (oidcc-config-certification-test-plan):
// the discovery document of an OP whose issuer is https, as in production
// behind its TLS-terminating proxy (TRUST_PROXY_HOPS=1; the test plays the
// proxy on loopback with X-Forwarded-Proto and Host), checked as oidcc-discovery-endpoint-verification
// checks it, and the server JWKS as ValidateJwksSequence does. Also the facts
// behind plans.ts's "not applicable" reasons, read from the same document.
import { expect } from 'chai';
import request from 'supertest';
import { startTestIdp, type TestIdp } from '../support/idp.ts';
import { recordModules } from './plans.ts';

const ISSUER = 'https://idp.conformance.test';
const STATIC_RESPONSE_TYPES = ['code', 'code id_token', 'id_token', 'token id_token', 'code id_token token', 'code token'];

describe('conformance: Config OP (oidcc-config-certification-test-plan)', function () {
  this.timeout(30_000);
  let idp: TestIdp;
  let md: Record<string, unknown>;

  before(async () => {
    idp = await startTestIdp({ ISSUER, TRUST_PROXY_HOPS: '1', LOG_LEVEL: 'warn' });
    md = (await get('/.well-known/openid-configuration')).body;
  });

  /** a request as the proxy forwards it */
  const get = (path: string) => request(idp.url).get(path).set('host', new URL(ISSUER).host).set('x-forwarded-proto', 'https');

  after(async () => {
    await idp?.close();
  });

  describe('modules', () => {
    recordModules();

    it('oidcc-discovery-endpoint-verification: 200 JSON; issuer; required and recommended fields; every endpoint https; a valid JWKS', async () => {
      const res = await get('/.well-known/openid-configuration');
      expect(res.status).to.equal(200);
      expect(res.headers['content-type']).to.match(/^application\/json/);
      // CheckDiscEndpointIssuer / IssuerIsValidUrl / DiscoveryUrl: the issuer is the URL the document lives under
      expect(md.issuer).to.equal(ISSUER);
      const issuer = new URL(md.issuer as string);
      expect(issuer.protocol).to.equal('https:');
      expect(issuer.search + issuer.hash).to.equal('');
      // OIDCCCheckDiscEndpointResponseTypesSupported (static client): at least one OpenID Connect response type
      expect(md.response_types_supported).to.be.an('array').that.satisfies((a: string[]) => a.some((t) => STATIC_RESPONSE_TYPES.includes(t)));
      expect(md.subject_types_supported).to.be.an('array').that.satisfies((a: string[]) => a.some((t) => t === 'public' || t === 'pairwise'));
      expect(md.id_token_signing_alg_values_supported).to.include('RS256');
      expect(md.id_token_signing_alg_values_supported).to.not.include('none');
      expect(md.scopes_supported).to.include('openid');
      for (const s of md.scopes_supported as string[]) expect(s, 'RFC 6749 3.3 scope syntax').to.match(/^[\x21\x23-\x5B\x5D-\x7E]+$/);
      expect(md.grant_types_supported).to.be.an('array').with.length.greaterThan(0);
      expect(md.claims_supported).to.be.an('array').that.includes('sub');
      expect(typeof md.claims_parameter_supported).to.equal('boolean');
      expect(md.code_challenge_methods_supported).to.be.an('array');
      for (const locales of ['ui_locales_supported', 'claims_locales_supported']) {
        if (md[locales] !== undefined) for (const l of md[locales] as string[]) expect(l, locales).to.match(/^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$/);
      }
      // CheckDiscEndpointAllEndpointsAreHttps: every *_endpoint and jwks_uri (here all under the issuer)
      for (const [k, v] of Object.entries(md)) {
        if ((k.endsWith('_endpoint') || k === 'jwks_uri') && typeof v === 'string') expect(v, k).to.match(new RegExp(`^${ISSUER}/`));
      }
      for (const k of ['authorization_endpoint', 'token_endpoint', 'userinfo_endpoint', 'jwks_uri']) expect(md[k], k).to.be.a('string');
      // FetchServerKeys + ValidateJwksSequence: public keys only, each with a distinct kid, usable for signatures
      const jwks = await get(new URL(md.jwks_uri as string).pathname);
      expect(jwks.status).to.equal(200);
      const keys = jwks.body.keys as Array<Record<string, unknown>>;
      expect(keys).to.be.an('array').with.length.greaterThan(0);
      expect(new Set(keys.map((k) => k.kid)).size, 'distinct kids').to.equal(keys.length);
      for (const k of keys) {
        expect(k.kid).to.be.a('string');
        for (const priv of ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k']) expect(k[priv], `${k.kid} has no private part ${priv}`).to.equal(undefined);
        if (k.use !== undefined) expect(k.use).to.equal('sig');
      }
      expect(keys.some((k) => k.kty === 'RSA' && (k.alg === undefined || k.alg === 'RS256'))).to.equal(true);
    });
  });

  it('the reasons of the modules listed as not applicable (plans.ts) are facts of the discovery document', () => {
    expect(md.id_token_signing_alg_values_supported, 'no unsigned ID tokens').to.not.include('none');
    expect(md.scopes_supported, 'no address scope').to.not.include('address');
    expect(md.request_parameter_supported ?? false, 'no request objects').to.equal(false);
    expect(md.request_object_signing_alg_values_supported, 'no request objects').to.equal(undefined);
    expect(md.check_session_iframe, 'no session management').to.equal(undefined);
    expect(md.frontchannel_logout_supported ?? false, 'no front-channel logout').to.equal(false);
    expect(md.backchannel_logout_supported, 'back-channel logout instead').to.equal(true);
  });
});
