// AWS KMS for the two KMS modes, through @aws-sdk/client-kms:
//  - KmsWrapper: envelope encryption. Each stored secret (private JWK, cookie
//    key, blind-index key) is sealed with AES-256-GCM under a fresh data key
//    from GenerateDataKey; the data key is stored encrypted under KMS_KEY_ID.
//    Account data keys are GenerateDataKey / Decrypt directly. The
//    EncryptionContext binds every ciphertext to its purpose and kid/context,
//    so a ciphertext moved to another record does not decrypt.
//  - KmsSigningKey: an asymmetric KMS key used through oidc-provider's
//    ExternalSigningKey. The JWS signing input is hashed here and KMS signs the
//    digest (MessageType DIGEST); ECDSA signatures come back DER-encoded and
//    are converted to JOSE r||s; RSA signatures (PKCS#1 v1.5 for RS256, PSS
//    for PS256) are used as they come. The private key never enters the process.
// KMS failures become KmsUnavailable (a 503 temporarily_unavailable when it
// reaches oidc-provider or our routes), except ciphertexts KMS refuses as
// invalid, which are KeyIntegrityError naming the context.
import crypto from 'node:crypto';
import {
  KMSClient, CreateKeyCommand, DecryptCommand, GenerateDataKeyCommand, GetPublicKeyCommand, SignCommand,
  type KeySpec, type SigningAlgorithmSpec,
} from '@aws-sdk/client-kms';
import { calculateJwkThumbprint, type JWK } from 'jose';
import { ExternalSigningKey } from 'oidc-provider';
import type { Logger } from '../logging/index.ts';
import { instrumentSdkClient, type Metrics } from '../logging/metrics.ts';
import { ServiceUnavailable } from '../storage/errors.ts';
import { KeyIntegrityError, type DataKey, type SigningAlg } from './types.ts';

/** KMS could not be used (unreachable, slow, throttled, key disabled...): answer 503 and retry later. */
export class KmsUnavailable extends ServiceUnavailable {
  /** operator-facing detail, for logs and start-up messages (never sent to clients) */
  readonly detail: string;
  /** the KMS/SDK error name, e.g. ThrottlingException, DisabledException, TimeoutError */
  readonly kmsError: string;
  readonly operation: string;
  constructor(operation: string, kmsError: string, detail: string) {
    super();
    this.operation = operation;
    this.kmsError = kmsError;
    this.detail = detail;
  }
}

export interface KmsOptions {
  endpoint: string | undefined;
  region: string;
  timeoutMs: number;
  /** every KMS call timed and its errors counted by operation (/metrics) */
  metrics?: Metrics;
}

export function createKmsClient(opts: KmsOptions): KMSClient {
  const local = opts.endpoint !== undefined && /^http:\/\/(127\.0\.0\.1|localhost|\[::1\])[:/]/.test(opts.endpoint);
  const client = new KMSClient({
    region: opts.region,
    endpoint: opts.endpoint,
    // a local KMS look-alike accepts any credentials; real KMS uses the default chain
    ...(local ? { credentials: { accessKeyId: 'local', secretAccessKey: 'local' } } : {}),
    // one retry: a token request must not wait long on KMS
    maxAttempts: 2,
    // without throwOnRequestTimeout the SDK only warns when requestTimeout passes, and keeps waiting
    requestHandler: { connectionTimeout: Math.min(opts.timeoutMs, 1000), requestTimeout: opts.timeoutMs, throwOnRequestTimeout: true },
  });
  const { metrics } = opts;
  if (metrics) instrumentSdkClient(client, (op, s, error) => metrics.observeKms(op, s, error));
  return client;
}

const INTEGRITY_ERRORS = new Set(['InvalidCiphertextException', 'IncorrectKeyException']);

function errorName(err: unknown): string {
  const e = err as { name?: string; code?: string };
  return e?.name && e.name !== 'Error' ? e.name : e?.code ?? 'Error';
}

