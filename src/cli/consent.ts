// `idp consent ...`, `idp roles ...` and `idp users roles ...`: admin
// (tenant-wide) consent, role definitions and role assignments
// (src/consent). Every admin consent change is recorded with who made it
// (--by, default the operating-system user) and when, and emitted as an
// event (consent.admin.granted / consent.admin.revoked); role changes emit
// role.saved / role.removed / roles.assigned / roles.unassigned. Unknown
// clients, resource servers, roles and accounts are usage errors (exit 2).
import os from 'node:os';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import type { Storage } from '../storage/index.ts';
import { Registry } from '../provider/registry.ts';
import { SCOPES } from '../provider/configuration.ts';
import { openKeyring } from '../keys/index.ts';
import { argon2Hasher } from '../accounts/hasher.ts';
import { DynamoAccountStore } from '../accounts/dynamo-store.ts';
import { eventsFor, type EventType } from '../events/index.ts';
import { createLogger } from '../logging/index.ts';
import { ConsentStore } from '../consent/store.ts';
import { RoleStore } from '../consent/roles.ts';
import { ConsentInvalid, words, type ConsentScope } from '../consent/types.ts';
import type { CliKit, CliOut } from './users.ts';

export const CONSENT_USAGE: Record<string, string> = {
  'consent grant-admin': 'idp consent grant-admin --client ID --scopes "openid email" [--claims "a b"] [--resource URI...] [--by NAME] [--json]',
  'consent revoke-admin': 'idp consent revoke-admin --client ID [--by NAME] [--json]',
  'consent list': 'idp consent list [--client ID] [--history] [--user SUB] [--json]',
  'roles add': 'idp roles add --name NAME [--description TEXT] [--permissions "a b"] [--resource URI] [--json]',
  'roles list': 'idp roles list [--json]',
  'roles remove': 'idp roles remove --name NAME [--json]',
  'users roles': 'idp users roles add|remove --sub SUB --role NAME [--role NAME...] [--json]',
};

export const CONSENT_HELP: Record<string, { about: string; flags?: Record<string, string> }> = {
  'consent grant-admin': {
    about: 'Consent to a client\'s scopes and claims for every user (admin consent): users skip the consent screen for them and still see it for anything beyond. Replaces the client\'s earlier admin consent; recorded with who and when.',
    flags: {
      '--client ID': 'the client',
      '--scopes "a b"': 'OpenID scopes, and scopes of the resource servers named by --resource',
      '--claims "a b"': 'claims the client may ask for by name (the claims parameter)',
      '--resource URI': 'a resource server whose scopes in --scopes are consented (repeatable)',
      '--by NAME': 'who consents, for the record (default: the operating-system user)',
    },
  },
  'consent revoke-admin': { about: 'Withdraw a client\'s admin consent: the next sign-in of each user without a consent of their own shows the consent screen again.' },
  'consent list': {
    about: 'The admin consents (or with --history every recorded change; with --user the apps one user allowed).',
    flags: { '--history': 'every grant-admin and revoke-admin, oldest first: who, when, what', '--user SUB': 'the connected apps of this account' },
  },
  'roles add': {
    about: 'Create a role, or add to it: permissions join the role\'s, tied to --resource when given (they then go only into that resource server\'s access tokens).',
    flags: { '--permissions "a b"': 'permission names, space-separated', '--resource URI': 'the resource server these permissions belong to' },
  },
  'roles list': { about: 'Every role with its permissions.' },
  'roles remove': { about: 'Remove a role: users who had it stop getting it in new tokens.' },
  'users roles': { about: 'Give roles to an account, or take them away (roles from federated connections are not changed here).' },
};

type Values = Record<string, string | boolean | string[] | undefined>;

