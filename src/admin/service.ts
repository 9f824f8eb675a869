// The admin service: every administrative action, written once, for the
// console (console.ts), the API (api.ts) and the CLI (src/cli/admin.ts). Each
// action checks its input (InvalidInput naming the field), then makes its
// change inside events.commit, so that the event (with the admin as `actor`)
// is stored with the change, or not at all when the change fails. Where a
// capability already records its own event with the change (the lockout
// guard's account.unlocked, MFA's mfa.reset and device.revoked), the service
// hands it the actor instead of recording a second one. Subjects are account
// subs or client ids, never an e-mail; event data carries no personal data
// (events redact() strips it anyway).
//
// Event types: user.created|disabled|enabled|merged|unmerged|deleted,
// user.viewed (an admin opened a profile: personal data was decrypted),
// password.reset, password.reset_requested (a reset code sent), account.unlocked,
// mfa.reset, device.revoked, token.revoked, roles.assigned|unassigned (admins),
// client.created|updated|deleted, key.rotated (appended per key after the
// rotation, as `idp keys rotate` does), federation.unlinked (an admin removed
// an upstream sign-in from an account).
import crypto from 'node:crypto';
import { ScanCommand } from '@aws-sdk/lib-dynamodb';
import type { AdapterPayload } from 'oidc-provider';
import type { Config } from '../config/index.ts';
import type { Storage } from '../storage/index.ts';
import type { Events, AuditQuery, CloudEvent, EventType } from '../events/index.ts';
import { EventsInvalid } from '../events/index.ts';
import type { DynamoAccountStore } from '../accounts/dynamo-store.ts';
import {
  AccountExists, AccountNotFound, ConcurrentUpdate, isValidEmail, normalizePhone, type Account, type AccountSummary, type MergeRecord,
} from '../accounts/types.ts';
import type { Registry } from '../provider/registry.ts';
import type { KeyAction, KeyInfo, Keyring, SigningAlg } from '../keys/types.ts';
import type { MfaService } from '../mfa/service.ts';
import { MFA_POLICIES } from '../mfa/types.ts';
import type { RoleStore } from '../consent/roles.ts';
import { CONSENT_PK_PREFIX } from '../consent/store.ts';
import type { PasswordPolicy } from '../passwords/policy.ts';
import { sendOrUnavailable } from '../storage/errors.ts';
import type { ConnectionStore } from '../federation/connections.ts';
import { linkRef } from '../federation/account-links.ts';
import { listAccountEntries, revokeAccountEntry, type AccountEntry } from '../../adapters/dynamodb.ts';
import { ADMIN_CONSOLE_CLIENT, ADMIN_ROLE, ADMIN_SCOPES_METADATA, ADMIN_SCOPE_VALUES } from '../config/admin.ts';
import { Conflict, InvalidInput, NotFound, TooMany } from './errors.ts';

/** who acts: an admin's sub (console), a client id (API token), or "cli" */
export interface Actor {
  id: string;
  requestId?: string;
}

export interface AdminDeps {
  config: Config;
  storage: Storage;
  accounts: DynamoAccountStore;
  /** with the keyring (secrets sealed) and, in the server, the client cache */
  registry: Registry;
  events: Events;
  guard: {
    unlock(sub: string, by: 'admin', requestId?: string, opts?: { actor?: string }): Promise<{ cleared: number; wasLocked: boolean }>;
    state(sub: string): Promise<{ locked: boolean; permanent: boolean; failures: number }>;
  };
  mfa: MfaService;
  roles: RoleStore;
  policy: PasswordPolicy;
  hasher: { hash(password: string): Promise<string> };
  /** the signing and cookie keys: their states, and rotation (src/keys) */
  keyring: Pick<Keyring, 'describe' | 'rotate' | 'algs'>;
  /** client metadata as oidc-provider validates it; throws with error_description */
  validateClient(metadata: Record<string, unknown>): Promise<void>;
  /** sends a password reset code to the account's verified address (src/lockout/code-sender.ts); absent: not offered */
  resets?: { send(account: Account): Promise<'sent' | 'no_address' | 'limited'> };
  /** the federation connections (src/federation); absent: none are shown */
  connections?: Pick<ConnectionStore, 'list'>;
}

/** what an admin sees of a federation connection: never its client secret or signing key */
export interface ConnectionView {
  id: string;
  name: string;
  kind: string;
  issuer: string;
  allowSignup: boolean;
  linking: string;
  linkOnly: boolean;
  hidden: boolean;
  domains: string[];
}

/** a resource server as an admin sees it */
export interface ResourceView {
  id: string;
  scopes: string[];
  format: string;
  jwtAlg?: string;
  ttl?: number;
}

/** legacy password migration of one source */
export interface MigrationRow {
  source: string;
  /** accounts with an identity of this source */
  accounts: number;
  /** accounts still carrying a legacy hash of this source */
  legacy: number;
  /** accounts whose legacy password of this source was upgraded at a sign-in (passwordMigrated) */
  migrated: number;
  /** LEGACY_SUNSET: from then a legacy-hash login of this source is refused */
  sunset?: string;
}

