// Connections to upstream identity providers, stored in the `meta` table:
//
//   pk "connections"  sk "<id>"  every field of Connection except the plaintext
//                                secrets, plus clientSecretSealed (keyring.wrap,
//                                context `connection-secret:<id>`) and, for
//                                private_key_jwt, signingKey.privateSealed
//                                (context `connection-key:<id>`)
//
// One Query reads them all. Writes are conditional: add fails when the id
// exists, update and remove when the version moved (ConnectionConflict). Every
// write is validated first (validateConnection: one-line ConnectionInvalid
// errors): the id's form, https issuer and discovery URL (http only for
// loopback hosts), an Entra {tenantid} template only with a tenant list,
// `openid` among the scopes, domains that look like domains and that no other
// connection serves, claim mappings that are plain dotted paths.
//
// The list is cached in the process for `cacheMs` (10 s); this process's own
// writes drop the cache at once, other processes' writes show within cacheMs.
// Opened secrets are remembered by their sealed value, so a reload does not
// unwrap (a KMS call in the kms modes) what did not change.
import { DeleteCommand, GetCommand, PutCommand, QueryCommand } from '@aws-sdk/lib-dynamodb';
import type { JWK } from 'jose';
import type { Storage } from '../storage/index.ts';
import { isConditionFailed, sendOrUnavailable } from '../storage/errors.ts';
import { CachedList } from '../storage/cached-list.ts';
import type { Keyring } from '../keys/types.ts';
import { generateSigningJwk } from '../keys/generate.ts';
import {
  CLIENT_AUTHS, CONNECTION_KINDS, LINKING_MODES, MAPPABLE_ATTRIBUTES, TENANT_PLACEHOLDER,
  ConnectionConflict, ConnectionExists, ConnectionInvalid, ConnectionNotFound,
  type Connection, type ConnectionInput, type ConnectionKind, type ConnectionPatch,
} from './types.ts';

const PK = 'connections';
const ID = /^[a-z0-9][a-z0-9-]{0,39}$/;
const DOMAIN = /^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const SCOPE = /^[\x21\x23-\x5B\x5D-\x7E]+$/;
const PATH_SEGMENT = /^[A-Za-z_][A-Za-z0-9_:-]{0,63}$/;
const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const FORBIDDEN_SEGMENTS = new Set(['__proto__', 'prototype', 'constructor']);
const CONTROL = /[\x00-\x1f\x7f]/;

export const GOOGLE_ISSUER = 'https://accounts.google.com';
const GOOGLE_DISCOVERY = 'https://accounts.google.com/.well-known/openid-configuration';
const DEFAULT_SCOPES = ['openid', 'email', 'profile'];
const DEFAULT_CACHE_MS = 10_000;

/** the claim mapping of each kind before the operator's own entries (--claim attr=path) */
export const DEFAULT_CLAIM_MAPPING: Record<ConnectionKind, Record<string, string>> = {
  oidc: { email: 'email', name: 'name', givenName: 'given_name', familyName: 'family_name', phone: 'phone_number', locale: 'locale' },
  google: { email: 'email', name: 'name', givenName: 'given_name', familyName: 'family_name', picture: 'picture', locale: 'locale' },
  entra: { email: 'email', name: 'name', givenName: 'given_name', familyName: 'family_name' },
};

/** The redirect URI to register upstream for a connection: `${issuer}/federation/${id}/callback`. */
export function redirectUriFor(issuer: string, id: string): string {
  return `${issuer}/federation/${encodeURIComponent(id)}/callback`;
}

