// `idp users ...` and `idp migration status`: account commands of the CLI
// (src/cli/main.ts dispatches here). Nothing personal is printed unless the
// operator asks for it (--reveal): lists show subs, statuses and sources.
import fs from 'node:fs';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import type { Config } from '../config/index.ts';
import type { CommandHelp } from './help.ts';
import { secretFrom, type CliIo } from './secrets.ts';
import type { Storage } from '../storage/index.ts';
import { openKeyring } from '../keys/index.ts';
import { argon2Hasher } from '../accounts/hasher.ts';
import { DynamoAccountStore } from '../accounts/dynamo-store.ts';
import { erasureHooks } from '../erasure-hooks.ts';
import { importFile, type ImportSummary } from '../accounts/import.ts';
import { loadLegacySecrets } from '../accounts/legacy-config.ts';
import { PasswordPolicy } from '../passwords/policy.ts';
import { eventsFor, type EventType } from '../events/index.ts';
import { createLogger } from '../logging/index.ts';
import { withAdmin, CLI_ACTOR } from './admin.ts';
import { Conflict } from '../admin/errors.ts';
import {
  isValidEmail, normalizeEmail, normalizePhone, type Account,
} from '../accounts/types.ts';

export const USERS_USAGE: Record<string, string> = {
  'users add': 'idp users add --email EMAIL [--password-stdin | --password PASSWORD] [--name NAME] [--email-verified] [--phone +E164 [--phone-verified]] [--json]',
  'users list': 'idp users list [--reveal] [--limit N] [--json]',
  'users show': 'idp users show --sub SUB [--reveal] [--json]',
  'users import': 'idp users import FILE.jsonl [--dry-run] [--concurrency N] [--json]',
  'users merge': 'idp users merge --into SUB --from SUB [--json]',
  'users unmerge': 'idp users unmerge --merge-id ID [--json]',
  'users delete': 'idp users delete --erase SUB [--json]',
  'migration status': 'idp migration status [--json]',
};

export const USERS_HELP: Record<string, CommandHelp> = {
  'users add': {
    about: 'Create a user with an argon2id password. The password is typed at a prompt (not echoed), or read from stdin with --password-stdin; it must pass the password policy (a refused one exits 2 and writes nothing). An e-mail address in use exits 2.',
    flags: {
      '--email EMAIL': 'the sign-in address',
      '--password-stdin': 'read the password from stdin (one line), e.g. from a secrets manager or a file',
      '--password PASSWORD': 'the password on the command line (avoid: shells and npm keep or echo it)',
      '--name NAME': 'the full name (name claim)',
      '--email-verified': 'the address is known to be the user\'s (email_verified; needed for e-mailed codes and merges)',
      '--phone +E164': 'a phone number, E.164 (+ country code and number)',
      '--phone-verified': 'the phone number is verified',
    },
  },
  'users list': { about: 'List accounts: subjects, statuses, sources and password kinds; personal data only with --reveal.', flags: { '--reveal': 'add e-mail and name (decrypts every record)', '--limit N': 'at most N accounts (default 1000)' } },
  'users show': { about: 'Show one account (identities, merges, versions); its profile only with --reveal. An unknown sub exits 2.', flags: { '--sub SUB': 'the account\'s subject', '--reveal': 'add the profile (personal data)' } },
  'users import': {
    about: 'Import legacy accounts from JSON Lines, one account a line (docs/accounts.md). Rejected lines are listed as "line N: reason" and the import goes on; any rejected line makes the exit code 1. Re-importing changes nothing.',
    flags: { '--dry-run': 'check and count, write nothing', '--concurrency N': 'rows in flight, 1 to 64 (default 8)' },
  },
  'users merge': { about: 'Merge the account --from into --into (its identities move; undo with users unmerge).', flags: { '--into SUB': 'the account that stays', '--from SUB': 'the account merged away' } },
  'users unmerge': { about: 'Undo a merge: the merged account is separate again.', flags: { '--merge-id ID': 'the merge id printed by users merge (or shown by users show)' } },
  'users delete': { about: 'Erase an account: its data key is destroyed, its pointers, lockout and MFA items deleted. An unknown sub exits 2.', flags: { '--erase SUB': 'the account\'s subject' } },
  'migration status': { about: 'Per legacy source: accounts, migrated to argon2id, still on a legacy hash, last legacy login, sunset.' },
};

export interface CliOut {
  json: boolean;
  lines: string[];
  data: unknown;
  /** exit code when not 0 (1: the command ran, but not everything was done) */
  status?: number;
  notes?: string[];
}

