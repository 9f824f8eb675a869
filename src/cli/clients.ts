// `idp clients add|update|show|list|remove`: the relying parties. Metadata
// is validated by oidc-provider itself (validate-client.ts) before it is
// saved. `add` refuses an id that exists (it never replaces a client nor
// issues it a new secret); `update` changes only the fields it is given and
// leaves the sealed secret as it is; nothing prints a secret except `add`,
// once, when it generated one. An unknown id exits 2. src/cli/main.ts
// dispatches here.
import crypto from 'node:crypto';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import type { AdapterPayload } from 'oidc-provider';
import { Registry } from '../provider/registry.ts';
import { openKeyring } from '../keys/index.ts';
import { MFA_POLICIES, isMfaPolicy } from '../mfa/types.ts';
import { MFA_CLIENT_METADATA } from '../mfa/policy.ts';
import { validateClient } from './validate-client.ts';
import { secretFrom } from './secrets.ts';
import type { CommandHelp } from './help.ts';
import type { CliKit, CliOut } from './users.ts';
import { recorded } from './recorded.ts';
import { ADMIN_SCOPES_METADATA, ADMIN_SCOPE_VALUES } from '../config/admin.ts';

const MFA = 'off|optional|required|new_device';
const FIELDS = `[--post-logout-redirect-uri URI...] [--grant-types a,b] [--name NAME] [--backchannel-logout-uri URI] [--mfa-policy ${MFA}] [--admin-scopes "admin:users ..."]`;

export const CLIENTS_USAGE: Record<string, string> = {
  'clients add': `idp clients add --id ID --redirect-uri URI [--redirect-uri URI...] [--public | --secret-stdin | --secret S] ${FIELDS} [--first-party] [--json]`,
  'clients update': `idp clients update --id ID [--redirect-uri URI...] ${FIELDS} [--[no-]first-party] [--json]`,
  'clients show': 'idp clients show --id ID [--json]',
  'clients list': 'idp clients list [--json]',
  'clients remove': 'idp clients remove --id ID [--json]',
};

const FIELD_HELP: Record<string, string> = {
  '--redirect-uri URI': 'where the code may be sent back (exact match); repeat for several',
  '--post-logout-redirect-uri URI': 'where RP-initiated logout may return; repeat for several',
  '--grant-types a,b': 'default authorization_code,refresh_token; client_credentials for a service',
  '--name NAME': 'the name users see on the sign-in and consent pages',
  '--backchannel-logout-uri URI': 'receives a logout token when the user signs out',
  [`--mfa-policy ${MFA}`]: 'the client\'s mfa_policy (docs/mfa.md); without it MFA_POLICY applies',
  '--admin-scopes "admin:users ..."': 'the admin API scopes this client is granted (its admin_scopes, docs/admin.md), separated by spaces; empty clears them',
};

export const CLIENTS_HELP: Record<string, CommandHelp> = {
  'clients add': {
    about: 'Register a client. An id that exists already is refused (exit 2): use `clients update`. Without --public or a secret, a URL-safe secret is generated and printed once.',
    flags: {
      '--id ID': 'the client_id',
      ...FIELD_HELP,
      '--public': 'a public client (no secret; PKCE only), e.g. a single-page or native app',
      '--secret-stdin': 'read the client secret from stdin (one line) instead of generating one',
      '--secret S': 'the client secret on the command line (avoid: shells and npm keep or echo it)',
      '--first-party': 'one of ours: no consent page',
    },
  },
  'clients update': {
    about: 'Change a client\'s metadata: only the flags given change (--redirect-uri and --post-logout-redirect-uri replace their lists; an empty value clears --name, --backchannel-logout-uri, --post-logout-redirect-uri and --mfa-policy). The secret is kept as it is.',
    flags: { '--id ID': 'the client to change', ...FIELD_HELP, '--[no-]first-party': 'skip consent, or not' },
  },
  'clients show': { about: 'Show one client\'s metadata (never its secret: has_secret says whether it has one).', flags: { '--id ID': 'the client' } },
  'clients list': { about: 'List the clients (never their secrets).' },
  'clients remove': { about: 'Remove a client. An unknown id exits 2.', flags: { '--id ID': 'the client' } },
};

type Values = Record<string, string | boolean | string[] | undefined>;

