// Picks the keyring implementation for KEYS_MODE:
//   local        master key file in DATA_DIR wraps everything (AES-256-GCM)
//   kms-envelope KMS GenerateDataKey/Decrypt wrap everything; keys are opened into memory
//   kms-sign     signing keys are asymmetric KMS keys (ExternalSigningKey); the rest as kms-envelope
import type { Config } from '../config/index.ts';
import type { Storage } from '../storage/index.ts';
import { createLogger, type Logger } from '../logging/index.ts';
import type { Metrics } from '../logging/metrics.ts';
import { scanModel } from '../../adapters/dynamodb.ts';
import { LocalKeyring, SIGNING_ALGS } from './local.ts';
import { ManagedKeyring, type KeyPolicy } from './managed.ts';
import { KeyStore } from './store.ts';
import { WrappedJwkSigning } from './wrapped-signing.ts';
import { KmsSigning } from './kms-signing.ts';
import { DescribeKeyCommand } from '@aws-sdk/client-kms';
import { KmsWrapper, createKmsClient } from './kms.ts';
import type { Keyring } from './types.ts';

export type { Keyring, KeyInfo, KeyAction, RotateOptions, SigningAlg } from './types.ts';
export { KeyIntegrityError } from './types.ts';
export { KmsUnavailable } from './kms.ts';
export { cachedDataKeys } from './data-key-cache.ts';

/** the rotation policy from the configuration */
export function keyPolicy(config: Config, storage: Storage): KeyPolicy {
  return {
    prepublishSeconds: config.keys.prepublishSeconds,
    maxAgeSeconds: config.keys.maxAgeSeconds,
    refreshSeconds: config.keys.refreshSeconds,
    removeGraceSeconds: config.keys.removeGraceSeconds,
    // asked only when a key is retired (rarely): resource servers may give their tokens longer TTLs
    tokenLifetimeSeconds: async () => {
      const resources = await scanModel({ doc: storage.doc, table: storage.tables.oidc }, 'ResourceServer');
      return Math.max(config.ttl.accessToken, config.ttl.idToken, ...resources.map((r) => (r.accessTokenTTL as number | undefined) ?? 0));
    },
    cookieLifetimeSeconds: Math.max(config.ttl.session, config.ttl.interaction),
  };
}

/** the keyring for KEYS_MODE, not yet loaded (call init()) */
export function createKeyring(config: Config, storage: Storage, opts: { log?: Logger; metrics?: Metrics } = {}): Keyring {
  const log = opts.log ?? createLogger('silent');
  const policy = keyPolicy(config, storage);
  if (config.keys.mode === 'local') return new LocalKeyring(storage, config.dataDir, { policy, log });
  const client = createKmsClient({ endpoint: config.keys.kmsEndpoint, region: config.awsRegion, timeoutMs: config.keys.kmsTimeoutMs, metrics: opts.metrics });
  const wrapper = new KmsWrapper(client, config.keys.kmsKeyId!, log);
  const backend = config.keys.mode === 'kms-sign' ? new KmsSigning(client, log, config.issuer) : new WrappedJwkSigning(wrapper, SIGNING_ALGS);
  return new ManagedKeyring({ mode: config.keys.mode, store: new KeyStore(storage), wrapper, backend, policy, log, onClose: () => client.destroy(),
    ping: async (signal) => {
      const r = await client.send(new DescribeKeyCommand({ KeyId: config.keys.kmsKeyId! }), { abortSignal: signal });
      if (r.KeyMetadata?.Enabled === false) throw new Error(`KMS key ${config.keys.kmsKeyId} is ${r.KeyMetadata.KeyState ?? 'disabled'}`);
    },
  });
}

/** the keyring for KEYS_MODE, loaded (creating the first keys if the table has none) */
export async function openKeyring(config: Config, storage: Storage, opts: { log?: Logger } = {}): Promise<Keyring> {
  const keyring = createKeyring(config, storage, opts);
  try {
    return await keyring.init();
  } catch (err) {
    keyring.close();
    throw err;
  }
}
