// The CLI's side of the admin service (src/admin/service.ts): the same actions
// the console and the API run, with "cli" as the actor, and their events
// stored with the change. `idp users disable|enable|set-password`,
// `idp sessions list|revoke`, `idp admins add|remove|list`, `idp audit` are here; `users add|merge|unmerge|
// delete|unlock` (users.ts, main.ts) go through withAdmin too.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import type { CommandHelp } from './help.ts';
import { secretFrom } from './secrets.ts';
import type { CliKit, CliOut } from './users.ts';
import { openKeyring } from '../keys/index.ts';
import { argon2Hasher } from '../accounts/hasher.ts';
import { DynamoAccountStore } from '../accounts/dynamo-store.ts';
import { erasureHooks } from '../erasure-hooks.ts';
import { eventsFor } from '../events/index.ts';
import { createLogger } from '../logging/index.ts';
import { createGuard } from '../lockout/index.ts';
import { MfaService } from '../mfa/service.ts';
import { MfaStore } from '../mfa/store.ts';
import { RoleStore } from '../consent/roles.ts';
import { PasswordPolicy } from '../passwords/policy.ts';
import { Registry } from '../provider/registry.ts';
import { AdminService, type Actor } from '../admin/service.ts';
import { AdminError } from '../admin/errors.ts';
import { validateClient } from './validate-client.ts';

export const CLI_ACTOR: Actor = { id: 'cli' };

export const ADMIN_USAGE: Record<string, string> = {
  'users disable': 'idp users disable --sub SUB [--json]',
  'users enable': 'idp users enable --sub SUB [--json]',
  'users set-password': 'idp users set-password --sub SUB [--password-stdin | --password PASSWORD] [--json]',
  'sessions list': 'idp sessions list --sub SUB [--limit N] [--cursor C] [--json]',
  'sessions revoke': 'idp sessions revoke --sub SUB --id ID [--grant] [--json]',
  'admins add': 'idp admins add (--sub SUB | --email EMAIL) [--json]',
  'admins remove': 'idp admins remove (--sub SUB | --email EMAIL) [--json]',
  'admins list': 'idp admins list [--json]',
  'audit': 'idp audit [--subject ID] [--client ID] [--type TYPE] [--actor ID] [--from TIME] [--to TIME] [--limit N] [--cursor C] [--json]',
};

export const ADMIN_HELP: Record<string, CommandHelp> = {
  'users disable': { about: 'Disable an account: no sign-in, no token refresh (event user.disabled). An unknown sub exits 2.', flags: { '--sub SUB': 'the account\'s subject' } },
  'users enable': { about: 'Enable a disabled account again (event user.enabled).', flags: { '--sub SUB': 'the account\'s subject' } },
  'users set-password': {
    about: 'Set an account\'s password (it must pass the password policy; event password.reset). Typed at a prompt, or read from stdin.',
    flags: { '--sub SUB': 'the account\'s subject', '--password-stdin': 'read the password from stdin (one line)', '--password PASSWORD': 'on the command line (avoid)' },
  },
  'sessions list': { about: 'The sessions and grants of an account (no token values).', flags: { '--sub SUB': 'the account\'s subject', '--limit N': '1 to 200 (default 50)', '--cursor C': 'the next page, as printed' } },
  'sessions revoke': { about: 'Revoke a session (and the grants and tokens it issued), or a grant with --grant (event token.revoked).', flags: { '--sub SUB': 'the account\'s subject', '--id ID': 'the id from sessions list', '--grant': 'the id is a grant\'s' } },
  'admins add': {
    about: 'Give an account the admin role: it may sign in to the admin console at /admin (with a second factor). Event roles.assigned.',
    flags: { '--sub SUB': 'the account\'s subject', '--email EMAIL': 'or its e-mail address (looked up through the blind index)' },
  },
  'admins remove': {
    about: 'Take the admin role away (its console sessions end at their next request). A role a federated connection gives stays: change the connection\'s --role-map. Event roles.unassigned.',
    flags: { '--sub SUB': 'the account\'s subject', '--email EMAIL': 'or its e-mail address' },
  },
  'admins list': { about: 'The accounts with the admin role: given here, or by a federated connection\'s role mapping.', flags: {} },
  'audit': {
    about: 'The audit log, newest first: every admin action and security event.',
    flags: {
      '--subject ID': 'an account sub or a client id', '--client ID': 'events about a client', '--type TYPE': 'a type, or a prefix ending in "." (user.)',
      '--actor ID': 'who did it: an admin\'s sub, a client id, or cli', '--from TIME': 'ISO-8601, inclusive', '--to TIME': 'ISO-8601, inclusive',
      '--limit N': '1 to 200 (default 50)', '--cursor C': 'the next page, as printed',
    },
  },
};