/** map a KMS/SDK failure to KeyIntegrityError (the ciphertext is bad) or KmsUnavailable (everything else) */
export function kmsFailure(err: unknown, operation: string, ref: string): KeyIntegrityError | KmsUnavailable {
  if (err instanceof KeyIntegrityError || err instanceof KmsUnavailable) return err;
  const name = errorName(err);
  const message = (err as Error)?.message ?? String(err);
  if (INTEGRITY_ERRORS.has(name)) {
    return new KeyIntegrityError(`wrapped secret for ${ref} was refused by KMS (${name}: tampered, or wrapped for another use)`, ref);
  }
  return new KmsUnavailable(operation, name, `KMS ${operation} for ${ref} failed: ${name}: ${message}`);
}

/** EncryptionContext for a context string "purpose:ref" (signing:<kid>, cookie:<id>, secret:<name>, data:<context>) */
export function encryptionContext(context: string): Record<string, string> {
  const i = context.indexOf(':');
  const purpose = i < 0 ? context : context.slice(0, i);
  const ref = i < 0 ? '' : context.slice(i + 1);
  const field = purpose === 'signing' || purpose === 'cookie' ? 'kid' : purpose === 'data' ? 'context' : 'name';
  return { service: 'idp', purpose, [field]: ref };
}

const ENVELOPE = 'k1';
const DATA_KEY = 'kd1';

function b64(buf: Uint8Array): string {
  return Buffer.from(buf).toString('base64url');
}

export class KmsWrapper {
  private readonly client: KMSClient;
  private readonly keyId: string;
  private readonly log: Logger;

  constructor(client: KMSClient, keyId: string, log: Logger) {
    this.client = client;
    this.keyId = keyId;
    this.log = log;
  }

  private fail(err: unknown, operation: string, ref: string): never {
    const e = kmsFailure(err, operation, ref);
    // integrity errors are logged by the keyring, which sees every mode's
    if (e instanceof KmsUnavailable) this.log.warn({ event: 'kms.error', operation, ref, kmsError: e.kmsError, detail: e.detail }, 'KMS call failed');
    throw e;
  }

  private async generate(context: string): Promise<{ plaintext: Buffer; blob: Buffer }> {
    try {
      const r = await this.client.send(new GenerateDataKeyCommand({ KeyId: this.keyId, KeySpec: 'AES_256', EncryptionContext: encryptionContext(context) }));
      return { plaintext: Buffer.from(r.Plaintext!), blob: Buffer.from(r.CiphertextBlob!) };
    } catch (err) {
      this.fail(err, 'GenerateDataKey', context);
    }
  }

  private async decrypt(blob: Buffer, context: string): Promise<Buffer> {
    try {
      const r = await this.client.send(new DecryptCommand({ KeyId: this.keyId, CiphertextBlob: blob, EncryptionContext: encryptionContext(context) }));
      return Buffer.from(r.Plaintext!);
    } catch (err) {
      this.fail(err, 'Decrypt', context);
    }
  }

  /** envelope: a fresh data key (one GenerateDataKey) seals the secret with AES-256-GCM, context as AAD */
  async wrap(plaintext: Buffer, context: string): Promise<string> {
    const dk = await this.generate(context);
    try {
      const iv = crypto.randomBytes(12);
      const cipher = crypto.createCipheriv('aes-256-gcm', dk.plaintext, iv);
      cipher.setAAD(Buffer.from(context));
      const ct = Buffer.concat([cipher.update(plaintext), cipher.final()]);
      return [ENVELOPE, b64(dk.blob), b64(iv), b64(ct), b64(cipher.getAuthTag())].join('.');
    } finally {
      dk.plaintext.fill(0);
    }
  }

  /** one Decrypt of the data key, then AES-256-GCM */
  async unwrap(wrapped: string, context: string): Promise<Buffer> {
    const [v, blob, iv, ct, tag, extra] = wrapped.split('.');
    if (v !== ENVELOPE || !blob || !iv || !ct || !tag || extra !== undefined) {
      throw new KeyIntegrityError(`wrapped secret for ${context} is malformed (not a kms-envelope ciphertext)`, context);
    }
    const dk = await this.decrypt(Buffer.from(blob, 'base64url'), context);
    try {
      const decipher = crypto.createDecipheriv('aes-256-gcm', dk, Buffer.from(iv, 'base64url'));
      decipher.setAAD(Buffer.from(context));
      decipher.setAuthTag(Buffer.from(tag, 'base64url'));
      return Buffer.concat([decipher.update(Buffer.from(ct, 'base64url')), decipher.final()]);
    } catch {
      throw new KeyIntegrityError(`wrapped secret for ${context} failed authentication (tampered)`, context);
    } finally {
      dk.fill(0);
    }
  }

