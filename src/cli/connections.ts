// `idp connections add|update|list|show|remove`: upstream identity providers
// (src/federation). `add` (and `update` when the issuer, discovery URL or kind
// changes) fetches the discovery document and checks its issuer before it
// saves; it prints the redirect URI to register at the upstream. Secrets are
// never printed: `show` says whether one is set. Exit codes as everywhere in
// the CLI: 2 for bad arguments or a connection that does not check out, 1 for
// an upstream that cannot be reached. src/cli/main.ts dispatches here.
import fs from 'node:fs';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { openKeyring } from '../keys/index.ts';
import { ConnectionStore, applyPatch, redirectUriFor, validateConnection, withDefaults } from '../federation/connections.ts';
import { UpstreamClient } from '../federation/upstream.ts';
import {
  CLIENT_AUTHS, CONNECTION_KINDS, LINKING_MODES, ConnectionConflict, ConnectionExists, ConnectionInvalid, ConnectionNotFound, UpstreamError,
  type ClientAuth, type Connection, type ConnectionKind, type ConnectionPatch, type LinkingMode,
} from '../federation/types.ts';
import type { CliKit, CliOut } from './users.ts';
import type { CommandHelp } from './help.ts';
import { readStdinSecret } from './secrets.ts';
import { recorded } from './recorded.ts';

const FIELDS = '[--kind oidc|entra|google] [--discovery-url URL] [--client-auth client_secret_basic|client_secret_post|private_key_jwt] [--scopes "openid email profile"] [--claim ATTR=PATH ...] [--domains a.example,b.example] [--linking off|prove|verified-email] [--tenants T1,T2] [--hosted-domain DOMAIN] [--role-claim CLAIM --role-map VALUE=ROLE[,ROLE] ...] [--[no-]allow-signup] [--[no-]trust-email-verified] [--[no-]link-only] [--[no-]hidden] [--[no-]upstream-logout] [--[no-]trust-upstream-mfa]';

export const CONNECTIONS_USAGE: Record<string, string> = {
  'connections add': `idp connections add --id ID --name NAME --issuer URL --client-id ID (--client-secret-stdin | --client-secret-file PATH | --client-secret SECRET) ${FIELDS} [--json]`,
  'connections update': `idp connections update --id ID [--name NAME] [--issuer URL] [--client-id ID] [--client-secret-stdin | --client-secret-file PATH | --client-secret SECRET] ${FIELDS} [--json]  (only the flags given change; --no-FLAG turns a switch off; --tenants "" and --hosted-domain "" clear; --claim ATTR= drops a mapping)`,
  'connections list': 'idp connections list [--json]',
  'connections show': 'idp connections show --id ID [--json]',
  'connections remove': 'idp connections remove --id ID [--json]',
};

const CONNECTION_FLAGS: Record<string, string> = {
  '--name NAME': 'the name on the sign-in button ("Continue with NAME")',
  '--issuer URL': 'the upstream\'s issuer (Entra: may hold {tenantid}); its discovery document is checked first',
  '--client-id ID': 'our client id at the upstream',
  '--client-secret-stdin': 'read our client secret at the upstream from stdin (one line)',
  '--client-secret-file PATH': 'or from a file (its trailing newline dropped)',
  '--client-secret SECRET': 'or on the command line (avoid: shells and npm keep or echo it)',
  '--kind oidc|entra|google': 'oidc (default); entra: {tenantid} issuers and --tenants; google: --hosted-domain',
  '--discovery-url URL': 'a /.well-known/ URL when it is not the issuer\'s',
  '--client-auth client_secret_basic|client_secret_post|private_key_jwt': 'how we authenticate at its token endpoint; private_key_jwt signs with a key of the connection\'s own',
  '--scopes "openid email profile"': 'what to ask for',
  '--claim ATTR=PATH ...': 'map an account attribute from a claim path (ATTR= drops a mapping)',
  '--domains a.example,b.example': 'e-mail domains it serves: typing such an address goes there (home-realm discovery)',
  '--linking off|prove|verified-email': 'an existing account with the same e-mail: refuse / ask for its password or an e-mailed code / link when the upstream vouches for the address',
  '--tenants T1,T2': 'Entra: the tenants allowed ("" clears)',
  '--hosted-domain DOMAIN': 'Google: the Workspace domain required ("" clears)',
  '--role-claim CLAIM': 'the upstream claim whose values give roles (e.g. groups); "" clears the role mapping',
  '--role-map VALUE=ROLE[,ROLE] ...': 'an upstream value and the roles (idp roles add) it gives; each sign-in sets the user\'s roles from this connection',
  '--[no-]allow-signup': 'create accounts just in time',
  '--[no-]trust-email-verified': 'trust the upstream\'s email_verified for verified-email linking',
  '--[no-]link-only': 'only identities already linked may sign in',
  '--[no-]hidden': 'no button; reachable by idp_hint or by domain',
  '--[no-]upstream-logout': 'our logout also signs the user out upstream',
  '--[no-]trust-upstream-mfa': 'an upstream amr with MFA counts as our second factor',
};

