// Picks the keyring implementation for KEYS_MODE.
import type { Config } from '../config/index.ts';
import type { Storage } from '../storage/index.ts';
import { LocalKeyring } from './local.ts';
import type { Keyring } from './types.ts';

export type { Keyring } from './types.ts';

export async function openKeyring(config: Config, storage: Storage): Promise<Keyring> {
  switch (config.keys.mode) {
    case 'local':
      return new LocalKeyring(storage, config.dataDir).init();
    default:
      throw new Error(`KEYS_MODE=${config.keys.mode} is not available in this build yet`);
  }
}
