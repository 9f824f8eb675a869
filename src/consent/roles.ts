// Roles and permissions, and the `roles` and `permissions` claims.
//
//   meta table      pk "roles"            sk "<name>"   a role: description, permissions [{ value, resource? }]
//   accounts table  pk "consent#<sub>"    sk "roles"    the user's roles: `assigned` (operators) and
//                                                       `federated` (connection id → roles its claim mapping gave)
//
// A client granted the `roles` scope gets `roles` (role names) and
// `permissions` in the ID token and at userinfo; a resource server that lists
// `roles` among its scopes gets them in its access tokens, the permissions
// filtered to those tied to it. When the two claims would add more than
// ROLES_CLAIMS_MAX_BYTES (their JSON) to an ID token or a JWT access token,
// they are left out and the token says where to get them instead, as OpenID
// Connect distributed claims (`_claim_names` / `_claim_sources`, see
// openid-configuration.md): userinfo serves them, and introspection does for
// opaque access tokens (whose claims are stored, not carried).
//
// Role definitions and users' roles are read on token requests that carry the
// roles scope: both are cached in the process for `cacheMs` (this process's
// writes drop its cache at once; other processes' show within cacheMs).
import { DeleteCommand, GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import type { Storage } from '../storage/index.ts';
import { sendOrUnavailable } from '../storage/errors.ts';
import { TtlCache } from '../storage/ttl-cache.ts';
import { CONSENT_PK_PREFIX, queryAll } from './store.ts';
import { CachedList } from '../storage/cached-list.ts';
import { ConsentInvalid, union, type Permission, type Role, type UserRoles } from './types.ts';

export const ROLES_SCOPE = 'roles';
export const ROLE_CLAIMS = ['roles', 'permissions'] as const;
const ROLES_PK = 'roles';
const USER_SK = 'roles';

const ROLE_NAME = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/;
const PERMISSION = /^[\x21-\x7e]{1,200}$/;

export function checkRoleName(name: string): void {
  if (!ROLE_NAME.test(name)) throw new ConsentInvalid(`role name "${name}" must be 1-64 letters, digits, ".", "_", ":" or "-", starting with a letter or digit`);
}

export function checkPermission(value: string): void {
  if (!PERMISSION.test(value)) throw new ConsentInvalid(`permission "${value}" must be 1-200 printable characters without spaces`);
}

/** the two claims of a user's roles, for one audience */
export interface RoleClaims {
  roles: string[];
  permissions: string[];
}

/**
 * roles: every role the user has that still exists; permissions: those of
 * these roles, only those tied to `resource` when one is named (a token for
 * a resource server), all of them otherwise (ID token, userinfo).
 */
export function roleClaims(defined: readonly Role[], has: readonly string[], resource?: string): RoleClaims {
  const byName = new Map(defined.map((r) => [r.name, r]));
  const roles = [...new Set(has)].filter((n) => byName.has(n)).sort();
  const permissions = new Set<string>();
  for (const n of roles) {
    for (const p of byName.get(n)!.permissions) if (resource === undefined || p.resource === resource) permissions.add(p.value);
  }
  return { roles, permissions: [...permissions].sort() };
}

/** the JSON bytes the two claims add to a token */
export const claimsBytes = (c: RoleClaims): number => Buffer.byteLength(JSON.stringify(c), 'utf8') - 2;

/**
 * The marker that replaces the claims in a token when they are too large:
 * OpenID Connect distributed claims naming where to get them.
 */
export function distributedMarker(endpoint: string, accessToken?: string): Record<string, unknown> {
  return {
    _claim_names: { roles: 'roles_source', permissions: 'roles_source' },
    _claim_sources: { roles_source: { endpoint, ...(accessToken ? { access_token: accessToken } : {}) } },
  };
}

/**
 * How a federated connection's users get roles: a claim of the upstream ID
 * token (e.g. `groups`, `roles`) whose values (a string or an array of
 * strings) map to role names here. Values without a mapping give nothing.
 */
export interface RoleClaimMapping {
  claim: string;
  /** upstream value → role names */
  values: Record<string, string[]>;
}

/** the role names an upstream's claims give under `mapping` (sorted, de-duplicated) */
export function rolesFromClaims(mapping: RoleClaimMapping | undefined, claims: Record<string, unknown>): string[] {
  if (!mapping) return [];
  const raw = claims[mapping.claim];
  const values = typeof raw === 'string' ? [raw] : Array.isArray(raw) ? raw.filter((v): v is string => typeof v === 'string') : [];
  const out = new Set<string>();
  for (const v of values) for (const r of Object.hasOwn(mapping.values, v) ? mapping.values[v] : []) out.add(r);
  return [...out].sort();
}

type Doc = Pick<Storage, 'doc' | 'tables'>;

export class RoleStore {
  private readonly s: Doc;
  private readonly defs: CachedList<Role>;
  private readonly users: TtlCache<Promise<UserRoles>>;

  constructor(storage: Doc, opts: { cacheMs?: number } = {}) {
    this.s = storage;
    const cacheMs = opts.cacheMs ?? 10_000;
    this.defs = new CachedList(cacheMs, async () => (await queryAll(this.s, this.s.tables.meta, ROLES_PK)).map(({ pk: _p, sk: _s, ...r }) => r as unknown as Role)
      .sort((a, b) => a.name.localeCompare(b.name)));
    this.users = new TtlCache({ ttlMs: cacheMs, maxEntries: 10_000 });
  }

  /** every role (cached for cacheMs) */
  list(): Promise<Role[]> {
    return this.defs.get();
  }

  async get(name: string): Promise<Role | undefined> {
    return (await this.list()).find((r) => r.name === name);
  }

  /**
   * Creates the role, or adds to it: the description replaces the old one
   * when given, the permissions join the role's (tied to `resource` when given).
   */
  async add(name: string, opts: { description?: string; permissions?: string[]; resource?: string }): Promise<Role> {
    checkRoleName(name);
    for (const p of opts.permissions ?? []) checkPermission(p);
    const current = await this.read(name);
    const key = (p: Permission) => `${p.resource ?? ''}\n${p.value}`;
    const perms = new Map((current?.permissions ?? []).map((p) => [key(p), p]));
    for (const value of opts.permissions ?? []) {
      const p: Permission = opts.resource ? { value, resource: opts.resource } : { value };
      perms.set(key(p), p);
    }
    const role: Role = {
      name, ...(opts.description ?? current?.description ? { description: opts.description ?? current?.description } : {}),
      permissions: [...perms.values()], updatedAt: new Date().toISOString(),
    };
    await sendOrUnavailable(this.s.doc, new PutCommand({ TableName: this.s.tables.meta, Item: { pk: ROLES_PK, sk: name, ...role } }));
    this.defs.drop();
    return role;
  }

  /** removes the role (users who had it simply stop getting it); false when there was none */
  async remove(name: string): Promise<boolean> {
    const r = await sendOrUnavailable<{ Attributes?: unknown }>(this.s.doc, new DeleteCommand({
      TableName: this.s.tables.meta, Key: { pk: ROLES_PK, sk: name }, ReturnValues: 'ALL_OLD',
    }));
    this.defs.drop();
    return r.Attributes !== undefined;
  }

  private async read(name: string): Promise<Role | undefined> {
    const r = await sendOrUnavailable<{ Item?: Record<string, unknown> }>(this.s.doc, new GetCommand({
      TableName: this.s.tables.meta, Key: { pk: ROLES_PK, sk: name }, ConsistentRead: true,
    }));
    if (!r.Item) return undefined;
    const { pk: _p, sk: _s, ...role } = r.Item;
    return role as unknown as Role;
  }

  // ---- the roles of users

  /** the user's roles as stored (read now) */
  async userRoles(sub: string): Promise<UserRoles> {
    const r = await sendOrUnavailable<{ Item?: { assigned?: string[]; federated?: Record<string, string[]> } }>(this.s.doc, new GetCommand({
      TableName: this.s.tables.accounts, Key: { pk: CONSENT_PK_PREFIX + sub, sk: USER_SK }, ConsistentRead: true,
    }));
    return { assigned: r.Item?.assigned ?? [], federated: r.Item?.federated ?? {} };
  }

  /** every role name the user has (assigned or federated; cached for cacheMs) */
  async namesOf(sub: string): Promise<string[]> {
    let hit = this.users.get(sub)?.value;
    if (!hit) {
      hit = this.userRoles(sub);
      this.users.set(sub, hit);
      hit.catch(() => this.users.delete(sub));
    }
    const u = await hit;
    return union(u.assigned, Object.values(u.federated).flat());
  }

  /** the user's `roles` and `permissions` claims for `resource` (or for the client, when none) */
  async claimsFor(sub: string, resource?: string): Promise<RoleClaims> {
    const [defs, names] = await Promise.all([this.list(), this.namesOf(sub)]);
    return roleClaims(defs, names, resource);
  }

  /** operator assignment: adds (or removes) roles; the roles must exist to be added */
  async assign(sub: string, add: string[], remove: string[] = []): Promise<UserRoles> {
    for (const n of add) {
      if (!(await this.read(n))) throw new ConsentInvalid(`no role "${n}"`);
    }
    const current = await this.userRoles(sub);
    const assigned = union(current.assigned, add).filter((n) => !remove.includes(n));
    return this.write(sub, { ...current, assigned });
  }

  /**
   * A federated sign-in through `connection` gave these roles (rolesFromClaims):
   * they replace what that connection gave before; operator assignments stay.
   */
  async setFederated(sub: string, connection: string, roles: string[]): Promise<UserRoles> {
    const current = await this.userRoles(sub);
    const before = current.federated[connection] ?? [];
    if (before.length === roles.length && before.every((r, i) => r === roles[i])) return current;
    const federated = { ...current.federated };
    if (roles.length) federated[connection] = roles;
    else delete federated[connection];
    return this.write(sub, { ...current, federated });
  }

  private async write(sub: string, u: UserRoles): Promise<UserRoles> {
    await sendOrUnavailable(this.s.doc, new PutCommand({
      TableName: this.s.tables.accounts,
      Item: { pk: CONSENT_PK_PREFIX + sub, sk: USER_SK, sub, ...u, updatedAt: new Date().toISOString() },
    }));
    this.users.delete(sub);
    return u;
  }
}
