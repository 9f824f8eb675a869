// Conformance suite for the oidc-provider DynamoDB adapter (adapters/dynamodb.ts):
// every adapter method, for every one of oidc-provider's 15 persisted models.
//
// Runs on dynalite by default; DYNAMODB_COMPAT=local runs the same tests on
// DynamoDB Local, the official AWS emulator (`npm run test:compat`).
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import Provider, { errors, type Adapter, type AdapterPayload } from 'oidc-provider';
import { DescribeTimeToLiveCommand, UpdateTimeToLiveCommand } from '@aws-sdk/client-dynamodb';
import { DeleteCommand, GetCommand } from '@aws-sdk/lib-dynamodb';
import { createDynamoAdapter, PayloadTooLarge, MAX_ITEM_BYTES } from '../adapters/dynamodb.ts';
import { documentClient } from '../src/storage/index.ts';
import { migrate, currentVersion, LATEST_VERSION } from '../migrations/index.ts';
import {
  backendKind, startBackend, openTestStorage, recordCommands,
  type TestBackend, type TestStorage,
} from './support/dynamo.ts';

type AdapterClass = new (name: string) => Adapter;

const MODELS = [
  'Session', 'AccessToken', 'AuthorizationCode', 'RefreshToken', 'DeviceCode', 'ClientCredentials',
  'Client', 'InitialAccessToken', 'RegistrationAccessToken', 'Interaction', 'ReplayDetection',
  'PushedAuthorizationRequest', 'Grant', 'BackchannelAuthenticationRequest', 'PreAuthorizedCode',
] as const;
type ModelName = typeof MODELS[number];

/** the models oidc-provider revokes by grant id (lib/helpers/revoke.js) */
const GRANT_BOUND = new Set<ModelName>([
  'AccessToken', 'AuthorizationCode', 'RefreshToken', 'DeviceCode', 'BackchannelAuthenticationRequest', 'PreAuthorizedCode',
]);
/** the models oidc-provider calls consume() on */
const CONSUMABLE = new Set<ModelName>([
  'AuthorizationCode', 'RefreshToken', 'DeviceCode', 'BackchannelAuthenticationRequest', 'PreAuthorizedCode',
  'PushedAuthorizationRequest',
]);

const KIND = backendKind();
const epoch = () => Math.floor(Date.now() / 1000);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
let seq = 0;
const newId = (label = 'id') => `${label}-${(seq++).toString(36)}-${randomBytes(12).toString('base64url')}`;
const utf8 = (v: unknown) => Buffer.byteLength(JSON.stringify(v), 'utf8');
/** what the adapter must give back: the JSON value of what it was given */
const jsonCopy = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;