export interface CliKit {
  config: Config;
  UsageError: new (message: string) => Error;
  withStorage<T>(config: Config, fn: (s: Storage) => Promise<T>): Promise<T>;
  table(rows: Array<Record<string, unknown>>, cols: string[]): string[];
  /** stdin and the terminal, for secrets (secrets.ts) */
  io?: CliIo;
}

type Values = Record<string, string | boolean | string[] | undefined>;

function parse(kit: CliKit, cmd: string, args: string[], options: ParseArgsConfig['options'], positionals = 0): { v: Values; pos: string[] } {
  let r;
  try {
    r = parseArgs({ args, options: { ...options, json: { type: 'boolean' } }, strict: true, allowPositionals: positionals > 0 });
  } catch (err) {
    throw new kit.UsageError(`${(err as Error).message}\nusage: ${USERS_USAGE[cmd]}`);
  }
  if (r.positionals.length > positionals) throw new kit.UsageError(`unexpected argument "${r.positionals[positionals]}"\nusage: ${USERS_USAGE[cmd]}`);
  return { v: r.values as Values, pos: r.positionals };
}

function need(kit: CliKit, cmd: string, v: unknown, flag: string): string {
  if (typeof v !== 'string' || v === '') throw new kit.UsageError(`missing ${flag}\nusage: ${USERS_USAGE[cmd]}`);
  return v;
}

export async function withAccounts<T>(kit: CliKit, fn: (store: DynamoAccountStore, storage: Storage) => Promise<T>): Promise<T> {
  const { config } = kit;
  return kit.withStorage(config, async (s) => {
    const keyring = await openKeyring(config, s);
    try {
      return await fn(new DynamoAccountStore(s, argon2Hasher(config.argon2), keyring, {
        dataKeyCache: { maxEntries: config.accounts.dataKeyCacheSize, maxAgeMs: config.accounts.dataKeyCacheSeconds * 1000 },
        erasureHooks: erasureHooks({ dataDir: config.dataDir }),
      }), s);
    } finally {
      (keyring as { close?: () => void }).close?.();
    }
  });
}

/**
 * An event for what an operator did outside the admin service (e.g.
 * federation.unlinked), recorded like the server's (EVENTS_SINK); sub and ids
 * only, never personal data. Account lifecycle (user.created, .merged,
 * .unmerged, .deleted) goes through the admin service (src/cli/admin.ts).
 */
export async function lifecycleEvent(kit: CliKit, type: EventType, fields: { sub: string; data?: Record<string, unknown> }): Promise<void> {
  const { config } = kit;
  await kit.withStorage(config, async (s) => {
    const events = eventsFor(config, s, createLogger('silent'), 'cli');
    try {
      await events.append(type, { ...fields, actor: 'cli', reason: 'operator_cli' });
    } finally {
      await events.close();
    }
  });
}

/** what an operator sees of one account; personal data only with --reveal */
function describe(a: Account, reveal: boolean): Record<string, unknown> {
  return {
    sub: a.sub, status: a.status, ...(a.pendingReason ? { pendingReason: a.pendingReason } : {}),
    password: a.passwordHash ? 'argon2id' : a.identities.some((i) => i.legacy) ? 'legacy' : 'none',
    identities: a.identities.map((i) => ({
      source: i.source, sourceUserId: i.sourceUserId, status: i.status, via: i.via, verifiedLink: i.verifiedLink,
      ...(i.mergeId ? { mergeId: i.mergeId } : {}), ...(i.legacy ? { legacyScheme: i.legacy.scheme ?? 'detected' } : {}), linkedAt: i.linkedAt,
    })),
    provenance: a.provenance,
    merges: a.merges,
    version: a.version, createdAt: a.createdAt, updatedAt: a.updatedAt,
    ...(reveal ? {
      profile: {
        email: a.email, emailVerified: a.emailVerified, phone: a.phone, phoneVerified: a.phoneVerified,
        name: a.name, givenName: a.givenName, familyName: a.familyName, ...a.extra,
      },
    } : {}),
  };
}

/** a progress bar on stderr, redrawn in place (only when stderr is a terminal) */
function progressBar(): ((p: { bytes: number; totalBytes: number; read: number; rejected: number; done: boolean }) => void) | undefined {
  if (!process.stderr.isTTY) return undefined;
  const started = Date.now();
  return (p) => {
    const width = 30;
    const frac = p.totalBytes ? p.bytes / p.totalBytes : 1;
    const filled = Math.round(frac * width);
    const rate = p.read / Math.max(0.001, (Date.now() - started) / 1000);
    process.stderr.write(`\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${(frac * 100).toFixed(0).padStart(3)}%  ${p.read} lines  ${p.rejected} rejected  ${rate.toFixed(0)}/s `);
    if (p.done) process.stderr.write('\n');
  };
}

