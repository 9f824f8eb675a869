// The account store seam. Login (strategies), claims (findAccount), the
// consent page and the CLI reach accounts only through these interfaces;
// DynamoAccountStore (dynamo-store.ts) is the implementation, described in
// docs/accounts.md.
import type { LegacyCredential } from '../passwords/index.ts';

export type AccountStatus = 'active' | 'disabled' | 'locked' | 'pending';
export const ACCOUNT_STATUSES: readonly AccountStatus[] = ['active', 'disabled', 'locked', 'pending'];

/** Personal data of one source (or of the local record). Lives only inside the encrypted blob. */
export interface Profile {
  /** normalized: trimmed, lower-cased */
  email?: string;
  emailVerified?: boolean;
  /** E.164: +<country><number> */
  phone?: string;
  phoneVerified?: boolean;
  name?: string;
  givenName?: string;
  familyName?: string;
  /** any other profile field (middleName, nickname, locale, birthdate, address, ...) */
  extra?: Record<string, unknown>;
}

/** A source identity linked to an account: one (source, sourceUserId) of a legacy system. */
export interface LinkedIdentity {
  source: string;
  sourceUserId: string;
  /** status the source gave this user */
  status: AccountStatus;
  profile: Profile;
  /** the legacy password hash, kept until the first successful login */
  legacy?: LegacyCredential;
  /** its legacy credential was dropped for an argon2id secret: a re-import does not bring it back */
  legacyRetired?: boolean;
  /** how it came to this account: founding import, verified-identifier merge at import, admin merge */
  via: 'import' | 'import-merge' | 'admin-merge';
  /** the merge record that linked it, when it was a merge */
  mergeId?: string;
  /** whether its legacy credential may unlock this account (founding or verified link) */
  verifiedLink: boolean;
  linkedAt: string;
}

/**
 * An identity at an upstream IdP (src/federation), keyed by (connection,
 * issuer, subject): never by e-mail. Entra's subject is tid:oid.
 */
export interface FederatedKey {
  connection: string;
  issuer: string;
  subject: string;
}

export interface FederatedLink extends FederatedKey {
  /** how it was linked: a just-in-time account, a proof of the account, the upstream's verified address, an operator */
  via: 'signup' | 'prove' | 'verified-email' | 'admin';
  linkedAt: string;
  lastLoginAt?: string;
}

export interface Account {
  sub: string;
  status: AccountStatus;
  /** why a pending account is held, e.g. 'unverified-duplicate' */
  pendingReason?: string;
  /** the effective profile (see docs/accounts.md for the conflict rule) */
  email?: string;
  emailVerified: boolean;
  phone?: string;
  phoneVerified: boolean;
  name?: string;
  givenName?: string;
  familyName?: string;
  extra: Record<string, unknown>;
  /** attribute -> "local" or "<source>:<sourceUserId>" that gave its value */
  provenance: Record<string, string>;
  /** argon2id PHC string of the password we set */
  passwordHash?: string;
  /** when a change or reset last set the password (absent: set at creation or first login) */
  passwordChangedAt?: string;
  identities: LinkedIdentity[];
  /** upstream identities that sign in to this account (src/federation) */
  federated: FederatedLink[];
  /** ids of merge records that touched this account */
  merges: string[];
  version: number;
  createdAt: string;
  updatedAt: string;
}

/** What `list` gives: the plaintext (non-personal) attributes only; nothing is decrypted. */
export interface AccountSummary {
  sub: string;
  status: AccountStatus;
  pendingReason?: string;
  sources: string[];
  legacySources: string[];
  hasPassword: boolean;
  lastLegacyLogin: Record<string, string>;
  merges: string[];
  version: number;
  createdAt: string;
  updatedAt: string;
}

export interface NewAccount {
  /** the new account's subject (default: a random UUID); the admin service picks it first so its event names it */
  sub?: string;
  email: string;
  password?: string;
  name?: string;
  givenName?: string;
  familyName?: string;
  emailVerified?: boolean;
  phone?: string;
  phoneVerified?: boolean;
}

/** One line of an import file, validated and normalized (import.ts parses it). */
export interface ImportRow {
  source: string;
  sourceUserId: string;
  status: AccountStatus;
  profile: Profile;
  legacy?: LegacyCredential;
}

export type ImportOutcome = 'created' | 'merged' | 'updated' | 'unchanged';

/** what one import row did; a merge names its merge record */
export interface ImportRowResult { outcome: ImportOutcome; sub?: string; mergeId?: string }

export interface MergeRecord {
  id: string;
  kind: 'import' | 'admin';
  into: string;
  /** admin merges: the account merged away */
  from?: string;
  /** source names of the identities it linked (their ids stay inside the encrypted records) */
  sources: string[];
  at: string;
  undoneAt?: string;
  /** the account an undo restored or created */
  restoredSub?: string;
}

export interface SourceMigrationStatus {
  source: string;
  accounts: number;
  argon2id: number;
  legacy: number;
  noPassword: number;
  lastLegacyLogin?: string;
  sunset?: string;
}

export class AccountExists extends Error {
  override name = 'AccountExists';
}

/** A conditional write lost to a concurrent change of the same account (its version moved). */
export class ConcurrentUpdate extends Error {
  override name = 'ConcurrentUpdate';
}

export class AccountNotFound extends Error {
  override name = 'AccountNotFound';
}

