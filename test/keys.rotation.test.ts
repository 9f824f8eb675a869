// Rotation on running servers, in kms-sign mode (the private keys stay in the
// KMS test server): two IdP instances share one DynamoDB (dynalite, migrated
// by `idp migrate`), short intervals and TTLs come from the configuration.
// `idp keys rotate` creates `next` keys: both servers publish them in /jwks
// before they sign anything; the schedule promotes them (once, under the
// lock) and both servers sign with them without a restart; tokens signed
// before stay verifiable until they expire, and only then do the retired keys
// leave /jwks. Plus the schedule itself as a pure function.
import { expect } from 'chai';
import type * as oidc from 'openid-client';
import type { JWK } from 'jose';
import { startTestIdp, tempDir, type TestIdp } from './support/idp.ts';
import { startKmsServer, type KmsTestServer } from './support/kms-server.ts';
import { startDynalite, type TestBackend } from './support/dynamo.ts';
import { run as runCli } from '../src/cli/main.ts';
import { Registry } from '../src/provider/registry.ts';
import { plan, type Snapshot } from '../src/keys/schedule.ts';
import type { StoredCookieKey, StoredSigningKey } from '../src/keys/store.ts';
import {
  API, registerFixtures, relyingParty, serviceClient, login, jwtAccessToken, kidOf, expOf, jwks, verifyWith,
  eventually, logEvents, sessionStillValid, tokenRequest, activeKid,
} from './support/keys-flow.ts';

const TTL = 8;
const PREPUBLISH = 4;

