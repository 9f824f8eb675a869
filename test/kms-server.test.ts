// The KMS test server (test/support/kms-server.ts), driven through the real
// @aws-sdk/client-kms so that the wire protocol and error names match what
// production code will see.
import { expect } from 'chai';
import crypto from 'node:crypto';
import {
  CancelKeyDeletionCommand,
  CreateAliasCommand,
  CreateKeyCommand,
  DecryptCommand,
  DescribeKeyCommand,
  DisableKeyCommand,
  EnableKeyCommand,
  EncryptCommand,
  GenerateDataKeyCommand,
  GenerateDataKeyWithoutPlaintextCommand,
  GetPublicKeyCommand,
  KMSClient,
  ListAliasesCommand,
  ListKeysCommand,
  ReEncryptCommand,
  ScheduleKeyDeletionCommand,
  SignCommand,
  VerifyCommand,
} from '@aws-sdk/client-kms';
import type { SigningAlgorithmSpec } from '@aws-sdk/client-kms';
import { CompactSign, compactVerify } from 'jose';
import { startKmsServer } from './support/kms-server.ts';
import type { KmsKeySpec, KmsTestServer } from './support/kms-server.ts';

type SdkError = Error & { $fault?: string; $metadata?: { httpStatusCode?: number; attempts?: number }; code?: string };

async function rejection(p: Promise<unknown>): Promise<SdkError> {
  try {
    await p;
  } catch (e) {
    return e as SdkError;
  }
  throw new Error('expected the call to fail');
}

async function expectKmsError(p: Promise<unknown>, name: string): Promise<SdkError> {
  const err = await rejection(p);
  expect(err.name, `${err.name}: ${err.message}`).to.equal(name);
  return err;
}

const sha = (alg: string, data: Buffer) => crypto.createHash(alg).update(data).digest();
const spkiKey = (der: Uint8Array) => crypto.createPublicKey({ key: Buffer.from(der), format: 'der', type: 'spki' });
const b64url = (s: string) => Buffer.from(s).toString('base64url');
const generateRsa = (modulusLength: number) => new Promise<crypto.KeyPairKeyObjectResult>((resolve, reject) => {
  crypto.generateKeyPair('rsa', { modulusLength }, (err, publicKey, privateKey) => (err ? reject(err) : resolve({ publicKey, privateKey })));
});

/** strict DER ECDSA-Sig-Value check: SEQUENCE of two minimal positive INTEGERs */
function assertDerEcdsa(sig: Buffer) {
  expect(sig[0]).to.equal(0x30);
  const long = sig[1] === 0x81;
  const seqLen = long ? sig[2] : sig[1];
  let off = long ? 3 : 2;
  expect(off + seqLen).to.equal(sig.length);
  for (let i = 0; i < 2; i++) {
    expect(sig[off]).to.equal(0x02);
    const len = sig[off + 1];
    const int = sig.subarray(off + 2, off + 2 + len);
    expect(int[0] & 0x80, 'positive').to.equal(0);
    if (int.length > 1 && int[0] === 0) expect(int[1] & 0x80, 'minimal').to.not.equal(0);
    off += 2 + len;
  }
  expect(off).to.equal(sig.length);
}

