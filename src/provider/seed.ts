// SEED_FILE: a JSON file { "clients": [...client metadata...], "resourceServers": [...] }
// upserted at start, for deployments that keep clients in configuration.
import fs from 'node:fs';
import type { AdapterPayload } from 'oidc-provider';
import type { Logger } from '../logging/index.ts';
import type { Registry, ResourceServer } from './registry.ts';

export async function applySeedFile(file: string, registry: Registry, log: Logger): Promise<void> {
  let parsed: { clients?: Array<AdapterPayload & { client_id: string }>; resourceServers?: ResourceServer[] };
  try {
    parsed = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new Error(`SEED_FILE ${file} is not readable JSON: ${(err as Error).message}`);
  }
  for (const c of parsed.clients ?? []) {
    if (typeof c.client_id !== 'string' || !c.client_id) throw new Error(`SEED_FILE ${file}: every client needs a client_id`);
    await registry.putClient(c);
  }
  for (const rs of parsed.resourceServers ?? []) await registry.putResource(rs);
  log.info({ clients: parsed.clients?.length ?? 0, resourceServers: parsed.resourceServers?.length ?? 0 }, 'seed file applied');
}
