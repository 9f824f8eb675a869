// KMS faults, through the KMS test server's fault injection (the real SDK
// on the wire, no mocks): unreachable at start (fail → message and exit 1;
// wait → /readyz 503, retry, then serve), down / slow / throttled while
// serving kms-sign tokens (503 temporarily_unavailable, never 500, recovery
// without a restart), a disabled key, a rotation failing half-way (nothing
// published), and tampered ciphertexts (KeyIntegrityError naming the
// kid/context). Every fault leaves an event line in the log.
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { DisableKeyCommand, EnableKeyCommand, KMSClient } from '@aws-sdk/client-kms';
import { GetCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { startTestIdp, tempDir, freePort, type TestIdp } from './support/idp.ts';
import { startKmsServer, type KmsTestServer } from './support/kms-server.ts';
import { registerFixtures, tokenRequest, kidOf, jwks, eventually, logEvents, activeKid } from './support/keys-flow.ts';
import { openKeyring, KeyIntegrityError, KmsUnavailable } from '../src/keys/index.ts';
import { LocalKeyring } from '../src/keys/local.ts';
import type { Keyring } from '../src/keys/types.ts';

function kmsClient(kms: KmsTestServer): KMSClient {
  return new KMSClient({ endpoint: kms.endpoint, region: kms.region, credentials: { accessKeyId: 'x', secretAccessKey: 'x' } });
}

/** change one base64url character in the middle of segment `seg` of a dotted ciphertext */
function flip(wrapped: string, seg: number): string {
  const parts = wrapped.split('.');
  const s = parts[seg];
  const i = Math.floor(s.length / 2);
  parts[seg] = s.slice(0, i) + (s[i] === 'A' ? 'B' : 'A') + s.slice(i + 1);
  return parts.join('.');
}

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a rejection');
}

