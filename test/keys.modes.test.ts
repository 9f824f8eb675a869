// The three keyring modes end to end, each against the KMS test server over
// the real @aws-sdk/client-kms (no SDK mocks): openid-client logs in through
// the login form; the ID token (RS256) and a JWT access token (ES256, and
// EdDSA where the mode has it) verify against /jwks and carry the active kid;
// a rotation on the running server moves signing to the new key while the
// old tokens still verify; no table holds a private key, cookie key,
// blind-index key or data key in plaintext. kms-sign: no private key in the
// process, one KMS Sign per token.
import { expect } from 'chai';
import type * as oidc from 'openid-client';
import { ExternalSigningKey } from 'oidc-provider';
import { startTestIdp, type TestIdp } from './support/idp.ts';
import { startKmsServer, type KmsTestServer } from './support/kms-server.ts';
import {
  API, API_ED, registerFixtures, relyingParty, serviceClient, login, jwtAccessToken, verifyAgainstJwks, kidOf,
  activeKid, dumpTables, encodings, eventually, jwks, sessionStillValid,
} from './support/keys-flow.ts';

const MODES = ['local', 'kms-envelope', 'kms-sign'] as const;

describe('keyring modes: login, token verification, rotation, nothing stored in plaintext', function () {
  this.timeout(60_000);
  let kms: KmsTestServer;
  let envelopeKeyId: string;

  before(async () => {
    kms = await startKmsServer();
    envelopeKeyId = (await kms.createKey('SYMMETRIC_DEFAULT')).keyId;
  });

  after(async () => {
    await kms?.close();
  });

  for (const mode of MODES) {
    describe(`KEYS_MODE=${mode}`, () => {
      let idp: TestIdp;
      let rp: oidc.Configuration;
      let svc: oidc.Configuration;

      before(async () => {
        idp = await startTestIdp({
          KEYS_MODE: mode, KMS_ENDPOINT: kms.endpoint, KMS_KEY_ID: envelopeKeyId,
          KEYS_REFRESH_SECONDS: '1', KEY_PREPUBLISH_SECONDS: '3600', KEY_REMOVE_GRACE_SECONDS: '0',
        });
        await registerFixtures(idp, { eddsa: mode !== 'kms-sign' });
        rp = await relyingParty(idp);
        svc = await serviceClient(idp);
      });

      after(async () => {
        await idp?.close();
      });

      it('completes the login flow; the ID token and JWT access tokens verify against /jwks with the active kid', async () => {
        const signsBefore = kms.calls.Sign;
        const { tokens, nonce } = await login(idp, rp);
        const id = await verifyAgainstJwks(idp, tokens.id_token!, { audience: 'webapp' });
        expect(id.payload.nonce).to.equal(nonce);
        expect(id.payload.sub).to.be.a('string');
        expect(id.protectedHeader.alg).to.equal('RS256');
        expect(id.protectedHeader.kid).to.equal(activeKid(idp, 'RS256'));

        const at = await jwtAccessToken(svc);
        const v = await verifyAgainstJwks(idp, at, { audience: API, typ: 'at+jwt' });
        expect(v.protectedHeader.alg).to.equal('ES256');
        expect(v.protectedHeader.kid).to.equal(activeKid(idp, 'ES256'));
        expect(v.payload.scope).to.equal('api:read');

        if (mode === 'kms-sign') {
          // one Sign for the ID token, one for the JWT access token; nothing else signs
          expect(kms.calls.Sign - signsBefore).to.equal(2);
        } else {
          expect(kms.calls.Sign - signsBefore).to.equal(0);
          const ed = await jwtAccessToken(svc, API_ED);
          const e = await verifyAgainstJwks(idp, ed, { audience: API_ED, typ: 'at+jwt' });
          expect(e.protectedHeader.alg).to.equal('EdDSA');
          expect(e.protectedHeader.kid).to.equal(activeKid(idp, 'EdDSA'));
        }
      });

      it('publishes only public keys, with RFC 7638 thumbprints as kids, and the algorithms of the mode', async () => {
        const keys = await jwks(idp);
        const { calculateJwkThumbprint } = await import('jose');
        for (const k of keys) {
          for (const member of ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k']) expect(k, `${k.kid} ${member}`).to.not.have.property(member);
          expect(k.kid).to.equal(await calculateJwkThumbprint(k, 'sha256'));
          expect(k.use).to.equal('sig');
        }
        const algs = keys.map((k) => k.alg).sort();
        const discovery = await (await fetch(`${idp.url}/.well-known/openid-configuration`)).json() as { id_token_signing_alg_values_supported: string[] };
        if (mode === 'kms-sign') {
          expect(algs).to.deep.equal(['ES256', 'RS256']);
          expect(discovery.id_token_signing_alg_values_supported).to.not.include('EdDSA');
        } else {
          expect(algs).to.deep.equal(['ES256', 'EdDSA', 'RS256']);
          expect(discovery.id_token_signing_alg_values_supported).to.include.members(['RS256', 'ES256', 'EdDSA']);
        }
      });

      if (mode === 'kms-sign') {
        it('holds no private key in the process: the signing keys are KMS keys, every token is one KMS Sign', async () => {
          const keys = idp.keyring.signingJwks();
          expect(keys.length).to.be.greaterThan(0);
          for (const k of keys) {
            expect(k).to.be.instanceOf(ExternalSigningKey);
            expect((k as unknown as Record<string, unknown>).d).to.equal(undefined);
            expect(JSON.stringify(k)).to.not.match(/"d"\s*:/);
          }
          expect(JSON.stringify(idp.keyring.publicJwks())).to.not.match(/"d"\s*:/);
          for (const k of idp.keyring.keys().filter((x) => x.kind === 'signing')) expect(k.kmsKeyId).to.match(/^arn:aws:kms:/);
          const before = kms.calls.Sign;
          for (let i = 0; i < 3; i++) await jwtAccessToken(svc);
          expect(kms.calls.Sign - before).to.equal(3);
        });
      }

      it('stores no private key, cookie key, blind-index key or data key in plaintext in any table', async () => {
        const tables = await dumpTables(idp.storage);
        const all = Object.values(tables).join('\n');
        expect(all, 'a "d" member of a JWK').to.not.match(/\\?"d\\?"\s*:/);

        const secrets: Array<[string, Buffer | string]> = [];
        for (const k of idp.keyring.signingJwks()) {
          const jwk = k as unknown as Record<string, unknown>;
          for (const member of ['d', 'p', 'q', 'dp', 'dq', 'qi']) {
            if (typeof jwk[member] === 'string') secrets.push([`${String(jwk.kid)}.${member}`, Buffer.from(jwk[member] as string, 'base64url')]);
          }
        }
        if (mode !== 'kms-sign') expect(secrets.length, 'private members of the in-memory keys').to.be.greaterThan(0);
        for (const c of idp.keyring.cookieKeys()) secrets.push(['cookie key', c]);
        secrets.push(['blind-index key', idp.keyring.blindIndexKey()]);
        // the accounts' data keys, opened through the keyring
        const accounts = JSON.parse(tables.accounts) as Array<{ sub?: string; dk?: string }>;
        const withKeys = accounts.filter((a) => typeof a.dk === 'string' && a.sub);
        expect(withKeys.length, 'accounts with a wrapped data key').to.be.greaterThan(0);
        for (const a of withKeys) secrets.push([`data key of ${a.sub}`, await idp.keyring.openDataKey(a.dk!, `account:${a.sub}`)]);
        // and one made here, stored only in wrapped form
        const dk = await idp.keyring.newDataKey('probe:1');
        expect(await idp.keyring.openDataKey(dk.wrapped, 'probe:1')).to.deep.equal(dk.plaintext);
        secrets.push(['probe data key', dk.plaintext]);

        for (const [what, secret] of secrets) {
          for (const form of encodings(secret)) expect(all.includes(form), `${what} stored in plaintext (${form.slice(0, 8)}…)`).to.equal(false);
        }
        // every stored signing key is wrapped (or, in kms-sign, only a KMS key id)
        const keyItems = JSON.parse(tables.keys) as Array<Record<string, unknown>>;
        for (const item of keyItems.filter((i) => i.pk === 'signing')) {
          if (mode === 'kms-sign') {
            expect(item.wrapped).to.equal(undefined);
            expect(item.kmsKeyId).to.be.a('string');
          } else {
            expect(item.wrapped).to.match(mode === 'local' ? /^l1\./ : /^k1\./);
          }
        }
      });

      it('rotates on the running server: the next key is published first, then signs; old tokens still verify; the session survives the cookie key rotation', async () => {
        const { tokens, ua } = await login(idp, rp);
        const oldId = tokens.id_token!;
        const oldAt = await jwtAccessToken(svc);
        const oldRs = kidOf(oldId);
        const oldEs = kidOf(oldAt);
        const oldCookie = idp.keyring.cookieKeys()[0];

        const created = await idp.cli('keys', 'rotate', '--activate-in', '2') as Array<{ kid: string; alg?: string; kind: string; action: string }>;
        expect(created.map((a) => a.action)).to.deep.equal(mode === 'kms-sign' ? ['create', 'create', 'create'] : ['create', 'create', 'create', 'create']);
        const newRs = created.find((a) => a.alg === 'RS256')!.kid;
        const newEs = created.find((a) => a.alg === 'ES256')!.kid;
        // published before it signs anything
        await eventually(async () => (await jwks(idp)).some((k) => k.kid === newRs), 5000, 'the next RS256 key in /jwks');
        expect(kidOf(await jwtAccessToken(svc))).to.equal(oldEs);

        // promoted by the schedule without a restart
        const at = await eventually(async () => {
          const t = await jwtAccessToken(svc);
          return kidOf(t) === newEs ? t : undefined;
        }, 8000, 'a token signed by the new ES256 key', 250);
        await verifyAgainstJwks(idp, at, { audience: API });
        const fresh = await login(idp, rp);
        expect(kidOf(fresh.tokens.id_token!)).to.equal(newRs);
        // the retired keys stay published: tokens they signed still verify
        await verifyAgainstJwks(idp, oldId, { audience: 'webapp' });
        await verifyAgainstJwks(idp, oldAt, { audience: API });
        expect((await jwks(idp)).map((k) => k.kid)).to.include.members([oldRs, oldEs, newRs, newEs]);
        const list = await idp.cli('keys', 'list') as Array<{ kid: string; state: string; removesAt?: string }>;
        expect(list.find((k) => k.kid === oldRs)?.state).to.equal('retired');
        expect(list.find((k) => k.kid === oldRs)?.removesAt).to.be.a('string');

        // cookies: a new key signs, the old one still verifies the browser's session
        expect(idp.keyring.cookieKeys()[0]).to.not.equal(oldCookie);
        expect(idp.keyring.cookieKeys()).to.include(oldCookie);
        expect(await sessionStillValid(idp, rp, ua)).to.equal(true);
      });
    });
  }
});
