// New signing keys and cookie keys. kid is the RFC 7638 thumbprint.
import crypto from 'node:crypto';
import { generateKeyPair, exportJWK, calculateJwkThumbprint, type JWK } from 'jose';
import type { SigningAlg } from './types.ts';

export async function generateSigningJwk(alg: SigningAlg): Promise<JWK> {
  // RS256 and PS256 are RSA-2048 keys (each alg its own key); the JWK's alg binds it to one padding
  const rsa = alg === 'RS256' || alg === 'PS256';
  const opts = rsa ? { modulusLength: 2048, extractable: true } : { extractable: true, crv: alg === 'EdDSA' ? 'Ed25519' : undefined };
  const { privateKey } = await generateKeyPair(alg, opts);
  const jwk = await exportJWK(privateKey);
  jwk.kid = await calculateJwkThumbprint(jwk, 'sha256');
  jwk.alg = alg;
  jwk.use = 'sig';
  return jwk;
}

export function generateCookieKey(): string {
  return crypto.randomBytes(32).toString('base64url');
}