export const CONNECTIONS_HELP: Record<string, CommandHelp> = {
  'connections add': {
    about: 'Add an upstream identity provider users may sign in with. Its discovery document is fetched and its issuer checked first (unreachable: exit 1); the redirect URI to register at the upstream is printed.',
    flags: { '--id ID': 'lower-case letters, digits and "-" (used in the callback URL)', ...CONNECTION_FLAGS },
  },
  'connections update': {
    about: 'Change a connection: only the flags given change; --no-FLAG turns a switch off. A changed issuer, discovery URL or kind is checked against its discovery document first.',
    flags: { '--id ID': 'the connection', ...CONNECTION_FLAGS },
  },
  'connections list': { about: 'List the connections (secrets are never printed).' },
  'connections show': { about: 'Show one connection, with the redirect URI to register (its secret is only said to be set). An unknown id exits 2.', flags: { '--id ID': 'the connection' } },
  'connections remove': { about: 'Remove a connection. An unknown id exits 2.', flags: { '--id ID': 'the connection' } },
};

const SWITCHES = {
  'allow-signup': 'allowSignup',
  'trust-email-verified': 'trustEmailVerified',
  'link-only': 'linkOnly',
  hidden: 'hidden',
  'upstream-logout': 'upstreamLogout',
  'trust-upstream-mfa': 'trustUpstreamMfa',
} as const;

const OPTIONS: ParseArgsConfig['options'] = {
  id: { type: 'string' }, name: { type: 'string' }, kind: { type: 'string' }, issuer: { type: 'string' },
  'discovery-url': { type: 'string' }, 'client-id': { type: 'string' }, 'client-secret': { type: 'string' }, 'client-secret-stdin': { type: 'boolean' },
  'client-secret-file': { type: 'string' }, 'client-auth': { type: 'string' }, scopes: { type: 'string' },
  claim: { type: 'string', multiple: true }, domains: { type: 'string' }, linking: { type: 'string' },
  tenants: { type: 'string' }, 'hosted-domain': { type: 'string' }, 'role-claim': { type: 'string' }, 'role-map': { type: 'string', multiple: true },
  ...Object.fromEntries(Object.keys(SWITCHES).map((k) => [k, { type: 'boolean' as const }])),
};

type Values = Record<string, string | boolean | string[] | undefined>;

/** what a connection looks like to an operator: no secret, no private key */
export function connectionView(c: Connection, issuer: string): Record<string, unknown> {
  const { clientSecret, signingKey, ...rest } = c;
  return {
    ...rest,
    hasClientSecret: clientSecret !== undefined,
    ...(signingKey ? { signingKey: { kid: signingKey.kid, publicJwk: signingKey.publicJwk } } : {}),
    redirectUri: redirectUriFor(issuer, c.id),
  };
}

