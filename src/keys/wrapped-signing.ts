// Signing keys generated in this process and stored as wrapped private JWKs
// (local and kms-envelope modes). The wrapper's context "signing:<kid>" binds
// each ciphertext to its kid; on opening, the private key's own thumbprint must
// equal the kid, and the public JWK served is derived from the private key,
// never taken from the stored record.
import { calculateJwkThumbprint, type JWK } from 'jose';
import { generateSigningJwk } from './generate.ts';
import type { SecretWrapper, SigningBackend, CreatedSigningKey } from './managed.ts';
import type { StoredSigningKey } from './store.ts';
import { KeyIntegrityError, type ProviderSigningKey, type SigningAlg } from './types.ts';

const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k', 'priv'];

export function publicJwkOf(jwk: JWK): JWK {
  return Object.fromEntries(Object.entries(jwk).filter(([name]) => !PRIVATE_MEMBERS.includes(name))) as JWK;
}

export class WrappedJwkSigning implements SigningBackend {
  readonly external = false;
  readonly algs: readonly SigningAlg[];
  private readonly wrapper: SecretWrapper;

  constructor(wrapper: SecretWrapper, algs: readonly SigningAlg[]) {
    this.wrapper = wrapper;
    this.algs = algs;
  }

  async create(alg: SigningAlg, opts: { kmsKeyId?: string }): Promise<CreatedSigningKey> {
    if (opts.kmsKeyId) throw new Error('--kms-key-id is only for KEYS_MODE=kms-sign');
    const jwk = await generateSigningJwk(alg);
    const wrapped = await this.wrapper.wrap(Buffer.from(JSON.stringify(jwk)), `signing:${jwk.kid}`);
    return { kid: jwk.kid!, publicJwk: publicJwkOf(jwk), wrapped };
  }

  async open(rec: StoredSigningKey): Promise<{ providerKey: ProviderSigningKey; publicJwk: JWK }> {
    if (!rec.wrapped) {
      throw new Error(`signing key ${rec.kid} has no wrapped private key (it was made in KEYS_MODE=kms-sign; this keys table belongs to another mode)`);
    }
    const plain = await this.wrapper.unwrap(rec.wrapped, `signing:${rec.kid}`);
    let jwk: JWK;
    try {
      jwk = JSON.parse(plain.toString()) as JWK;
    } catch {
      throw new KeyIntegrityError(`signing key ${rec.kid}: the unwrapped private key is not a JWK`, `signing:${rec.kid}`);
    } finally {
      plain.fill(0);
    }
    const thumbprint = await calculateJwkThumbprint(jwk, 'sha256');
    if (thumbprint !== rec.kid || jwk.alg !== rec.alg) {
      throw new KeyIntegrityError(`signing key ${rec.kid}: the private key does not match its record (thumbprint ${thumbprint}, alg ${jwk.alg})`, `signing:${rec.kid}`);
    }
    const key = { ...jwk, kid: rec.kid, alg: rec.alg, use: 'sig' };
    return { providerKey: key, publicJwk: publicJwkOf(key) };
  }
}