function realistic(model: ModelName, id: string, o: { grantId?: string; uid?: string; userCode?: string } = {}): AdapterPayload {
  const iat = epoch();
  const exp = iat + 3600;
  const grantId = o.grantId ?? newId('grant');
  const clientId = 'web-app';
  const base = { iat, exp, jti: id, kind: model };
  const tokenish = {
    ...base, accountId: 'acc-1f2e3d', clientId, grantId, scope: 'openid profile email offline_access',
    sessionUid: 'U-sessionuid', expiresWithSession: true, sid: 'sid-abc', gty: 'authorization_code',
    aud: 'https://api.example.org', extra: {}, claims: { id_token: { email: null, acr: { essential: true, values: ['urn:mace:incommon:iap:silver'] } } },
  };
  let p: Record<string, unknown>;
  switch (model) {
    case 'Session':
      p = {
        ...base, uid: o.uid ?? newId('uid'), accountId: 'acc-1f2e3d', loginTs: iat - 10, amr: ['pwd', 'otp'], acr: 'urn:acr:mfa',
        transient: false,
        authorizations: { [clientId]: { sid: 'sid-abc', grantId, persistsLogout: true }, other: { sid: 'sid-def', grantId: 'g2' } },
      };
      break;
    case 'AccessToken':
      p = { ...tokenish, jkt: 'dpop-thumbprint', format: 'opaque' };
      break;
    case 'AuthorizationCode':
      p = {
        ...tokenish, redirectUri: 'https://app.example.org/cb?x=1', codeChallenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
        codeChallengeMethod: 'S256', nonce: 'n-0S6_WzA2Mj', acr: 'urn:acr:mfa', amr: ['pwd'], authTime: iat - 5,
        resource: 'https://api.example.org', dpopJkt: 'jkt',
      };
      break;
    case 'RefreshToken':
      p = { ...tokenish, iiat: iat - 100, rotations: 2, acr: 'urn:acr:mfa', amr: ['pwd'], authTime: iat - 5, nonce: 'n', resource: ['https://a', 'https://b'] };
      break;
    case 'DeviceCode':
      p = {
        ...base, clientId, grantId, userCode: o.userCode ?? newId('UC').toUpperCase(), accountId: 'acc-1f2e3d',
        params: { client_id: clientId, scope: 'openid', claims: '{"id_token":{"email":null}}' },
        deviceInfo: { ip: '203.0.113.7', ua: 'curl/8.0 (x86_64)' }, inFlight: false, scope: 'openid', authTime: iat - 1,
      };
      break;
    case 'ClientCredentials':
      p = { ...base, clientId: 'svc-batch', scope: 'api:read api:write', aud: ['https://api.example.org'], extra: { tenant: 't1' }, jkt: 'x' };
      break;
    case 'Client':
      p = {
        client_id: id, client_secret: randomBytes(32).toString('base64url'), client_name: 'Web App (prod) — ünïcode',
        redirect_uris: ['https://app.example.org/cb', 'https://app.example.org/cb2'], post_logout_redirect_uris: [],
        grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'], token_endpoint_auth_method: 'client_secret_basic',
        jwks: { keys: [{ kty: 'EC', crv: 'P-256', x: 'f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU', y: 'x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0', use: 'sig', kid: 'k1' }] },
        'urn:custom:extension': { nested: [1, 2, 3] }, default_max_age: 0, require_auth_time: false,
      };
      break;
    case 'InitialAccessToken':
      p = { ...base, policies: ['registration-policy', 'another'] };
      break;
    case 'RegistrationAccessToken':
      p = { ...base, clientId: 'dyn-client', policies: ['registration-policy'] };
      break;
    case 'Interaction':
      p = {
        ...base, returnTo: `https://idp.example.org/auth/${id}`, prompt: { name: 'consent', reasons: ['op_scopes_missing'], details: { missingOIDCScope: ['openid', 'email'] } },
        params: { client_id: clientId, redirect_uri: 'https://app.example.org/cb', response_type: 'code', scope: 'openid email', state: 'xyz', nonce: 'n', code_challenge: 'c', code_challenge_method: 'S256' },
        session: { accountId: 'acc-1f2e3d', uid: 'U-sessionuid', cookie: 'sess-cookie', acr: 'urn:acr:mfa', amr: ['pwd'] },
        grantId, lastSubmission: { login: { accountId: 'acc-1f2e3d', remember: true } }, trusted: [], cid: 'cid-1',
        result: { consent: { grantId } },
      };
      break;
    case 'ReplayDetection':
      p = { ...base };
      break;
    case 'PushedAuthorizationRequest':
      p = { ...base, clientId, request: `eyJhbGciOiJub25lIn0.${Buffer.from(JSON.stringify({ scope: 'openid', state: 's' })).toString('base64url')}.`, dpopJkt: 'jkt', trusted: true };
      break;
    case 'Grant':
      p = {
        ...base, accountId: 'acc-1f2e3d', clientId,
        openid: { scope: 'openid email profile', claims: ['sub', 'email', 'email_verified'] },
        resources: { 'https://api.example.org': 'api:read api:write' },
        rejected: { openid: { scope: 'address' } }, rar: [{ type: 'payment_initiation', instructedAmount: { currency: 'EUR', amount: '123.50' } }],
      };
      break;
    case 'BackchannelAuthenticationRequest':
      p = {
        ...tokenish, acr: 'urn:acr:mfa', params: { login_hint: 'alice@example.org', binding_message: 'W4SCT', scope: 'openid' },
        resource: 'https://api.example.org',
      };
      break;
    case 'PreAuthorizedCode':
      p = { ...tokenish, txCode: { input_mode: 'numeric', length: 6 }, authorization_details: [{ type: 'openid_credential', credential_configuration_id: 'UniversityDegree' }] };
      break;
  }
  if (o.uid !== undefined) p.uid = o.uid;
  if (o.userCode !== undefined) p.userCode = o.userCode;
  if (o.grantId !== undefined) p.grantId = o.grantId;
  return p as AdapterPayload;
}

function nested(depth: number): unknown {
  let v: unknown = { leaf: 'bottom', n: depth };
  for (let i = 0; i < depth; i++) v = i % 2 ? { [`level${i}`]: v, sibling: [i] } : [v, i, null];
  return v;
}