const OPTIONS: ParseArgsConfig['options'] = {
  id: { type: 'string' }, name: { type: 'string' },
  'redirect-uri': { type: 'string', multiple: true }, 'post-logout-redirect-uri': { type: 'string', multiple: true },
  'grant-types': { type: 'string' }, 'first-party': { type: 'boolean' }, 'backchannel-logout-uri': { type: 'string' },
  'mfa-policy': { type: 'string' }, 'admin-scopes': { type: 'string' },
};

const ADD_OPTIONS: ParseArgsConfig['options'] = { ...OPTIONS, secret: { type: 'string' }, 'secret-stdin': { type: 'boolean' }, public: { type: 'boolean' } };

/** what an operator sees of a client: never the secret, sealed or not */
export function clientView(c: AdapterPayload): Record<string, unknown> {
  const { client_secret, client_secret_sealed, ...rest } = c as AdapterPayload & { client_secret_sealed?: string };
  return { ...rest, has_secret: client_secret !== undefined || client_secret_sealed !== undefined };
}

export async function runClients(cmd: string, args: string[], kit: CliKit): Promise<CliOut> {
  const usage = (message: string) => new kit.UsageError(`${message}\nusage: ${CLIENTS_USAGE[cmd]}`);
  const options = cmd === 'clients add' ? ADD_OPTIONS : cmd === 'clients update' ? OPTIONS : cmd === 'clients list' ? {} : { id: { type: 'string' as const } };
  let v: Values;
  try {
    v = parseArgs({ args, options: { ...options, json: { type: 'boolean' } }, strict: true, allowPositionals: false, allowNegative: cmd === 'clients update' }).values as Values;
  } catch (err) {
    throw usage((err as Error).message);
  }
  const out: CliOut = { json: v.json === true, lines: [], data: undefined };
  const id = typeof v.id === 'string' && v.id !== '' ? v.id : undefined;
  if (cmd !== 'clients list' && !id) throw usage('missing --id');
  const { config } = kit;

  switch (cmd) {
    case 'clients list': {
      const clients = await kit.withStorage(config, (s) => new Registry(s).listClients());
      const safe = clients.map(clientView);
      out.data = safe;
      out.lines.push(...kit.table(safe.map((c) => ({ id: c.client_id, name: c.client_name, auth: c.token_endpoint_auth_method, grants: c.grant_types, first_party: c.first_party, mfa_policy: c[MFA_CLIENT_METADATA], redirect_uris: c.redirect_uris })),
        ['id', 'name', 'auth', 'grants', 'first_party', 'mfa_policy', 'redirect_uris']));
      return out;
    }
    case 'clients show': {
      const c = await kit.withStorage(config, (s) => new Registry(s).clients.find(id!));
      if (!c) throw new kit.UsageError(`no client ${id}`);
      const view = clientView(c);
      out.data = view;
      const width = Math.max(...Object.keys(view).map((k) => k.length)) + 1;
      out.lines.push(...Object.entries(view).map(([k, val]) => `${`${k}:`.padEnd(width)} ${Array.isArray(val) ? val.join(', ') : typeof val === 'object' ? JSON.stringify(val) : String(val)}`));
      return out;
    }
    case 'clients remove': {
      const removed = await kit.withStorage(config, async (s) => {
        const registry = new Registry(s);
        if (!(await registry.clients.find(id!))) return false;
        return recorded(config, s, { type: 'client.deleted', clientId: id!, actor: 'cli' }, () => registry.removeClient(id!));
      });
      if (!removed) throw new kit.UsageError(`no client ${id}`);
      out.data = { client_id: id, removed };
      out.lines.push(`client ${id} removed`);
      return out;
    }
    case 'clients add': {
      if (v.public && (v.secret !== undefined || v['secret-stdin'])) throw usage('--public and a secret exclude each other');
      const given = v.public ? undefined : await secretFrom({ argv: v.secret, stdin: v['secret-stdin'] === true, io: kit.io, argvFlag: '--secret', stdinFlag: '--secret-stdin', usage });
      const secret = v.public ? undefined : given ?? crypto.randomBytes(32).toString('base64url');
      const metadata = applyFields({ client_id: id!, token_endpoint_auth_method: v.public ? 'none' : 'client_secret_basic', ...(secret ? { client_secret: secret } : {}) }, v, usage, true);
      await kit.withStorage(config, async (s) => {
        const keyring = await openKeyring(config, s);
        try {
          if (await new Registry(s).clients.find(id!)) throw new kit.UsageError(`client ${id} already exists: change it with \`idp clients update --id ${id} ...\`, or remove it first`);
          await validateClient(config, s, metadata, keyring);
          await recorded(config, s, { type: 'client.created', clientId: id!, actor: 'cli' }, () => new Registry(s, { keyring }).putClient(metadata as AdapterPayload & { client_id: string }));
        } finally {
          keyring.close();
        }
      });
      out.data = { client_id: id, client_secret: secret, public: !!v.public };
      out.lines.push(`client ${id} saved`);
      if (secret && !given) out.lines.push(`client_secret: ${secret}  (shown once; store it now)`);
      return out;
    }
    case 'clients update': {
      const saved = await kit.withStorage(config, async (s) => {
        const keyring = await openKeyring(config, s);
        try {
          // as stored: a sealed secret stays sealed, byte for byte; validation sees it opened
          const raw = await new Registry(s).clients.find(id!);
          if (!raw) throw new kit.UsageError(`no client ${id}`);
          const next = applyFields({ ...raw } as Record<string, unknown>, v, usage, false);
          const opened = await new Registry(s, { keyring }).clients.find(id!);
          const { client_secret_sealed: _sealed, ...plain } = next;
          await validateClient(config, s, { ...plain, ...(opened?.client_secret ? { client_secret: opened.client_secret } : {}) }, keyring);
          await recorded(config, s, { type: 'client.updated', clientId: id!, actor: 'cli' }, () => new Registry(s).putClient(next as AdapterPayload & { client_id: string }));
          return next as AdapterPayload;
        } finally {
          keyring.close();
        }
      });
      out.data = clientView(saved);
      out.lines.push(`client ${id} updated`);
      return out;
    }
  }
  throw usage(`unknown command "${cmd}"`);
}

