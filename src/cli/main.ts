// `idp <command>`: operator commands against the same storage as the server
// (the embedded dynalite of DATA_DIR, whether or not the server runs, or
// DYNAMODB_ENDPOINT; store.ts says which, and refuses to create a store
// where none is unless --init). Help at every level comes from the usage and
// help tables (help.ts). Exit codes (help.ts EXIT_CODES): 0 done, 1 failed,
// 2 usage (bad arguments, refused values, unknown ids).
import { parseArgs, type ParseArgsConfig } from 'node:util';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig, ConfigError, type Config } from '../config/index.ts';
import { createLogger } from '../logging/index.ts';
import { recorded } from './recorded.ts';
import { prepareStorage } from '../server.ts';
import { openStorage, type Storage } from '../storage/index.ts';
import { migrate } from '../../migrations/index.ts';
import { Registry, type ResourceServer } from '../provider/registry.ts';
import { runUsers, USERS_HELP, USERS_USAGE } from './users.ts';
import { InvalidClient } from './validate-client.ts';
import { CLIENTS_HELP, CLIENTS_USAGE, runClients } from './clients.ts';
import { HELP, groupUsage, helpRequest, type CommandHelp } from './help.ts';
import { chooseStore } from './store.ts';
import type { CliIo } from './secrets.ts';
import { DEMO_HELP, DEMO_USAGE, runDemo } from './demo.ts';
import { KEYS_USAGE, keysCommand } from './keys.ts';
import { MFA_USAGE, runMfaCli } from '../mfa/cli.ts';
import { LOCKOUT_USAGE, NoSuchAccount } from '../lockout/cli.ts';
import { CONNECTIONS_HELP, CONNECTIONS_USAGE, runConnections } from './connections.ts';
import { LINKS_HELP, LINKS_USAGE, runLinks } from './links.ts';
import { CONSENT_HELP, CONSENT_USAGE, runConsent } from './consent.ts';
import { ADMIN_HELP, ADMIN_USAGE, CLI_ACTOR, runAdminCli, withAdmin } from './admin.ts';
import { EVENTS_HELP, EVENTS_USAGE, runEvents } from './events.ts';

export class UsageError extends Error {}

const USAGE: Record<string, string> = {
  migrate: 'idp migrate [--json]',
  ...CLIENTS_USAGE,
  ...USERS_USAGE,
  ...MFA_USAGE,
  ...LOCKOUT_USAGE,
  'resources add': 'idp resources add --id URI --scope "a b" [--format jwt|opaque] [--alg RS256|PS256|ES256|EdDSA] [--ttl SECONDS] [--introspection-client CLIENT_ID ...] [--json]',
  'resources list': 'idp resources list [--json]',
  'resources remove': 'idp resources remove --id URI [--json]',
  ...KEYS_USAGE,
  ...CONNECTIONS_USAGE,
  ...LINKS_USAGE,
  ...DEMO_USAGE,
  ...CONSENT_USAGE,
  ...EVENTS_USAGE,
  ...ADMIN_USAGE,
};

/** what each command and flag means (help.ts); a command missing here still gets a line per flag of its usage */
const COMMAND_HELP: Record<string, CommandHelp> = { ...HELP, ...CLIENTS_HELP, ...USERS_HELP, ...CONNECTIONS_HELP, ...LINKS_HELP, ...DEMO_HELP, ...CONSENT_HELP, ...EVENTS_HELP, ...ADMIN_HELP };

function usageText(): string {
  return `usage:\n${Object.values(USAGE).map((u) => `  ${u}`).join('\n')}`;
}