describe('key rotation across two running servers (kms-sign)', function () {
  this.timeout(90_000);
  let kms: KmsTestServer;
  let db: TestBackend;
  let a: TestIdp;
  let b: TestIdp;
  let rpA: oidc.Configuration;
  let svcA: oidc.Configuration;
  let svcB: oidc.Configuration;

  before(async () => {
    kms = await startKmsServer();
    db = await startDynalite();
    const env = {
      KEYS_MODE: 'kms-sign', KMS_ENDPOINT: kms.endpoint, KMS_KEY_ID: (await kms.createKey('SYMMETRIC_DEFAULT')).keyId,
      DYNAMODB_ENDPOINT: db.endpoint, TABLE_PREFIX: 'rot_',
      KEYS_REFRESH_SECONDS: '1', KEY_PREPUBLISH_SECONDS: String(PREPUBLISH), KEY_MAX_AGE_SECONDS: '0', KEY_REMOVE_GRACE_SECONDS: '0',
      ACCESS_TOKEN_TTL: String(TTL), ID_TOKEN_TTL: String(TTL),
    };
    await runCli(['migrate'], { ...env, DATA_DIR: tempDir() });
    a = await startTestIdp(env);
    b = await startTestIdp(env);
    await registerFixtures(a);
    rpA = await relyingParty(a);
    svcA = await serviceClient(a);
    svcB = await serviceClient(b);
  });

  after(async () => {
    await a?.close();
    await b?.close();
    await db?.close();
    await kms?.close();
  });

  it('both servers start on the same keys', async () => {
    const ka = (await jwks(a)).map((k) => k.kid).sort();
    expect((await jwks(a)).map((k) => k.alg).sort()).to.deep.equal(['ES256', 'PS256', 'RS256']);
    expect((await jwks(b)).map((k) => k.kid).sort()).to.deep.equal(ka);
  });

  it('publishes next keys before they sign, promotes them once, and removes the old keys only after their tokens expired', async () => {
    // every token signed, with the time it was signed
    const signed: Array<{ token: string; at: number }> = [];
    const sign = async (svc: oidc.Configuration) => {
      const t = await jwtAccessToken(svc);
      signed.push({ token: t, at: Date.now() });
      return t;
    };
    const { tokens, ua } = await login(a, rpA);
    signed.push({ token: tokens.id_token!, at: Date.now() });
    const oldId = tokens.id_token!;
    const oldAt = await sign(svcB);
    const oldRs = kidOf(oldId);
    const oldEs = kidOf(oldAt);
    const oldPs = activeKid(a, 'PS256');

    const created = await a.cli('keys', 'rotate') as Array<{ kind: string; kid: string; alg?: string; at: string }>;
    const newRs = created.find((x) => x.alg === 'RS256')!.kid;
    const newEs = created.find((x) => x.alg === 'ES256')!.kid;
    const newPs = created.find((x) => x.alg === 'PS256')!.kid;
    const activatesAt = Date.parse(created.find((x) => x.alg === 'ES256')!.at);
    expect(activatesAt - Date.now()).to.be.within((PREPUBLISH - 1) * 1000, PREPUBLISH * 1000);

    // both servers publish the next keys (within KEYS_REFRESH_SECONDS), and neither signs with them yet
    const seenIn: Record<string, number> = {};
    for (const [name, idp] of [['a', a], ['b', b]] as const) {
      await eventually(async () => {
        const kids = (await jwks(idp)).map((k) => k.kid);
        return kids.includes(newRs) && kids.includes(newEs) && kids.includes(newPs);
      }, 3000, `server ${name} to publish the next keys`, 100);
      seenIn[name] = Date.now();
    }
    expect(Date.now()).to.be.lessThan(activatesAt);
    expect(kidOf(await sign(svcA))).to.equal(oldEs);
    expect(kidOf(await sign(svcB))).to.equal(oldEs);
    const listed = await a.cli('keys', 'list') as Array<{ kid: string; state: string; activatesAt?: string; retiresAt?: string }>;
    expect(listed.find((k) => k.kid === newEs)).to.include({ state: 'next' });
    expect(listed.find((k) => k.kid === oldEs)?.retiresAt).to.equal(listed.find((k) => k.kid === newEs)?.activatesAt);

    // promotion: both servers switch without a restart
    for (const [name, svc] of [['a', svcA], ['b', svcB]] as const) {
      await eventually(async () => kidOf(await sign(svc)) === newEs, 8000, `server ${name} to sign with the new ES256 key`, 200);
    }
    const promotedAt = Date.now();
    const fresh = await login(a, rpA);
    signed.push({ token: fresh.tokens.id_token!, at: Date.now() });
    expect(kidOf(fresh.tokens.id_token!)).to.equal(newRs);
    // no token carried a new kid before that key was in both servers' /jwks
    for (const s of signed) {
      if ([newRs, newEs].includes(kidOf(s.token))) expect(s.at).to.be.greaterThan(Math.max(seenIn.a, seenIn.b));
    }
    // one promotion, by one of the two servers (the lock)
    const promotions = [...logEvents(a, 'keys.promote'), ...logEvents(b, 'keys.promote')];
    expect(promotions.filter((p) => p.kid === newEs)).to.have.length(1);
    expect(promotions.filter((p) => p.kid === newRs)).to.have.length(1);
    expect(promotions.filter((p) => p.kid === newPs)).to.have.length(1);

    // the browser's session survives the cookie key rotation, on either server
    await eventually(async () => a.keyring.cookieKeys()[0] === b.keyring.cookieKeys()[0] && a.keyring.cookieKeys().length === 2, 3000, 'both servers on the new cookie key');
    expect(await sessionStillValid(a, rpA, ua)).to.equal(true);

    // tokens signed before the rotation still verify, against either server's /jwks
    for (const idp of [a, b]) {
      const keys = await jwks(idp);
      expect(keys.map((k) => k.kid)).to.include.members([oldRs, oldEs, newRs, newEs]);
      await verifyWith(keys, oldId, { audience: 'webapp', issuer: a.issuer });
      await verifyWith(keys, oldAt, { audience: API });
    }

    // the old keys leave /jwks once every token they signed has expired (TTL + refresh + grace)
    const lastOldExp = Math.max(...signed.filter((s) => [oldRs, oldEs].includes(kidOf(s.token))).map((s) => expOf(s.token)));
    const gone: Record<string, number> = {};
    for (const [name, idp] of [['a', a], ['b', b]] as const) {
      await eventually(async () => {
        const kids = (await jwks(idp)).map((k: JWK) => k.kid);
        if (kids.includes(oldRs) || kids.includes(oldEs) || kids.includes(oldPs)) {
          // while published, a token of the old key still verifies
          return false;
        }
        return true;
      }, (TTL + 8) * 1000, `server ${name} to drop the retired keys`, 250);
      gone[name] = Date.now() / 1000;
    }
    expect(Math.min(gone.a, gone.b), 'removed only after the last old token expired').to.be.at.least(lastOldExp);
    expect(Date.now() - promotedAt).to.be.at.least(TTL * 1000 - 1000);
    const after = await a.cli('keys', 'list') as Array<{ kid: string; state: string }>;
    expect(after.map((k) => k.kid)).to.not.include.members([oldRs, oldEs, oldPs]);
    expect(after.filter((k) => k.state === 'active').map((k) => k.kid)).to.include.members([newRs, newEs, newPs]);
    // the new keys still sign on both
    expect(kidOf(await jwtAccessToken(svcA))).to.equal(newEs);
    expect(kidOf(await jwtAccessToken(svcB))).to.equal(newEs);
  });

  it('refuses EdDSA in kms-sign: KMS has no Ed25519 keys', async () => {
    const err = await a.cli('keys', 'rotate', '--alg', 'EdDSA').then(() => null, (e: Error) => e);
    expect(err?.message).to.match(/EdDSA is not available in KEYS_MODE=kms-sign/);
    const rs = await a.cli('resources', 'add', '--id', 'https://ed.example.test', '--scope', 'x', '--format', 'jwt', '--alg', 'EdDSA').then(() => null, (e: Error) => e);
    expect(rs?.message).to.match(/EdDSA is not available with KEYS_MODE=kms-sign/);
    // one stored some other way (seed file, older release) is refused at the token endpoint, not a 500
    await new Registry(a.storage).putResource({ id: 'https://ed.example.test', scope: 'x', accessTokenFormat: 'jwt', jwtAlg: 'EdDSA' });
    const r = await tokenRequest(a, 'https://ed.example.test');
    expect(r.status).to.equal(400);
    expect(r.body.error).to.equal('invalid_target');
  });
});