export interface AccountStore {
  create(input: NewAccount): Promise<Account>;
  /**
   * `onlyIf`: read the item now, but open it (its data key, possibly a KMS
   * call) only if this resolves true; undefined otherwise. For reads started
   * on a hint before it is confirmed (src/provider/token-pipeline.ts).
   */
  findBySub(sub: string, opts?: { onlyIf?: Promise<boolean> }): Promise<Account | undefined>;
  /** the identifier typed on the login form: an e-mail address or an E.164 phone number */
  findByLogin(login: string): Promise<Account | undefined>;
  list(opts?: { limit?: number }): Promise<AccountSummary[]>;
  /** replace the argon2id secret; conditional on account.version (throws ConcurrentUpdate) */
  setPassword(account: Account, argon2Hash: string): Promise<Account>;
  /**
   * First login with a legacy password: in ONE conditional write on
   * account.version, set the argon2id secret, delete every legacy credential
   * of the account and record the legacy login of `used.source`.
   */
  completeLegacyLogin(account: Account, argon2Hash: string, used: { source: string; scheme: string }): Promise<Account>;
  /** the argon2id secrets before the current one, newest first (the password policy refuses them) */
  passwordHistory(sub: string): Promise<string[]>;
  /**
   * A password change or reset (src/lockout/self-service.ts): the current
   * secret moves into the history (the newest `keepHistory` are kept), legacy
   * credentials are retired, passwordChangedAt is stamped. With
   * expectedVersion, conditional on it (throws ConcurrentUpdate).
   */
  changePassword(sub: string, argon2Hash: string, opts: { keepHistory: number; expectedVersion?: number }): Promise<Account>;
}

/** A federated identity already linked to another account. */
export class FederatedIdentityTaken extends Error {
  override name = 'FederatedIdentityTaken';
}

/** What federation (src/federation) needs of the account store. */
export interface FederationAccounts {
  findByFederated(key: FederatedKey): Promise<Account | undefined>;
  /** links the identity to the account (claiming its pointer first); FederatedIdentityTaken when another account has it */
  linkFederated(sub: string, link: FederatedKey & { via: FederatedLink['via'] }): Promise<Account>;
  /** false when the account had no such link */
  unlinkFederated(sub: string, key: FederatedKey): Promise<boolean>;
  /** records the link's last use (best effort) */
  touchFederated(account: Account, key: FederatedKey): Promise<void>;
  /**
   * A just-in-time account for an upstream identity: provenance
   * federated:<connection>, its personal data encrypted like every account's.
   * It takes the login pointer of its e-mail/phone only where that is free:
   * an address another account owns is stored, never taken over.
   */
  createFederated(input: { profile: Profile; link: FederatedKey & { via: FederatedLink['via'] }; sub?: string }): Promise<Account>;
}

/** Operator capabilities beside the login path (CLI). */
export interface AccountAdmin {
  importRow(row: ImportRow, opts?: { dryRun?: boolean }): Promise<ImportRowResult>;
  /** the pointer keys one row touches, to serialize rows that share any of them */
  rowKeys(row: ImportRow): string[];
  /** `mergeId` lets the caller name the merge up front (its event carries it) */
  merge(into: string, from: string, opts?: { mergeId?: string }): Promise<MergeRecord>;
  unmerge(mergeId: string): Promise<MergeRecord>;
  getMerge(mergeId: string): Promise<MergeRecord | undefined>;
  erase(sub: string): Promise<boolean>;
  migrationStatus(sunset?: Record<string, string>): Promise<SourceMigrationStatus[]>;
}

const EXTRA_CLAIMS: Record<string, string> = {
  middleName: 'middle_name', nickname: 'nickname', preferredUsername: 'preferred_username', profile: 'profile',
  picture: 'picture', website: 'website', gender: 'gender', birthdate: 'birthdate', zoneinfo: 'zoneinfo',
  locale: 'locale', address: 'address',
};

/** OIDC standard claims of an account. */
export function standardClaims(a: Account): Record<string, unknown> {
  const extra: Record<string, unknown> = {};
  for (const [k, claim] of Object.entries(EXTRA_CLAIMS)) {
    if (a.extra?.[k] !== undefined) extra[claim] = a.extra[k];
  }
  return {
    sub: a.sub,
    ...(a.email !== undefined ? { email: a.email, email_verified: a.emailVerified } : {}),
    ...(a.phone !== undefined ? { phone_number: a.phone, phone_number_verified: a.phoneVerified } : {}),
    ...(a.name !== undefined ? { name: a.name } : {}),
    ...(a.givenName !== undefined ? { given_name: a.givenName } : {}),
    ...(a.familyName !== undefined ? { family_name: a.familyName } : {}),
    ...extra,
    updated_at: Math.floor(Date.parse(a.updatedAt) / 1000),
  };
}

export function normalizeEmail(email: string): string {
  return email.trim().toLowerCase();
}

const EMAIL = /^[^\s@<>()[\]\\,;:"]+@[^\s@<>()[\]\\,;:"]+\.[^\s@<>()[\]\\,;:"]+$/;
export function isValidEmail(email: string): boolean {
  return typeof email === 'string' && email.trim().length <= 254 && EMAIL.test(email.trim());
}

/**
 * E.164 form of a phone number, or undefined when it is not one. Spaces,
 * dots, dashes and parentheses are dropped and a leading "00" becomes "+";
 * what remains must be "+" and 8 to 15 digits, the first not 0.
 */
export function normalizePhone(phone: string): string | undefined {
  if (typeof phone !== 'string') return undefined;
  let p = phone.trim().replace(/[\s.()-]/g, '');
  if (p.startsWith('00')) p = `+${p.slice(2)}`;
  return /^\+[1-9]\d{7,14}$/.test(p) ? p : undefined;
}
