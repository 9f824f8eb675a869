// Validates client metadata exactly as the running provider will, by asking
// an oidc-provider instance built from the same configuration.
import type { Config } from '../config/index.ts';
import type { Storage } from '../storage/index.ts';
import type { Keyring } from '../keys/types.ts';
import { buildConfiguration } from '../provider/configuration.ts';
import { createDynamoAdapter } from '../../adapters/dynamodb.ts';
import { Registry } from '../provider/registry.ts';
import { DynamoAccountStore } from '../accounts/dynamo-store.ts';
import { argon2Hasher } from '../accounts/hasher.ts';
import { createViews } from '../http/views.ts';
import Provider from 'oidc-provider';

export class InvalidClient extends Error {}

export async function validateClient(config: Config, storage: Storage, metadata: Record<string, unknown>, keyring: Keyring): Promise<void> {
  const provider = new Provider(config.issuer, buildConfiguration({
    config, keyring,
    adapter: createDynamoAdapter({ doc: storage.doc, table: storage.tables.oidc }),
    accounts: new DynamoAccountStore(storage, argon2Hasher(config.argon2), keyring),
    registry: new Registry(storage, { keyring }),
    views: createViews(),
  }));
  try {
    await provider.Client.validate(metadata as never);
  } catch (err) {
    const e = err as { error?: string; error_description?: string; message: string };
    throw new InvalidClient(`invalid client: ${e.error_description ?? e.message}`);
  }
}
