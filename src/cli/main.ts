// `idp <command>`: operator commands against the same storage as the server
// (the embedded dynalite of DATA_DIR, whether or not the server runs, or
// DYNAMODB_ENDPOINT). Bad arguments print a usage line and exit 2.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import crypto from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig, ConfigError, type Config } from '../config/index.ts';
import { createLogger } from '../logging/index.ts';
import { prepareStorage } from '../server.ts';
import { openStorage, type Storage } from '../storage/index.ts';
import { migrate } from '../../migrations/index.ts';
import { Registry, type ResourceServer } from '../provider/registry.ts';
import { openKeyring } from '../keys/index.ts';
import { runUsers, USERS_USAGE } from './users.ts';
import { validateClient, InvalidClient } from './validate-client.ts';
import { KEYS_USAGE, keysCommand } from './keys.ts';
import { MFA_USAGE, runMfaCli } from '../mfa/cli.ts';
import { LOCKOUT_USAGE, lockoutCommand } from '../lockout/cli.ts';
import { CONNECTIONS_USAGE, runConnections } from './connections.ts';
import { LINKS_USAGE, runLinks } from './links.ts';
import { MFA_POLICIES, isMfaPolicy } from '../mfa/types.ts';
import { MFA_CLIENT_METADATA } from '../mfa/policy.ts';

export class UsageError extends Error {}

const USAGE: Record<string, string> = {
  migrate: 'idp migrate [--json]',
  'clients add': 'idp clients add --id ID (--secret S | --public) --redirect-uri URI [--redirect-uri URI...] [--post-logout-redirect-uri URI] [--grant-types a,b] [--name NAME] [--first-party] [--backchannel-logout-uri URI] [--mfa-policy off|optional|required|new_device] [--json]',
  'clients list': 'idp clients list [--json]',
  'clients remove': 'idp clients remove --id ID [--json]',
  ...USERS_USAGE,
  ...MFA_USAGE,
  ...LOCKOUT_USAGE,
  'resources add': 'idp resources add --id URI --scope "a b" [--format jwt|opaque] [--alg RS256|PS256|ES256|EdDSA] [--ttl SECONDS] [--introspection-client CLIENT_ID ...] [--json]',
  'resources list': 'idp resources list [--json]',
  'resources remove': 'idp resources remove --id URI [--json]',
  ...KEYS_USAGE,
  ...CONNECTIONS_USAGE,
  ...LINKS_USAGE,
};

function usageText(): string {
  return `usage:\n${Object.values(USAGE).map((u) => `  ${u}`).join('\n')}`;
}

interface Out {
  json: boolean;
  lines: string[];
  data: unknown;
}

type Values = Record<string, string | boolean | string[] | undefined>;

function parse(cmd: string, args: string[], options: ParseArgsConfig['options']): Values {
  try {
    return parseArgs({ args, options: { ...options, json: { type: 'boolean' } }, strict: true, allowPositionals: false }).values as Values;
  } catch (err) {
    throw new UsageError(`${(err as Error).message}\nusage: ${USAGE[cmd]}`);
  }
}

function need(cmd: string, v: unknown, flag: string): string {
  if (typeof v !== 'string' || v === '') throw new UsageError(`missing ${flag}\nusage: ${USAGE[cmd]}`);
  return v;
}

function table(rows: Array<Record<string, unknown>>, cols: string[]): string[] {
  if (rows.length === 0) return ['(none)'];
  const cell = (v: unknown) => (Array.isArray(v) ? v.join(',') : v === undefined ? '' : String(v));
  const widths = cols.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c]).length)));
  const line = (vals: string[]) => vals.map((v, i) => v.padEnd(widths[i])).join('  ').trimEnd();
  return [line(cols.map((c) => c.toUpperCase())), ...rows.map((r) => line(cols.map((c) => cell(r[c]))))];
}

async function withStorage<T>(config: Config, fn: (s: Storage) => Promise<T>, opts: { migrateFirst?: boolean } = { migrateFirst: true }): Promise<T> {
  const log = createLogger('silent');
  const storage = opts.migrateFirst ? await prepareStorage(config, log, 'cli') : await openStorage(config, { role: 'cli' });
  try {
    return await fn(storage);
  } finally {
    await storage.close();
  }
}

