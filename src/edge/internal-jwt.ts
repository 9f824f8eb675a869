// The internal JWT that forward-auth hands to the services behind a gateway:
// signed with the keyring's active key of EDGE_JWT_ALG, the very key material
// oidc-provider signs ID and access tokens with (a private JWK in local and
// kms-envelope modes, a KMS key through ExternalSigningKey in kms-sign), so it
// verifies against our /jwks like any other token of ours.
//
//   header  { alg, kid, typ: "internal+jwt" }      the typ keeps it apart from access tokens (at+jwt)
//   payload { iss, aud: <site audience>, sub, scope, roles: [], client_id?, iat, exp }
//
// The key is looked up again whenever the provider is rebuilt (a key
// rotation): from then on new JWTs carry the new kid, and the old key stays
// published until its tokens have expired.
import crypto from 'node:crypto';
import type { JWK } from 'jose';
import { ExternalSigningKey } from 'oidc-provider';
import { ConfigError, type EdgeJwtAlg } from '../config/index.ts';
import type { Keyring } from '../keys/types.ts';

export const INTERNAL_JWT_TYP = 'internal+jwt';

export interface InternalClaims {
  aud: string;
  sub: string;
  scope: string;
  roles: readonly string[];
  client_id?: string;
  /** epoch seconds; the JWT never outlives the credential it stands for */
  notAfter: number;
}

interface SigningKey {
  kid: string;
  /** the base64url signature of a JWS signing input */
  sign(input: Buffer): Promise<string>;
}

const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');

/** JWS signatures with node:crypto (RFC 7518: ECDSA as r||s, PSS with a digest-long salt) */
function localSigner(alg: EdgeJwtAlg, key: crypto.KeyObject): (input: Buffer) => Buffer {
  switch (alg) {
    case 'RS256': return (input) => crypto.sign('sha256', input, key);
    case 'PS256': return (input) => crypto.sign('sha256', input, { key, padding: crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 });
    case 'ES256': return (input) => crypto.sign('sha256', input, { key, dsaEncoding: 'ieee-p1363' });
    case 'EdDSA': return (input) => crypto.sign(null, input, key);
  }
}

export class InternalJwtSigner {
  readonly #keyring: Keyring;
  readonly #alg: EdgeJwtAlg;
  readonly #issuer: string;
  readonly #ttl: number;
  #key: SigningKey | undefined;
  #version: unknown;

  constructor(opts: { keyring: Keyring; alg: EdgeJwtAlg; issuer: string; ttlSeconds: number }) {
    if (!opts.keyring.algs.includes(opts.alg)) {
      throw new ConfigError(`EDGE_JWT_ALG must be one of the algorithms KEYS_MODE=${opts.keyring.mode} signs with (${opts.keyring.algs.join(', ')}), got "${opts.alg}"`);
    }
    this.#keyring = opts.keyring;
    this.#alg = opts.alg;
    this.#issuer = opts.issuer;
    this.#ttl = opts.ttlSeconds;
  }

  get ttlSeconds(): number {
    return this.#ttl;
  }

  /** the active key of our alg; looked up again when `version` (the provider instance) changes */
  #signingKey(version: unknown): SigningKey {
    if (this.#key && this.#version === version) return this.#key;
    const active = this.#keyring.keys().find((k) => k.kind === 'signing' && k.alg === this.#alg && k.state === 'active');
    const key = active && this.#keyring.signingJwks().find((k) => (k as { kid?: string }).kid === active.kid);
    if (!active || !key) throw new Error(`the keyring has no active ${this.#alg} signing key`);
    if (key instanceof ExternalSigningKey) {
      // kms-sign: KMS signs; the key object returns the JWS signature itself
      this.#key = { kid: active.kid, sign: async (input) => Buffer.from(await key.sign(input)).toString('base64url') };
    } else {
      const sign = localSigner(this.#alg, crypto.createPrivateKey({ key: key as JWK as crypto.JsonWebKey, format: 'jwk' }));
      this.#key = { kid: active.kid, sign: async (input) => sign(input).toString('base64url') };
    }
    this.#version = version;
    return this.#key;
  }

  /** a signed JWT and its expiry (epoch seconds) */
  async sign(claims: InternalClaims, version: unknown): Promise<{ jwt: string; exp: number }> {
    const key = this.#signingKey(version);
    const iat = Math.floor(Date.now() / 1000);
    const exp = Math.min(iat + this.#ttl, claims.notAfter);
    const { notAfter: _n, ...rest } = claims;
    const input = `${b64({ alg: this.#alg, kid: key.kid, typ: INTERNAL_JWT_TYP })}.${b64({ iss: this.#issuer, ...rest, iat, exp })}`;
    return { jwt: `${input}.${await key.sign(Buffer.from(input))}`, exp };
  }
}