/** true for 127.0.0.0/8, localhost and [::1] */
export function isLoopbackHost(hostname: string): boolean {
  const h = hostname.toLowerCase();
  return h === 'localhost' || h === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

/** https, or http on a loopback host; no credentials, no fragment */
export function checkUpstreamUrl(value: string, what: string, opts: { noQuery?: boolean } = {}): URL {
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    throw new ConnectionInvalid(`${what} must be an absolute https URL, got "${value}"`);
  }
  if (u.protocol !== 'https:' && !(u.protocol === 'http:' && isLoopbackHost(u.hostname))) {
    throw new ConnectionInvalid(`${what} must use https (http only for 127.0.0.1, localhost or [::1]), got "${value}"`);
  }
  if (u.username || u.password) throw new ConnectionInvalid(`${what} must not carry credentials`);
  if (u.hash || value.includes('#')) throw new ConnectionInvalid(`${what} must have no fragment, got "${value}"`);
  if (opts.noQuery && (u.search || value.includes('?'))) throw new ConnectionInvalid(`${what} must have no query, got "${value}"`);
  return u;
}

export const isTemplateIssuer = (issuer: string): boolean => issuer.includes(TENANT_PLACEHOLDER);

/** The discovery URL a connection uses when none is given. */
export function defaultDiscoveryUrl(kind: ConnectionKind, issuer: string): string {
  if (kind === 'google' && issuer === GOOGLE_ISSUER) return GOOGLE_DISCOVERY;
  const base = kind === 'entra' ? issuer.replace(TENANT_PLACEHOLDER, 'organizations') : issuer;
  return `${base.replace(/\/$/, '')}/.well-known/openid-configuration`;
}

/** A full Connection from what an operator gave: every default filled in (not yet validated). */
export function withDefaults(input: ConnectionInput, now = new Date().toISOString()): Connection {
  const kind = input.kind ?? 'oidc';
  const issuer = input.issuer ?? (kind === 'google' ? GOOGLE_ISSUER : '');
  return {
    id: input.id,
    name: input.name,
    kind,
    issuer,
    discoveryUrl: input.discoveryUrl ?? (issuer ? defaultDiscoveryUrl(kind, issuer) : ''),
    clientId: input.clientId,
    clientAuth: input.clientAuth ?? 'client_secret_basic',
    ...(input.clientSecret !== undefined ? { clientSecret: input.clientSecret } : {}),
    scopes: input.scopes ?? [...DEFAULT_SCOPES],
    claimMapping: mergeMapping(DEFAULT_CLAIM_MAPPING[kind] ?? {}, input.claimMapping),
    domains: (input.domains ?? []).map((d) => d.trim().toLowerCase()),
    allowSignup: input.allowSignup ?? false,
    linking: input.linking ?? 'prove',
    trustEmailVerified: input.trustEmailVerified ?? false,
    linkOnly: input.linkOnly ?? false,
    hidden: input.hidden ?? false,
    upstreamLogout: input.upstreamLogout ?? false,
    trustUpstreamMfa: input.trustUpstreamMfa ?? false,
    ...(input.tenants !== undefined ? { tenants: input.tenants.map((t) => t.trim().toLowerCase()) } : {}),
    ...(input.hostedDomain !== undefined ? { hostedDomain: input.hostedDomain.trim().toLowerCase() } : {}),
    ...(input.roleMapping !== undefined ? { roleMapping: input.roleMapping } : {}),
    createdAt: now,
    updatedAt: now,
    version: 1,
  };
}

/** A connection with a change applied (not yet validated): what ConnectionStore.update saves. */
export function applyPatch(current: Connection, patch: ConnectionPatch, now = new Date().toISOString()): Connection {
  const next: Connection = { ...current, updatedAt: now, version: current.version + 1 };
  for (const [k, v] of Object.entries(patch) as Array<[keyof ConnectionPatch, unknown]>) {
    if (v === undefined) continue;
    if (v === null) delete (next as unknown as Record<string, unknown>)[k];
    else (next as unknown as Record<string, unknown>)[k] = v;
  }
  if (patch.domains) next.domains = patch.domains.map((d) => d.trim().toLowerCase());
  if (patch.tenants) next.tenants = patch.tenants.map((t) => t.trim().toLowerCase());
  if (typeof patch.hostedDomain === 'string') next.hostedDomain = patch.hostedDomain.trim().toLowerCase();
  if (patch.claimMapping) next.claimMapping = mergeMapping(current.claimMapping, patch.claimMapping);
  // a new kind or issuer without a new discovery URL: the default follows (unless one was set by hand)
  if ((patch.kind || patch.issuer) && !patch.discoveryUrl && current.discoveryUrl === defaultDiscoveryUrl(current.kind, current.issuer)) {
    next.discoveryUrl = defaultDiscoveryUrl(next.kind, next.issuer);
  }
  if (next.clientAuth === 'private_key_jwt') delete next.clientSecret;
  return next;
}