const AWKWARD: Record<string, Record<string, unknown>> = {
  unicode: {
    latin: 'héllo wörld — ¿qué? «ça» ß',
    cjk: '日本語のテキスト 中文 한국어',
    rtl: 'العربية עברית',
    emoji: '🦄 👩‍👩‍👧‍👦 🏳️‍🌈 👍🏽',
    combining: 'e\u0301 a\u0308 \u0338',
    invisibles: '\u200b\u200c\u200d\ufeff\u2028\u2029',
    astral: '𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𐍈',
    loneSurrogates: '\ud800 x \udfff',
    controls: 'nul\u0000 tab\t nl\n cr\r bs\b ff\f us\u001f del\u007f',
    escapes: '"quoted" \'single\' back\\slash /slash `tick` ${tpl} %s %n',
    keyUnicode: { 'ключ': 'значение', '🔑': '🔒', 'ä.b#c': 1 },
  },
  nested: { a: { b: { c: { d: { e: [1, { f: [[], {}, [[]], [{}]] }] } } } }, deep: nested(64) },
  arrays: {
    empty: [], mixed: [1, 'two', null, true, false, { three: 3 }, [4, [5, [6]]]], strings: ['', ' ', '  ', 'x'],
    long: Array.from({ length: 5000 }, (_, i) => i), objects: Array.from({ length: 200 }, (_, i) => ({ i, s: `s${i}`, e: '' })),
  },
  emptyStrings: { e: '', nested: { e: '', deeper: { e: '' } }, arr: ['', ''], '': 'empty key', ' ': 'space key', scope: '' },
  nulls: { n: null, nested: { n: null, arr: [null] }, arr: [null, null], accountId: null, scope: null },
  numbers: {
    zero: 0, one: 1, neg: -1, frac: 1.5, negFrac: -0.1, third: 1 / 3, pi: Math.PI, tiny: 5e-324, huge: 1.7976931348623157e308,
    maxSafe: Number.MAX_SAFE_INTEGER, minSafe: Number.MIN_SAFE_INTEGER, beyondSafe: 2 ** 60, e21: 1e21, eMinus7: 1e-7,
    epochMs: 1_700_000_000_123, arr: [0, -0.5, 1e300, -1e-300],
  },
  booleans: { t: true, f: false, arr: [true, false], nested: { t: true } },
  awkwardKeys: {
    'a.b': 1, 'a#b': 2, $x: 3, 'with space': 4, ':colon': 5, '#hash': 6, 'a[0]': 7,
    constructor: 'c', toString: 't', hasOwnProperty: 'h', valueOf: 'v',
    pk: 'not-the-key', sk: 'not-the-sort-key', payload: 'not-the-payload', expiresAt: 'not-a-number', ref: 'r',
  },
  protoKey: JSON.parse('{"__proto__":{"polluted":true},"prototype":{"x":1},"ok":1}') as Record<string, unknown>,
  manyKeys: Object.fromEntries(Array.from({ length: 3000 }, (_, i) => [`k${i}`, i % 3 ? `v${i}` : i])),
};

/** a JSON-shaped payload of at least `bytes` UTF-8 bytes, mixing ASCII, multi-byte text, numbers and nesting */
function bigPayload(bytes: number, seed = 'x'): Record<string, unknown> {
  const chunks: unknown[] = [];
  const out: Record<string, unknown> = { seed, chunks, tail: '' };
  let i = 0;
  while (utf8(out) < bytes - 2000) {
    chunks.push({
      i, ascii: `${seed}-${i}-${'abcdefghij'.repeat(20)}`, utf: 'ünï©ødé 日本 🦄'.repeat(10),
      n: [i, i / 7, -i, 1e10 + i], flag: i % 2 === 0, none: null, empty: '', obj: { k: `v${i}`, arr: [[i]] },
    });
    i++;
  }
  out.tail = 'z'.repeat(Math.max(0, bytes - utf8(out)));
  return out;
}

async function expectInvalidGrant(p: Promise<unknown>): Promise<void> {
  let err: unknown;
  try {
    await p;
  } catch (e) {
    err = e;
  }
  expect(err, 'expected a rejection').to.be.instanceOf(Error);
  expect(err).to.be.instanceOf(errors.InvalidGrant);
  expect((err as { error?: string }).error).to.equal('invalid_grant');
}