export interface MigrationStatus {
  sources: MigrationRow[];
  /** accounts counted */
  scanned: number;
  /** the count stopped at the cap: every number is "at least" */
  capped: boolean;
}

/** a federated link of an account: no personal data (the subject is the upstream's opaque id) */
export interface FederatedLinkView {
  ref: string;
  connection: string;
  name?: string;
  issuer: string;
  subject: string;
  via: string;
  linkedAt: string;
  lastLoginAt?: string;
}

export interface Page<T> { items: T[]; cursor?: string }

// ---- pagination: an opaque cursor over a sorted list ----

export function checkLimit(raw: unknown, def = 50): number {
  if (raw === undefined || raw === '') return def;
  const n = typeof raw === 'number' ? raw : Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > 200) throw new InvalidInput('limit', 'limit must be a whole number from 1 to 200');
  return n;
}

function pageOf<T>(all: T[], key: (t: T) => string, cursor: unknown, limit: number): Page<T> {
  let start = 0;
  if (cursor !== undefined && cursor !== '') {
    if (typeof cursor !== 'string' || !/^[A-Za-z0-9_-]{1,700}$/.test(cursor)) throw new InvalidInput('cursor', 'cursor is not one this API gave');
    const after = Buffer.from(cursor, 'base64url').toString('utf8');
    start = all.findIndex((t) => key(t) > after);
    if (start < 0) start = all.length;
  }
  const items = all.slice(start, start + limit);
  const more = start + limit < all.length;
  return { items, ...(more && items.length ? { cursor: Buffer.from(key(items[items.length - 1]), 'utf8').toString('base64url') } : {}) };
}

// ---- views: what an admin sees ----

export interface UserView {
  sub: string;
  status: string;
  createdAt: string;
  updatedAt: string;
  sources: string[];
  hasPassword: boolean;
}

export interface UserDetail extends UserView {
  locked: boolean;
  lockedPermanently: boolean;
  mfa: { totp: boolean; recoveryRemaining: number; devices: number };
  roles: string[];
  merges: string[];
  identities: Array<{ source: string; status: string; via?: string }>;
  /** upstream identities (federation) that sign in to this account */
  federated: FederatedLinkView[];
  /** decrypted personal data: only when asked for (and audited as user.viewed) */
  profile?: { email?: string; emailVerified?: boolean; phone?: string; phoneVerified?: boolean; name?: string };
}

const userView = (a: Account): UserView => ({
  sub: a.sub, status: a.status, createdAt: a.createdAt, updatedAt: a.updatedAt,
  sources: [...new Set(a.identities.map((i) => i.source))], hasPassword: !!a.passwordHash,
});

const summaryView = (s: AccountSummary): UserView => ({
  sub: s.sub, status: s.status, createdAt: s.createdAt, updatedAt: (s as { updatedAt?: string }).updatedAt ?? s.createdAt, sources: s.sources, hasPassword: s.hasPassword,
});

/** what an admin sees of a client: never its secret */
export function clientView(c: AdapterPayload): Record<string, unknown> {
  const { client_secret, client_secret_sealed, ...rest } = c as AdapterPayload & { client_secret_sealed?: string };
  return { ...rest, has_secret: client_secret !== undefined || client_secret_sealed !== undefined };
}

/** the client fields an admin may set (console form, API body) */
export interface ClientInput {
  client_id?: unknown;
  client_name?: unknown;
  redirect_uris?: unknown;
  post_logout_redirect_uris?: unknown;
  grant_types?: unknown;
  first_party?: unknown;
  mfa_policy?: unknown;
  logo_uri?: unknown;
  policy_uri?: unknown;
  tos_uri?: unknown;
  admin_scopes?: unknown;
  /** create only: a public client (no secret, PKCE) */
  public?: unknown;
}

const CLIENT_FIELDS = ['client_id', 'client_name', 'redirect_uris', 'post_logout_redirect_uris', 'grant_types', 'first_party', 'mfa_policy', 'logo_uri', 'policy_uri', 'tos_uri', 'admin_scopes', 'public'];
const GRANT_TYPES = ['authorization_code', 'refresh_token', 'client_credentials', 'urn:ietf:params:oauth:grant-type:device_code'];

const str = (field: string, v: unknown, max = 2000): string | undefined => {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string' || v.length > max) throw new InvalidInput(field, `${field} must be a string of at most ${max} characters`);
  return v.trim();
};
const list = (field: string, v: unknown): string[] | undefined => {
  if (v === undefined || v === null) return undefined;
  const arr = typeof v === 'string' ? v.split(/[\s,]+/) : v;
  if (!Array.isArray(arr) || arr.length > 50 || arr.some((x) => typeof x !== 'string' || x.length > 2000)) throw new InvalidInput(field, `${field} must be a list of strings`);
  return (arr as string[]).map((x) => x.trim()).filter(Boolean);
};
const bool = (field: string, v: unknown): boolean | undefined => {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'boolean') return v;
  if (v === 'true' || v === 'on') return true;
  if (v === 'false' || v === '') return false;
  throw new InvalidInput(field, `${field} must be true or false`);
};