/** base with the changes applied; an empty path removes the attribute's mapping */
function mergeMapping(base: Record<string, string>, changes: Record<string, string> | undefined): Record<string, string> {
  const out = { ...base };
  for (const [k, v] of Object.entries(changes ?? {})) {
    if (v === '') delete out[k];
    else out[k] = v;
  }
  return out;
}

const text = (v: unknown, what: string, max: number): void => {
  if (typeof v !== 'string' || v.trim() === '') throw new ConnectionInvalid(`${what} must not be empty`);
  if (v.length > max) throw new ConnectionInvalid(`${what} must be at most ${max} characters`);
  if (CONTROL.test(v)) throw new ConnectionInvalid(`${what} must not contain control characters`);
};

/**
 * Checks one connection on its own (others: the domains no other connection
 * serves, see ConnectionStore). Throws ConnectionInvalid with one line.
 */
export function validateConnection(c: Connection): void {
  if (typeof c.id !== 'string' || !ID.test(c.id)) throw new ConnectionInvalid(`id must be 1-40 lower-case letters, digits or "-", starting with a letter or digit, got "${c.id}"`);
  text(c.name, 'name', 100);
  if (!CONNECTION_KINDS.includes(c.kind)) throw new ConnectionInvalid(`kind must be one of ${CONNECTION_KINDS.join(', ')}, got "${c.kind}"`);
  if (!c.issuer) throw new ConnectionInvalid('issuer is required');
  const template = isTemplateIssuer(c.issuer);
  if (template && c.kind !== 'entra') throw new ConnectionInvalid(`a ${TENANT_PLACEHOLDER} issuer is only for kind entra`);
  if (template && c.issuer.split(TENANT_PLACEHOLDER).length !== 2) throw new ConnectionInvalid(`issuer must contain ${TENANT_PLACEHOLDER} once`);
  checkUpstreamUrl(c.issuer.replace(TENANT_PLACEHOLDER, 'tenant'), 'issuer', { noQuery: true });
  if (!c.discoveryUrl) throw new ConnectionInvalid('discovery URL is required');
  if (c.discoveryUrl.includes(TENANT_PLACEHOLDER)) throw new ConnectionInvalid(`discovery URL must not contain ${TENANT_PLACEHOLDER}`);
  if (!checkUpstreamUrl(c.discoveryUrl, 'discovery URL').pathname.includes('/.well-known/')) throw new ConnectionInvalid(`discovery URL must be the document's own URL (with /.well-known/), got "${c.discoveryUrl}"`);
  text(c.clientId, 'client id', 255);
  if (!CLIENT_AUTHS.includes(c.clientAuth)) throw new ConnectionInvalid(`client auth must be one of ${CLIENT_AUTHS.join(', ')}, got "${c.clientAuth}"`);
  if (c.clientAuth === 'private_key_jwt') {
    if (c.clientSecret !== undefined) throw new ConnectionInvalid('private_key_jwt takes no client secret');
  } else {
    if (c.clientSecret === undefined) throw new ConnectionInvalid(`${c.clientAuth} needs a client secret`);
    text(c.clientSecret, 'client secret', 1024);
  }
  if (!Array.isArray(c.scopes) || c.scopes.some((s) => !SCOPE.test(s))) throw new ConnectionInvalid('scopes must be space-separated scope tokens');
  if (!c.scopes.includes('openid')) throw new ConnectionInvalid('scopes must include openid');
  for (const [attr, path] of Object.entries(c.claimMapping ?? {})) {
    if (!(MAPPABLE_ATTRIBUTES as readonly string[]).includes(attr)) throw new ConnectionInvalid(`claim mapping: unknown attribute "${attr}" (one of ${MAPPABLE_ATTRIBUTES.join(', ')})`);
    const segments = typeof path === 'string' ? path.split('.') : [];
    if (segments.length === 0 || segments.length > 5 || segments.some((s) => !PATH_SEGMENT.test(s) || FORBIDDEN_SEGMENTS.has(s))) {
      throw new ConnectionInvalid(`claim mapping ${attr}: "${String(path)}" is not a claim name or dotted path (letters, digits, "_", ":", "-")`);
    }
  }
  if (!Array.isArray(c.domains)) throw new ConnectionInvalid('domains must be a list');
  for (const d of c.domains) if (!DOMAIN.test(d)) throw new ConnectionInvalid(`domain "${d}" is not a domain name`);
  if (new Set(c.domains).size !== c.domains.length) throw new ConnectionInvalid('domains must not repeat');
  if (!LINKING_MODES.includes(c.linking)) throw new ConnectionInvalid(`linking must be one of ${LINKING_MODES.join(', ')}, got "${c.linking}"`);
  for (const flag of ['allowSignup', 'trustEmailVerified', 'linkOnly', 'hidden', 'upstreamLogout', 'trustUpstreamMfa'] as const) {
    if (typeof c[flag] !== 'boolean') throw new ConnectionInvalid(`${flag} must be true or false`);
  }
  if (c.tenants !== undefined) {
    if (c.kind !== 'entra') throw new ConnectionInvalid('tenants are only for kind entra');
    for (const t of c.tenants) if (!GUID.test(t)) throw new ConnectionInvalid(`tenant "${t}" is not a tenant id (a GUID)`);
  }
  if (template && (c.tenants === undefined || c.tenants.length === 0)) throw new ConnectionInvalid(`an Entra issuer with ${TENANT_PLACEHOLDER} needs a list of allowed tenants`);
  if (c.hostedDomain !== undefined) {
    if (c.kind !== 'google') throw new ConnectionInvalid('hosted domain is only for kind google');
    if (!DOMAIN.test(c.hostedDomain)) throw new ConnectionInvalid(`hosted domain "${c.hostedDomain}" is not a domain name`);
  }
  if (c.roleMapping !== undefined) {
    const { claim, values } = c.roleMapping;
    if (typeof claim !== 'string' || !PATH_SEGMENT.test(claim)) throw new ConnectionInvalid(`role claim "${claim}" is not a claim name`);
    if (!values || typeof values !== 'object') throw new ConnectionInvalid('role mapping needs VALUE=ROLE entries');
    for (const [value, roles] of Object.entries(values)) {
      if (!value || value.length > 256 || CONTROL.test(value)) throw new ConnectionInvalid(`role mapping value "${value}" is not a claim value`);
      if (!Array.isArray(roles) || roles.length === 0 || roles.some((r) => typeof r !== 'string' || !/^[A-Za-z0-9_.:-]{1,64}$/.test(r))) {
        throw new ConnectionInvalid(`role mapping for "${value}" needs role names (letters, digits, _ . : -)`);
      }
    }
  }
}