interface Out {
  json: boolean;
  lines: string[];
  data: unknown;
  /** exit code when not 0: 1 when the command ran but not everything was done (e.g. rejected import lines) */
  status?: number;
  /** lines for stderr: which store was opened, and what the operator should know about it (store.ts) */
  notes?: string[];
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

/**
 * The store this run works on (store.ts): maybe the running server's
 * DATA_DIR, maybe refused (thrown when a command first opens storage, so
 * that bad arguments are still answered first), with notes for stderr.
 */
function storeFor(config: Config, env: Record<string, string | undefined>, init: boolean) {
  let chosen: ReturnType<typeof chooseStore> | undefined;
  let refused: unknown;
  try {
    chosen = chooseStore(config, { dataDirSet: !!env.DATA_DIR, init });
  } catch (err) {
    refused = err;
  }
  return {
    config: chosen?.config ?? config,
    notes: chosen?.notes ?? [],
    withStorage<T>(cfg: Config, fn: (s: Storage) => Promise<T>, opts?: { migrateFirst?: boolean }): Promise<T> {
      if (refused) return Promise.reject(refused);
      return withStorage(cfg, fn, opts);
    },
  };
}

export async function run(argv: string[], env: Record<string, string | undefined> = process.env, io: CliIo = {}): Promise<Out> {
  const help = helpRequest(argv, USAGE, COMMAND_HELP);
  if (help?.unknown !== undefined) throw new UsageError(`unknown command "${help.unknown}"\n${usageText()}`);
  if (help) return { json: false, lines: help.lines, data: undefined };
  // --init, taken by every command: a new store may be created in DATA_DIR
  const init = argv.includes('--init');
  argv = argv.filter((a) => a !== '--init');
  const [group, sub, ...rest] = argv;
  // one-word commands: their flags follow at once
  const single = group === 'migrate' || group === 'demo' || group === 'worker' || group === 'audit';
  const cmd = single ? group : `${group ?? ''} ${sub ?? ''}`;
  const args = single ? argv.slice(1) : rest;
  if (!USAGE[cmd]) throw new UsageError(!group ? usageText() : (sub === undefined && groupUsage(group, USAGE)) || `unknown command "${cmd.trim()}"\n${usageText()}`);
  const store = storeFor(loadConfig(env), env, init);
  const config = store.config;
  const out: Out = { json: false, lines: [], data: undefined, notes: store.notes };
  const kit = { config, UsageError, withStorage: store.withStorage, table, io };
  const done = async (p: Promise<Out>): Promise<Out> => ({ ...(await p), notes: store.notes });
  if (Object.hasOwn(CLIENTS_USAGE, cmd)) return done(runClients(cmd, args, kit));
  if (cmd === 'demo') return done(runDemo(args, kit));
  if (Object.hasOwn(CONSENT_USAGE, cmd)) return done(runConsent(cmd, args, kit));
  if (Object.hasOwn(ADMIN_USAGE, cmd)) return done(runAdminCli(cmd, args, kit));
  if (Object.hasOwn(USERS_USAGE, cmd)) return done(runUsers(cmd, args, kit));
  if (Object.hasOwn(MFA_USAGE, cmd)) return done(runMfaCli(cmd, args, kit));
  if (Object.hasOwn(CONNECTIONS_USAGE, cmd)) return done(runConnections(cmd, args, kit));
  if (Object.hasOwn(LINKS_USAGE, cmd)) return done(runLinks(cmd, args, kit));
  if (Object.hasOwn(EVENTS_USAGE, cmd)) return done(runEvents(cmd, args, { ...kit, parse: (c, a, o) => parse(c, a, o) }));
  const withStorage = store.withStorage;

  switch (cmd) {
    case 'migrate': {
      const v = parse(cmd, args, {});
      out.json = !!v.json;
      const r = await withStorage(config, (s) => migrate(s), { migrateFirst: false });
      out.data = r;
      out.lines.push(r.from === r.to ? `schema is up to date (version ${r.to})` : `migrated schema from version ${r.from} to ${r.to}`);
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
      await withStorage(config, (s) => recorded(config, s, { type: 'resource.saved', actor: 'cli', reason: 'operator_cli', data: { resource: id, format } }, () => new Registry(s).putResource(rs)));
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
      if (!removed) throw new UsageError(`no resource server ${id}`);
      out.data = { id, removed };
      out.lines.push(`resource server ${id} removed`);
      return out;
    }
    case 'keys list':
    case 'keys rotate':
      return done(keysCommand(cmd, args, config, { parse, withStorage, table, usage: (c, m) => new UsageError(`${m}\nusage: ${USAGE[c]}`) }));
    case 'users unlock': {
      // through the admin service: account.unlocked with actor cli, stored with the change
      const v = parse(cmd, args, { sub: { type: 'string' }, email: { type: 'string' } });
      out.json = !!v.json;
      const bySub = typeof v.sub === 'string' && v.sub !== '' ? v.sub : undefined;
      const byEmail = typeof v.email === 'string' && v.email !== '' ? v.email : undefined;
      if (!bySub === !byEmail) throw new UsageError(`give exactly one of --sub and --email\nusage: ${USAGE[cmd]}`);
      const data = await withAdmin(kit, async (admin) => {
        let target = bySub;
        if (!target) {
          const found = await admin.findUsers({ email: byEmail }).catch(() => []);
          if (!found.length) throw new NoSuchAccount('no account with that e-mail address');
          target = found[0].sub;
        }
        return admin.unlock(target, CLI_ACTOR);
      });
      out.data = data;
      out.lines.push(data.wasLocked ? `account ${data.sub} unlocked (${data.cleared} counters cleared)` : `account ${data.sub} was not locked (${data.cleared} counters cleared)`);
      return done(Promise.resolve(out));
    }
  }
  throw new UsageError(usageText());
}

/** the exit code of a failure: 2 when the command cannot be run as given, 1 when it could not be done */
export function exitCode(err: unknown): 1 | 2 {
  return err instanceof UsageError || err instanceof InvalidClient || err instanceof NoSuchAccount ? 2 : 1;
}

/** one line for stderr, never a stack trace */
function failureLine(err: unknown, config?: Config): string {
  if (err instanceof ConfigError) return `configuration error: ${err.message}`;
  const e = err as Error & { name?: string };
  if (e?.name === 'ResourceNotFoundException' && config?.dynamodbEndpoint) return `idp: the tables are missing at ${config.dynamodbEndpoint} (TABLE_PREFIX=${config.tablePrefix}): run \`idp migrate\` first`;
  return `idp: ${e?.message ?? String(err)}`;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  try {
    const out = await run(process.argv.slice(2));
    for (const n of out.notes ?? []) process.stderr.write(`idp: ${n}\n`);
    process.stdout.write(out.json ? `${JSON.stringify(out.data, null, 2)}\n` : `${out.lines.join('\n')}\n`);
    process.exit(out.status ?? 0);
  } catch (err) {
    let config: Config | undefined;
    try {
      config = loadConfig();
    } catch { /* the error is the configuration's */ }
    process.stderr.write(`${failureLine(err, config)}\n`);
    process.exit(exitCode(err));
  }
}