describe('rotation schedule (pure)', () => {
  const policy = { prepublishSeconds: 100, maxAgeSeconds: 1000 };
  const T0 = Date.parse('2026-01-01T00:00:00Z');
  const iso = (s: number) => new Date(T0 + s * 1000).toISOString();
  const key = (kid: string, alg: 'RS256' | 'ES256', over: Partial<StoredSigningKey>): StoredSigningKey => ({ kid, alg, state: 'active', createdAt: iso(0), activatedAt: iso(0), publicJwk: {}, ...over });
  const cookie: StoredCookieKey = { id: 'c1', createdAt: iso(0), activatedAt: iso(0), wrapped: 'x', state: 'active' };
  const snap = (signing: StoredSigningKey[]): Snapshot => ({ signing, cookies: [cookie], blindIndex: 'x' });

  it('creates every missing key on an empty table', () => {
    const steps = plan({ signing: [], cookies: [], blindIndex: undefined }, ['RS256', 'ES256'], T0, policy);
    expect(steps).to.deep.equal([
      { step: 'create', kind: 'signing', alg: 'RS256', state: 'active' },
      { step: 'create', kind: 'signing', alg: 'ES256', state: 'active' },
      { step: 'create', kind: 'cookie', state: 'active' },
      { step: 'create', kind: 'secret', name: 'blind-index' },
    ]);
  });

  it('creates a next key KEY_PREPUBLISH_SECONDS before KEY_MAX_AGE_SECONDS, and none when max age is 0', () => {
    const s = snap([key('a', 'RS256', {})]);
    expect(plan(s, ['RS256'], T0 + 899_000, policy)).to.deep.equal([]);
    // the cookie key, as old, gets its next key at the same time
    expect(plan(s, ['RS256'], T0 + 900_000, policy)).to.deep.equal([
      { step: 'create', kind: 'signing', alg: 'RS256', state: 'next' },
      { step: 'create', kind: 'cookie', state: 'next' },
    ]);
    expect(plan(s, ['RS256'], T0 + 10_000_000, { ...policy, maxAgeSeconds: 0 })).to.deep.equal([]);
  });

  it('promotes a next key when due and retires the active one; removes retired keys when due', () => {
    const s = snap([
      key('a', 'RS256', {}),
      key('n', 'RS256', { state: 'next', activatesAt: iso(500), activatedAt: undefined }),
      key('r', 'RS256', { state: 'retired', retiredAt: iso(0), removesAt: iso(600) }),
    ]);
    expect(plan(s, ['RS256'], T0 + 499_000, policy)).to.deep.equal([]);
    expect(plan(s, ['RS256'], T0 + 500_000, policy)).to.deep.equal([{ step: 'promote', kind: 'signing', alg: 'RS256', id: 'n', retire: ['a'] }]);
    expect(plan(s, ['RS256'], T0 + 600_000, policy)).to.deep.include({ step: 'remove', kind: 'signing', alg: 'RS256', id: 'r' });
  });
});