describe('KMS test server', function () {
  this.timeout(20_000);

  let server: KmsTestServer;
  let kms: KMSClient;
  /** no SDK retries: fault injection shows through */
  let once: KMSClient;
  let symKeyId: string;
  let symArn: string;
  let otherSymKeyId: string;
  let ecKeyId: string;
  let rsaKeyId: string;

  const clientFor = (endpoint: string, maxAttempts?: number) =>
    new KMSClient({
      endpoint,
      region: 'us-east-1',
      credentials: { accessKeyId: 'AKIDTEST', secretAccessKey: 'secret' },
      ...(maxAttempts ? { maxAttempts } : {}),
    });

  before(async () => {
    server = await startKmsServer();
    kms = clientFor(server.endpoint);
    once = clientFor(server.endpoint, 1);
    const [sym, other, ec, rsa] = await Promise.all([
      kms.send(new CreateKeyCommand({ Description: 'symmetric' })),
      kms.send(new CreateKeyCommand({})),
      kms.send(new CreateKeyCommand({ KeySpec: 'ECC_NIST_P256', KeyUsage: 'SIGN_VERIFY' })),
      kms.send(new CreateKeyCommand({ KeySpec: 'RSA_2048', KeyUsage: 'SIGN_VERIFY' })),
    ]);
    symKeyId = sym.KeyMetadata!.KeyId!;
    symArn = sym.KeyMetadata!.Arn!;
    otherSymKeyId = other.KeyMetadata!.KeyId!;
    ecKeyId = ec.KeyMetadata!.KeyId!;
    rsaKeyId = rsa.KeyMetadata!.KeyId!;
  });

  afterEach(async () => {
    await server.reset();
  });

  after(async () => {
    kms?.destroy();
    once?.destroy();
    await server?.close();
  });

  describe('keys', () => {
    it('creates, describes and lists keys', async () => {
      expect(server.endpoint).to.match(/^http:\/\/127\.0\.0\.1:\d+$/);
      expect(symArn).to.equal(`arn:aws:kms:us-east-1:111122223333:key/${symKeyId}`);
      const { KeyMetadata: md } = await kms.send(new DescribeKeyCommand({ KeyId: symKeyId }));
      expect(md).to.include({
        KeyId: symKeyId,
        Arn: symArn,
        AWSAccountId: '111122223333',
        Description: 'symmetric',
        Enabled: true,
        KeyState: 'Enabled',
        KeySpec: 'SYMMETRIC_DEFAULT',
        KeyUsage: 'ENCRYPT_DECRYPT',
        KeyManager: 'CUSTOMER',
        Origin: 'AWS_KMS',
      });
      expect(md!.CreationDate).to.be.instanceOf(Date);
      expect(Math.abs(md!.CreationDate!.getTime() - Date.now())).to.be.below(60_000);
      expect(md!.EncryptionAlgorithms).to.deep.equal(['SYMMETRIC_DEFAULT']);

      const ec = await kms.send(new DescribeKeyCommand({ KeyId: ecKeyId }));
      expect(ec.KeyMetadata).to.include({ KeySpec: 'ECC_NIST_P256', KeyUsage: 'SIGN_VERIFY' });
      expect(ec.KeyMetadata!.SigningAlgorithms).to.deep.equal(['ECDSA_SHA_256']);

      const all = await kms.send(new ListKeysCommand({}));
      expect(all.Truncated).to.equal(false);
      expect(all.Keys!.map((k) => k.KeyId)).to.include.members([symKeyId, otherSymKeyId, ecKeyId, rsaKeyId]);
      const first = await kms.send(new ListKeysCommand({ Limit: 1 }));
      expect(first.Keys).to.have.length(1);
      expect(first.Truncated).to.equal(true);
      const second = await kms.send(new ListKeysCommand({ Limit: 1, Marker: first.NextMarker }));
      expect(second.Keys![0].KeyId).to.not.equal(first.Keys![0].KeyId);
    });

    it('rejects a key spec with an incompatible usage, like KMS', async () => {
      // KeyUsage defaults to ENCRYPT_DECRYPT, which an ECC key cannot have
      await expectKmsError(kms.send(new CreateKeyCommand({ KeySpec: 'ECC_NIST_P256' })), 'ValidationException');
    });

    it('unknown keys give NotFoundException', async () => {
      const plaintext = Buffer.from('x');
      await expectKmsError(kms.send(new EncryptCommand({ KeyId: crypto.randomUUID(), Plaintext: plaintext })), 'NotFoundException');
      await expectKmsError(kms.send(new EncryptCommand({ KeyId: 'alias/does-not-exist', Plaintext: plaintext })), 'NotFoundException');
      await expectKmsError(kms.send(new DescribeKeyCommand({ KeyId: `arn:aws:kms:us-east-1:999999999999:key/${symKeyId}` })), 'NotFoundException');
      await expectKmsError(kms.send(new DescribeKeyCommand({ KeyId: `arn:aws:kms:eu-west-1:111122223333:key/${symKeyId}` })), 'NotFoundException');
      await expectKmsError(kms.send(new GetPublicKeyCommand({ KeyId: crypto.randomUUID() })), 'NotFoundException');
    });

    it('disabled keys give DisabledException until enabled again', async () => {
      const { CiphertextBlob } = await kms.send(new EncryptCommand({ KeyId: otherSymKeyId, Plaintext: Buffer.from('secret') }));
      await kms.send(new DisableKeyCommand({ KeyId: otherSymKeyId }));
      try {
        expect(server.getKey(otherSymKeyId)!.state).to.equal('Disabled');
        await expectKmsError(kms.send(new EncryptCommand({ KeyId: otherSymKeyId, Plaintext: Buffer.from('x') })), 'DisabledException');
        await expectKmsError(kms.send(new DecryptCommand({ CiphertextBlob })), 'DisabledException');
        await expectKmsError(kms.send(new GenerateDataKeyCommand({ KeyId: otherSymKeyId, KeySpec: 'AES_256' })), 'DisabledException');
        const md = await kms.send(new DescribeKeyCommand({ KeyId: otherSymKeyId }));
        expect(md.KeyMetadata).to.include({ Enabled: false, KeyState: 'Disabled' });
      } finally {
        await kms.send(new EnableKeyCommand({ KeyId: otherSymKeyId }));
      }
      const { Plaintext } = await kms.send(new DecryptCommand({ CiphertextBlob }));
      expect(Buffer.from(Plaintext!).toString()).to.equal('secret');
    });

    it('keys pending deletion give KMSInvalidStateException', async () => {
      const key = await server.createKey('SYMMETRIC_DEFAULT');
      const { CiphertextBlob } = await kms.send(new EncryptCommand({ KeyId: key.keyId, Plaintext: Buffer.from('x') }));
      const scheduled = await kms.send(new ScheduleKeyDeletionCommand({ KeyId: key.arn, PendingWindowInDays: 7 }));
      expect(scheduled).to.include({ KeyId: key.arn, KeyState: 'PendingDeletion', PendingWindowInDays: 7 });
      expect(scheduled.DeletionDate!.getTime()).to.be.greaterThan(Date.now() + 6 * 86_400_000);
      await expectKmsError(kms.send(new DecryptCommand({ CiphertextBlob })), 'KMSInvalidStateException');
      await expectKmsError(kms.send(new EncryptCommand({ KeyId: key.keyId, Plaintext: Buffer.from('x') })), 'KMSInvalidStateException');
      await expectKmsError(kms.send(new EnableKeyCommand({ KeyId: key.keyId })), 'KMSInvalidStateException');
      const md = await kms.send(new DescribeKeyCommand({ KeyId: key.keyId }));
      expect(md.KeyMetadata!.KeyState).to.equal('PendingDeletion');
      await kms.send(new CancelKeyDeletionCommand({ KeyId: key.keyId }));
      expect(server.getKey(key.keyId)!.state).to.equal('Disabled');
    });
  });

  describe('aliases', () => {
    it('resolves alias names, alias ARNs and key ARNs wherever a KeyId is taken', async () => {
      await kms.send(new CreateAliasCommand({ AliasName: 'alias/app-data', TargetKeyId: symKeyId }));
      server.createAlias('alias/app-signing', ecKeyId);
      const aliasArn = 'arn:aws:kms:us-east-1:111122223333:alias/app-data';

      for (const keyId of ['alias/app-data', aliasArn, symArn, symKeyId]) {
        const enc = await kms.send(new EncryptCommand({ KeyId: keyId, Plaintext: Buffer.from('hello') }));
        expect(enc.KeyId).to.equal(symArn);
        const dec = await kms.send(new DecryptCommand({ KeyId: keyId, CiphertextBlob: enc.CiphertextBlob }));
        expect(Buffer.from(dec.Plaintext!).toString()).to.equal('hello');
        const md = await kms.send(new DescribeKeyCommand({ KeyId: keyId }));
        expect(md.KeyMetadata!.KeyId).to.equal(symKeyId);
      }
      const signed = await kms.send(new SignCommand({
        KeyId: 'alias/app-signing', Message: Buffer.from('m'), SigningAlgorithm: 'ECDSA_SHA_256',
      }));
      expect(signed.KeyId).to.equal(server.getKey(ecKeyId)!.arn);

      const listed = await kms.send(new ListAliasesCommand({ KeyId: symKeyId }));
      expect(listed.Aliases!.map((a) => [a.AliasName, a.AliasArn, a.TargetKeyId])).to.deep.equal([['alias/app-data', aliasArn, symKeyId]]);
      expect(server.getKey('alias/app-data')!.aliases).to.deep.equal(['alias/app-data']);

      await expectKmsError(kms.send(new CreateAliasCommand({ AliasName: 'alias/app-data', TargetKeyId: otherSymKeyId })), 'AlreadyExistsException');
      await expectKmsError(kms.send(new CreateAliasCommand({ AliasName: 'app-data', TargetKeyId: otherSymKeyId })), 'InvalidAliasNameException');
      await expectKmsError(kms.send(new CreateAliasCommand({ AliasName: 'alias/aws/reserved', TargetKeyId: otherSymKeyId })), 'InvalidAliasNameException');
      await expectKmsError(kms.send(new CreateAliasCommand({ AliasName: 'alias/x', TargetKeyId: crypto.randomUUID() })), 'NotFoundException');
    });
  });

  describe('symmetric encryption', () => {
    it('round-trips with and without encryption context', async () => {
      const plaintext = crypto.randomBytes(100);
      const plain = await kms.send(new EncryptCommand({ KeyId: symKeyId, Plaintext: plaintext }));
      expect(plain).to.include({ KeyId: symArn, EncryptionAlgorithm: 'SYMMETRIC_DEFAULT' });
      const dec = await kms.send(new DecryptCommand({ CiphertextBlob: plain.CiphertextBlob }));
      expect(Buffer.from(dec.Plaintext!).equals(plaintext)).to.equal(true);
      expect(dec.KeyId).to.equal(symArn);

      const context = { purpose: 'session', tenant: 't1' };
      const bound = await kms.send(new EncryptCommand({ KeyId: symKeyId, Plaintext: plaintext, EncryptionContext: context }));
      // the same context in another key order is the same context
      const dec2 = await kms.send(new DecryptCommand({ CiphertextBlob: bound.CiphertextBlob, EncryptionContext: { tenant: 't1', purpose: 'session' } }));
      expect(Buffer.from(dec2.Plaintext!).equals(plaintext)).to.equal(true);

      await expectKmsError(kms.send(new DecryptCommand({ CiphertextBlob: bound.CiphertextBlob })), 'InvalidCiphertextException');
      await expectKmsError(kms.send(new DecryptCommand({ CiphertextBlob: bound.CiphertextBlob, EncryptionContext: { ...context, tenant: 't2' } })), 'InvalidCiphertextException');
      await expectKmsError(kms.send(new DecryptCommand({ CiphertextBlob: bound.CiphertextBlob, EncryptionContext: { ...context, extra: 'x' } })), 'InvalidCiphertextException');
      await expectKmsError(kms.send(new DecryptCommand({ CiphertextBlob: plain.CiphertextBlob, EncryptionContext: context })), 'InvalidCiphertextException');
    });

    it('Decrypt with the KeyId of another key gives IncorrectKeyException', async () => {
      const enc = await kms.send(new EncryptCommand({ KeyId: symKeyId, Plaintext: Buffer.from('x') }));
      await expectKmsError(kms.send(new DecryptCommand({ KeyId: otherSymKeyId, CiphertextBlob: enc.CiphertextBlob })), 'IncorrectKeyException');
      await expectKmsError(kms.send(new DecryptCommand({ KeyId: ecKeyId, CiphertextBlob: enc.CiphertextBlob })), 'InvalidKeyUsageException');
    });

    it('any flipped byte or truncation gives InvalidCiphertextException', async () => {
      const context = { a: 'b' };
      const { CiphertextBlob } = await kms.send(new EncryptCommand({ KeyId: symKeyId, Plaintext: Buffer.from('tamper me'), EncryptionContext: context }));
      const blob = Buffer.from(CiphertextBlob!);
      for (let i = 0; i < blob.length; i++) {
        const tampered = Buffer.from(blob);
        tampered[i] ^= 0x01;
        await expectKmsError(kms.send(new DecryptCommand({ CiphertextBlob: tampered, EncryptionContext: context })), 'InvalidCiphertextException');
      }
      await expectKmsError(kms.send(new DecryptCommand({ CiphertextBlob: blob.subarray(0, blob.length - 1), EncryptionContext: context })), 'InvalidCiphertextException');
      await expectKmsError(kms.send(new DecryptCommand({ CiphertextBlob: Buffer.from('not a ciphertext at all') })), 'InvalidCiphertextException');
      // with the right KeyId, a tampered blob is still InvalidCiphertextException
      const flipped = Buffer.from(blob);
      flipped[blob.length - 1] ^= 0x80;
      await expectKmsError(kms.send(new DecryptCommand({ KeyId: symKeyId, CiphertextBlob: flipped, EncryptionContext: context })), 'InvalidCiphertextException');
    });

    it('GenerateDataKey plaintext is what its CiphertextBlob decrypts to', async () => {
      const context = { use: 'dek' };
      const dk = await kms.send(new GenerateDataKeyCommand({ KeyId: symKeyId, KeySpec: 'AES_256', EncryptionContext: context }));
      expect(dk.KeyId).to.equal(symArn);
      expect(dk.Plaintext).to.have.length(32);
      const dec = await kms.send(new DecryptCommand({ CiphertextBlob: dk.CiphertextBlob, EncryptionContext: context }));
      expect(Buffer.from(dec.Plaintext!).equals(Buffer.from(dk.Plaintext!))).to.equal(true);

      const sized = await kms.send(new GenerateDataKeyCommand({ KeyId: symKeyId, NumberOfBytes: 64 }));
      expect(sized.Plaintext).to.have.length(64);

      const noPlain = await kms.send(new GenerateDataKeyWithoutPlaintextCommand({ KeyId: symKeyId, KeySpec: 'AES_128' }));
      expect((noPlain as unknown as Record<string, unknown>).Plaintext).to.equal(undefined);
      const dec2 = await kms.send(new DecryptCommand({ CiphertextBlob: noPlain.CiphertextBlob }));
      expect(dec2.Plaintext).to.have.length(16);

      await expectKmsError(kms.send(new GenerateDataKeyCommand({ KeyId: symKeyId })), 'ValidationException');
      await expectKmsError(kms.send(new GenerateDataKeyCommand({ KeyId: ecKeyId, KeySpec: 'AES_256' })), 'InvalidKeyUsageException');
    });

    it('ReEncrypt moves a ciphertext to another key and context', async () => {
      const enc = await kms.send(new EncryptCommand({ KeyId: symKeyId, Plaintext: Buffer.from('move me'), EncryptionContext: { v: '1' } }));
      const re = await kms.send(new ReEncryptCommand({
        CiphertextBlob: enc.CiphertextBlob,
        SourceEncryptionContext: { v: '1' },
        DestinationKeyId: otherSymKeyId,
        DestinationEncryptionContext: { v: '2' },
      }));
      expect(re.SourceKeyId).to.equal(symArn);
      expect(re.KeyId).to.equal(server.getKey(otherSymKeyId)!.arn);
      await expectKmsError(kms.send(new DecryptCommand({ KeyId: symKeyId, CiphertextBlob: re.CiphertextBlob, EncryptionContext: { v: '2' } })), 'IncorrectKeyException');
      const dec = await kms.send(new DecryptCommand({ CiphertextBlob: re.CiphertextBlob, EncryptionContext: { v: '2' } }));
      expect(Buffer.from(dec.Plaintext!).toString()).to.equal('move me');
    });
  });

  describe('signing', () => {
    const message = Buffer.from('header.payload');

    it('ECDSA P-256: DER signatures over a DIGEST or RAW message verify with node:crypto against GetPublicKey', async () => {
      const pub = await kms.send(new GetPublicKeyCommand({ KeyId: ecKeyId }));
      expect(pub).to.include({ KeySpec: 'ECC_NIST_P256', KeyUsage: 'SIGN_VERIFY' });
      expect(pub.SigningAlgorithms).to.deep.equal(['ECDSA_SHA_256']);
      const key = spkiKey(pub.PublicKey!);
      expect(key.asymmetricKeyDetails!.namedCurve).to.equal('prime256v1');

      const signatures: Uint8Array[] = [];
      for (let i = 0; i < 5; i++) {
        const digest = await kms.send(new SignCommand({
          KeyId: ecKeyId, Message: sha('sha256', message), MessageType: 'DIGEST', SigningAlgorithm: 'ECDSA_SHA_256',
        }));
        expect(digest.SigningAlgorithm).to.equal('ECDSA_SHA_256');
        const sig = Buffer.from(digest.Signature!);
        signatures.push(sig);
        assertDerEcdsa(sig);
        expect(crypto.verify('sha256', message, { key, dsaEncoding: 'der' }, sig)).to.equal(true);
        expect(crypto.verify('sha256', Buffer.from('other'), { key, dsaEncoding: 'der' }, sig)).to.equal(false);
      }
      const raw = await kms.send(new SignCommand({ KeyId: ecKeyId, Message: message, MessageType: 'RAW', SigningAlgorithm: 'ECDSA_SHA_256' }));
      assertDerEcdsa(Buffer.from(raw.Signature!));
      expect(crypto.verify('sha256', message, { key, dsaEncoding: 'der' }, Buffer.from(raw.Signature!))).to.equal(true);

      // and KMS Verify accepts both, in both message types
      for (const sig of [raw.Signature!, ...signatures]) {
        const v1 = await kms.send(new VerifyCommand({ KeyId: ecKeyId, Message: message, Signature: sig, SigningAlgorithm: 'ECDSA_SHA_256' }));
        expect(v1.SignatureValid).to.equal(true);
        const v2 = await kms.send(new VerifyCommand({
          KeyId: ecKeyId, Message: sha('sha256', message), MessageType: 'DIGEST', Signature: sig, SigningAlgorithm: 'ECDSA_SHA_256',
        }));
        expect(v2.SignatureValid).to.equal(true);
      }
      await expectKmsError(kms.send(new VerifyCommand({
        KeyId: ecKeyId, Message: sha('sha256', Buffer.from('other')), MessageType: 'DIGEST', Signature: raw.Signature!, SigningAlgorithm: 'ECDSA_SHA_256',
      })), 'KMSInvalidSignatureException');
    });

    for (const [spec, alg, hash] of [
      ['ECC_NIST_P384', 'ECDSA_SHA_384', 'sha384'],
      ['ECC_NIST_P521', 'ECDSA_SHA_512', 'sha512'],
      ['ECC_SECG_P256K1', 'ECDSA_SHA_256', 'sha256'],
    ] as const) {
      it(`${spec}: ${alg} DIGEST signatures verify both ways`, async () => {
        const key = await server.createKey(spec);
        const pub = spkiKey(key.publicKey!);
        const signed = await kms.send(new SignCommand({ KeyId: key.keyId, Message: sha(hash, message), MessageType: 'DIGEST', SigningAlgorithm: alg }));
        assertDerEcdsa(Buffer.from(signed.Signature!));
        expect(crypto.verify(hash, message, { key: pub, dsaEncoding: 'der' }, Buffer.from(signed.Signature!))).to.equal(true);
        // a signature made elsewhere, checked by KMS Verify over the digest
        const local = await kms.send(new SignCommand({ KeyId: key.keyId, Message: message, SigningAlgorithm: alg }));
        const verified = await kms.send(new VerifyCommand({
          KeyId: key.keyId, Message: sha(hash, message), MessageType: 'DIGEST', Signature: local.Signature!, SigningAlgorithm: alg,
        }));
        expect(verified.SignatureValid).to.equal(true);
      });
    }

    for (const alg of ['RSASSA_PKCS1_V1_5_SHA_256', 'RSASSA_PSS_SHA_256'] as const) {
      it(`RSA_2048 ${alg}: RAW and DIGEST signatures verify with node:crypto and with KMS Verify`, async () => {
        const pub = await kms.send(new GetPublicKeyCommand({ KeyId: rsaKeyId }));
        expect(pub).to.include({ KeySpec: 'RSA_2048', KeyUsage: 'SIGN_VERIFY' });
        expect(pub.SigningAlgorithms).to.include(alg);
        const key = spkiKey(pub.PublicKey!);
        expect(key.asymmetricKeyDetails!.modulusLength).to.equal(2048);
        const padding = alg.startsWith('RSASSA_PSS')
          ? { padding: crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }
          : { padding: crypto.constants.RSA_PKCS1_PADDING };

        for (const [MessageType, Message] of [['RAW', message], ['DIGEST', sha('sha256', message)]] as const) {
          const signed = await kms.send(new SignCommand({ KeyId: rsaKeyId, Message, MessageType, SigningAlgorithm: alg }));
          const sig = Buffer.from(signed.Signature!);
          expect(sig).to.have.length(256);
          expect(crypto.verify('sha256', message, { key, ...padding }, sig), MessageType).to.equal(true);
          for (const [vType, vMessage] of [['RAW', message], ['DIGEST', sha('sha256', message)]] as const) {
            const verified = await kms.send(new VerifyCommand({ KeyId: rsaKeyId, Message: vMessage, MessageType: vType, Signature: sig, SigningAlgorithm: alg }));
            expect(verified.SignatureValid).to.equal(true);
          }
          const bad = Buffer.from(sig);
          bad[10] ^= 1;
          await expectKmsError(kms.send(new VerifyCommand({ KeyId: rsaKeyId, Message, MessageType, Signature: bad, SigningAlgorithm: alg })), 'KMSInvalidSignatureException');
        }
      });
    }

    describe('RSASSA-PSS as KMS does it: MGF1 with the message hash, salt as long as the digest', () => {
      const PSS = crypto.constants.RSA_PKCS1_PSS_PADDING;
      const pssSign = (KeyId: string, SigningAlgorithm: SigningAlgorithmSpec, MessageType: 'RAW' | 'DIGEST', Message: Buffer) =>
        kms.send(new SignCommand({ KeyId, SigningAlgorithm, MessageType, Message })).then((r) => Buffer.from(r.Signature!));
      const kmsVerify = (KeyId: string, SigningAlgorithm: SigningAlgorithmSpec, MessageType: 'RAW' | 'DIGEST', Message: Buffer, Signature: Buffer) =>
        kms.send(new VerifyCommand({ KeyId, SigningAlgorithm, MessageType, Message, Signature }));

      it('RSASSA_PSS_SHA_256: the salt is exactly 32 bytes in RAW and DIGEST signatures, and each signature is fresh', async () => {
        const key = spkiKey((await kms.send(new GetPublicKeyCommand({ KeyId: rsaKeyId }))).PublicKey!);
        const made: Buffer[] = [];
        for (const [type, msg] of [['RAW', message], ['DIGEST', sha('sha256', message)], ['DIGEST', sha('sha256', message)]] as const) {
          const sig = await pssSign(rsaKeyId, 'RSASSA_PSS_SHA_256', type, msg);
          made.push(sig);
          // node:crypto checks the salt length exactly when it is given
          expect(crypto.verify('sha256', message, { key, padding: PSS, saltLength: 32 }, sig), `${type}, salt 32`).to.equal(true);
          for (const saltLength of [0, 20, 31, 33, 64]) {
            expect(crypto.verify('sha256', message, { key, padding: PSS, saltLength }, sig), `${type}, salt ${saltLength}`).to.equal(false);
          }
          // not PKCS#1 v1.5
          expect(crypto.verify('sha256', message, { key, padding: crypto.constants.RSA_PKCS1_PADDING }, sig)).to.equal(false);
        }
        // a random salt: two signatures over the same digest differ
        expect(made[1].equals(made[2])).to.equal(false);
      });

      it('KMS Verify takes PSS signatures node:crypto makes with a 32-byte salt, and refuses other salt lengths and PKCS#1 v1.5', async () => {
        const { privateKey } = await generateRsa(2048);
        const key = await server.createKey({ keySpec: 'RSA_2048', privateKey });
        expect(spkiKey(key.publicKey!).export({ format: 'jwk' })).to.deep.equal(crypto.createPublicKey(privateKey).export({ format: 'jwk' }));
        const pss = (saltLength: number) => crypto.sign('sha256', message, { key: privateKey, padding: PSS, saltLength });
        const pkcs1 = crypto.sign('sha256', message, { key: privateKey, padding: crypto.constants.RSA_PKCS1_PADDING });
        for (const [type, msg] of [['RAW', message], ['DIGEST', sha('sha256', message)]] as const) {
          expect((await kmsVerify(key.keyId, 'RSASSA_PSS_SHA_256', type, msg, pss(32))).SignatureValid, type).to.equal(true);
          for (const saltLength of [0, 20, 64]) {
            await expectKmsError(kmsVerify(key.keyId, 'RSASSA_PSS_SHA_256', type, msg, pss(saltLength)), 'KMSInvalidSignatureException');
          }
          await expectKmsError(kmsVerify(key.keyId, 'RSASSA_PSS_SHA_256', type, msg, pkcs1), 'KMSInvalidSignatureException');
          await expectKmsError(kmsVerify(key.keyId, 'RSASSA_PKCS1_V1_5_SHA_256', type, msg, pss(32)), 'KMSInvalidSignatureException');
          expect((await kmsVerify(key.keyId, 'RSASSA_PKCS1_V1_5_SHA_256', type, msg, pkcs1)).SignatureValid, type).to.equal(true);
        }
        // and what KMS signs over a digest, node:crypto verifies with the imported key
        const signed = await pssSign(key.keyId, 'RSASSA_PSS_SHA_256', 'DIGEST', sha('sha256', message));
        expect(crypto.verify('sha256', message, { key: privateKey, padding: PSS, saltLength: 32 }, signed)).to.equal(true);
        // imported material must fit the key spec
        expect((await rejection(server.createKey({ keySpec: 'RSA_3072', privateKey }))).code).to.equal('ValidationException');
        expect((await rejection(server.createKey({ keySpec: 'SYMMETRIC_DEFAULT', privateKey }))).code).to.equal('ValidationException');
      });

      it('a JWS signed by KMS over the digest of its signing input verifies as PS256 with jose, and a jose PS256 JWS passes KMS Verify', async () => {
        const pub = spkiKey((await kms.send(new GetPublicKeyCommand({ KeyId: rsaKeyId }))).PublicKey!);
        const input = `${b64url(JSON.stringify({ alg: 'PS256', kid: 'k' }))}.${b64url(JSON.stringify({ sub: 'x' }))}`;
        const sig = await pssSign(rsaKeyId, 'RSASSA_PSS_SHA_256', 'DIGEST', sha('sha256', Buffer.from(input)));
        const jws = `${input}.${sig.toString('base64url')}`;
        const { protectedHeader, payload } = await compactVerify(jws, pub, { algorithms: ['PS256'] });
        expect(protectedHeader.alg).to.equal('PS256');
        expect(JSON.parse(Buffer.from(payload).toString())).to.deep.equal({ sub: 'x' });
        // the same signature is no RS256 signature
        const asRs = `${b64url(JSON.stringify({ alg: 'RS256', kid: 'k' }))}.${b64url(JSON.stringify({ sub: 'x' }))}`;
        expect((await rejection(compactVerify(`${asRs}.${sig.toString('base64url')}`, pub))).message).to.match(/signature verification failed/);

        const { privateKey } = await generateRsa(2048);
        const imported = await server.createKey({ keySpec: 'RSA_2048', privateKey });
        const joseJws = await new CompactSign(Buffer.from('hello')).setProtectedHeader({ alg: 'PS256' }).sign(privateKey);
        const [h, p, s] = joseJws.split('.');
        const ok = await kmsVerify(imported.keyId, 'RSASSA_PSS_SHA_256', 'DIGEST', sha('sha256', Buffer.from(`${h}.${p}`)), Buffer.from(s, 'base64url'));
        expect(ok.SignatureValid).to.equal(true);
      });

      for (const [spec, alg, hash, bytes] of [
        ['RSA_3072', 'RSASSA_PSS_SHA_384', 'sha384', 48],
        ['RSA_4096', 'RSASSA_PSS_SHA_512', 'sha512', 64],
      ] as const) {
        it(`${spec} ${alg}: DIGEST signatures carry a ${bytes}-byte salt and verify both ways`, async () => {
          const key = await server.createKey(spec);
          const pub = spkiKey(key.publicKey!);
          expect(key.signingAlgorithms).to.include(alg);
          const sig = await pssSign(key.keyId, alg, 'DIGEST', sha(hash, message));
          expect(sig).to.have.length(Number(spec.slice(4)) / 8);
          expect(crypto.verify(hash, message, { key: pub, padding: PSS, saltLength: bytes }, sig)).to.equal(true);
          expect(crypto.verify(hash, message, { key: pub, padding: PSS, saltLength: 32 }, sig)).to.equal(false);
          expect((await kmsVerify(key.keyId, alg, 'RAW', message, sig)).SignatureValid).to.equal(true);
          // a digest of another length is refused, as KMS does
          await expectKmsError(pssSign(key.keyId, alg, 'DIGEST', sha('sha256', message)), 'ValidationException');
        });
      }
    });

    it('rejects wrong key usage, algorithms and digest lengths', async () => {
      const sign = (KeyId: string, SigningAlgorithm: SigningAlgorithmSpec, Message: Buffer, MessageType: 'RAW' | 'DIGEST' = 'RAW') =>
        kms.send(new SignCommand({ KeyId, SigningAlgorithm, Message, MessageType }));
      await expectKmsError(sign(symKeyId, 'ECDSA_SHA_256', message), 'InvalidKeyUsageException');
      await expectKmsError(sign(ecKeyId, 'RSASSA_PSS_SHA_256', message), 'InvalidKeyUsageException');
      await expectKmsError(sign(rsaKeyId, 'ECDSA_SHA_256', message), 'InvalidKeyUsageException');
      await expectKmsError(sign(ecKeyId, 'ECDSA_SHA_256', Buffer.alloc(31), 'DIGEST'), 'ValidationException');
      await expectKmsError(kms.send(new EncryptCommand({ KeyId: ecKeyId, Plaintext: message })), 'InvalidKeyUsageException');
      await expectKmsError(kms.send(new GetPublicKeyCommand({ KeyId: symKeyId })), 'UnsupportedOperationException');
    });
  });

  describe('fault injection and counters', () => {
    const encrypt = (client: KMSClient) => client.send(new EncryptCommand({ KeyId: symKeyId, Plaintext: Buffer.from('x') }));

    it('counts calls per operation', async () => {
      expect(server.calls.Decrypt).to.equal(0);
      expect(server.calls.Sign).to.equal(0);
      for (let i = 0; i < 3; i++) {
        await kms.send(new SignCommand({ KeyId: ecKeyId, Message: Buffer.from('m'), SigningAlgorithm: 'ECDSA_SHA_256' }));
      }
      await encrypt(kms);
      expect(server.calls.Sign).to.equal(3);
      expect(server.calls.Encrypt).to.equal(1);
      expect(server.calls.Decrypt).to.equal(0);
      expect(server.totalCalls).to.equal(4);
      await server.reset();
      expect(server.calls.Sign).to.equal(0);
    });

    it('failNext(n, name) fails the next n requests with that error name', async () => {
      server.failNext(2, 'KMSInternalException');
      const e1 = await expectKmsError(encrypt(once), 'KMSInternalException');
      expect(e1.$fault).to.equal('server');
      expect(e1.$metadata!.httpStatusCode).to.equal(500);
      await expectKmsError(once.send(new DescribeKeyCommand({ KeyId: symKeyId })), 'KMSInternalException');
      await encrypt(once);
      expect(server.calls.Encrypt).to.equal(2);
      expect(server.calls.DescribeKey).to.equal(1);

      // every error name the SDK must recognise, modelled or not
      for (const name of [
        'NotFoundException', 'DisabledException', 'KMSInvalidStateException', 'InvalidCiphertextException',
        'ThrottlingException', 'DependencyTimeoutException', 'KMSInternalException', 'ValidationException',
        'IncorrectKeyException', 'KeyUnavailableException',
      ]) {
        server.failNext(1, name, { message: `boom ${name}` });
        const err = await expectKmsError(encrypt(once), name);
        expect(err.message).to.equal(`boom ${name}`);
      }
      await encrypt(once);
    });

    it('failNext can target one operation, and the retrying SDK client rides over a transient failure', async () => {
      server.failNext(1, 'DependencyTimeoutException', { operation: 'Sign' });
      await encrypt(once); // not consumed by Encrypt
      const err = await expectKmsError(
        once.send(new SignCommand({ KeyId: ecKeyId, Message: Buffer.from('m'), SigningAlgorithm: 'ECDSA_SHA_256' })),
        'DependencyTimeoutException',
      );
      expect(err.$metadata!.httpStatusCode).to.equal(503);

      await server.reset();
      server.failNext(1, 'KMSInternalException');
      const ok = await encrypt(kms);
      expect(ok.$metadata.attempts).to.equal(2);
      expect(server.calls.Encrypt).to.equal(2);
    });

    it('setLatency delays responses', async () => {
      server.setLatency(150);
      const t0 = Date.now();
      await encrypt(once);
      expect(Date.now() - t0).to.be.at.least(140);
      // a client with a shorter request timeout gives up
      const impatient = new KMSClient({
        endpoint: server.endpoint,
        region: 'us-east-1',
        credentials: { accessKeyId: 'AKIDTEST', secretAccessKey: 'secret' },
        maxAttempts: 1,
        requestHandler: { requestTimeout: 50, throwOnRequestTimeout: true },
      });
      try {
        const err = await rejection(encrypt(impatient));
        expect(err.name).to.equal('TimeoutError');
        expect(err.$metadata?.httpStatusCode).to.equal(undefined);
      } finally {
        impatient.destroy();
      }
      server.setLatency(0);
      const t1 = Date.now();
      await encrypt(once);
      expect(Date.now() - t1).to.be.below(140);
    });

    it('setThrottle answers ThrottlingException beyond the rate', async () => {
      server.setThrottle(3);
      const results = await Promise.allSettled(Array.from({ length: 6 }, () => encrypt(once)));
      const ok = results.filter((r) => r.status === 'fulfilled');
      const throttled = results.filter((r) => r.status === 'rejected').map((r) => (r.reason as Error).name);
      expect(ok).to.have.length(3);
      expect(throttled).to.deep.equal(['ThrottlingException', 'ThrottlingException', 'ThrottlingException']);
      server.setThrottle(null);
      await encrypt(once);
    });

    it('down() makes the SDK see a network error, up() brings it back', async () => {
      await encrypt(once); // leaves a keep-alive connection in the pool
      await server.down();
      expect(server.isDown).to.equal(true);
      const err = await rejection(encrypt(once));
      expect(err.$metadata?.httpStatusCode).to.equal(undefined);
      expect(err.code).to.be.oneOf(['ECONNREFUSED', 'ECONNRESET', 'EPIPE']);
      await server.up();
      await encrypt(once);

      // a request in flight when the server goes down is cut off too
      server.setLatency(300);
      const inFlight = rejection(encrypt(once));
      await new Promise((r) => setTimeout(r, 50));
      await server.down();
      const cut = await inFlight;
      expect(cut.$metadata?.httpStatusCode).to.equal(undefined);
      expect(cut.code).to.be.oneOf(['ECONNRESET', 'EPIPE']);
      await server.reset(); // also brings it up
      expect(server.isDown).to.equal(false);
      await encrypt(once);
    });
  });

  describe('direct helpers', () => {
    it('createKey makes usable keys with optional alias', async () => {
      for (const spec of ['SYMMETRIC_DEFAULT', 'ECC_NIST_P256'] as KmsKeySpec[]) {
        const alias = `alias/helper-${spec.toLowerCase()}`;
        const key = await server.createKey({ keySpec: spec, alias, description: 'made directly' });
        expect(key.arn).to.equal(`arn:aws:kms:us-east-1:111122223333:key/${key.keyId}`);
        expect(key.aliases).to.deep.equal([alias]);
        const md = await kms.send(new DescribeKeyCommand({ KeyId: alias }));
        expect(md.KeyMetadata).to.include({ KeyId: key.keyId, KeySpec: spec, Description: 'made directly' });
      }
      expect(server.calls.CreateKey).to.equal(0);
    });
  });
});