export async function runConsent(cmd: string, args: string[], kit: CliKit): Promise<CliOut> {
  const usage = (m: string) => new kit.UsageError(`${m}\nusage: ${CONSENT_USAGE[cmd]}`);
  let action: string | undefined;
  if (cmd === 'users roles') {
    action = args[0];
    if (action !== 'add' && action !== 'remove') throw usage(action ? `unknown action "${action}"` : 'missing action (add or remove)');
    args = args.slice(1);
  }
  const options: Record<string, ParseArgsConfig['options']> = {
    'consent grant-admin': { client: { type: 'string' }, scopes: { type: 'string' }, claims: { type: 'string' }, resource: { type: 'string', multiple: true }, by: { type: 'string' } },
    'consent revoke-admin': { client: { type: 'string' }, by: { type: 'string' } },
    'consent list': { client: { type: 'string' }, history: { type: 'boolean' }, user: { type: 'string' } },
    'roles add': { name: { type: 'string' }, description: { type: 'string' }, permissions: { type: 'string' }, resource: { type: 'string' } },
    'roles list': {},
    'roles remove': { name: { type: 'string' } },
    'users roles': { sub: { type: 'string' }, role: { type: 'string', multiple: true } },
  };
  let v: Values;
  try {
    v = parseArgs({ args, options: { ...options[cmd], json: { type: 'boolean' } }, strict: true, allowPositionals: false }).values as Values;
  } catch (err) {
    throw usage((err as Error).message);
  }
  const need = (flag: string): string => {
    const x = v[flag];
    if (typeof x !== 'string' || x.trim() === '') throw usage(`missing --${flag}`);
    return x.trim();
  };
  const out: CliOut = { json: v.json === true, lines: [], data: undefined };
  const by = typeof v.by === 'string' && v.by.trim() ? v.by.trim() : `cli:${os.userInfo().username}`;
  const { config } = kit;
  const cacheMs = 0; // the CLI reads what is stored, now

  return kit.withStorage(config, async (s: Storage) => {
    const consents = new ConsentStore(s, { cacheMs });
    const roles = new RoleStore(s, { cacheMs });
    const registry = new Registry(s);
    /** an operator's change, with its event stored with it (src/events: commit) */
    const change = async <T>(type: EventType, fields: { sub?: string; clientId?: string; data?: Record<string, unknown> }, write: () => Promise<T>): Promise<T> => {
      const events = eventsFor(config, s, createLogger('silent'), 'cli');
      try {
        // nothing changed (no such role or consent): no event
        let out: T | undefined;
        await events.commitIf({ type, ...fields, actor: 'cli', reason: 'operator_cli' }, async () => Boolean(out = await write()));
        return out as T;
      } finally {
        await events.close();
      }
    };
    const knownClient = async (id: string) => {
      if (!(await registry.clients.find(id))) throw new kit.UsageError(`no client ${id}`);
    };
    const knownAccount = async (sub: string) => {
      const keyring = await openKeyring(config, s);
      try {
        if (!(await new DynamoAccountStore(s, argon2Hasher(config.argon2), keyring).findBySub(sub))) throw new kit.UsageError(`no account ${sub}`);
      } finally {
        (keyring as { close?: () => void }).close?.();
      }
    };
    const fail = (err: unknown): never => {
      if (err instanceof ConsentInvalid) throw new kit.UsageError(err.message);
      throw err;
    };

    switch (cmd) {
      case 'consent grant-admin': {
        const clientId = need('client');
        const scopes = words(need('scopes'));
        const claims = words(typeof v.claims === 'string' ? v.claims : undefined);
        const resourceIds = (v.resource as string[] | undefined) ?? [];
        await knownClient(clientId);
        const what: ConsentScope = { scope: scopes.filter((x) => SCOPES.includes(x)), claims, resources: {} };
        const rest = scopes.filter((x) => !SCOPES.includes(x));
        for (const id of resourceIds) {
          const rs = await registry.findResource(id);
          if (!rs) throw new kit.UsageError(`no resource server ${id}`);
          const offered = words(rs.scope);
          what.resources[id] = rest.filter((x) => offered.includes(x));
        }
        const unknown = rest.filter((x) => !Object.values(what.resources).some((r) => r.includes(x)));
        if (unknown.length) throw usage(`${unknown.join(', ')}: neither an OpenID scope (${SCOPES.join(', ')}) nor a scope of a resource server named by --resource`);
        const consent = await change('consent.admin.granted', { clientId, data: { by, scopes: what.scope, claims, resources: what.resources } }, () => consents.grantAdmin(clientId, what, by));
        out.data = consent;
        out.lines.push(`admin consent for ${clientId}: ${[...what.scope, ...Object.entries(what.resources).map(([r, x]) => `${r} ${x.join(' ')}`)].join(', ')}${claims.length ? `; claims ${claims.join(' ')}` : ''} (by ${by})`);
        return out;
      }
      case 'consent revoke-admin': {
        const clientId = need('client');
        const old = await change('consent.admin.revoked', { clientId, data: { by } }, () => consents.revokeAdmin(clientId, by));
        if (!old) throw new kit.UsageError(`no admin consent for client ${clientId}`);
        out.data = { clientId, revoked: true, by };
        out.lines.push(`admin consent for ${clientId} withdrawn (by ${by})`);
        return out;
      }
      case 'consent list': {
        const clientId = typeof v.client === 'string' ? v.client : undefined;
        if (typeof v.user === 'string') {
          await knownAccount(v.user);
          const apps = (await consents.listApps(v.user)).filter((a) => !clientId || a.clientId === clientId);
          out.data = apps.map(({ grants, ...a }) => ({ ...a, grants: Object.keys(grants).length }));
          out.lines.push(...kit.table(apps.map((a) => ({ client: a.clientId, scopes: a.scope, declined: a.declined, granted: a.grantedAt, lastUsed: a.lastUsedAt, grants: Object.keys(a.grants).length })),
            ['client', 'scopes', 'declined', 'granted', 'lastUsed', 'grants']));
          return out;
        }
        if (v.history) {
          const changes = await consents.adminHistory(clientId);
          out.data = changes;
          out.lines.push(...kit.table(changes.map((c) => ({ at: c.at, action: c.action, client: c.clientId, by: c.by, scopes: [...c.scope, ...Object.values(c.resources).flat()], claims: c.claims })),
            ['at', 'action', 'client', 'by', 'scopes', 'claims']));
          return out;
        }
        const list = (await consents.adminConsents()).filter((a) => !clientId || a.clientId === clientId);
        out.data = list;
        out.lines.push(...kit.table(list.map((a) => ({ client: a.clientId, scopes: a.scope, resources: Object.entries(a.resources).map(([r, x]) => `${r} ${x.join(' ')}`), claims: a.claims, by: a.grantedBy, at: a.grantedAt })),
          ['client', 'scopes', 'resources', 'claims', 'by', 'at']));
        return out;
      }
      case 'roles add': {
        const name = need('name');
        const resource = typeof v.resource === 'string' ? v.resource : undefined;
        if (resource !== undefined && !(await registry.findResource(resource))) throw new kit.UsageError(`no resource server ${resource}`);
        const permissions = words(typeof v.permissions === 'string' ? v.permissions : undefined);
        if (resource !== undefined && permissions.length === 0) throw usage('--resource names where --permissions belong: give --permissions too');
        const role = await change('role.saved', { data: { role: name, permissions: permissions.length, resource } },
          () => roles.add(name, { description: typeof v.description === 'string' ? v.description : undefined, permissions, resource })).catch(fail);
        out.data = role;
        out.lines.push(`role ${name} saved: ${role.permissions.length} permission${role.permissions.length === 1 ? '' : 's'}`);
        return out;
      }
      case 'roles list': {
        const list = await roles.list();
        out.data = list;
        out.lines.push(...kit.table(list.map((r) => ({ name: r.name, description: r.description, permissions: r.permissions.map((p) => (p.resource ? `${p.resource} ${p.value}` : p.value)) })),
          ['name', 'description', 'permissions']));
        return out;
      }
      case 'roles remove': {
        const name = need('name');
        if (!(await change('role.removed', { data: { role: name } }, () => roles.remove(name)))) throw new kit.UsageError(`no role ${name}`);
        out.data = { name, removed: true };
        out.lines.push(`role ${name} removed`);
        return out;
      }
      case 'users roles': {
        const sub = need('sub');
        const names = (v.role as string[] | undefined) ?? [];
        if (names.length === 0) throw usage('missing --role');
        await knownAccount(sub);
        const u = await change(action === 'add' ? 'roles.assigned' : 'roles.unassigned', { sub, data: { roles: names } },
          () => (action === 'add' ? roles.assign(sub, names) : roles.assign(sub, [], names))).catch(fail);
        out.data = { sub, ...u };
        out.lines.push(`${sub} has roles: ${u.assigned.join(', ') || '(none)'}${Object.keys(u.federated).length ? ` (and from connections: ${Object.entries(u.federated).map(([c, r]) => `${c}: ${r.join(', ')}`).join('; ')})` : ''}`);
        return out;
      }
    }
    throw usage('unknown command');
  });
}