export async function runConnections(cmd: string, args: string[], kit: CliKit): Promise<CliOut> {
  const usage = (message: string) => new kit.UsageError(`${message}\nusage: ${CONNECTIONS_USAGE[cmd]}`);
  let v: Values;
  const list = cmd === 'connections list';
  try {
    v = parseArgs({ args, options: { ...(list ? {} : cmd === 'connections add' || cmd === 'connections update' ? OPTIONS : { id: { type: 'string' } }), json: { type: 'boolean' } }, strict: true, allowPositionals: false, allowNegative: true }).values as Values;
  } catch (err) {
    throw usage((err as Error).message);
  }
  const out: CliOut = { json: v.json === true, lines: [], data: undefined };
  const id = typeof v.id === 'string' ? v.id : undefined;
  if (!list && !id) throw usage('missing --id');
  if (v['client-secret-stdin'] === true) {
    if (v['client-secret'] !== undefined || v['client-secret-file'] !== undefined) throw usage('--client-secret-stdin, --client-secret-file and --client-secret exclude each other');
    v['client-secret'] = await readStdinSecret(kit.io, '--client-secret-stdin', usage);
  }
  const { config } = kit;

  return kit.withStorage(config, async (s) => {
    const keyring = await openKeyring(config, s);
    try {
      const store = new ConnectionStore(s, keyring);
      switch (cmd) {
        case 'connections list': {
          const all = await store.list();
          out.data = all.map((c) => connectionView(c, config.issuer));
          out.lines.push(...kit.table(all.map((c) => ({
            id: c.id, name: c.name, kind: c.kind, issuer: c.issuer, domains: c.domains, linking: c.linking,
            signup: c.allowSignup, hidden: c.hidden,
          })), ['id', 'name', 'kind', 'issuer', 'domains', 'linking', 'signup', 'hidden']));
          return out;
        }
        case 'connections show': {
          const c = await store.get(id!);
          if (!c) throw new kit.UsageError(`no connection ${id}`);
          const view = connectionView(c, config.issuer);
          out.data = view;
          out.lines.push(...describe(c, view));
          return out;
        }
        case 'connections remove': {
          try {
            await recorded(config, s, { type: 'connection.deleted', actor: 'cli', reason: 'operator_cli', data: { connection: id } }, () => store.remove(id!));
          } catch (err) {
            if (err instanceof ConnectionNotFound) throw new kit.UsageError(err.message);
            throw err;
          }
          out.data = { id, removed: true };
          out.lines.push(`connection ${id} removed`);
          return out;
        }
        case 'connections add':
        case 'connections update': {
          const patch = readPatch(v, usage);
          const adding = cmd === 'connections add';
          let saved: Connection;
          try {
            if (adding) {
              for (const [flag, value] of [['--name', patch.name], ['--client-id', patch.clientId]] as const) if (!value) throw usage(`missing ${flag}`);
              if (!patch.issuer && patch.kind !== 'google') throw usage('missing --issuer');
              const draft = withDefaults({ ...patch, id: id!, name: patch.name!, clientId: patch.clientId!, clientSecret: patch.clientSecret ?? undefined, tenants: patch.tenants ?? undefined, hostedDomain: patch.hostedDomain ?? undefined, roleMapping: patch.roleMapping ?? undefined });
              validateConnection(draft);
              await checkDiscovery(draft);
              saved = await recorded(config, s, { type: 'connection.created', actor: 'cli', reason: 'operator_cli', data: { connection: draft.id, kind: draft.kind } }, () => store.add({ ...draft }));
            } else {
              const current = await store.get(id!);
              if (!current) throw new ConnectionNotFound(id!);
              if (patch.issuer !== undefined || patch.discoveryUrl !== undefined || patch.kind !== undefined) {
                // the change as it would be saved, checked on its own and against its discovery document first
                const next = applyPatch(current, patch);
                validateConnection(next);
                await checkDiscovery(next);
              }
              // the names of the fields changed, never their values (a client secret is one)
              saved = await recorded(config, s, { type: 'connection.updated', actor: 'cli', reason: 'operator_cli', data: { connection: id, fields: Object.keys(patch).sort() } },
                () => store.update(id!, patch, current.version));
            }
          } catch (err) {
            if (err instanceof ConnectionInvalid || err instanceof ConnectionExists || err instanceof ConnectionNotFound || err instanceof ConnectionConflict) throw new kit.UsageError(err.message);
            throw err;
          }
          const view = connectionView(saved, config.issuer);
          out.data = view;
          out.lines.push(`connection ${saved.id} ${adding ? 'saved' : 'updated'}`);
          out.lines.push(`redirect URI to register at the upstream: ${view.redirectUri}`);
          if (saved.signingKey) out.lines.push(`public key to register at the upstream (private_key_jwt): ${JSON.stringify(saved.signingKey.publicJwk)}`);
          return out;
        }
      }
      throw usage(`unknown command "${cmd}"`);
    } finally {
      keyring.close();
    }
  });

  /** fetches the discovery document: unreachable -> exit 1, anything else wrong with it -> exit 2 */
  async function checkDiscovery(c: Connection): Promise<void> {
    try {
      await new UpstreamClient().discover(c);
    } catch (err) {
      if (!(err instanceof UpstreamError)) throw err;
      if (err.reason === 'unreachable') throw new Error(`cannot reach the discovery document at ${c.discoveryUrl}: ${err.detail}`);
      throw new kit.UsageError(`discovery check failed: ${err.detail}`);
    }
  }
}

function oneOf<T extends string>(v: unknown, allowed: readonly T[], flag: string, usage: (m: string) => Error): T | undefined {
  if (v === undefined) return undefined;
  if (!allowed.includes(v as T)) throw usage(`${flag} must be one of ${allowed.join(', ')}, got "${String(v)}"`);
  return v as T;
}

const listOf = (v: unknown, sep: RegExp): string[] | undefined => (typeof v === 'string' ? v.split(sep).map((x) => x.trim()).filter(Boolean) : undefined);