export async function runUsers(cmd: string, args: string[], kit: CliKit): Promise<CliOut> {
  const { config } = kit;
  const out: CliOut = { json: false, lines: [], data: undefined };
  switch (cmd) {
    case 'users add': {
      const { v } = parse(kit, cmd, args, {
        email: { type: 'string' }, password: { type: 'string' }, 'password-stdin': { type: 'boolean' }, name: { type: 'string' }, 'email-verified': { type: 'boolean' },
        phone: { type: 'string' }, 'phone-verified': { type: 'boolean' },
      });
      out.json = !!v.json;
      const email = need(kit, cmd, v.email, '--email');
      if (!isValidEmail(email)) throw new kit.UsageError(`--email: "${email}" is not a valid e-mail address\nusage: ${USERS_USAGE[cmd]}`);
      const usage = (m: string) => new kit.UsageError(`${m}\nusage: ${USERS_USAGE[cmd]}`);
      const password = await secretFrom({
        argv: v.password, stdin: v['password-stdin'] === true, io: kit.io, argvFlag: '--password', stdinFlag: '--password-stdin',
        prompt: `password for ${email}`, confirm: true, usage,
      });
      if (password === undefined) throw usage('missing the password: type it at the prompt (in a terminal), or give it on stdin with --password-stdin');
      const phone = typeof v.phone === 'string' ? normalizePhone(v.phone) : undefined;
      if (typeof v.phone === 'string' && !phone) throw new kit.UsageError(`--phone must be an E.164 number (+, country code, number)\nusage: ${USERS_USAGE[cmd]}`);
      // the password policy of the change and reset pages (PASSWORD_*), checked before anything is opened or written
      const hasher = argon2Hasher(config.argon2);
      const policy = new PasswordPolicy(config.passwordPolicy, (hash, pw) => hasher.verify(hash, pw));
      const refused = await policy.problems(password, { email, phone, name: typeof v.name === 'string' ? v.name : undefined });
      if (refused.length > 0) throw new kit.UsageError(`--password refused by the password policy: ${refused.join(' ')}`);
      // the admin service writes it, with its event (user.created, actor cli)
      const account = await withAdmin(kit, async (admin) => {
        try {
          return await admin.createUser({
            email, password, name: v.name as string | undefined, emailVerified: !!v['email-verified'],
            ...(phone ? { phone, phoneVerified: !!v['phone-verified'] } : {}),
          }, CLI_ACTOR);
        } catch (err) {
          if (err instanceof Conflict) throw new kit.UsageError(`an account with e-mail ${email}${phone ? ' or that phone' : ''} already exists`);
          throw err;
        }
      });
      out.data = { sub: account.sub, email: normalizeEmail(email) };
      out.lines.push(`user ${account.sub} created`);
      return out;
    }
    case 'users list': {
      const { v } = parse(kit, cmd, args, { reveal: { type: 'boolean' }, limit: { type: 'string' } });
      out.json = !!v.json;
      const limit = v.limit === undefined ? 1000 : Number(v.limit);
      if (!Number.isInteger(limit) || limit < 1) throw new kit.UsageError(`--limit must be a whole number above 0\nusage: ${USERS_USAGE[cmd]}`);
      const rows = await withAccounts(kit, async (store) => {
        const list = await store.list({ limit });
        if (!v.reveal) return list.map((u) => ({ ...u, password: u.hasPassword ? 'argon2id' : u.legacySources.length ? 'legacy' : 'none' }));
        const out: Array<Record<string, unknown>> = [];
        for (const u of list) {
          const a = await store.findBySub(u.sub);
          out.push({ ...u, password: u.hasPassword ? 'argon2id' : u.legacySources.length ? 'legacy' : 'none', email: a?.email, emailVerified: a?.emailVerified, phone: a?.phone, name: a?.name });
        }
        return out;
      });
      out.data = rows;
      out.lines.push(...kit.table(rows.map((u) => ({
        ...u, sources: (u.sources as string[]).join(',') || '-', created: u.createdAt,
      })), ['sub', ...(v.reveal ? ['email', 'name'] : []), 'status', 'sources', 'password', 'created']));
      return out;
    }
    case 'users show': {
      const { v } = parse(kit, cmd, args, { sub: { type: 'string' }, reveal: { type: 'boolean' } });
      out.json = !!v.json;
      const sub = need(kit, cmd, v.sub, '--sub');
      const a = await withAccounts(kit, (store) => store.findBySub(sub));
      if (!a) throw new kit.UsageError(`no account ${sub}`);
      const d = describe(a, !!v.reveal);
      out.data = d;
      out.lines.push(JSON.stringify(d, null, 2));
      return out;
    }
    case 'users import': {
      const { v, pos } = parse(kit, cmd, args, { 'dry-run': { type: 'boolean' }, concurrency: { type: 'string' } }, 1);
      out.json = !!v.json;
      const file = pos[0];
      if (!file) throw new kit.UsageError(`missing FILE.jsonl\nusage: ${USERS_USAGE[cmd]}`);
      if (!fs.existsSync(file) || !fs.statSync(file).isFile()) throw new kit.UsageError(`no such file: ${file}`);
      const concurrency = v.concurrency === undefined ? 8 : Number(v.concurrency);
      if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 64) throw new kit.UsageError(`--concurrency must be a whole number from 1 to 64\nusage: ${USERS_USAGE[cmd]}`);
      const secrets = loadLegacySecrets(config);
      // user.created / user.merged / user.updated for each row that changed an account, recorded after its write
      const summary: ImportSummary = await withAccounts(kit, async (store, s) => {
        const events = eventsFor(config, s, createLogger('silent'), 'cli');
        try {
          return await importFile(file, store, {
            dryRun: !!v['dry-run'], concurrency, secrets, onProgress: progressBar(),
            onChanged: async (outcome, sub, row, line, mergeId) => {
              await events.append(`user.${outcome}`, { sub, actor: CLI_ACTOR.id, reason: 'import', data: { source: row.source, line, ...(mergeId ? { mergeId } : {}) } });
            },
          });
        } finally {
          await events.close();
        }
      });
      out.data = summary;
      out.lines.push(...summary.errors.map((e) => `line ${e.line}: ${e.reason}`));
      if (summary.errorsOmitted) out.lines.push(`(${summary.errorsOmitted} more rejected lines not listed)`);
      out.lines.push(`${summary.dryRun ? 'dry run: ' : ''}read ${summary.read}, created ${summary.created}, merged ${summary.merged}, updated ${summary.updated}, unchanged ${summary.unchanged}, rejected ${summary.rejected}`);
      // not everything was imported: the exit code says so (the summary says what)
      if (summary.rejected > 0) out.status = 1;
      return out;
    }
    case 'users merge': {
      const { v } = parse(kit, cmd, args, { into: { type: 'string' }, from: { type: 'string' } });
      out.json = !!v.json;
      const into = need(kit, cmd, v.into, '--into');
      const from = need(kit, cmd, v.from, '--from');
      if (into === from) throw new kit.UsageError(`--into and --from must differ\nusage: ${USERS_USAGE[cmd]}`);
      const rec = await withAdmin(kit, (admin) => admin.merge(into, from, CLI_ACTOR));
      out.data = rec;
      out.lines.push(`merged ${from} into ${into} (merge id ${rec.id}; undo with: idp users unmerge --merge-id ${rec.id})`);
      return out;
    }
    case 'users unmerge': {
      const { v } = parse(kit, cmd, args, { 'merge-id': { type: 'string' } });
      out.json = !!v.json;
      const id = need(kit, cmd, v['merge-id'], '--merge-id');
      const rec = await withAdmin(kit, (admin) => admin.unmerge(id, CLI_ACTOR));
      out.data = rec;
      out.lines.push(`merge ${id} undone: ${rec.restoredSub} is a separate account again`);
      return out;
    }
    case 'users delete': {
      const { v } = parse(kit, cmd, args, { erase: { type: 'string' } });
      out.json = !!v.json;
      const sub = need(kit, cmd, v.erase, '--erase');
      const { erased } = await withAdmin(kit, (admin) => admin.erase(sub, CLI_ACTOR));
      out.data = { sub, erased };
      out.lines.push(`account ${sub} erased: its data key, lookup pointers, sessions, grants, tokens and outbox messages are gone`);
      return out;
    }
    case 'migration status': {
      const { v } = parse(kit, cmd, args, {});
      out.json = !!v.json;
      const rows = await withAccounts(kit, (store) => store.migrationStatus(config.accounts.legacySunset));
      out.data = rows;
      out.lines.push(...kit.table(rows.map((r) => ({ ...r, lastLegacyLogin: r.lastLegacyLogin ?? '-', sunset: r.sunset ?? '-' })),
        ['source', 'accounts', 'argon2id', 'legacy', 'noPassword', 'lastLegacyLogin', 'sunset']));
      return out;
    }
  }
  throw new kit.UsageError(`unknown command "${cmd}"`);
}