interface StoredConnection extends Omit<Connection, 'clientSecret' | 'signingKey'> {
  pk: string;
  sk: string;
  clientSecretSealed?: string;
  signingKey?: { kid: string; publicJwk: JWK; privateSealed: string };
}

export interface ConnectionStoreOptions {
  /** how long the listed connections are reused in this process (default 10 s) */
  cacheMs?: number;
}

export class ConnectionStore {
  private readonly storage: Pick<Storage, 'doc' | 'tables'>;
  private readonly keyring: Pick<Keyring, 'wrap' | 'unwrap'>;
  private readonly cache: CachedList<Connection>;
  /** sealed value -> opened value (secrets, private JWKs), so unchanged ones are not unwrapped again */
  private readonly opened = new Map<string, string>();

  constructor(storage: Pick<Storage, 'doc' | 'tables'>, keyring: Pick<Keyring, 'wrap' | 'unwrap'>, opts: ConnectionStoreOptions = {}) {
    this.storage = storage;
    this.keyring = keyring;
    this.cache = new CachedList(opts.cacheMs ?? DEFAULT_CACHE_MS, () => this.load());
  }

  private get table(): string {
    return this.storage.tables.meta;
  }

  /** every connection, sorted by id, secrets opened (cached for cacheMs) */
  list(): Promise<Connection[]> {
    return this.cache.get();
  }