describe('KMS faults', function () {
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

  afterEach(async () => {
    await kms.reset();
  });

  describe('at start', () => {
    it('KMS_STARTUP=fail: one clear message, an event line, and exit 1', async () => {
      const port = await freePort(); // nothing listens there
      const r = spawnSync(process.execPath, ['src/main.ts'], {
        env: {
          ...process.env, KEYS_MODE: 'kms-envelope', KMS_ENDPOINT: `http://127.0.0.1:${port}`, KMS_KEY_ID: envelopeKeyId,
          KMS_TIMEOUT_MS: '300', DATA_DIR: tempDir(), PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info',
        },
        encoding: 'utf8', timeout: 30_000,
      });
      expect(r.status).to.equal(1);
      expect(r.stderr).to.match(/^start-up failed: KMS is unreachable, the keys cannot be opened \(KEYS_MODE=kms-envelope/);
      expect(r.stderr).to.contain('KMS_STARTUP=wait');
      expect(r.stderr).to.not.match(/\n\s+at /);
      expect(r.stdout).to.contain('"event":"keys.kms_unavailable_at_start"');
    });

    it('KMS_STARTUP=wait: listens not-ready (/readyz 503), retries, and serves once KMS is back', async () => {
      await kms.down();
      const port = await freePort();
      const starting = startTestIdp({
        PORT: String(port), ISSUER: `http://127.0.0.1:${port}`,
        KEYS_MODE: 'kms-envelope', KMS_ENDPOINT: kms.endpoint, KMS_KEY_ID: envelopeKeyId,
        KMS_STARTUP: 'wait', KMS_TIMEOUT_MS: '300', KEYS_REFRESH_SECONDS: '1',
      });
      let idp: TestIdp | undefined;
      try {
        const ready = await eventually(async () => {
          const res = await fetch(`http://127.0.0.1:${port}/readyz`);
          return res.status === 503 ? res : undefined;
        }, 20_000, 'the not-ready listener', 100);
        expect(((await ready.json()) as { reason: string }).reason).to.match(/^keys unavailable: KMS GenerateDataKey/);
        expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).to.equal(200);
        const token = await fetch(`http://127.0.0.1:${port}/token`, { method: 'POST' });
        expect(token.status).to.equal(503);
        expect(((await token.json()) as { error: string }).error).to.equal('temporarily_unavailable');
        await new Promise((r) => setTimeout(r, 1200)); // at least one retry while down

        await kms.up();
        idp = await starting;
        expect((await fetch(`${idp.url}/readyz`)).status).to.equal(200);
        expect((await jwks(idp)).map((k) => k.alg).sort()).to.deep.equal(['ES256', 'EdDSA', 'PS256', 'RS256']);
        expect(logEvents(idp, 'keys.kms_unavailable_at_start')).to.have.length(1);
        expect(logEvents(idp, 'keys.kms_unavailable').length).to.be.greaterThan(0);
        expect(logEvents(idp, 'keys.kms_available')).to.have.length(1);
      } finally {
        await kms.up().catch(() => {});
        await (idp ?? await starting.catch(() => undefined))?.close();
      }
    });
  });

  describe('kms-sign while serving', () => {
    let idp: TestIdp;

    before(async () => {
      idp = await startTestIdp({
        KEYS_MODE: 'kms-sign', KMS_ENDPOINT: kms.endpoint, KMS_KEY_ID: envelopeKeyId,
        KMS_TIMEOUT_MS: '300', KEYS_REFRESH_SECONDS: '1',
      });
      await registerFixtures(idp);
    });

    after(async () => {
      await idp?.close();
    });

    const noStack = (body: unknown) => expect(JSON.stringify(body)).to.not.match(/ECONNREFUSED|node_modules|at \w+ \(|arn:aws/);

    it('KMS down: token requests answer 503 temporarily_unavailable, and work again when KMS is back, without a restart', async () => {
      expect((await tokenRequest(idp)).status).to.equal(200);
      await kms.down();
      const r = await tokenRequest(idp);
      expect(r.status).to.equal(503);
      expect(r.body.error).to.equal('temporarily_unavailable');
      noStack(r.body);
      const ev = logEvents(idp, 'kms.sign_failed').at(-1)!;
      expect(ev.kid).to.equal(activeKid(idp, 'ES256'));
      expect(String(ev.detail)).to.match(/ECONNREFUSED|connect/i);
      await kms.up();
      const ok = await tokenRequest(idp);
      expect(ok.status).to.equal(200);
      expect(kidOf(ok.body.access_token)).to.equal(activeKid(idp, 'ES256'));
    });

    it('KMS slow: 503 within the KMS timeout (two attempts), not a hanging request', async () => {
      kms.setLatency(3000);
      const t0 = Date.now();
      const r = await tokenRequest(idp);
      const ms = Date.now() - t0;
      expect(r.status).to.equal(503);
      expect(r.body.error).to.equal('temporarily_unavailable');
      expect(ms).to.be.lessThan(2000);
      expect(logEvents(idp, 'kms.sign_failed').some((e) => /timeout/i.test(`${e.kmsError} ${e.detail}`))).to.equal(true);
      kms.setLatency(0);
      expect((await tokenRequest(idp)).status).to.equal(200);
    });

    it('KMS throttling: each request succeeds or answers 503, never 500', async () => {
      kms.setThrottle(1);
      const results = await Promise.all(Array.from({ length: 8 }, () => tokenRequest(idp)));
      const statuses = results.map((r) => r.status);
      expect(statuses.every((s) => s === 200 || s === 503), statuses.join(',')).to.equal(true);
      expect(statuses.filter((s) => s === 503).length).to.be.greaterThan(0);
      for (const r of results.filter((x) => x.status === 503)) expect(r.body.error).to.equal('temporarily_unavailable');
      expect(logEvents(idp, 'kms.sign_failed').some((e) => e.kmsError === 'ThrottlingException')).to.equal(true);
      kms.setThrottle(null);
      expect((await tokenRequest(idp)).status).to.equal(200);
    });

    it('a disabled signing key: 503 naming nothing to the client, an event naming the kid; enabled again, it signs', async () => {
      const es = idp.keyring.keys().find((k) => k.alg === 'ES256' && k.state === 'active')!;
      const client = kmsClient(kms);
      await client.send(new DisableKeyCommand({ KeyId: es.kmsKeyId }));
      try {
        const r = await tokenRequest(idp);
        expect(r.status).to.equal(503);
        expect(r.body.error).to.equal('temporarily_unavailable');
        noStack(r.body);
        const ev = logEvents(idp, 'kms.sign_failed').at(-1)!;
        expect(ev).to.include({ kid: es.kid, kmsError: 'DisabledException', kmsKeyId: es.kmsKeyId });
      } finally {
        await client.send(new EnableKeyCommand({ KeyId: es.kmsKeyId }));
        client.destroy();
      }
      expect((await tokenRequest(idp)).status).to.equal(200);
    });

    it('a key record pointed at another KMS key is refused, naming the kid (the public key must match the kid)', async () => {
      const es = idp.keyring.keys().find((k) => k.alg === 'ES256' && k.state === 'active')!;
      const other = await kms.createKey('ECC_NIST_P256');
      const set = (v: string) => idp.storage.doc.send(new UpdateCommand({
        TableName: idp.storage.tables.keys, Key: { pk: 'signing', sk: es.kid },
        UpdateExpression: 'SET #k = :k', ExpressionAttributeNames: { '#k': 'kmsKeyId' }, ExpressionAttributeValues: { ':k': v },
      }));
      await set(other.arn);
      try {
        const err = await rejection(openKeyring(idp.config, idp.storage));
        expect(err).to.be.instanceOf(KeyIntegrityError);
        expect(err.message).to.contain(es.kid).and.contain(other.arn);
        await eventually(async () => logEvents(idp, 'keys.integrity').some((e) => e.ref === `signing:${es.kid}`), 5000, 'the integrity event of the running server');
        // the running server goes on signing with the key it verified at load
        expect(kidOf((await tokenRequest(idp)).body.access_token)).to.equal(es.kid);
      } finally {
        await set(es.kmsKeyId!);
      }
    });

    it('a rotation that fails half-way publishes nothing (the record is written only once the KMS key and its public key exist)', async () => {
      const before = (await idp.keyring.describe()).map((k) => k.kid).sort();
      const jwksBefore = (await jwks(idp)).map((k) => k.kid).sort();
      const creates = kms.calls.CreateKey;
      kms.failNext(2, 'KMSInternalException', { operation: 'GetPublicKey' });
      const err = await rejection(idp.keyring.rotate({ alg: 'ES256' }));
      expect(err).to.be.instanceOf(KmsUnavailable);
      expect(kms.calls.CreateKey - creates).to.equal(1);
      expect(logEvents(idp, 'keys.kms_key_orphaned')).to.have.length(1);

      await kms.down();
      const down = await rejection(idp.cli('keys', 'rotate', '--alg', 'RS256'));
      expect(down).to.be.instanceOf(KmsUnavailable);
      await kms.up();

      expect((await idp.keyring.describe()).map((k) => k.kid).sort()).to.deep.equal(before);
      await new Promise((r) => setTimeout(r, 1500)); // a refresh period
      expect((await jwks(idp)).map((k) => k.kid).sort()).to.deep.equal(jwksBefore);
    });
  });

  describe('tampered or unusable ciphertexts', () => {
    let idp: TestIdp;

    before(async () => {
      idp = await startTestIdp({
        KEYS_MODE: 'kms-envelope', KMS_ENDPOINT: kms.endpoint, KMS_KEY_ID: envelopeKeyId, KEYS_REFRESH_SECONDS: '1',
      });
      await registerFixtures(idp);
    });

    after(async () => {
      await idp?.close();
    });

    async function setWrapped(kid: string, wrapped: string) {
      await idp.storage.doc.send(new UpdateCommand({
        TableName: idp.storage.tables.keys, Key: { pk: 'signing', sk: kid },
        UpdateExpression: 'SET #w = :w', ExpressionAttributeNames: { '#w': 'wrapped' }, ExpressionAttributeValues: { ':w': wrapped },
      }));
    }

    it('a tampered wrapped signing key is refused naming its kid; the running server keeps serving with the keys it has, and logs it', async () => {
      const kid = activeKid(idp, 'RS256');
      const item = await idp.storage.doc.send(new GetCommand({ TableName: idp.storage.tables.keys, Key: { pk: 'signing', sk: kid } }));
      const original = item.Item!.wrapped as string;
      try {
        // the AES-GCM ciphertext (segment 3), then the KMS ciphertext blob of its data key (segment 1)
        for (const seg of [3, 1]) {
          await setWrapped(kid, flip(original, seg));
          const err = await rejection(openKeyring(idp.config, idp.storage));
          expect(err, `segment ${seg}`).to.be.instanceOf(KeyIntegrityError);
          expect(err.message).to.contain(`signing:${kid}`);
        }
        await eventually(async () => logEvents(idp, 'keys.refresh_failed').some((e) => (e.err as { ref?: string }).ref === `signing:${kid}`), 5000, 'the refresh failure event');
        expect(logEvents(idp, 'keys.integrity').some((e) => e.ref === `signing:${kid}`)).to.equal(true);
        const r = await tokenRequest(idp);
        expect(r.status).to.equal(200);
        expect(activeKid(idp, 'RS256')).to.equal(kid);
      } finally {
        await setWrapped(kid, original);
      }
      await eventually(async () => logEvents(idp, 'keys.refresh_recovered').length > 0, 5000, 'recovery');
    });

    for (const mode of ['kms-envelope', 'local'] as const) {
      it(`${mode}: a tampered or moved data key is refused, naming its context`, async () => {
        const keyring: Keyring = mode === 'local' ? new LocalKeyring(idp.storage, tempDir()) : idp.keyring;
        const dk = await keyring.newDataKey('account:alice');
        expect(await keyring.openDataKey(dk.wrapped, 'account:alice')).to.deep.equal(dk.plaintext);
        const tampered = await rejection(keyring.openDataKey(flip(dk.wrapped, 1), 'account:alice'));
        expect(tampered).to.be.instanceOf(KeyIntegrityError);
        expect(tampered.message).to.contain('data:account:alice');
        const moved = await rejection(keyring.openDataKey(dk.wrapped, 'account:bob'));
        expect(moved).to.be.instanceOf(KeyIntegrityError);
        expect(moved.message).to.contain('data:account:bob');
        if (mode === 'kms-envelope') expect(logEvents(idp, 'keys.integrity').some((e) => e.ref === 'data:account:bob')).to.equal(true);
      });
    }

    it('a disabled envelope key: opening a data key or starting answers unavailable (not tampered); tokens are still served from memory', async () => {
      const dk = await idp.keyring.newDataKey('account:carol');
      const client = kmsClient(kms);
      await client.send(new DisableKeyCommand({ KeyId: envelopeKeyId }));
      try {
        const err = await rejection(idp.keyring.openDataKey(dk.wrapped, 'account:carol'));
        expect(err).to.be.instanceOf(KmsUnavailable);
        expect((err as KmsUnavailable).kmsError).to.equal('DisabledException');
        expect((err as KmsUnavailable).statusCode).to.equal(503);
        expect(logEvents(idp, 'kms.error').some((e) => e.kmsError === 'DisabledException')).to.equal(true);
        const start = await rejection(openKeyring(idp.config, idp.storage));
        expect(start).to.be.instanceOf(KmsUnavailable);
        // kms-envelope needs no KMS call per token
        expect((await tokenRequest(idp)).status).to.equal(200);
      } finally {
        await client.send(new EnableKeyCommand({ KeyId: envelopeKeyId }));
        client.destroy();
      }
      expect(await idp.keyring.openDataKey(dk.wrapped, 'account:carol')).to.deep.equal(dk.plaintext);
    });
  });
});
