// The `local` keyring: the master key file (DATA_DIR/master.key, 0600) wraps
// every stored secret with AES-256-GCM. Signing keys are generated here and
// stored as wrapped private JWKs. On first start it creates one active signing
// key per algorithm, a cookie key and the blind-index key, so that tokens and
// sessions survive a restart; rotation is ManagedKeyring's.
import crypto from 'node:crypto';
import type { Storage } from '../storage/index.ts';
import { createLogger, type Logger } from '../logging/index.ts';
import { loadOrCreateMasterKey, openLocal, sealLocal } from './master-key.ts';
import { KeyStore } from './store.ts';
import { ManagedKeyring, type KeyPolicy, type SecretWrapper } from './managed.ts';
import { WrappedJwkSigning } from './wrapped-signing.ts';
import type { DataKey, SigningAlg } from './types.ts';

export { publicJwkOf } from './wrapped-signing.ts';

export const SIGNING_ALGS: SigningAlg[] = ['RS256', 'PS256', 'ES256', 'EdDSA'];

/** rotation defaults when no configuration is given (the CLI and tests pass the configured policy) */
export const DEFAULT_POLICY: KeyPolicy = {
  prepublishSeconds: 86400,
  maxAgeSeconds: 90 * 86400,
  refreshSeconds: 60,
  removeGraceSeconds: 300,
  tokenLifetimeSeconds: async () => 86400,
  cookieLifetimeSeconds: 14 * 86400,
};

export class LocalWrapper implements SecretWrapper {
  private readonly master: Buffer;
  constructor(master: Buffer) {
    this.master = master;
  }

  async wrap(plaintext: Buffer, context: string): Promise<string> {
    return sealLocal(this.master, plaintext, context);
  }

  async unwrap(wrapped: string, context: string): Promise<Buffer> {
    return openLocal(this.master, wrapped, context);
  }

  async newDataKey(context: string): Promise<DataKey> {
    const plaintext = crypto.randomBytes(32);
    return { plaintext, wrapped: sealLocal(this.master, plaintext, `data:${context}`) };
  }

  async openDataKey(wrapped: string, context: string): Promise<Buffer> {
    return openLocal(this.master, wrapped, `data:${context}`);
  }
}

export class LocalKeyring extends ManagedKeyring {
  constructor(storage: Storage, dataDir: string, opts: { policy?: KeyPolicy; log?: Logger } = {}) {
    const wrapper = new LocalWrapper(loadOrCreateMasterKey(dataDir));
    super({
      mode: 'local', store: new KeyStore(storage), wrapper,
      backend: new WrappedJwkSigning(wrapper, SIGNING_ALGS),
      policy: opts.policy ?? DEFAULT_POLICY,
      log: opts.log ?? createLogger('silent'),
    });
  }
}