/** the flags given, as a ConnectionPatch (add uses it as its input) */
function readPatch(v: Values, usage: (m: string) => Error): ConnectionPatch {
  const p: ConnectionPatch = {};
  const str = (flag: string) => (typeof v[flag] === 'string' ? v[flag] as string : undefined);
  if (str('name') !== undefined) p.name = str('name');
  if (str('issuer') !== undefined) p.issuer = str('issuer')!.replace(/\/$/, '');
  if (str('discovery-url') !== undefined) p.discoveryUrl = str('discovery-url');
  if (str('client-id') !== undefined) p.clientId = str('client-id');
  p.kind = oneOf<ConnectionKind>(v.kind, CONNECTION_KINDS, '--kind', usage);
  p.clientAuth = oneOf<ClientAuth>(v['client-auth'], CLIENT_AUTHS, '--client-auth', usage);
  p.linking = oneOf<LinkingMode>(v.linking, LINKING_MODES, '--linking', usage);
  if (v['client-secret'] !== undefined && v['client-secret-file'] !== undefined) throw usage('--client-secret and --client-secret-file exclude each other');
  if (str('client-secret') !== undefined) p.clientSecret = str('client-secret');
  const file = str('client-secret-file');
  if (file !== undefined) {
    let secret: string;
    try {
      secret = fs.readFileSync(file, 'utf8').replace(/\r?\n$/, '');
    } catch {
      throw usage(`cannot read --client-secret-file ${file}`);
    }
    if (!secret) throw usage(`--client-secret-file ${file} is empty`);
    p.clientSecret = secret;
  }
  if (p.clientAuth === 'private_key_jwt' && p.clientSecret) throw usage('private_key_jwt takes no client secret (the connection gets a key of its own)');
  p.scopes = listOf(v.scopes, /\s+/);
  p.domains = listOf(v.domains, /,/);
  if (v.tenants !== undefined) p.tenants = v.tenants === '' ? null : listOf(v.tenants, /,/);
  if (v['hosted-domain'] !== undefined) p.hostedDomain = v['hosted-domain'] === '' ? null : str('hosted-domain');
  const claims = v.claim as string[] | undefined;
  if (claims) {
    p.claimMapping = {};
    for (const c of claims) {
      const i = c.indexOf('=');
      if (i < 1) throw usage(`--claim must be ATTR=PATH (e.g. name=profile.name), got "${c}"`);
      p.claimMapping[c.slice(0, i).trim()] = c.slice(i + 1).trim();
    }
  }
  if (v['role-claim'] === '') {
    p.roleMapping = null;
  } else if (v['role-claim'] !== undefined || v['role-map'] !== undefined) {
    if (typeof v['role-claim'] !== 'string') throw usage('--role-map needs --role-claim');
    const values: Record<string, string[]> = {};
    for (const m of (v['role-map'] as string[] | undefined) ?? []) {
      const i = m.indexOf('=');
      if (i < 1) throw usage(`--role-map must be VALUE=ROLE[,ROLE], got "${m}"`);
      values[m.slice(0, i).trim()] = m.slice(i + 1).split(',').map((r) => r.trim()).filter(Boolean);
    }
    p.roleMapping = { claim: v['role-claim'], values };
  }
  for (const [flag, field] of Object.entries(SWITCHES)) if (typeof v[flag] === 'boolean') p[field] = v[flag] as boolean;
  for (const k of Object.keys(p) as Array<keyof ConnectionPatch>) if (p[k] === undefined) delete p[k];
  return p;
}

function describe(c: Connection, view: Record<string, unknown>): string[] {
  const yes = (b: boolean) => (b ? 'yes' : 'no');
  return [
    `id:                   ${c.id}`,
    `name:                 ${c.name}`,
    `kind:                 ${c.kind}`,
    `issuer:               ${c.issuer}`,
    `discovery URL:        ${c.discoveryUrl}`,
    `client id:            ${c.clientId}`,
    `client auth:          ${c.clientAuth}`,
    `client secret:        ${c.clientSecret !== undefined ? 'set' : 'not set'}`,
    ...(c.signingKey ? [`signing key:          ${c.signingKey.kid} (public JWK: ${JSON.stringify(c.signingKey.publicJwk)})`] : []),
    `scopes:               ${c.scopes.join(' ')}`,
    `claim mapping:        ${Object.entries(c.claimMapping).map(([k, p]) => `${k}=${p}`).join(', ')}`,
    `domains:              ${c.domains.join(', ') || '(none)'}`,
    ...(c.tenants ? [`tenants:              ${c.tenants.join(', ')}`] : []),
    ...(c.hostedDomain ? [`hosted domain:        ${c.hostedDomain}`] : []),
    `linking:              ${c.linking}`,
    `allow signup:         ${yes(c.allowSignup)}`,
    `trust email verified: ${yes(c.trustEmailVerified)}`,
    `link only:            ${yes(c.linkOnly)}`,
    `hidden:               ${yes(c.hidden)}`,
    `upstream logout:      ${yes(c.upstreamLogout)}`,
    `trust upstream MFA:   ${yes(c.trustUpstreamMfa)}`,
    `redirect URI:         ${String(view.redirectUri)}`,
    `version:              ${c.version} (updated ${c.updatedAt})`,
  ];
}