export async function run(argv: string[], env: Record<string, string | undefined> = process.env): Promise<Out> {
  const [group, sub, ...rest] = argv;
  const cmd = group === 'migrate' ? 'migrate' : `${group ?? ''} ${sub ?? ''}`;
  const args = group === 'migrate' ? argv.slice(1) : rest;
  if (!USAGE[cmd]) throw new UsageError(group ? `unknown command "${cmd.trim()}"\n${usageText()}` : usageText());
  const config = loadConfig(env);
  const out: Out = { json: false, lines: [], data: undefined };
  if (Object.hasOwn(USERS_USAGE, cmd)) return runUsers(cmd, args, { config, UsageError, withStorage, table });
  if (Object.hasOwn(MFA_USAGE, cmd)) return runMfaCli(cmd, args, { config, UsageError, withStorage, table });
  if (Object.hasOwn(CONNECTIONS_USAGE, cmd)) return runConnections(cmd, args, { config, UsageError, withStorage, table });
  if (Object.hasOwn(LINKS_USAGE, cmd)) return runLinks(cmd, args, { config, UsageError, withStorage, table });

  switch (cmd) {
    case 'migrate': {
      const v = parse(cmd, args, {});
      out.json = !!v.json;
      const r = await withStorage(config, (s) => migrate(s), { migrateFirst: false });
      out.data = r;
      out.lines.push(r.from === r.to ? `schema is up to date (version ${r.to})` : `migrated schema from version ${r.from} to ${r.to}`);
      return out;
    }
    case 'clients add': {
      const v = parse(cmd, args, {
        id: { type: 'string' }, secret: { type: 'string' }, public: { type: 'boolean' }, name: { type: 'string' },
        'redirect-uri': { type: 'string', multiple: true }, 'post-logout-redirect-uri': { type: 'string', multiple: true },
        'grant-types': { type: 'string' }, 'first-party': { type: 'boolean' }, 'backchannel-logout-uri': { type: 'string' },
        'mfa-policy': { type: 'string' },
      });
      out.json = !!v.json;
      const id = need(cmd, v.id, '--id');
      if (v.public && v.secret) throw new UsageError(`--secret and --public exclude each other\nusage: ${USAGE[cmd]}`);
      // the client's `mfa_policy` metadata (as in SEED_FILE); without it, MFA_POLICY applies
      const mfaPolicy = v['mfa-policy'];
      if (mfaPolicy !== undefined && !isMfaPolicy(mfaPolicy)) throw new UsageError(`--mfa-policy must be one of ${MFA_POLICIES.join(', ')}, got "${String(mfaPolicy)}"\nusage: ${USAGE[cmd]}`);
      const grantTypes = (typeof v['grant-types'] === 'string' ? v['grant-types'] : 'authorization_code,refresh_token').split(',').map((g) => g.trim()).filter(Boolean);
      const redirectUris = (v['redirect-uri'] as string[] | undefined) ?? [];
      if (grantTypes.includes('authorization_code') && redirectUris.length === 0) throw new UsageError(`authorization_code needs at least one --redirect-uri\nusage: ${USAGE[cmd]}`);
      const secret = v.public ? undefined : (v.secret as string | undefined) ?? crypto.randomBytes(32).toString('base64url');
      const metadata: Record<string, unknown> = {
        client_id: id,
        ...(v.name ? { client_name: v.name } : {}),
        grant_types: grantTypes,
        response_types: grantTypes.includes('authorization_code') ? ['code'] : [],
        redirect_uris: redirectUris,
        ...(v['post-logout-redirect-uri'] ? { post_logout_redirect_uris: v['post-logout-redirect-uri'] } : {}),
        ...(v['backchannel-logout-uri'] ? { backchannel_logout_uri: v['backchannel-logout-uri'] } : {}),
        token_endpoint_auth_method: v.public ? 'none' : 'client_secret_basic',
        ...(secret ? { client_secret: secret } : {}),
        first_party: !!v['first-party'],
        ...(mfaPolicy ? { [MFA_CLIENT_METADATA]: mfaPolicy } : {}),
      };
      await withStorage(config, async (s) => {
        const keyring = await openKeyring(config, s);
        try {
          await validateClient(config, s, metadata, keyring);
          await new Registry(s, { keyring }).putClient(metadata as never);
        } finally {
          keyring.close();
        }
      });
      out.data = { client_id: id, client_secret: secret, public: !!v.public };
      out.lines.push(`client ${id} saved`);
      if (secret && !v.secret) out.lines.push(`client_secret: ${secret}  (shown once; store it now)`);
      return out;
    }
    case 'clients list': {
      const v = parse(cmd, args, {});
      out.json = !!v.json;
      const clients = await withStorage(config, (s) => new Registry(s).listClients());
      const safe = clients.map(({ client_secret, client_secret_sealed, ...c }) => ({ ...c, has_secret: client_secret !== undefined || client_secret_sealed !== undefined }));
      out.data = safe;
      out.lines.push(...table(safe.map((c) => ({ id: c.client_id, name: c.client_name, auth: c.token_endpoint_auth_method, grants: c.grant_types, first_party: (c as Record<string, unknown>).first_party, mfa_policy: (c as Record<string, unknown>)[MFA_CLIENT_METADATA], redirect_uris: c.redirect_uris })), ['id', 'name', 'auth', 'grants', 'first_party', 'mfa_policy', 'redirect_uris']));
      return out;
    }
    case 'clients remove': {
      const v = parse(cmd, args, { id: { type: 'string' } });
      out.json = !!v.json;
      const id = need(cmd, v.id, '--id');
      const removed = await withStorage(config, (s) => new Registry(s).removeClient(id));
      out.data = { client_id: id, removed };
      out.lines.push(removed ? `client ${id} removed` : `no client ${id}`);
      return out;
    }
    case 'resources add': {
      const v = parse(cmd, args, { id: { type: 'string' }, scope: { type: 'string' }, format: { type: 'string' }, alg: { type: 'string' }, ttl: { type: 'string' }, 'introspection-client': { type: 'string', multiple: true } });
      out.json = !!v.json;
      const id = need(cmd, v.id, '--id');
      try {
        const u = new URL(id);
        if (u.hash) throw new Error('fragment');
      } catch {
        throw new UsageError(`--id must be an absolute URI without a fragment, got "${id}"\nusage: ${USAGE[cmd]}`);
      }
      const format = (v.format as string | undefined) ?? 'jwt';
      if (format !== 'jwt' && format !== 'opaque') throw new UsageError(`--format must be jwt or opaque\nusage: ${USAGE[cmd]}`);
      const alg = (v.alg as string | undefined) ?? 'ES256';
      if (!['RS256', 'PS256', 'ES256', 'EdDSA'].includes(alg)) throw new UsageError(`--alg must be RS256, PS256, ES256 or EdDSA\nusage: ${USAGE[cmd]}`);
      if (alg === 'EdDSA' && format === 'jwt' && config.keys.mode === 'kms-sign') throw new UsageError(`--alg EdDSA is not available with KEYS_MODE=kms-sign (KMS has no Ed25519 keys): use ES256, RS256 or PS256\nusage: ${USAGE[cmd]}`);
      const ttl = v.ttl === undefined ? undefined : Number(v.ttl);
      if (ttl !== undefined && (!Number.isInteger(ttl) || ttl < 60 || ttl > 86400)) throw new UsageError(`--ttl must be a whole number of seconds from 60 to 86400\nusage: ${USAGE[cmd]}`);
      const introspectors = (v['introspection-client'] as string[] | undefined) ?? [];
      if (introspectors.some((c) => !/^[\x21-\x7e]{1,200}$/.test(c))) throw new UsageError(`--introspection-client must be a client id\nusage: ${USAGE[cmd]}`);
      const rs: ResourceServer = {
        id, scope: need(cmd, v.scope, '--scope'), accessTokenFormat: format, ...(format === 'jwt' ? { jwtAlg: alg as ResourceServer['jwtAlg'] } : {}), ...(ttl ? { accessTokenTTL: ttl } : {}),
        ...(introspectors.length ? { introspectionClients: introspectors } : {}),
      };
      await withStorage(config, (s) => new Registry(s).putResource(rs));
      out.data = rs;
      out.lines.push(`resource server ${id} saved`);
      return out;
    }
    case 'resources list': {
      const v = parse(cmd, args, {});
      out.json = !!v.json;
      const list = await withStorage(config, (s) => new Registry(s).listResources());
      out.data = list;
      out.lines.push(...table(list as unknown as Array<Record<string, unknown>>, ['id', 'scope', 'accessTokenFormat', 'jwtAlg', 'accessTokenTTL', 'introspectionClients']));
      return out;
    }
    case 'resources remove': {
      const v = parse(cmd, args, { id: { type: 'string' } });
      out.json = !!v.json;
      const id = need(cmd, v.id, '--id');
      const removed = await withStorage(config, (s) => new Registry(s).removeResource(id));
      out.data = { id, removed };
      out.lines.push(removed ? `resource server ${id} removed` : `no resource server ${id}`);
      return out;
    }
    case 'keys list':
    case 'keys rotate':
      return keysCommand(cmd, args, config, { parse, withStorage, table, usage: (c, m) => new UsageError(`${m}\nusage: ${USAGE[c]}`) });
    case 'users unlock':
      return lockoutCommand(cmd, args, config, { parse, withStorage, usage: (c, m) => new UsageError(`${m}\nusage: ${USAGE[c]}`) });
  }
  throw new UsageError(usageText());
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  try {
    const out = await run(process.argv.slice(2));
    process.stdout.write(out.json ? `${JSON.stringify(out.data, null, 2)}\n` : `${out.lines.join('\n')}\n`);
    process.exit(0);
  } catch (err) {
    if (err instanceof UsageError || err instanceof InvalidClient) {
      process.stderr.write(`idp: ${err.message}\n`);
      process.exit(2);
    }
    if (err instanceof ConfigError) {
      process.stderr.write(`configuration error: ${err.message}\n`);
      process.exit(1);
    }
    process.stderr.write(`idp: ${(err as Error).message}\n`);
    process.exit(1);
  }
}