/** the field an oidc-provider metadata error is about ("redirect_uris must ..."), else "client" */
function fieldOf(description: string): string {
  const m = /^([a-z_]+)\b/.exec(description);
  return m && CLIENT_FIELDS.concat(['token_endpoint_auth_method', 'response_types']).includes(m[1]) ? m[1] : 'client';
}

const SUB = /^[\w-]{1,100}$/;
const CLIENT_ID = /^[\x21-\x7e]{1,200}$/;

export class AdminService {
  readonly deps: AdminDeps;

  constructor(deps: AdminDeps) {
    this.deps = deps;
  }

  private spec(type: EventType, actor: Actor, fields: { sub?: string; clientId?: string; reason?: string; data?: Record<string, unknown> }) {
    return { type, ...fields, actor: actor.id, requestId: actor.requestId };
  }

  /** an account that exists, or NotFound (the sub is what the admin gave: no enumeration of e-mails here) */
  private async account(sub: unknown): Promise<Account> {
    if (typeof sub !== 'string' || !SUB.test(sub)) throw new NotFound('no account with that sub', 'sub');
    const a = await this.deps.accounts.findBySub(sub);
    if (!a) throw new NotFound(`no account ${sub}`, 'sub');
    return a;
  }

  private async write<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof AccountNotFound) throw new NotFound(err.message, 'sub');
      if (err instanceof ConcurrentUpdate) throw new Conflict('the user changed at the same time; try again');
      throw err;
    }
  }

  // ---- users ----

  /** users by e-mail or phone, through the blind index: zero or one */
  async findUsers(q: { email?: unknown; phone?: unknown }): Promise<UserView[]> {
    const email = str('email', q.email, 320);
    const phoneRaw = str('phone', q.phone, 40);
    if (!email && !phoneRaw) throw new InvalidInput('email', 'give email or phone');
    if (email && !isValidEmail(email)) throw new InvalidInput('email', 'email is not a valid e-mail address');
    const phone = phoneRaw ? normalizePhone(phoneRaw) : undefined;
    if (phoneRaw && !phone) throw new InvalidInput('phone', 'phone must be an E.164 number');
    const a = await this.deps.accounts.findByLogin((email ?? phone)!);
    return a ? [userView(a)] : [];
  }

  async listUsers(q: { cursor?: unknown; limit?: unknown }): Promise<Page<UserView>> {
    const limit = checkLimit(q.limit);
    const all = (await this.deps.accounts.list({ limit: 10_000 })).map(summaryView).sort((a, b) => a.sub.localeCompare(b.sub));
    return pageOf(all, (u) => u.sub, q.cursor, limit);
  }

  /** one user; with `reveal`, the decrypted profile, and the view is audited (user.viewed) */
  async getUser(sub: unknown, actor: Actor, opts: { reveal?: boolean } = {}): Promise<UserDetail> {
    const a = await this.account(sub);
    const [lock, mfa, roles] = await Promise.all([this.deps.guard.state(a.sub), this.deps.mfa.status(a.sub), this.deps.roles.namesOf(a.sub)]);
    const detail: UserDetail = {
      ...userView(a), locked: lock.locked, lockedPermanently: lock.permanent,
      mfa: { totp: !!mfa.totp, recoveryRemaining: mfa.recoveryRemaining, devices: mfa.devices.length },
      roles, merges: a.merges ?? [],
      identities: a.identities.map((i) => ({ source: i.source, status: i.status, ...(i.via ? { via: i.via } : {}) })),
      federated: await this.federatedLinks(a),
    };
    if (opts.reveal) {
      await this.deps.events.append('user.viewed', { sub: a.sub, actor: actor.id, requestId: actor.requestId, data: { fields: 'profile' } });
      detail.profile = { email: a.email, emailVerified: a.emailVerified, phone: a.phone, phoneVerified: a.phoneVerified, name: a.name };
    }
    return detail;
  }

  async createUser(input: { email?: unknown; password?: unknown; name?: unknown; emailVerified?: unknown; phone?: unknown; phoneVerified?: unknown }, actor: Actor): Promise<UserView> {
    const email = str('email', input.email, 320);
    if (!email || !isValidEmail(email)) throw new InvalidInput('email', 'email is not a valid e-mail address');
    const name = str('name', input.name, 200) || undefined;
    const phoneRaw = str('phone', input.phone, 40) || undefined;
    const phone = phoneRaw ? normalizePhone(phoneRaw) : undefined;
    if (phoneRaw && !phone) throw new InvalidInput('phone', 'phone must be an E.164 number');
    const password = input.password === undefined || input.password === '' ? undefined : str('password', input.password, 1000);
    if (password !== undefined) {
      const refused = await this.deps.policy.problems(password, { email, phone, name });
      if (refused.length) throw new InvalidInput('password', refused.join(' '));
    }
    const sub = crypto.randomUUID();
    try {
      const a = await this.deps.events.commit(this.spec('user.created', actor, { sub }), () => this.deps.accounts.create({
        sub, email, password, name, emailVerified: bool('emailVerified', input.emailVerified) ?? false,
        ...(phone ? { phone, phoneVerified: bool('phoneVerified', input.phoneVerified) ?? false } : {}),
      }));
      return userView(a);
    } catch (err) {
      if (err instanceof AccountExists) throw new Conflict('an account with this e-mail or phone already exists', 'email');
      throw err;
    }
  }

  async setDisabled(sub: unknown, disabled: boolean, actor: Actor): Promise<UserView> {
    const a = await this.account(sub);
    const changed = await this.write(() => this.deps.events.commit(this.spec(disabled ? 'user.disabled' : 'user.enabled', actor, { sub: a.sub }),
      () => this.deps.accounts.setDisabled(a.sub, disabled)));
    return userView(changed ?? a);
  }

  /** sets a password an admin chose (it must pass the password policy) */
  async setPassword(sub: unknown, password: unknown, actor: Actor): Promise<UserView> {
    const a = await this.account(sub);
    if (typeof password !== 'string' || password === '' || password.length > 1000) throw new InvalidInput('password', 'password is required');
    const refused = await this.deps.policy.problems(password, { email: a.email, phone: a.phone, name: a.name, givenName: a.givenName, familyName: a.familyName });
    if (refused.length) throw new InvalidInput('password', refused.join(' '));
    const hash = await this.deps.hasher.hash(password);
    const changed = await this.write(() => this.deps.events.commit(this.spec('password.reset', actor, { sub: a.sub, reason: 'admin_set' }),
      () => this.deps.accounts.changePassword(a.sub, hash, { keepHistory: this.deps.config.passwordPolicy.history })));
    return userView(changed);
  }

  /**
   * Sends the user a password reset code (the "Forgot your password?" code)
   * to their verified e-mail address; the admin never sees it. Event
   * password.reset_requested with the admin as actor, stored with the code.
   */
  async sendPasswordReset(sub: unknown, actor: Actor): Promise<{ sub: string; sent: true }> {
    const a = await this.account(sub);
    const resets = this.deps.resets;
    if (!resets) throw new Conflict('password resets cannot be sent from here (no message sender)');
    // the sender decides who may get a code (active, verified address); nothing is written when it says no
    await this.write(() => this.deps.events.commit(this.spec('password.reset_requested', actor, { sub: a.sub, reason: 'admin' }), async () => {
      const r = await resets.send(a);
      if (r === 'limited') throw new TooMany('Too many codes were sent to this user in the last hour. Try again later.');
      if (r !== 'sent') throw new Conflict('This user has no verified e-mail address to send a code to, or is not active.');
    }));
    return { sub: a.sub, sent: true };
  }

  /** lifts a lockout; the lockout guard records account.unlocked (reason admin, this actor) with the counters' removal */
  async unlock(sub: unknown, actor: Actor): Promise<{ sub: string; wasLocked: boolean; cleared: number }> {
    const a = await this.account(sub);
    const r = await this.deps.guard.unlock(a.sub, 'admin', actor.requestId, { actor: actor.id });
    return { sub: a.sub, ...r };
  }

  /** removes every second factor and remembered device; MFA records mfa.reset (this actor) with the removal */
  async resetMfa(sub: unknown, actor: Actor): Promise<{ sub: string; factors: boolean; devices: number }> {
    const a = await this.account(sub);
    const r = await this.deps.mfa.reset(a.sub, 'admin', { actor: actor.id, requestId: actor.requestId });
    return { sub: a.sub, ...r };
  }

  /** forgets every remembered device; MFA records device.revoked (this actor) per device */
  async revokeDevices(sub: unknown, actor: Actor): Promise<{ sub: string; revoked: number }> {
    const a = await this.account(sub);
    const n = await this.deps.mfa.revokeAllDevices(a.sub, 'admin', { actor: actor.id, requestId: actor.requestId });
    return { sub: a.sub, revoked: n };
  }

  async merge(into: unknown, from: unknown, actor: Actor): Promise<MergeRecord> {
    const a = await this.account(into);
    const b = await this.account(from).catch((err: unknown) => {
      throw err instanceof NotFound ? new NotFound(err.message, 'from') : err;
    });
    if (a.sub === b.sub) throw new InvalidInput('from', 'from and into must differ');
    const mergeId = crypto.randomUUID();
    return this.write(() => this.deps.events.commit(this.spec('user.merged', actor, { sub: a.sub, data: { fromSub: b.sub, mergeId } }),
      () => this.deps.accounts.merge(a.sub, b.sub, { mergeId })));
  }

  async unmerge(mergeId: unknown, actor: Actor): Promise<MergeRecord> {
    if (typeof mergeId !== 'string' || !/^[\w-]{1,100}$/.test(mergeId)) throw new NotFound('no such merge', 'mergeId');
    const m = await this.deps.accounts.getMerge(mergeId);
    if (!m) throw new NotFound(`no merge ${mergeId}`, 'mergeId');
    if (m.undoneAt) throw new Conflict(`merge ${mergeId} was already undone`, 'mergeId');
    return this.write(() => this.deps.events.commit(this.spec('user.unmerged', actor, { sub: m.from ?? m.into, data: { mergeId, into: m.into } }), () => this.deps.accounts.unmerge(mergeId)));
  }

  /** erases an account: its data key, pointers, sessions, grants, tokens, lockout and MFA items */
  async erase(sub: unknown, actor: Actor): Promise<{ sub: string; erased: boolean }> {
    if (typeof sub !== 'string' || !SUB.test(sub)) throw new NotFound('no account with that sub', 'sub');
    const erased = await this.deps.events.commit(this.spec('user.deleted', actor, { sub }), () => this.deps.accounts.erase(sub));
    if (!erased) throw new NotFound(`no account ${sub}`, 'sub');
    return { sub, erased };
  }

  // ---- federated links ----

  private async federatedLinks(a: Account): Promise<FederatedLinkView[]> {
    const links = a.federated ?? [];
    if (!links.length) return [];
    const names = new Map((await this.connectionList()).map((c) => [c.id, c.name]));
    return links.map((l) => ({
      ref: linkRef(l), connection: l.connection, ...(names.has(l.connection) ? { name: names.get(l.connection) } : {}), issuer: l.issuer, subject: l.subject,
      via: l.via, linkedAt: l.linkedAt, ...(l.lastLoginAt ? { lastLoginAt: l.lastLoginAt } : {}),
    }));
  }

  /**
   * removes an upstream sign-in from an account (federation.unlinked with this actor, stored with the removal);
   * `ref` is the link's opaque reference (FederatedLinkView.ref). The last way into an account without a password stays.
   */
  async unlinkFederated(sub: unknown, ref: unknown, actor: Actor): Promise<{ sub: string; connection: string }> {
    const a = await this.account(sub);
    const link = typeof ref === 'string' ? (a.federated ?? []).find((l) => linkRef(l) === ref) : undefined;
    if (!link) throw new NotFound('no such federated link', 'link');
    if (a.federated.length === 1 && !a.passwordHash) throw new Conflict('This is the only way to sign in to this account. Set a password first.', 'link');
    const done = await this.write(() => this.deps.events.commit(this.spec('federation.unlinked', actor, { sub: a.sub, data: { connection: link.connection, by: 'admin' } }),
      () => this.deps.accounts.unlinkFederated(a.sub, link), { onlyIfWritten: true }));
    if (!done) throw new NotFound('no such federated link', 'link');
    return { sub: a.sub, connection: link.connection };
  }

  // ---- sessions and grants ----

  async sessions(sub: unknown, q: { cursor?: unknown; limit?: unknown } = {}): Promise<Page<AccountEntry>> {
    const a = await this.account(sub);
    const limit = checkLimit(q.limit);
    const all = await listAccountEntries({ doc: this.deps.storage.doc, table: this.deps.storage.tables.oidc }, a.sub);
    return pageOf(all, (e) => `${e.kind}:${e.id}`, q.cursor, limit);
  }

  /** revokes a session (and the grants and tokens it issued) or a grant (and its tokens) */
  async revokeSession(sub: unknown, kind: unknown, id: unknown, actor: Actor): Promise<{ sub: string; kind: string; id: string }> {
    const a = await this.account(sub);
    if (kind !== 'session' && kind !== 'grant') throw new InvalidInput('kind', 'kind must be session or grant');
    if (typeof id !== 'string' || !/^[\w-]{1,200}$/.test(id)) throw new NotFound('no such session', 'id');
    const opts = { doc: this.deps.storage.doc, table: this.deps.storage.tables.oidc };
    // the event goes with the revocation only when there is something to revoke
    const found = (await listAccountEntries(opts, a.sub)).some((e) => e.kind === kind && e.id === id);
    if (!found) throw new NotFound(`no such ${kind}`, 'id');
    const ok = await this.deps.events.commit(this.spec('token.revoked', actor, { sub: a.sub, reason: 'admin', data: { kind, id } }), () => revokeAccountEntry(opts, a.sub, kind, id));
    if (!ok) throw new NotFound(`no such ${kind}`, 'id');
    return { sub: a.sub, kind, id };
  }

  // ---- clients ----

  async listClients(q: { cursor?: unknown; limit?: unknown } = {}): Promise<Page<Record<string, unknown>>> {
    const limit = checkLimit(q.limit);
    const all = (await this.deps.registry.listClients()).map(clientView);
    return pageOf(all, (c) => String(c.client_id), q.cursor, limit);
  }

  private async rawClient(id: unknown): Promise<AdapterPayload & { client_id: string }> {
    if (typeof id !== 'string' || !CLIENT_ID.test(id)) throw new NotFound('no such client', 'client_id');
    const c = await this.deps.registry.clients.find(id);
    if (!c) throw new NotFound('no such client', 'client_id');
    return c as AdapterPayload & { client_id: string };
  }

  async getClient(id: unknown): Promise<Record<string, unknown>> {
    return clientView(await this.rawClient(id));
  }

  /** the input onto metadata; `adding`: with a new client's defaults */
  private applyClient(m: Record<string, unknown>, input: ClientInput, adding: boolean): Record<string, unknown> {
    for (const k of Object.keys(input)) if (!CLIENT_FIELDS.includes(k)) throw new InvalidInput(k, `${k} is not a field an admin can set`);
    const setOrClear = (key: string, value: unknown) => {
      if (value === undefined) return;
      if (value === '' || (Array.isArray(value) && value.length === 0)) delete m[key];
      else m[key] = value;
    };
    const grants = list('grant_types', input.grant_types);
    if (grants?.some((g) => !GRANT_TYPES.includes(g))) throw new InvalidInput('grant_types', `grant_types must be of ${GRANT_TYPES.join(', ')}`);
    if (adding || grants !== undefined) {
      const g = grants?.length ? grants : ['authorization_code', 'refresh_token'];
      m.grant_types = g;
      m.response_types = g.includes('authorization_code') ? ['code'] : [];
    }
    const redirects = list('redirect_uris', input.redirect_uris);
    if (adding) m.redirect_uris = redirects ?? [];
    else if (redirects !== undefined) m.redirect_uris = redirects;
    if ((m.grant_types as string[]).includes('authorization_code') && ((m.redirect_uris as string[] | undefined) ?? []).length === 0) {
      throw new InvalidInput('redirect_uris', 'authorization_code needs at least one redirect URI');
    }
    setOrClear('client_name', str('client_name', input.client_name, 200));
    setOrClear('post_logout_redirect_uris', list('post_logout_redirect_uris', input.post_logout_redirect_uris));
    for (const k of ['logo_uri', 'policy_uri', 'tos_uri'] as const) setOrClear(k, str(k, input[k]));
    const mfa = str('mfa_policy', input.mfa_policy, 20);
    if (mfa && !(MFA_POLICIES as readonly string[]).includes(mfa)) throw new InvalidInput('mfa_policy', `mfa_policy must be one of ${MFA_POLICIES.join(', ')}`);
    setOrClear('mfa_policy', mfa);
    const scopes = list(ADMIN_SCOPES_METADATA, input.admin_scopes);
    if (scopes?.some((s) => !ADMIN_SCOPE_VALUES.includes(s))) throw new InvalidInput(ADMIN_SCOPES_METADATA, `admin_scopes must be of ${ADMIN_SCOPE_VALUES.join(', ')}`);
    if (scopes !== undefined) setOrClear(ADMIN_SCOPES_METADATA, scopes.join(' '));
    const fp = bool('first_party', input.first_party);
    if (adding || fp !== undefined) m.first_party = fp === true;
    return m;
  }

  private async validate(m: Record<string, unknown>): Promise<void> {
    try {
      await this.deps.validateClient(m);
    } catch (err) {
      const d = (err as { error_description?: string }).error_description ?? (err as Error).message;
      throw new InvalidInput(fieldOf(d), d);
    }
  }

  /** registers a client; a confidential one gets a generated secret, returned here once */
  async createClient(input: ClientInput, actor: Actor): Promise<{ client: Record<string, unknown>; client_secret?: string }> {
    const given = str('client_id', input.client_id, 200);
    const id = given || crypto.randomBytes(12).toString('base64url');
    if (!CLIENT_ID.test(id)) throw new InvalidInput('client_id', 'client_id must be printable ASCII without spaces');
    const isPublic = bool('public', input.public) === true;
    const secret = isPublic ? undefined : crypto.randomBytes(32).toString('base64url');
    const m = this.applyClient({ client_id: id, token_endpoint_auth_method: isPublic ? 'none' : 'client_secret_basic', ...(secret ? { client_secret: secret } : {}) }, input, true);
    if (await this.deps.registry.clients.find(id)) throw new Conflict(`client ${id} already exists`, 'client_id');
    await this.validate(m);
    await this.deps.events.commit(this.spec('client.created', actor, { clientId: id }), () => this.deps.registry.putClient(m as AdapterPayload & { client_id: string }));
    return { client: clientView(m as AdapterPayload), ...(secret ? { client_secret: secret } : {}) };
  }

  private guardConsole(id: string): void {
    if (id === ADMIN_CONSOLE_CLIENT) throw new Conflict('the admin console\'s own client is managed by the IdP', 'client_id');
  }

  /** changes only the fields given; the secret stays */
  async updateClient(id: unknown, input: ClientInput, actor: Actor): Promise<Record<string, unknown>> {
    const raw = await this.rawClient(id);
    this.guardConsole(raw.client_id);
    if (input.client_id !== undefined && input.client_id !== raw.client_id) throw new InvalidInput('client_id', 'client_id cannot change');
    if (input.public !== undefined) throw new InvalidInput('public', 'a client cannot become public or confidential');
    const { client_id: _id, public: _p, ...rest } = input;
    const m = this.applyClient({ ...raw }, rest, false);
    await this.validate(m);
    await this.deps.events.commit(this.spec('client.updated', actor, { clientId: raw.client_id, data: { fields: Object.keys(rest) } }), () => this.deps.registry.putClient(m as AdapterPayload & { client_id: string }));
    return clientView(m as AdapterPayload);
  }

  /** a new secret for a confidential client, returned once; the old one stops working */
  async rotateClientSecret(id: unknown, actor: Actor): Promise<{ client_id: string; client_secret: string }> {
    const raw = await this.rawClient(id);
    this.guardConsole(raw.client_id);
    if (raw.token_endpoint_auth_method === 'none') throw new Conflict('a public client has no secret', 'client_id');
    const secret = crypto.randomBytes(32).toString('base64url');
    const { client_secret_sealed: _s, ...rest } = raw as AdapterPayload & { client_secret_sealed?: string; client_id: string };
    const m = { ...rest, client_secret: secret, client_secret_expires_at: 0 };
    await this.deps.events.commit(this.spec('client.updated', actor, { clientId: raw.client_id, data: { change: 'secret_rotated' } }), () => this.deps.registry.putClient(m));
    return { client_id: raw.client_id, client_secret: secret };
  }

  async deleteClient(id: unknown, actor: Actor): Promise<{ client_id: string; deleted: true }> {
    const raw = await this.rawClient(id);
    this.guardConsole(raw.client_id);
    await this.deps.events.commit(this.spec('client.deleted', actor, { clientId: raw.client_id }), () => this.deps.registry.removeClient(raw.client_id));
    return { client_id: raw.client_id, deleted: true };
  }

  // ---- keys ----

  /** the keys table as stored: states and dates, no secret */
  async listKeys(): Promise<KeyInfo[]> {
    return this.deps.keyring.describe();
  }

  /** new keys as `next` (published now, signing once they activate); running servers follow within KEYS_REFRESH_SECONDS */
  async rotateKeys(input: { alg?: unknown; cookie?: unknown }, actor: Actor): Promise<KeyAction[]> {
    const alg = str('alg', input.alg, 10) || undefined;
    if (alg !== undefined && !(this.deps.keyring.algs as readonly string[]).includes(alg)) throw new InvalidInput('alg', `alg must be one of ${this.deps.keyring.algs.join(', ')}`);
    const cookie = bool('cookie', input.cookie);
    const actions = await this.deps.keyring.rotate({ ...(alg ? { alg: alg as SigningAlg } : {}), ...(cookie ? { cookie } : {}) });
    // recorded after the keys are stored, one per key, as `idp keys rotate` does (docs/events.md: key.rotated is not stored with its write)
    for (const a of actions) {
      if (a.action !== 'skip') await this.deps.events.append('key.rotated', { actor: actor.id, requestId: actor.requestId, reason: 'admin', data: { kind: a.kind, kid: a.kid, alg: a.alg, activates: (a as { at?: string }).at } });
    }
    return actions;
  }

  // ---- federation connections, resource servers ----

  private async connectionList() {
    return this.deps.connections ? this.deps.connections.list() : [];
  }

  /** the federation connections, without their secrets */
  async listConnections(): Promise<ConnectionView[]> {
    return (await this.connectionList()).map((c) => ({
      id: c.id, name: c.name, kind: c.kind, issuer: c.issuer, allowSignup: c.allowSignup, linking: c.linking,
      linkOnly: c.linkOnly, hidden: c.hidden, domains: [...c.domains],
    })).sort((a, b) => a.id.localeCompare(b.id));
  }

  async listResources(): Promise<ResourceView[]> {
    return (await this.deps.registry.listResources()).map((r) => ({
      id: r.id, scopes: String(r.scope ?? '').split(' ').filter(Boolean), format: r.accessTokenFormat,
      ...(r.jwtAlg ? { jwtAlg: r.jwtAlg } : {}), ...(r.accessTokenTTL !== undefined ? { ttl: r.accessTokenTTL } : {}),
    })).sort((a, b) => a.id.localeCompare(b.id));
  }

  // ---- legacy migration ----

  /**
   * per source: accounts, those still with a legacy hash, those migrated at a sign-in, and the sunset (LEGACY_SUNSET).
   * A paginated Scan of the accounts table reading only the counted attributes, stopped after `cap` accounts (then `capped`).
   */
  async migrationStatus(opts: { cap?: number } = {}): Promise<MigrationStatus> {
    const cap = opts.cap ?? 50_000;
    const per = new Map<string, MigrationRow>();
    const row = (source: string) => {
      let r = per.get(source);
      if (!r) per.set(source, r = { source, accounts: 0, legacy: 0, migrated: 0 });
      return r;
    };
    type Item = { sources?: string[]; legacySources?: string[]; passwordMigrated?: { source?: string } };
    let scanned = 0;
    let capped = false;
    let start: Record<string, unknown> | undefined;
    do {
      const r = await sendOrUnavailable<{ Items?: Item[]; LastEvaluatedKey?: Record<string, unknown> }>(this.deps.storage.doc, new ScanCommand({
        TableName: this.deps.storage.tables.accounts, FilterExpression: 'begins_with(pk, :u)', ExpressionAttributeValues: { ':u': 'user#' },
        ProjectionExpression: '#src, legacySources, passwordMigrated', ExpressionAttributeNames: { '#src': 'sources' },
        ExclusiveStartKey: start, Limit: 1000,
      }));
      for (const i of r.Items ?? []) {
        if (scanned >= cap) {
          capped = true;
          break;
        }
        scanned++;
        for (const s of i.sources ?? []) row(s).accounts++;
        for (const s of i.legacySources ?? []) row(s).legacy++;
        if (typeof i.passwordMigrated?.source === 'string') row(i.passwordMigrated.source).migrated++;
      }
      start = r.LastEvaluatedKey;
      if (start && scanned >= cap) capped = true;
    } while (start && !capped);
    for (const [source, at] of Object.entries(this.deps.config.accounts.legacySunset ?? {})) row(source).sunset = at;
    return { sources: [...per.values()].sort((a, b) => a.source.localeCompare(b.source)), scanned, capped };
  }

  // ---- audit ----

  async audit(q: { subject?: unknown; clientId?: unknown; type?: unknown; actor?: unknown; from?: unknown; to?: unknown; cursor?: unknown; limit?: unknown }): Promise<Page<CloudEvent>> {
    const query: AuditQuery = { limit: checkLimit(q.limit) };
    for (const k of ['subject', 'clientId', 'type', 'actor', 'from', 'to', 'cursor'] as const) {
      const v = str(k, q[k], k === 'cursor' ? 2000 : 200);
      if (v) query[k] = v;
    }
    for (const k of ['from', 'to'] as const) {
      if (query[k] !== undefined && Number.isNaN(Date.parse(query[k]!))) throw new InvalidInput(k, `${k} must be an ISO-8601 time`);
    }
    try {
      return await this.deps.events.query(query);
    } catch (err) {
      if (err instanceof EventsInvalid) throw new InvalidInput(/cursor/.test(err.message) ? 'cursor' : /limit/.test(err.message) ? 'limit' : 'query', err.message);
      throw err;
    }
  }

  // ---- admins (the `admin` role; `idp admins add|remove|list`) ----

  async isAdmin(sub: string): Promise<boolean> {
    return (await this.deps.roles.namesOf(sub)).includes(ADMIN_ROLE);
  }

  /**
   * Every account with the admin role: given by an operator (`assigned`) or by
   * a federated connection's role mapping (`connections`). A Scan of the
   * users' role items (an operator command, not a request path).
   */
  async listAdmins(): Promise<Array<{ sub: string; assigned: boolean; connections: string[] }>> {
    type Item = { pk: string; assigned?: string[]; federated?: Record<string, string[]> };
    const out: Array<{ sub: string; assigned: boolean; connections: string[] }> = [];
    let start: Record<string, unknown> | undefined;
    do {
      const r = await sendOrUnavailable<{ Items?: Item[]; LastEvaluatedKey?: Record<string, unknown> }>(this.deps.storage.doc, new ScanCommand({
        TableName: this.deps.storage.tables.accounts, FilterExpression: 'begins_with(pk, :p) AND sk = :sk',
        ExpressionAttributeValues: { ':p': CONSENT_PK_PREFIX, ':sk': 'roles' }, ProjectionExpression: 'pk, assigned, federated', ExclusiveStartKey: start, Limit: 1000,
      }));
      for (const i of r.Items ?? []) {
        const assigned = (i.assigned ?? []).includes(ADMIN_ROLE);
        const connections = Object.entries(i.federated ?? {}).filter(([, roles]) => roles.includes(ADMIN_ROLE)).map(([c]) => c).sort();
        if (assigned || connections.length) out.push({ sub: i.pk.slice(CONSENT_PK_PREFIX.length), assigned, connections });
      }
      start = r.LastEvaluatedKey;
    } while (start);
    return out.sort((a, b) => a.sub.localeCompare(b.sub));
  }

  /** gives (or takes away) the admin role; event roles.assigned / roles.unassigned with the actor */
  async setAdmin(sub: unknown, admin: boolean, actor: Actor): Promise<{ sub: string; admin: boolean; roles: string[] }> {
    const a = await this.account(sub);
    if (admin && !(await this.deps.roles.get(ADMIN_ROLE))) await this.deps.roles.add(ADMIN_ROLE, { description: 'Administrators of this IdP: the admin console' });
    const u = await this.deps.events.commit(this.spec(admin ? 'roles.assigned' : 'roles.unassigned', actor, { sub: a.sub, data: { roles: [ADMIN_ROLE] } }),
      () => (admin ? this.deps.roles.assign(a.sub, [ADMIN_ROLE]) : this.deps.roles.assign(a.sub, [], [ADMIN_ROLE])));
    const roles = [...new Set([...u.assigned, ...Object.values(u.federated).flat()])].sort();
    return { sub: a.sub, admin: roles.includes(ADMIN_ROLE), roles };
  }
}
