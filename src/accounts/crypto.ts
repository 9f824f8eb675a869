// Encryption of account records and blind indexes.
//
// Every account has its own 32-byte data key from the keyring
// (newDataKey('account:<sub>')), stored wrapped beside the blob. The blob is
// AES-256-GCM over the JSON of the personal data, with the record's sub as
// additional authenticated data, so a blob copied onto another record does not
// open. Lookups use blind indexes: HMAC-SHA256 under the keyring's
// blind-index key of a normalized identifier, never the identifier itself.
import crypto from 'node:crypto';
import type { Keyring } from '../keys/types.ts';

const BLOB_VERSION = 'v1';

function aad(sub: string): Buffer {
  return Buffer.from(`idp/account/${BLOB_VERSION}:${sub}`);
}

export function dataKeyContext(sub: string): string {
  return `account:${sub}`;
}

/** "v1.<iv>.<tag>.<ciphertext>" (base64url) */
export function seal(key: Buffer, sub: string, value: unknown): string {
  const iv = crypto.randomBytes(12);
  const c = crypto.createCipheriv('aes-256-gcm', key, iv);
  c.setAAD(aad(sub));
  const ct = Buffer.concat([c.update(JSON.stringify(value), 'utf8'), c.final()]);
  return [BLOB_VERSION, iv.toString('base64url'), c.getAuthTag().toString('base64url'), ct.toString('base64url')].join('.');
}

export class BlobIntegrityError extends Error {
  override name = 'BlobIntegrityError';
}

export function open<T>(key: Buffer, sub: string, blob: string): T {
  const [v, iv, tag, ct] = blob.split('.');
  if (v !== BLOB_VERSION || !iv || !tag || ct === undefined) throw new BlobIntegrityError(`account ${sub}: unknown blob format`);
  try {
    const d = crypto.createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64url'));
    d.setAAD(aad(sub));
    d.setAuthTag(Buffer.from(tag, 'base64url'));
    const pt = Buffer.concat([d.update(Buffer.from(ct, 'base64url')), d.final()]);
    return JSON.parse(pt.toString('utf8')) as T;
  } catch {
    throw new BlobIntegrityError(`account ${sub}: the encrypted record does not authenticate`);
  }
}

/** Blind index of one identifier; `kind` separates the e-mail, phone and source spaces. */
export function blindIndex(key: Buffer, kind: 'email' | 'phone' | 'source' | 'fed', normalized: string): string {
  return crypto.createHmac('sha256', key).update(`${kind}\0${normalized}`).digest('base64url');
}

/**
 * Unwrapped data keys, bounded in count and in age, so a login opens its
 * record with no keyring (KMS) call in the common case. Entries are keyed by
 * sub and remember the wrapped key they came from: a record whose wrapped key
 * changed (erased, re-created) misses the cache.
 */
export class DataKeyCache {
  private readonly entries = new Map<string, { wrapped: string; key: Buffer; at: number }>();
  private readonly maxEntries: number;
  private readonly maxAgeMs: number;
  /** keyring unwraps done (for tests and metrics) */
  misses = 0;
  hits = 0;

  constructor(opts: { maxEntries: number; maxAgeMs: number }) {
    this.maxEntries = Math.max(0, opts.maxEntries);
    this.maxAgeMs = opts.maxAgeMs;
  }

  get(sub: string, wrapped: string): Buffer | undefined {
    const e = this.entries.get(sub);
    if (!e) return undefined;
    if (e.wrapped !== wrapped || Date.now() - e.at > this.maxAgeMs) {
      this.entries.delete(sub);
      return undefined;
    }
    // refresh recency (Map keeps insertion order: oldest first)
    this.entries.delete(sub);
    this.entries.set(sub, e);
    return e.key;
  }

  set(sub: string, wrapped: string, key: Buffer): void {
    if (this.maxEntries === 0) return;
    this.entries.delete(sub);
    this.entries.set(sub, { wrapped, key, at: Date.now() });
    while (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next().value as string;
      this.entries.delete(oldest);
    }
  }

  delete(sub: string): void {
    this.entries.delete(sub);
  }

  get size(): number {
    return this.entries.size;
  }

  async open(keyring: Keyring, sub: string, wrapped: string): Promise<Buffer> {
    const hit = this.get(sub, wrapped);
    if (hit) {
      this.hits++;
      return hit;
    }
    this.misses++;
    const key = await keyring.openDataKey(wrapped, dataKeyContext(sub));
    this.set(sub, wrapped, key);
    return key;
  }
}