  /** one GenerateDataKey; the stored form is the KMS ciphertext blob */
  async newDataKey(context: string): Promise<DataKey> {
    const dk = await this.generate(`data:${context}`);
    return { plaintext: dk.plaintext, wrapped: `${DATA_KEY}.${b64(dk.blob)}` };
  }

  /** one Decrypt */
  async openDataKey(wrapped: string, context: string): Promise<Buffer> {
    const [v, blob, extra] = wrapped.split('.');
    if (v !== DATA_KEY || !blob || extra !== undefined) {
      throw new KeyIntegrityError(`data key for data:${context} is malformed (not a kms-envelope data key)`, `data:${context}`);
    }
    return this.decrypt(Buffer.from(blob, 'base64url'), `data:${context}`);
  }
}

// ---------------------------------------------------------------- kms-sign

// PS256: KMS's RSASSA_PSS_SHA_256 uses MGF1 with SHA-256 and a salt as long as
// the digest (32 bytes), which is what RFC 7518 3.5 requires of PS256. RS256
// and PS256 each have their own RSA_2048 KMS key.
export const KMS_SIGNING: Partial<Record<SigningAlg, { keySpec: KeySpec; algorithm: SigningAlgorithmSpec; ecdsaSize?: number }>> = {
  RS256: { keySpec: 'RSA_2048', algorithm: 'RSASSA_PKCS1_V1_5_SHA_256' },
  PS256: { keySpec: 'RSA_2048', algorithm: 'RSASSA_PSS_SHA_256' },
  ES256: { keySpec: 'ECC_NIST_P256', algorithm: 'ECDSA_SHA_256', ecdsaSize: 32 },
};

/** the algorithms kms-sign can offer: KMS has no Ed25519 keys, so no EdDSA */
export const KMS_SIGN_ALGS = Object.keys(KMS_SIGNING) as SigningAlg[];

const notInKmsSign = (alg: SigningAlg) => new Error(`${alg} is not available in kms-sign mode (KMS offers ${KMS_SIGN_ALGS.join(', ')})`);

/** DER ECDSA-Sig-Value → JOSE r||s, each left-padded to `size` bytes */
export function derToJose(der: Uint8Array, size: number): Buffer {
  const buf = Buffer.from(der);
  let off = 0;
  const len = (): number => {
    const first = buf[off++];
    if (first < 0x80) return first;
    const n = first & 0x7f;
    let v = 0;
    for (let i = 0; i < n; i++) v = (v << 8) | buf[off++];
    return v;
  };
  if (buf[off++] !== 0x30) throw new Error('ECDSA signature is not a DER SEQUENCE');
  const seqLen = len();
  if (off + seqLen !== buf.length) throw new Error('ECDSA signature has a bad length');
  const ints: Buffer[] = [];
  for (let i = 0; i < 2; i++) {
    if (buf[off++] !== 0x02) throw new Error('ECDSA signature is not two DER INTEGERs');
    const l = len();
    let v = buf.subarray(off, off + l);
    off += l;
    while (v.length > size && v[0] === 0) v = v.subarray(1);
    if (v.length > size) throw new Error('ECDSA signature integer is too long');
    ints.push(Buffer.concat([Buffer.alloc(size - v.length), v]));
  }
  return Buffer.concat(ints);
}

