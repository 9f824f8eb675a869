// kms-sign: signing keys are asymmetric KMS keys (RSA_2048 for RS256, another
// RSA_2048 key for PS256, ECC_NIST_P256 for ES256). A record names its KMS key
// and carries the public JWK; on opening, GetPublicKey is asked once per key
// (then cached) and its thumbprint must equal the record's kid. No private key
// is ever in this process or in the keys table.
import type { KMSClient } from '@aws-sdk/client-kms';
import type { JWK } from 'jose';
import type { Logger } from '../logging/index.ts';
import type { CreatedSigningKey, SigningBackend } from './managed.ts';
import type { StoredSigningKey } from './store.ts';
import { KMS_SIGN_ALGS, KmsSigningKey, kmsCreateSigningKey, kmsPublicJwk } from './kms.ts';
import { KeyIntegrityError, type ProviderSigningKey, type SigningAlg } from './types.ts';

export class KmsSigning implements SigningBackend {
  readonly external = true;
  readonly algs: readonly SigningAlg[] = KMS_SIGN_ALGS;
  private readonly client: KMSClient;
  private readonly log: Logger;
  private readonly description: string;
  /** by alg and KMS key ARN: the public JWK carries the alg it was read for */
  private readonly publicKeys = new Map<string, Awaited<ReturnType<typeof kmsPublicJwk>>>();

  constructor(client: KMSClient, log: Logger, issuer: string) {
    this.client = client;
    this.log = log;
    this.description = `idp signing key for ${issuer}`;
  }

  async create(alg: SigningAlg, opts: { kmsKeyId?: string }): Promise<CreatedSigningKey> {
    const kmsKeyId = opts.kmsKeyId ?? await kmsCreateSigningKey(this.client, alg, `${this.description} (${alg})`);
    try {
      const pub = await kmsPublicJwk(this.client, kmsKeyId, alg);
      this.publicKeys.set(`${alg} ${pub.arn}`, pub);
      return { kid: pub.jwk.kid!, publicJwk: pub.jwk, kmsKeyId: pub.arn };
    } catch (err) {
      if (!opts.kmsKeyId) {
        // the KMS key exists but is not usable yet: nothing is published; the key is left for the operator
        this.log.error({ event: 'keys.kms_key_orphaned', kmsKeyId, alg, err: { name: (err as Error).name, message: (err as Error).message } },
          'created a KMS signing key but could not read its public key; no key record was written (schedule the KMS key for deletion)');
      }
      throw err;
    }
  }

  async open(rec: StoredSigningKey): Promise<{ providerKey: ProviderSigningKey; publicJwk: JWK }> {
    if (!rec.kmsKeyId) {
      throw new Error(`signing key ${rec.kid} is not a KMS key (it was made in KEYS_MODE=local or kms-envelope; this keys table belongs to another mode)`);
    }
    let pub = this.publicKeys.get(`${rec.alg} ${rec.kmsKeyId}`);
    if (!pub) {
      pub = await kmsPublicJwk(this.client, rec.kmsKeyId, rec.alg);
      this.publicKeys.set(`${rec.alg} ${rec.kmsKeyId}`, pub);
    }
    if (pub.jwk.kid !== rec.kid) {
      throw new KeyIntegrityError(`signing key ${rec.kid}: KMS key ${rec.kmsKeyId} has another public key (thumbprint ${pub.jwk.kid})`, `signing:${rec.kid}`);
    }
    return { providerKey: new KmsSigningKey(this.client, rec.kmsKeyId, rec.kid, rec.alg, pub.keyObject, this.log), publicJwk: pub.jwk };
  }
}