  /** drops the cached list: the next read sees other processes' changes at once */
  forget(): void {
    this.cache.drop();
  }

  async get(id: string): Promise<Connection | undefined> {
    return (await this.list()).find((c) => c.id === id);
  }

  /** the connection serving this e-mail domain (home-realm discovery) */
  async byDomain(domain: string): Promise<Connection | undefined> {
    const d = domain.trim().toLowerCase();
    return (await this.list()).find((c) => c.domains.includes(d));
  }

  /** the connection serving the domain of this e-mail address */
  async byEmail(email: string): Promise<Connection | undefined> {
    const at = email.lastIndexOf('@');
    return at > 0 ? this.byDomain(email.slice(at + 1)) : undefined;
  }

  /** reads the table now (consistent), bypassing and refreshing nothing */
  private async load(): Promise<Connection[]> {
    const items: StoredConnection[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      const r = await sendOrUnavailable<{ Items?: StoredConnection[]; LastEvaluatedKey?: Record<string, unknown> }>(this.storage.doc, new QueryCommand({
        TableName: this.table,
        KeyConditionExpression: 'pk = :pk',
        ExpressionAttributeValues: { ':pk': PK },
        ConsistentRead: true,
        ExclusiveStartKey: start,
      }));
      items.push(...(r.Items ?? []));
      start = r.LastEvaluatedKey;
    } while (start);
    const list = await Promise.all(items.map((i) => this.open(i)));
    return list.sort((a, b) => a.id.localeCompare(b.id));
  }

  private async openSealed(sealed: string, context: string): Promise<string> {
    const key = `${context}\n${sealed}`;
    let v = this.opened.get(key);
    if (v === undefined) {
      v = (await this.keyring.unwrap(sealed, context)).toString('utf8');
      if (this.opened.size > 1000) this.opened.clear();
      this.opened.set(key, v);
    }
    return v;
  }

  private async open(item: StoredConnection): Promise<Connection> {
    const { pk: _pk, sk: _sk, clientSecretSealed, signingKey, ...rest } = item;
    const c: Connection = { ...rest };
    if (clientSecretSealed) c.clientSecret = await this.openSealed(clientSecretSealed, `connection-secret:${c.id}`);
    if (signingKey) {
      c.signingKey = {
        kid: signingKey.kid,
        publicJwk: signingKey.publicJwk,
        privateJwk: JSON.parse(await this.openSealed(signingKey.privateSealed, `connection-key:${c.id}`)) as JWK,
      };
    }
    return c;
  }

  private async read(id: string): Promise<StoredConnection | undefined> {
    const r = await sendOrUnavailable<{ Item?: StoredConnection }>(this.storage.doc, new GetCommand({ TableName: this.table, Key: { pk: PK, sk: id }, ConsistentRead: true }));
    return r.Item;
  }

  /** the domains already served by connections other than `id` (read now, not from the cache) */
  private async checkDomains(c: Connection): Promise<void> {
    if (c.domains.length === 0) return;
    for (const other of await this.load()) {
      if (other.id === c.id) continue;
      const taken = c.domains.find((d) => other.domains.includes(d));
      if (taken) throw new ConnectionInvalid(`domain ${taken} is already served by connection ${other.id}`);
    }
  }