/** runs `fn` with an admin service on the CLI's store; its errors become usage errors (exit 2) */
export async function withAdmin<T>(kit: CliKit, fn: (admin: AdminService) => Promise<T>): Promise<T> {
  const { config } = kit;
  return kit.withStorage(config, async (s) => {
    const keyring = await openKeyring(config, s);
    const log = createLogger('silent');
    const events = eventsFor(config, s, log, 'cli');
    try {
      const hasher = argon2Hasher(config.argon2);
      const accounts = new DynamoAccountStore(s, hasher, keyring, {
        dataKeyCache: { maxEntries: config.accounts.dataKeyCacheSize, maxAgeMs: config.accounts.dataKeyCacheSeconds * 1000 },
        erasureHooks: erasureHooks({ dataDir: config.dataDir }),
      });
      const admin = new AdminService({
        config, storage: s, accounts, registry: new Registry(s, { keyring }), events,
        guard: createGuard({ config, storage: s, keyring, accounts, events, log }).guard,
        mfa: new MfaService({ store: new MfaStore(s), keys: accounts, events, config: config.mfa }),
        roles: new RoleStore(s, { cacheMs: 0 }),
        policy: new PasswordPolicy(config.passwordPolicy, (hash, pw) => hasher.verify(hash, pw)), hasher, keyring,
        validateClient: (m) => validateClient(config, s, m, keyring),
      });
      try {
        return await fn(admin);
      } catch (err) {
        if (err instanceof AdminError) throw new kit.UsageError(err.message);
        throw err;
      }
    } finally {
      await events.close();
      (keyring as { close?: () => void }).close?.();
    }
  });
}

type Values = Record<string, string | boolean | string[] | undefined>;