describe(`DynamoDB adapter conformance (${KIND})`, function () {
  this.timeout(60_000);
  let backend: TestBackend;
  let storage: TestStorage;
  let Adapter: AdapterClass;
  const adapters = new Map<string, Adapter>();
  const adapter = (model: ModelName): Adapter => {
    let a = adapters.get(model);
    if (!a) adapters.set(model, a = new Adapter(model));
    return a;
  };
  /** a fresh adapter class on its own document client whose commands are recorded */
  const recorded = () => {
    const doc = documentClient(storage.raw);
    const log = recordCommands(doc);
    return { Recorded: createDynamoAdapter({ doc, table: storage.tables.oidc }), log };
  };

  before(async function () {
    this.timeout(180_000);
    backend = await startBackend(KIND);
    storage = await openTestStorage(backend);
    Adapter = createDynamoAdapter({ doc: storage.doc, table: storage.tables.oidc });
    console.log(`      ${KIND} at ${backend.endpoint}: started in ${backend.startupMs} ms, tables "${storage.prefix}*"`);
  });

  after(async () => {
    await storage?.close();
    await backend?.close();
  });

  it('covers exactly the models oidc-provider persists, and oidc-provider names its adapters so', async () => {
    const warn = console.warn;
    console.warn = () => {};
    let provider: Provider;
    try {
      provider = new Provider('http://localhost:3000', { adapter: Adapter, features: { devInteractions: { enabled: false } } });
    } finally {
      console.warn = warn;
    }
    const persisted = Object.getOwnPropertyNames(Object.getPrototypeOf(provider))
      .filter((n) => /^[A-Z]/.test(n) && n !== 'BaseToken')
      .filter((n) => {
        const model: unknown = Reflect.get(provider, n);
        return typeof model === 'function' && Reflect.get(model, 'adapter') !== undefined;
      });
    expect(persisted.sort()).to.deep.equal([...MODELS].sort());
    for (const m of MODELS) {
      const a = (provider as unknown as Record<string, { adapter: { name: string } }>)[m].adapter;
      expect(a).to.be.instanceOf(Adapter);
      expect(a.name).to.equal(m);
    }
  });

  for (const model of MODELS) {
    describe(model, () => {
      it('find of an unknown id is undefined', async () => {
        expect(await adapter(model).find(newId('missing'))).to.equal(undefined);
      });

      it('upsert/find round-trips a realistic payload', async () => {
        const id = newId();
        const payload = realistic(model, id);
        const expected = jsonCopy(payload);
        await adapter(model).upsert(id, payload, 3600);
        expect(payload, 'upsert must not change its argument').to.deep.equal(expected);
        expect(await adapter(model).find(id)).to.deep.equal(expected);
      });

      it('upsert without expiresIn keeps the item', async () => {
        const id = newId();
        const payload = realistic(model, id);
        await adapter(model).upsert(id, payload);
        expect(await adapter(model).find(id)).to.deep.equal(jsonCopy(payload));
      });

      it('upsert replaces the previous payload', async () => {
        const id = newId();
        await adapter(model).upsert(id, { ...realistic(model, id), first: true, gone: 'soon' } as AdapterPayload, 3600);
        const second = { ...realistic(model, id), second: [1, 2] } as AdapterPayload;
        await adapter(model).upsert(id, second, 3600);
        expect(await adapter(model).find(id)).to.deep.equal(jsonCopy(second));
      });

      it('round-trips awkward payloads exactly', async () => {
        for (const [name, awkward] of Object.entries(AWKWARD)) {
          const id = newId(name);
          const payload = { ...realistic(model, id), ...awkward } as AdapterPayload;
          if (name === 'protoKey') expect(Object.hasOwn(payload, '__proto__')).to.equal(true);
          const expected = jsonCopy(payload);
          await adapter(model).upsert(id, payload, 3600);
          expect(await adapter(model).find(id), name).to.deep.equal(expected);
        }
      });

      it('round-trips awkward ids', async () => {
        for (const id of ['with space', 'ünï©ødé-🦄', 'a#b#c', 'uid#x', 'grant#y', '_', '-'.repeat(500), 'x'.repeat(900), '🦄'.repeat(200)]) {
          const payload = realistic(model, id);
          await adapter(model).upsert(id, payload, 3600);
          expect(await adapter(model).find(id), id).to.deep.equal(jsonCopy(payload));
          await adapter(model).destroy(id);
          expect(await adapter(model).find(id), id).to.equal(undefined);
        }
      });

      it('round-trips a ~300 KB payload exactly', async () => {
        const id = newId('big');
        const payload = { ...realistic(model, id), big: bigPayload(300_000, model) } as AdapterPayload;
        expect(utf8(payload)).to.be.within(300_000, 305_000);
        const expected = jsonCopy(payload);
        await adapter(model).upsert(id, payload, 3600);
        expect(await adapter(model).find(id)).to.deep.equal(expected);
      });

      it('destroy removes the item and its pointers; destroying a missing id resolves', async () => {
        const id = newId();
        const uid = newId('uid');
        const userCode = newId('UC');
        const payload = realistic(model, id, { uid, userCode });
        await adapter(model).upsert(id, payload, 3600);
        expect(await adapter(model).find(id)).to.deep.equal(jsonCopy(payload));
        await adapter(model).destroy(id);
        expect(await adapter(model).find(id)).to.equal(undefined);
        expect(await adapter(model).findByUid(uid)).to.equal(undefined);
        expect(await adapter(model).findByUserCode(userCode)).to.equal(undefined);
        await adapter(model).destroy(id);
        await adapter(model).destroy(newId('never'));
      });

      it('consume sets consumed (epoch seconds); a second consume throws InvalidGrant', async () => {
        const id = newId();
        const payload = realistic(model, id);
        await adapter(model).upsert(id, payload, 3600);
        const before = epoch();
        await adapter(model).consume(id);
        const found = await adapter(model).find(id);
        expect(found?.consumed).to.be.a('number').within(before, epoch());
        const { consumed, ...rest } = found!;
        expect(rest).to.deep.equal(jsonCopy(payload));
        expect(consumed).to.be.a('number');
        await expectInvalidGrant(adapter(model).consume(id));
      });

      it('consume of an unknown id throws InvalidGrant', async () => {
        await expectInvalidGrant(adapter(model).consume(newId('missing')));
      });

      it('a re-upsert of a consumed payload stays consumed', async () => {
        const id = newId();
        await adapter(model).upsert(id, realistic(model, id), 3600);
        await adapter(model).consume(id);
        const found = (await adapter(model).find(id))!;
        await adapter(model).upsert(id, found, 3600);
        expect((await adapter(model).find(id))!.consumed).to.equal(found.consumed);
        await expectInvalidGrant(adapter(model).consume(id));
      });

      it('findByUid finds through the uid pointer; a stale pointer after the uid changed is undefined', async () => {
        const id = newId();
        const uid1 = newId('uid');
        const uid2 = newId('uid');
        expect(await adapter(model).findByUid(uid1)).to.equal(undefined);
        const p1 = realistic(model, id, { uid: uid1 });
        await adapter(model).upsert(id, p1, 3600);
        expect(await adapter(model).findByUid(uid1)).to.deep.equal(jsonCopy(p1));
        const p2 = realistic(model, id, { uid: uid2 });
        await adapter(model).upsert(id, p2, 3600);
        expect(await adapter(model).findByUid(uid2)).to.deep.equal(jsonCopy(p2));
        expect(await adapter(model).findByUid(uid1)).to.equal(undefined);
        // the old uid given to another item points there now
        const other = newId();
        const p3 = realistic(model, other, { uid: uid1 });
        await adapter(model).upsert(other, p3, 3600);
        expect(await adapter(model).findByUid(uid1)).to.deep.equal(jsonCopy(p3));
        expect(await adapter(model).findByUid(uid2)).to.deep.equal(jsonCopy(p2));
      });

      it('findByUserCode finds through the user code pointer; a stale pointer after the code changed is undefined', async () => {
        const id = newId();
        const c1 = newId('UC1');
        const c2 = newId('UC2');
        expect(await adapter(model).findByUserCode(c1)).to.equal(undefined);
        const p1 = realistic(model, id, { userCode: c1 });
        await adapter(model).upsert(id, p1, 3600);
        expect(await adapter(model).findByUserCode(c1)).to.deep.equal(jsonCopy(p1));
        await adapter(model).consume(id);
        expect((await adapter(model).findByUserCode(c1))?.consumed).to.be.a('number');
        const p2 = realistic(model, id, { userCode: c2 });
        await adapter(model).upsert(id, p2, 3600);
        expect(await adapter(model).findByUserCode(c2)).to.deep.equal(jsonCopy(p2));
        expect(await adapter(model).findByUserCode(c1)).to.equal(undefined);
      });

      it(`revokeByGrantId ${GRANT_BOUND.has(model) ? 'removes only this model\'s items of that grant' : 'leaves this model (not grant-bound in oidc-provider) alone'}, without Scan`, async () => {
        const grantA = newId('grantA');
        const grantB = newId('grantB');
        const other: ModelName = model === 'AccessToken' ? 'RefreshToken' : 'AccessToken';
        const inA = Array.from({ length: 3 }, () => newId('a'));
        const inB = Array.from({ length: 2 }, () => newId('b'));
        const otherInA = newId('o');
        for (const id of inA) await adapter(model).upsert(id, realistic(model, id, { grantId: grantA }), 3600);
        for (const id of inB) await adapter(model).upsert(id, realistic(model, id, { grantId: grantB }), 3600);
        await adapter(other).upsert(otherInA, realistic(other, otherInA, { grantId: grantA }), 3600);

        const { Recorded, log } = recorded();
        await new Recorded(model).revokeByGrantId(grantA);
        expect(log.names).to.not.include('ScanCommand');
        expect(log.names).to.not.include('ExecuteStatementCommand');
        if (GRANT_BOUND.has(model)) expect(log.names).to.include('QueryCommand');

        for (const id of inA) {
          const found = await adapter(model).find(id);
          if (GRANT_BOUND.has(model)) expect(found, id).to.equal(undefined);
          else expect(found, id).to.not.equal(undefined);
        }
        for (const id of inB) expect(await adapter(model).find(id), id).to.not.equal(undefined);
        expect(await adapter(other).find(otherInA)).to.not.equal(undefined);
        // a grant without items
        await adapter(model).revokeByGrantId(newId('empty'));
      });

      if (CONSUMABLE.has(model)) {
        it('concurrent consume: exactly one wins, the others get InvalidGrant, the grant\'s tokens are revoked', async () => {
          const grantId = newId('grant');
          const otherGrant = newId('grant');
          const id = newId('code');
          await adapter('Grant').upsert(grantId, realistic('Grant', grantId), 3600);
          await adapter(model).upsert(id, realistic(model, id, { grantId }), 3600);
          const at = newId('at');
          const rt = newId('rt');
          await adapter('AccessToken').upsert(at, realistic('AccessToken', at, { grantId }), 3600);
          await adapter('RefreshToken').upsert(rt, realistic('RefreshToken', rt, { grantId }), 3600);
          const otherAt = newId('at');
          await adapter('AccessToken').upsert(otherAt, realistic('AccessToken', otherAt, { grantId: otherGrant }), 3600);

          const results = await Promise.allSettled(Array.from({ length: 16 }, () => new Adapter(model).consume(id)));
          const won = results.filter((r) => r.status === 'fulfilled');
          const lost = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
          expect(won, 'winners').to.have.length(1);
          expect(lost).to.have.length(15);
          for (const r of lost) {
            expect(r.reason).to.be.instanceOf(errors.InvalidGrant);
            expect((r.reason as { error: string }).error).to.equal('invalid_grant');
          }
          if (GRANT_BOUND.has(model)) {
            expect(await adapter('AccessToken').find(at), 'access token of the grant').to.equal(undefined);
            expect(await adapter('RefreshToken').find(rt), 'refresh token of the grant').to.equal(undefined);
            expect(await adapter('Grant').find(grantId), 'the grant').to.equal(undefined);
          }
          expect(await adapter('AccessToken').find(otherAt), 'another grant\'s token').to.not.equal(undefined);
        });
      }
    });
  }

  describe('tables (migrate)', () => {
    it('migrate is idempotent and survives a run that died before recording its version', async () => {
      expect(await currentVersion(storage)).to.equal(LATEST_VERSION);
      expect(await migrate(storage)).to.deep.equal({ from: LATEST_VERSION, to: LATEST_VERSION });
      await storage.doc.send(new DeleteCommand({ TableName: storage.tables.meta, Key: { pk: 'schema', sk: 'version' } }));
      expect(await migrate(storage)).to.deep.equal({ from: 0, to: LATEST_VERSION });
      expect(await currentVersion(storage)).to.equal(LATEST_VERSION);
    });

    it('TTL is on `expiresAt` of the oidc table where the backend has TTL', async () => {
      const ttl = (await storage.raw.send(new DescribeTimeToLiveCommand({ TableName: storage.tables.oidc }))).TimeToLiveDescription;
      if (KIND === 'dynalite') expect(ttl?.TimeToLiveStatus).to.equal('DISABLED'); // dynalite has no UpdateTimeToLive
      else expect(ttl).to.deep.include({ TimeToLiveStatus: 'ENABLED', AttributeName: 'expiresAt' });
    });

    it('migrate refuses a table whose TTL is on another attribute', async function () {
      if (KIND === 'dynalite') this.skip(); // no TTL to misconfigure
      const other = await openTestStorage(backend);
      try {
        await other.raw.send(new UpdateTimeToLiveCommand({ TableName: other.tables.oidc, TimeToLiveSpecification: { AttributeName: 'expiresAt', Enabled: false } }));
        await other.raw.send(new UpdateTimeToLiveCommand({ TableName: other.tables.oidc, TimeToLiveSpecification: { AttributeName: 'ttl', Enabled: true } }));
        await other.doc.send(new DeleteCommand({ TableName: other.tables.meta, Key: { pk: 'schema', sk: 'version' } }));
        let err: unknown;
        try {
          await migrate(other);
        } catch (e) {
          err = e;
        }
        expect(String((err as Error)?.message)).to.match(/TTL on "ttl", expected "expiresAt"/);
      } finally {
        await other.close();
      }
    });
  });

  describe('two processes (each adapter class keeps its own hints)', () => {
    // adapters/dynamodb.ts keeps per-process hints (uid → item, item → uid);
    // a second adapter class stands for another process whose writes the
    // first one's hints do not know about
    const two = () => {
      const A = createDynamoAdapter({ doc: storage.doc, table: storage.tables.oidc });
      const B = createDynamoAdapter({ doc: documentClient(storage.raw), table: storage.tables.oidc });
      return { a: new A('Session'), b: new B('Session') };
    };

    it('a session regenerated elsewhere (same uid, new id) is found by uid, not the old one', async () => {
      const { a, b } = two();
      const uid = newId('uid');
      const id1 = newId();
      const id2 = newId();
      const p1 = realistic('Session', id1, { uid });
      await a.upsert(id1, p1, 3600);
      expect(await b.findByUid(uid)).to.deep.equal(jsonCopy(p1));
      // "another process" rotates the session id, as oidc-provider does at login
      await a.destroy(id1);
      const p2 = realistic('Session', id2, { uid });
      await a.upsert(id2, p2, 3600);
      expect(await b.findByUid(uid), 'b\'s hint points at the destroyed item').to.deep.equal(jsonCopy(p2));
      expect(await b.findByUid(uid)).to.deep.equal(jsonCopy(p2));
    });

    it('an old item still carrying the uid is not returned once the pointer leads elsewhere', async () => {
      const { a, b } = two();
      const uid = newId('uid');
      const id1 = newId();
      const id2 = newId();
      await a.upsert(id1, realistic('Session', id1, { uid }), 3600);
      expect(await b.findByUid(uid)).to.not.equal(undefined);
      // the pointer moves to id2 while id1 survives (as a destroy that failed halfway would leave it)
      const p2 = realistic('Session', id2, { uid });
      await a.upsert(id2, p2, 3600);
      expect(await b.findByUid(uid)).to.deep.equal(jsonCopy(p2));
    });

    it('a session destroyed elsewhere reads as not found by uid and by id', async () => {
      const { a, b } = two();
      const uid = newId('uid');
      const id = newId();
      await a.upsert(id, realistic('Session', id, { uid }), 3600);
      expect(await b.findByUid(uid)).to.not.equal(undefined);
      await a.destroy(id);
      expect(await b.findByUid(uid)).to.equal(undefined);
      expect(await b.find(id)).to.equal(undefined);
    });

    it('destroy with a stale uid hint still removes the pointer the item really had, and only pointers that led to it', async () => {
      const { a, b } = two();
      const id = newId();
      const uid1 = newId('uid');
      const uid2 = newId('uid');
      const other = newId();
      await b.upsert(id, realistic('Session', id, { uid: uid1 }), 3600);
      // elsewhere: the item gets a new uid, and the old uid is given to another item
      await a.upsert(id, realistic('Session', id, { uid: uid2 }), 3600);
      const p3 = realistic('Session', other, { uid: uid1 });
      await a.upsert(other, p3, 3600);
      await b.destroy(id);
      expect(await a.findByUid(uid2)).to.equal(undefined);
      const rawPtr = await storage.doc.send(new GetCommand({ TableName: storage.tables.oidc, Key: { pk: `uid#Session#${uid2}`, sk: '_' }, ConsistentRead: true }));
      expect(rawPtr.Item, 'the real uid pointer is deleted').to.equal(undefined);
      expect(await a.findByUid(uid1), 'the other item keeps the old uid').to.deep.equal(jsonCopy(p3));
    });
  });

  describe('across models', () => {
    it('expiry: an item with expiresIn 1 is there at once, stays at least 1 s and is gone within 2 s (items and pointers)', async function () {
      this.timeout(20_000);
      // start just before a second boundary: the worst case for second-granular expiry
      await sleep((1920 - (Date.now() % 1000)) % 1000);
      const ids = new Map<ModelName, { id: string; uid: string; userCode: string }>();
      const t0 = Date.now();
      await Promise.all(MODELS.map(async (m) => {
        const id = newId();
        const uid = newId('uid');
        const userCode = newId('UC');
        ids.set(m, { id, uid, userCode });
        await adapter(m).upsert(id, realistic(m, id, { uid, userCode }), 1);
      }));
      const t1 = Date.now();
      // read at once; an answer that arrives less than 1 s after the upsert began must hold the item
      await Promise.all(MODELS.map(async (m) => {
        const { id, uid, userCode } = ids.get(m)!;
        const found = await Promise.all([adapter(m).find(id), adapter(m).findByUid(uid), adapter(m).findByUserCode(userCode)]);
        if (Date.now() - t0 < 1000) {
          expect(found.map((f) => f !== undefined), `${m} at once: find, findByUid, findByUserCode`).to.deep.equal([true, true, true]);
        }
      }));
      const pending = new Set<ModelName>(MODELS);
      while (pending.size && Date.now() - t1 < 6000) {
        for (const m of [...pending]) {
          const { id, uid, userCode } = ids.get(m)!;
          const readStart = Date.now();
          const [a, b, c] = await Promise.all([adapter(m).find(id), adapter(m).findByUid(uid), adapter(m).findByUserCode(userCode)]);
          if (a === undefined || b === undefined || c === undefined) {
            expect(Date.now() - t0, `${m} vanished too early`).to.be.at.least(1000);
            // the three reads may straddle the expiry instant; read again after it
            const again = await Promise.all([adapter(m).find(id), adapter(m).findByUid(uid), adapter(m).findByUserCode(userCode)]);
            expect(again, `${m}: item and pointers expire together`).to.deep.equal([undefined, undefined, undefined]);
            pending.delete(m);
          } else {
            // upserted by t1 with expiresIn 1: gone, at the latest, 2 s later
            expect(readStart - t1, `${m} still there`).to.be.below(2000);
          }
        }
        await sleep(50);
      }
      expect([...pending], 'still there long after a 1 s expiry').to.deep.equal([]);
      // expired items cannot be consumed
      for (const m of MODELS) await expectInvalidGrant(adapter(m).consume(ids.get(m)!.id));
    });

    it('uid and user code pointers belong to their model', async () => {
      const uid = newId('uid');
      const userCode = newId('UC');
      const s = newId('s');
      const d = newId('d');
      await adapter('Session').upsert(s, realistic('Session', s, { uid }), 3600);
      await adapter('DeviceCode').upsert(d, realistic('DeviceCode', d, { userCode }), 3600);
      // other models holding the same values must not shadow them
      for (const m of MODELS.filter((x) => x !== 'Session' && x !== 'DeviceCode')) {
        const id = newId(m);
        await adapter(m).upsert(id, realistic(m, id, { uid, userCode }), 3600);
      }
      expect((await adapter('Session').findByUid(uid))?.jti).to.equal(s);
      expect((await adapter('DeviceCode').findByUserCode(userCode))?.jti).to.equal(d);
      expect(await adapter('Session').findByUserCode(userCode)).to.equal(undefined);
      expect(await adapter('DeviceCode').findByUid(uid)).to.equal(undefined);
    });

    it('models do not see each other\'s ids', async () => {
      const id = newId('shared');
      await adapter('AccessToken').upsert(id, realistic('AccessToken', id), 3600);
      for (const m of MODELS.filter((x) => x !== 'AccessToken')) expect(await adapter(m).find(id), m).to.equal(undefined);
      await adapter('RefreshToken').destroy(id);
      expect(await adapter('AccessToken').find(id)).to.not.equal(undefined);
    });

    it('revokeByGrantId pages through many items (more than one BatchWrite) with Query only', async () => {
      const grantId = newId('grant');
      const ids = Array.from({ length: 60 }, () => newId('at'));
      await Promise.all(ids.map((id) => adapter('AccessToken').upsert(id, realistic('AccessToken', id, { grantId }), 3600)));
      const keep = newId('rt');
      await adapter('RefreshToken').upsert(keep, realistic('RefreshToken', keep, { grantId }), 3600);
      const { Recorded, log } = recorded();
      await new Recorded('AccessToken').revokeByGrantId(grantId);
      expect(log.names).to.not.include('ScanCommand');
      expect(log.names.filter((n) => n === 'BatchWriteCommand').length).to.be.at.least(2);
      for (const id of ids) expect(await adapter('AccessToken').find(id)).to.equal(undefined);
      expect(await adapter('RefreshToken').find(keep)).to.not.equal(undefined);
      await new Recorded('RefreshToken').revokeByGrantId(grantId);
      expect(await adapter('RefreshToken').find(keep)).to.equal(undefined);
      expect(log.names).to.not.include('ScanCommand');
    });

    it('the largest Session oidc-provider would plausibly produce round-trips', async () => {
      // A Session grows by one `authorizations` entry per client the user signs
      // in to during it; nothing else in it is unbounded. 1000 clients with long
      // (128-char) client ids is far beyond any real deployment of ours.
      const id = newId('sess');
      const authorizations: Record<string, unknown> = {};
      for (let i = 0; i < 1000; i++) {
        const clientId = `client-${i}-${'c'.repeat(120)}`.slice(0, 128);
        authorizations[clientId] = { sid: randomBytes(16).toString('base64url'), grantId: randomBytes(32).toString('base64url'), persistsLogout: i % 2 === 0 };
      }
      const session = {
        iat: epoch(), exp: epoch() + 14 * 86400, jti: id, kind: 'Session', uid: newId('uid'),
        accountId: `acc-${'a'.repeat(60)}`, loginTs: epoch(), amr: ['pwd', 'otp', 'hwk', 'mfa'], acr: 'urn:acr:mfa:phishing-resistant',
        transient: false,
        state: { secret: randomBytes(32).toString('base64url'), clientId: 'client-0', postLogoutRedirectUri: `https://app.example.org/logged-out?${'q'.repeat(1500)}` },
        authorizations,
      } as AdapterPayload;
      const size = utf8(session);
      expect(size).to.be.within(150_000, 390_000);
      await adapter('Session').upsert(id, session, 14 * 86400);
      expect(await adapter('Session').find(id)).to.deep.equal(jsonCopy(session));
      expect(await adapter('Session').findByUid(session.uid as string)).to.deep.equal(jsonCopy(session));
    });

    it('an item just under DynamoDB\'s 400 KB limit is stored; one byte over is refused before writing', async () => {
      // the item: pk, sk "_", payload (JSON text), expiresAt (a number: counted at its 21-byte maximum)
      const id = newId('edge');
      const pk = `Session#${id}`;
      const overhead = 'pk'.length + Buffer.byteLength(pk) + 'sk_'.length + 'payload'.length + 'expiresAt'.length + 21;
      const make = (itemBytes: number) => {
        const payload = { ...realistic('Session', id), pad: '' } as AdapterPayload;
        payload.pad = 'p'.repeat(itemBytes - overhead - Buffer.byteLength(JSON.stringify(payload)));
        return payload;
      };
      const fits = make(MAX_ITEM_BYTES - 64);
      await adapter('Session').upsert(id, fits, 3600);
      expect(await adapter('Session').find(id)).to.deep.equal(jsonCopy(fits));
      let err: unknown;
      try {
        await adapter('Session').upsert(id, make(MAX_ITEM_BYTES + 1), 3600);
      } catch (e) {
        err = e;
      }
      expect(err).to.be.instanceOf(PayloadTooLarge);
      expect(await adapter('Session').find(id), 'the previous payload is still there').to.deep.equal(jsonCopy(fits));
    });

    it('a payload beyond DynamoDB\'s 400 KB item limit is refused and nothing half-written is found', async () => {
      const id = newId('huge');
      const uid = newId('uid');
      const payload = { ...realistic('Session', id, { uid }), big: bigPayload(420_000) } as AdapterPayload;
      let err: unknown;
      try {
        await adapter('Session').upsert(id, payload, 3600);
      } catch (e) {
        err = e;
      }
      expect(err).to.be.instanceOf(PayloadTooLarge);
      expect(await adapter('Session').find(id)).to.equal(undefined);
      expect(await adapter('Session').findByUid(uid)).to.equal(undefined);
    });
  });
});
