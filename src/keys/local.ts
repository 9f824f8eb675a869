// The `local` keyring: the master key file wraps every stored secret.
// On first start it creates one active signing key per algorithm and two
// cookie keys, so that tokens and sessions survive a restart.
import type { JWK } from 'jose';
import type { Storage } from '../storage/index.ts';
import { loadOrCreateMasterKey, openLocal, sealLocal } from './master-key.ts';
import { KeyStore } from './store.ts';
import { generateCookieKey, generateSigningJwk } from './generate.ts';
import crypto from 'node:crypto';
import type { DataKey, Keyring, SigningAlg, SigningKeyRecord } from './types.ts';

export const SIGNING_ALGS: SigningAlg[] = ['RS256', 'ES256', 'EdDSA'];

const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];

export function publicJwkOf(jwk: JWK): JWK {
  return Object.fromEntries(Object.entries(jwk).filter(([name]) => !PRIVATE_MEMBERS.includes(name))) as JWK;
}

export class LocalKeyring implements Keyring {
  readonly mode = 'local';
  private readonly master: Buffer;
  private readonly store: KeyStore;
  private signing: SigningKeyRecord[] = [];
  private cookies: string[] = [];
  private indexKey: Buffer | undefined;

  constructor(storage: Storage, dataDir: string) {
    this.master = loadOrCreateMasterKey(dataDir);
    this.store = new KeyStore(storage);
  }

  async wrap(plaintext: Buffer, context: string): Promise<string> {
    return sealLocal(this.master, plaintext, context);
  }

  async unwrap(wrapped: string, context: string): Promise<Buffer> {
    return openLocal(this.master, wrapped, context);
  }

  async newDataKey(context: string): Promise<DataKey> {
    const plaintext = crypto.randomBytes(32);
    return { plaintext, wrapped: await this.wrap(plaintext, `data:${context}`) };
  }

  async openDataKey(wrapped: string, context: string): Promise<Buffer> {
    return this.unwrap(wrapped, `data:${context}`);
  }

  blindIndexKey(): Buffer {
    if (!this.indexKey) throw new Error('keyring not initialised');
    return this.indexKey;
  }

  /** Create what is missing (under a lock), then load everything into memory. */
  async init(): Promise<this> {
    const complete = async () => {
      const [s, c] = await Promise.all([this.store.signingKeys(), this.store.cookieKeys()]);
      return SIGNING_ALGS.every((alg) => s.some((k) => k.alg === alg && k.state === 'active')) && c.length > 0
        && (await this.store.secret('blind-index')) !== undefined;
    };
    if (!(await complete())) {
      await this.store.withLock('bootstrap', async () => {
        const existing = await this.store.signingKeys();
        for (const alg of SIGNING_ALGS) {
          if (existing.some((k) => k.alg === alg && k.state === 'active')) continue;
          const jwk = await generateSigningJwk(alg);
          await this.store.putSigningKey({
            kid: jwk.kid!, alg, state: 'active', createdAt: new Date().toISOString(),
            wrapped: await this.wrap(Buffer.from(JSON.stringify(jwk)), `signing:${jwk.kid}`),
            publicJwk: publicJwkOf(jwk),
          });
        }
        if (!(await this.store.secret('blind-index'))) {
          await this.store.putSecret('blind-index', await this.wrap(crypto.randomBytes(32), 'secret:blind-index'));
        }
        if ((await this.store.cookieKeys()).length === 0) {
          const id = new Date().toISOString();
          await this.store.putCookieKey({ id, createdAt: id, wrapped: await this.wrap(Buffer.from(generateCookieKey()), `cookie:${id}`) });
        }
      });
    }
    await this.reload();
    return this;
  }

  async reload(): Promise<void> {
    const [s, c] = await Promise.all([this.store.signingKeys(), this.store.cookieKeys()]);
    const order = { active: 0, next: 1, retired: 2 } as const;
    this.signing = await Promise.all(s.sort((a, b) => order[a.state] - order[b.state] || b.createdAt.localeCompare(a.createdAt)).map(async (k) => ({
      kid: k.kid, alg: k.alg, state: k.state, createdAt: k.createdAt,
      jwk: JSON.parse((await this.unwrap(k.wrapped, `signing:${k.kid}`)).toString()) as JWK,
    })));
    const idx = await this.store.secret('blind-index');
    this.indexKey = idx ? await this.unwrap(idx, 'secret:blind-index') : undefined;
    this.cookies = await Promise.all(c.sort((a, b) => b.createdAt.localeCompare(a.createdAt))
      .map(async (k) => (await this.unwrap(k.wrapped, `cookie:${k.id}`)).toString()));
  }

  signingJwks(): JWK[] {
    return this.signing.map((k) => k.jwk);
  }

  cookieKeys(): string[] {
    return this.cookies;
  }
}