export async function runAdminCli(cmd: string, args: string[], kit: CliKit): Promise<CliOut> {
  const usage = (m: string) => new kit.UsageError(`${m}\nusage: ${ADMIN_USAGE[cmd]}`);
  const table: Record<string, ParseArgsConfig['options']> = {
    'users disable': { sub: { type: 'string' } },
    'users enable': { sub: { type: 'string' } },
    'users set-password': { sub: { type: 'string' }, password: { type: 'string' }, 'password-stdin': { type: 'boolean' } },
    'sessions list': { sub: { type: 'string' }, limit: { type: 'string' }, cursor: { type: 'string' } },
    'sessions revoke': { sub: { type: 'string' }, id: { type: 'string' }, grant: { type: 'boolean' } },
    'admins add': { sub: { type: 'string' }, email: { type: 'string' } },
    'admins remove': { sub: { type: 'string' }, email: { type: 'string' } },
    'admins list': {},
    'audit': {
      subject: { type: 'string' }, client: { type: 'string' }, type: { type: 'string' }, actor: { type: 'string' },
      from: { type: 'string' }, to: { type: 'string' }, limit: { type: 'string' }, cursor: { type: 'string' },
    },
  };
  const options = table[cmd] ?? {};
  let v: Values;
  try {
    v = parseArgs({ args, options: { ...options, json: { type: 'boolean' } }, strict: true, allowPositionals: false }).values as Values;
  } catch (err) {
    throw usage((err as Error).message);
  }
  const out: CliOut = { json: v.json === true, lines: [], data: undefined };
  if (cmd === 'admins add' || cmd === 'admins remove') {
    const email = typeof v.email === 'string' && v.email !== '' ? v.email : undefined;
    const given = typeof v.sub === 'string' && v.sub !== '' ? v.sub : undefined;
    if (!given === !email) throw usage('give --sub or --email (one of them)');
    const on = cmd === 'admins add';
    const r = await withAdmin(kit, async (a) => {
      const target = given ?? (await a.findUsers({ email }))[0]?.sub;
      if (!target) throw new kit.UsageError(`no account with the e-mail address ${email}`);
      return a.setAdmin(target, on, CLI_ACTOR);
    });
    out.data = r;
    out.lines.push(on ? `${r.sub} is an admin` : r.admin ? `${r.sub} keeps the admin role from a federated connection (its --role-map)` : `${r.sub} is no longer an admin`);
    return out;
  }
  if (cmd === 'admins list') {
    const admins = await withAdmin(kit, (a) => a.listAdmins());
    out.data = admins;
    out.lines.push(...(admins.length ? kit.table(admins.map((x) => ({ sub: x.sub, assigned: x.assigned ? 'yes' : 'no', connections: x.connections.join(', ') })), ['sub', 'assigned', 'connections']) : ['no admins: give one with idp admins add --email EMAIL']));
    return out;
  }
  const sub = typeof v.sub === 'string' && v.sub !== '' ? v.sub : undefined;
  if (cmd !== 'audit' && !sub) throw usage('missing --sub');

  switch (cmd) {
    case 'users disable':
    case 'users enable': {
      const disabled = cmd === 'users disable';
      const u = await withAdmin(kit, (a) => a.setDisabled(sub, disabled, CLI_ACTOR));
      out.data = u;
      out.lines.push(`user ${u.sub} ${disabled ? 'disabled' : 'enabled'} (status ${u.status})`);
      return out;
    }
    case 'users set-password': {
      const password = await secretFrom({
        argv: v.password, stdin: v['password-stdin'] === true, io: kit.io, argvFlag: '--password', stdinFlag: '--password-stdin',
        prompt: `new password for ${sub}`, confirm: true, usage,
      });
      if (password === undefined) throw usage('missing the password: type it at the prompt (in a terminal), or give it on stdin with --password-stdin');
      const u = await withAdmin(kit, (a) => a.setPassword(sub, password, CLI_ACTOR));
      out.data = { sub: u.sub };
      out.lines.push(`password of ${u.sub} set`);
      return out;
    }
    case 'sessions list': {
      const page = await withAdmin(kit, (a) => a.sessions(sub, { limit: v.limit, cursor: v.cursor }));
      out.data = page;
      out.lines.push(...kit.table(page.items.map((e) => ({
        ...e, at: e.at ? new Date(e.at * 1000).toISOString() : '', expires: e.expiresAt ? new Date(e.expiresAt * 1000).toISOString() : '',
      })), ['kind', 'id', 'clients', 'at', 'expires']));
      if (page.cursor) out.lines.push(`next page: --cursor ${page.cursor}`);
      return out;
    }
    case 'sessions revoke': {
      const id = typeof v.id === 'string' && v.id !== '' ? v.id : undefined;
      if (!id) throw usage('missing --id');
      const r = await withAdmin(kit, (a) => a.revokeSession(sub, v.grant === true ? 'grant' : 'session', id, CLI_ACTOR));
      out.data = r;
      out.lines.push(`${r.kind} ${r.id} of ${r.sub} revoked`);
      return out;
    }
    case 'audit': {
      const page = await withAdmin(kit, (a) => a.audit({ subject: v.subject, clientId: v.client, type: v.type, actor: v.actor, from: v.from, to: v.to, limit: v.limit, cursor: v.cursor }));
      out.data = page;
      out.lines.push(...kit.table(page.items.map((e) => ({ time: e.time, type: e.type, subject: e.subject ?? '', actor: e.data.actor ?? '', client: e.data.clientId ?? '', reason: e.data.reason ?? '' })),
        ['time', 'type', 'subject', 'actor', 'client', 'reason']));
      if (page.cursor) out.lines.push(`next page: --cursor ${page.cursor}`);
      return out;
    }
  }
  throw usage(`unknown command "${cmd}"`);
}