/** GetPublicKey → public JWK with kid (RFC 7638 thumbprint), alg and use; checks the key fits the alg */
export async function kmsPublicJwk(client: KMSClient, kmsKeyId: string, alg: SigningAlg): Promise<{ jwk: JWK; keyObject: crypto.KeyObject; arn: string }> {
  const spec = KMS_SIGNING[alg];
  if (!spec) throw notInKmsSign(alg);
  let r;
  try {
    r = await client.send(new GetPublicKeyCommand({ KeyId: kmsKeyId }));
  } catch (err) {
    throw kmsFailure(err, 'GetPublicKey', kmsKeyId);
  }
  if (r.KeyUsage !== 'SIGN_VERIFY' || r.KeySpec !== spec.keySpec || !r.SigningAlgorithms?.includes(spec.algorithm)) {
    throw new Error(`KMS key ${kmsKeyId} is ${r.KeySpec}/${r.KeyUsage}, ${alg} needs ${spec.keySpec} for SIGN_VERIFY with ${spec.algorithm}`);
  }
  const keyObject = crypto.createPublicKey({ key: Buffer.from(r.PublicKey!), format: 'der', type: 'spki' });
  const exported = keyObject.export({ format: 'jwk' }) as JWK;
  const jwk: JWK = { ...exported, kid: await calculateJwkThumbprint(exported, 'sha256'), alg, use: 'sig' };
  return { jwk, keyObject, arn: r.KeyId ?? kmsKeyId };
}

/** CreateKey for `alg`; returns the new key's ARN */
export async function kmsCreateSigningKey(client: KMSClient, alg: SigningAlg, description: string): Promise<string> {
  const spec = KMS_SIGNING[alg];
  if (!spec) throw notInKmsSign(alg);
  try {
    const r = await client.send(new CreateKeyCommand({
      KeySpec: spec.keySpec, KeyUsage: 'SIGN_VERIFY', Description: description,
      Tags: [{ TagKey: 'idp:purpose', TagValue: 'signing' }, { TagKey: 'idp:alg', TagValue: alg }],
    }));
    return r.KeyMetadata!.Arn ?? r.KeyMetadata!.KeyId!;
  } catch (err) {
    throw kmsFailure(err, 'CreateKey', `a new ${alg} signing key`);
  }
}

/** An asymmetric KMS key as an oidc-provider signing key: public half cached here, private half in KMS. */
export class KmsSigningKey extends ExternalSigningKey {
  readonly #client: KMSClient;
  readonly #kmsKeyId: string;
  readonly #publicKey: crypto.KeyObject;
  readonly #log: Logger;
  readonly #kid: string;
  readonly #alg: SigningAlg;

  constructor(client: KMSClient, kmsKeyId: string, kid: string, alg: SigningAlg, publicKey: crypto.KeyObject, log: Logger) {
    super();
    this.#client = client;
    this.#kmsKeyId = kmsKeyId;
    this.#publicKey = publicKey;
    this.#log = log;
    this.#kid = kid;
    this.#alg = alg;
  }

  override get kid(): string {
    return this.#kid;
  }

  override get alg(): string {
    return this.#alg;
  }

  get kmsKeyId(): string {
    return this.#kmsKeyId;
  }

  override keyObject(): crypto.KeyObject {
    return this.#publicKey;
  }

  /** hash the JWS signing input here; KMS signs the digest */
  override async sign(data: Uint8Array): Promise<Uint8Array> {
    const spec = KMS_SIGNING[this.#alg]!;
    const digest = crypto.createHash('sha256').update(data).digest();
    let signature: Uint8Array;
    try {
      const r = await this.#client.send(new SignCommand({ KeyId: this.#kmsKeyId, Message: digest, MessageType: 'DIGEST', SigningAlgorithm: spec.algorithm }));
      signature = r.Signature!;
    } catch (err) {
      const e = kmsFailure(err, 'Sign', `signing key ${this.#kid}`);
      this.#log.error({ event: 'kms.sign_failed', kid: this.#kid, alg: this.#alg, kmsKeyId: this.#kmsKeyId, kmsError: (e as KmsUnavailable).kmsError ?? e.name, detail: (e as KmsUnavailable).detail ?? e.message }, 'KMS signing failed; answering 503');
      // a ciphertext error cannot happen on Sign: whatever failed, the token request is retryable
      throw e instanceof KmsUnavailable ? e : new KmsUnavailable('Sign', e.name, e.message);
    }
    return spec.ecdsaSize ? derToJose(signature, spec.ecdsaSize) : Buffer.from(signature);
  }
}
