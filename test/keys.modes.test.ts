// The three keyring modes end to end, each against the KMS test server over
// the real @aws-sdk/client-kms (no SDK mocks): openid-client logs in through
// the login form; ID tokens (RS256, and PS256 for a client registered so) and
// JWT access tokens (ES256, PS256, and EdDSA where the mode has it) verify
// against /jwks and carry the active kid of their algorithm; a rotation on the
// running server moves signing to the new keys while the old tokens still
// verify; no table holds a private key, cookie key, blind-index key or data
// key in plaintext. kms-sign: no private key in the process (PS256 included),
// one KMS Sign per token.
import { expect } from 'chai';
import crypto from 'node:crypto';
import type * as oidc from 'openid-client';
import { ExternalSigningKey } from 'oidc-provider';
import { startTestIdp, type TestIdp } from './support/idp.ts';
import { startKmsServer, type KmsTestServer } from './support/kms-server.ts';
import { validateClient } from '../src/cli/validate-client.ts';
import {
  API, API_ED, API_PS, WEBAPP_PS, registerFixtures, relyingParty, serviceClient, login, jwtAccessToken, verifyAgainstJwks, kidOf,
  activeKid, dumpTables, encodings, eventually, jwks, sessionStillValid, REDIRECT, SECRET,
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
      let rpPs: oidc.Configuration;
      let svc: oidc.Configuration;

      before(async () => {
        idp = await startTestIdp({
          KEYS_MODE: mode, KMS_ENDPOINT: kms.endpoint, KMS_KEY_ID: envelopeKeyId,
          KEYS_REFRESH_SECONDS: '1', KEY_PREPUBLISH_SECONDS: '3600', KEY_REMOVE_GRACE_SECONDS: '0',
        });
        await registerFixtures(idp, { eddsa: mode !== 'kms-sign' });
        rp = await relyingParty(idp);
        rpPs = await relyingParty(idp, WEBAPP_PS);
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

      it('signs PS256 ID tokens and JWT access tokens with the PS256 key (RSASSA-PSS, 32-byte salt), verifiable with jose against /jwks', async () => {
        const signsBefore = kms.calls.Sign;
        const { tokens, nonce } = await login(idp, rpPs);
        const id = await verifyAgainstJwks(idp, tokens.id_token!, { audience: WEBAPP_PS });
        expect(id.payload.nonce).to.equal(nonce);
        expect(id.protectedHeader.alg).to.equal('PS256');
        expect(id.protectedHeader.kid).to.equal(activeKid(idp, 'PS256'));

        const at = await jwtAccessToken(svc, API_PS);
        const v = await verifyAgainstJwks(idp, at, { audience: API_PS, typ: 'at+jwt' });
        expect(v.protectedHeader.alg).to.equal('PS256');
        expect(v.protectedHeader.kid).to.equal(activeKid(idp, 'PS256'));
        expect(v.payload.scope).to.equal('api:read');
        // the PS256 key is its own RSA key, not the RS256 one
        expect(activeKid(idp, 'PS256')).to.not.equal(activeKid(idp, 'RS256'));

        // PSS, not PKCS#1 v1.5: the signature checks with node:crypto as RSASSA-PSS with SHA-256 and a
        // 32-byte salt (RFC 7518 3.5), and with no other salt length or padding
        const jwk = (await jwks(idp)).find((k) => k.kid === kidOf(at))!;
        const key = crypto.createPublicKey({ key: jwk as crypto.JsonWebKey, format: 'jwk' });
        const [h, p, s] = at.split('.');
        const verify = (opts: { padding: number; saltLength?: number }) => crypto.verify('sha256', Buffer.from(`${h}.${p}`), { key, ...opts }, Buffer.from(s, 'base64url'));
        expect(verify({ padding: crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 })).to.equal(true);
        expect(verify({ padding: crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength: 222 })).to.equal(false);
        expect(verify({ padding: crypto.constants.RSA_PKCS1_PADDING })).to.equal(false);

        // kms-sign: one Sign per token, through KMS (nothing signs in the process)
        expect(kms.calls.Sign - signsBefore).to.equal(mode === 'kms-sign' ? 2 : 0);
      });

      it('validates client metadata against the keys of the mode: PS256 ID tokens are accepted, an algorithm without a key is not', async () => {
        const client = (alg: string) => ({
          client_id: `c-${alg}`, client_secret: SECRET, redirect_uris: [REDIRECT], grant_types: ['authorization_code'],
          response_types: ['code'], token_endpoint_auth_method: 'client_secret_basic', id_token_signed_response_alg: alg,
        });
        await validateClient(idp.config, idp.storage, client('PS256'), idp.keyring);
        for (const alg of ['PS384', ...(mode === 'kms-sign' ? ['EdDSA'] : [])]) {
          const err = await validateClient(idp.config, idp.storage, client(alg), idp.keyring).then(() => undefined, (e: Error) => e);
          expect(err?.message, alg).to.match(/id_token_signed_response_alg/);
        }
        // resource servers: --alg PS256 in every mode
        expect(await idp.cli('resources', 'add', '--id', 'https://ps.example.test', '--scope', 'x', '--alg', 'PS256')).to.include({ jwtAlg: 'PS256' });
        const bad = await idp.cli('resources', 'add', '--id', 'https://ps.example.test', '--scope', 'x', '--alg', 'PS384').then(() => undefined, (e: Error) => e);
        expect(bad?.message).to.match(/--alg must be RS256, PS256, ES256 or EdDSA/);
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
          expect(algs).to.deep.equal(['ES256', 'PS256', 'RS256']);
          expect(discovery.id_token_signing_alg_values_supported).to.have.members(['RS256', 'PS256', 'ES256']);
        } else {
          expect(algs).to.deep.equal(['ES256', 'EdDSA', 'PS256', 'RS256']);
          expect(discovery.id_token_signing_alg_values_supported).to.have.members(['RS256', 'PS256', 'ES256', 'EdDSA']);
        }
        // one RSA key per RSA algorithm: the PS256 key has a kid of its own
        const rsa = keys.filter((k) => k.kty === 'RSA');
        expect(rsa.map((k) => k.alg).sort()).to.deep.equal(['PS256', 'RS256']);
        expect(new Set(rsa.map((k) => k.kid)).size).to.equal(2);
        for (const k of rsa) expect(Buffer.from(k.n!, 'base64url').length * 8).to.equal(2048);
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
          // every algorithm has an external key, PS256 included, each on a KMS key of its own
          expect(keys.map((k) => k.alg).sort()).to.deep.equal(['ES256', 'PS256', 'RS256']);
          const kmsKey = (alg: string) => idp.keyring.keys().find((x) => x.kind === 'signing' && x.alg === alg && x.state === 'active')!.kmsKeyId!;
          expect(kms.getKey(kmsKey('PS256'))).to.include({ keySpec: 'RSA_2048', keyUsage: 'SIGN_VERIFY' });
          expect(kms.getKey(kmsKey('PS256'))!.signingAlgorithms).to.include('RSASSA_PSS_SHA_256');
          expect(kmsKey('PS256')).to.not.equal(kmsKey('RS256'));
          const before = kms.calls.Sign;
          for (let i = 0; i < 3; i++) await jwtAccessToken(svc);
          for (let i = 0; i < 2; i++) await jwtAccessToken(svc, API_PS);
          expect(kms.calls.Sign - before).to.equal(5);
        });

        it('refuses to adopt the RS256 KMS key for PS256: every algorithm needs a key of its own', async () => {
          const rsKms = idp.keyring.keys().find((x) => x.kind === 'signing' && x.alg === 'RS256' && x.state === 'active')!.kmsKeyId!;
          const err = await idp.cli('keys', 'rotate', '--alg', 'PS256', '--kms-key-id', rsKms).then(() => undefined, (e: Error) => e);
          expect(err?.message).to.match(/is already in the keys table: every algorithm needs a key of its own/);
          // nothing was written: no next PS256 key
          const list = await idp.cli('keys', 'list') as Array<{ alg?: string; state: string }>;
          expect(list.filter((k) => k.alg === 'PS256').map((k) => k.state)).to.deep.equal(['active']);
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
        // the accounts' data keys (in a table of their own), opened through the keyring
        const keyItems0 = JSON.parse(tables.datakeys) as Array<{ sub?: string; dk?: string }>;
        const withKeys = keyItems0.filter((a) => typeof a.dk === 'string' && a.sub);
        // and no account record carries one any more
        expect((JSON.parse(tables.accounts) as Array<{ dk?: unknown }>).filter((a) => a.dk !== undefined), 'records with a data key').to.deep.equal([]);
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
        const oldPsAt = await jwtAccessToken(svc, API_PS);
        const oldRs = kidOf(oldId);
        const oldEs = kidOf(oldAt);
        const oldPs = kidOf(oldPsAt);
        const oldCookie = idp.keyring.cookieKeys()[0];

        const created = await idp.cli('keys', 'rotate', '--activate-in', '2') as Array<{ kid: string; alg?: string; kind: string; action: string }>;
        expect(created.map((a) => a.alg ?? a.kind).sort()).to.deep.equal(mode === 'kms-sign' ? ['ES256', 'PS256', 'RS256', 'cookie'] : ['ES256', 'EdDSA', 'PS256', 'RS256', 'cookie']);
        expect(created.every((a) => a.action === 'create')).to.equal(true);
        const newRs = created.find((a) => a.alg === 'RS256')!.kid;
        const newEs = created.find((a) => a.alg === 'ES256')!.kid;
        const newPs = created.find((a) => a.alg === 'PS256')!.kid;
        // published before it signs anything
        await eventually(async () => {
          const kids = (await jwks(idp)).map((k) => k.kid);
          return kids.includes(newRs) && kids.includes(newPs);
        }, 5000, 'the next RS256 and PS256 keys in /jwks');
        expect(kidOf(await jwtAccessToken(svc))).to.equal(oldEs);
        expect(kidOf(await jwtAccessToken(svc, API_PS))).to.equal(oldPs);

        // promoted by the schedule without a restart
        const at = await eventually(async () => {
          const t = await jwtAccessToken(svc);
          return kidOf(t) === newEs ? t : undefined;
        }, 8000, 'a token signed by the new ES256 key', 250);
        await verifyAgainstJwks(idp, at, { audience: API });
        const fresh = await login(idp, rp);
        expect(kidOf(fresh.tokens.id_token!)).to.equal(newRs);
        const psAt = await eventually(async () => {
          const t = await jwtAccessToken(svc, API_PS);
          return kidOf(t) === newPs ? t : undefined;
        }, 5000, 'a token signed by the new PS256 key', 250);
        expect((await verifyAgainstJwks(idp, psAt, { audience: API_PS })).protectedHeader.alg).to.equal('PS256');
        expect(kidOf((await login(idp, rpPs)).tokens.id_token!)).to.equal(newPs);
        // the retired keys stay published: tokens they signed still verify
        await verifyAgainstJwks(idp, oldId, { audience: 'webapp' });
        await verifyAgainstJwks(idp, oldAt, { audience: API });
        await verifyAgainstJwks(idp, oldPsAt, { audience: API_PS });
        expect((await jwks(idp)).map((k) => k.kid)).to.include.members([oldRs, oldEs, oldPs, newRs, newEs, newPs]);
        const list = await idp.cli('keys', 'list') as Array<{ kid: string; state: string; removesAt?: string }>;
        for (const old of [oldRs, oldPs]) {
          expect(list.find((k) => k.kid === old)?.state).to.equal('retired');
          expect(list.find((k) => k.kid === old)?.removesAt).to.be.a('string');
        }

        // cookies: a new key signs, the old one still verifies the browser's session
        expect(idp.keyring.cookieKeys()[0]).to.not.equal(oldCookie);
        expect(idp.keyring.cookieKeys()).to.include(oldCookie);
        expect(await sessionStillValid(idp, rp, ua)).to.equal(true);
      });
    });
  }
});