/** the flags given, onto client metadata (add: with the defaults of a new client) */
function applyFields(m: Record<string, unknown>, v: Values, usage: (m: string) => Error, adding: boolean): Record<string, unknown> {
  const str = (k: string) => (typeof v[k] === 'string' ? (v[k] as string) : undefined);
  const list = (k: string) => (Array.isArray(v[k]) ? (v[k] as string[]).filter((x) => x !== '') : undefined);
  const setOrClear = (key: string, value: unknown) => {
    if (value === undefined) return;
    if (value === '' || (Array.isArray(value) && value.length === 0)) delete m[key];
    else m[key] = value;
  };
  const mfaPolicy = str('mfa-policy');
  if (mfaPolicy !== undefined && mfaPolicy !== '' && !isMfaPolicy(mfaPolicy)) throw usage(`--mfa-policy must be one of ${MFA_POLICIES.join(', ')}, got "${mfaPolicy}"`);
  if (adding || v['grant-types'] !== undefined) {
    const grants = (str('grant-types') ?? 'authorization_code,refresh_token').split(',').map((g) => g.trim()).filter(Boolean);
    m.grant_types = grants;
    m.response_types = grants.includes('authorization_code') ? ['code'] : [];
  }
  if (adding) m.redirect_uris = list('redirect-uri') ?? [];
  else if (v['redirect-uri'] !== undefined) m.redirect_uris = list('redirect-uri');
  if ((m.grant_types as string[]).includes('authorization_code') && (m.redirect_uris as string[] | undefined ?? []).length === 0) throw usage('authorization_code needs at least one --redirect-uri');
  setOrClear('client_name', str('name'));
  setOrClear('post_logout_redirect_uris', v['post-logout-redirect-uri'] === undefined ? undefined : list('post-logout-redirect-uri'));
  setOrClear('backchannel_logout_uri', str('backchannel-logout-uri'));
  setOrClear(MFA_CLIENT_METADATA, mfaPolicy);
  const adminScopes = str('admin-scopes');
  if (adminScopes !== undefined) {
    const scopes = [...new Set(adminScopes.split(/\s+/).filter(Boolean))];
    const unknown = scopes.filter((x) => !ADMIN_SCOPE_VALUES.includes(x));
    if (unknown.length) throw usage(`--admin-scopes: ${unknown.join(', ')} ${unknown.length === 1 ? 'is not an admin scope' : 'are not admin scopes'} (${ADMIN_SCOPE_VALUES.filter((x) => x.split(':').length === 2).join(', ')}, each also :read or :write)`);
    setOrClear(ADMIN_SCOPES_METADATA, scopes.join(' '));
  }
  if (adding || typeof v['first-party'] === 'boolean') m.first_party = v['first-party'] === true;
  return m;
}