  private async seal(c: Connection, previous?: StoredConnection): Promise<StoredConnection> {
    const { clientSecret, signingKey: _sk, ...rest } = c;
    const item: StoredConnection = { ...rest, pk: PK, sk: c.id };
    if (clientSecret !== undefined) {
      const unchanged = previous?.clientSecretSealed && this.opened.get(`connection-secret:${c.id}\n${previous.clientSecretSealed}`) === clientSecret;
      item.clientSecretSealed = unchanged ? previous!.clientSecretSealed : await this.keyring.wrap(Buffer.from(clientSecret, 'utf8'), `connection-secret:${c.id}`);
    }
    if (c.clientAuth === 'private_key_jwt') {
      if (previous?.signingKey) item.signingKey = previous.signingKey;
      else {
        // a dedicated key for this connection's client assertions, never our token-signing keys
        const jwk = await generateSigningJwk('RS256');
        const { kty, n, e, kid, alg, use } = jwk;
        item.signingKey = {
          kid: kid!,
          publicJwk: { kty, n, e, kid, alg, use },
          privateSealed: await this.keyring.wrap(Buffer.from(JSON.stringify(jwk), 'utf8'), `connection-key:${c.id}`),
        };
      }
    }
    return item;
  }

  /** adds a connection; ConnectionExists when the id is taken, ConnectionInvalid when it does not check out */
  async add(input: ConnectionInput): Promise<Connection> {
    const c = withDefaults(input);
    validateConnection(c);
    await this.checkDomains(c);
    const item = await this.seal(c);
    try {
      await sendOrUnavailable(this.storage.doc, new PutCommand({ TableName: this.table, Item: item, ConditionExpression: 'attribute_not_exists(pk)' }));
    } catch (err) {
      if (isConditionFailed(err)) throw new ConnectionExists(c.id);
      throw err;
    } finally {
      this.cache.drop();
    }
    return this.open(item);
  }

  /**
   * Changes the fields given in `patch`. With `expectedVersion`, only if the
   * connection still has that version; in any case only if no one changed it
   * between this read and this write (ConnectionConflict).
   */
  async update(id: string, patch: ConnectionPatch, expectedVersion?: number): Promise<Connection> {
    const stored = await this.read(id);
    if (!stored) throw new ConnectionNotFound(id);
    if (expectedVersion !== undefined && stored.version !== expectedVersion) throw new ConnectionConflict(id);
    const next = applyPatch(await this.open(stored), patch);
    validateConnection(next);
    await this.checkDomains(next);
    const item = await this.seal(next, stored);
    if (next.clientAuth !== 'private_key_jwt') delete item.signingKey;
    try {
      await sendOrUnavailable(this.storage.doc, new PutCommand({
        TableName: this.table, Item: item,
        ConditionExpression: 'attribute_exists(pk) AND version = :v', ExpressionAttributeValues: { ':v': stored.version },
      }));
    } catch (err) {
      if (isConditionFailed(err)) throw new ConnectionConflict(id);
      throw err;
    } finally {
      this.cache.drop();
    }
    return this.open(item);
  }

  /** removes a connection (ConnectionNotFound when there is none; ConnectionConflict when expectedVersion moved) */
  async remove(id: string, expectedVersion?: number): Promise<void> {
    try {
      await sendOrUnavailable(this.storage.doc, new DeleteCommand({
        TableName: this.table, Key: { pk: PK, sk: id },
        ConditionExpression: expectedVersion === undefined ? 'attribute_exists(pk)' : 'version = :v',
        ...(expectedVersion === undefined ? {} : { ExpressionAttributeValues: { ':v': expectedVersion } }),
      }));
    } catch (err) {
      if (!isConditionFailed(err)) throw err;
      throw (await this.read(id)) ? new ConnectionConflict(id) : new ConnectionNotFound(id);
    } finally {
      this.cache.drop();
    }
  }
}
