// The decrypted content of an account record and the rules that turn it into
// the effective profile (docs/accounts.md, "Conflict rule"):
//
//  - attributes set locally (idp users add) win over imported ones;
//  - for e-mail and phone, a verified value beats an unverified one;
//  - otherwise the identity linked first wins (file order at import, merge
//    order after), so re-imports and later merges only fill gaps.
//
// The account status of an imported account is the most restrictive status
// its sources give (disabled > locked > pending > active), and at least
// pending while the account is held (an unverified duplicate).
import type { Account, AccountStatus, FederatedLink, LinkedIdentity, Profile } from './types.ts';

/** What the encrypted blob holds. */
export interface Sealed {
  /** attributes set here (idp users add), provenance "local" (or `localOrigin`) */
  local?: Profile;
  /** the provenance of `local` when it did not come from an operator: "federated:<connection>" for a just-in-time account */
  localOrigin?: string;
  /** upstream identities linked to the account (src/federation); their pointers are in `ptrs` */
  federated?: FederatedLink[];
  identities: LinkedIdentity[];
  /** argon2id PHC string */
  password?: string;
  /** earlier argon2id secrets, newest first (password history) */
  passwordHistory?: string[];
  /** when changePassword last set `password` */
  passwordChangedAt?: string;
}

/** The plaintext attributes of an account item (no personal data). */
export interface AccountItem {
  pk: string;
  sk: string;
  sub: string;
  status: AccountStatus;
  pendingReason?: string;
  version: number;
  createdAt: string;
  updatedAt: string;
  /**
   * the record's data key, wrapped by the keyring: only on items written
   * before migration 2, which moved it to the `datakeys` table (dynamo-store.ts)
   */
  dk?: string;
  /** AES-256-GCM of Sealed */
  blob: string;
  sources: string[];
  legacySources: string[];
  hasPassword: boolean;
  lastLegacyLogin?: Record<string, string>;
  /** the password.migrated event, written in the same conditional write as the upgrade */
  passwordMigrated?: { source: string; scheme: string; at: string };
  /** "pk|sk" of every pointer item this account may own (blind-index hashes only) */
  ptrs: string[];
  merges?: string[];
  /** connection ids of the linked upstream identities (no personal data) */
  connections?: string[];
}

export const identityRef = (i: { source: string; sourceUserId: string }) => `${i.source}:${i.sourceUserId}`;

const RESTRICTIVENESS: Record<AccountStatus, number> = { active: 0, pending: 1, locked: 2, disabled: 3 };

export function computeStatus(identities: LinkedIdentity[], held: boolean, base: AccountStatus = 'active'): AccountStatus {
  let s: AccountStatus = held && RESTRICTIVENESS[base] < RESTRICTIVENESS.pending ? 'pending' : base;
  for (const i of identities) if (RESTRICTIVENESS[i.status] > RESTRICTIVENESS[s]) s = i.status;
  return s;
}

interface Candidate { ref: string; profile: Profile }

function candidates(sealed: Sealed): Candidate[] {
  return [
    ...(sealed.local ? [{ ref: sealed.localOrigin ?? 'local', profile: sealed.local }] : []),
    ...sealed.identities.map((i) => ({ ref: identityRef(i), profile: i.profile })),
  ];
}

/** the effective profile of a record: Account's profile fields (see docs/accounts.md for the conflict rule) */
export type Effective = Pick<Account, 'email' | 'emailVerified' | 'phone' | 'phoneVerified' | 'name' | 'givenName' | 'familyName' | 'extra' | 'provenance'>;

export function deriveProfile(sealed: Sealed): Effective {
  const cs = candidates(sealed);
  const out: Effective = { emailVerified: false, phoneVerified: false, extra: {}, provenance: {} };
  const pickVerifiable = (field: 'email' | 'phone', flag: 'emailVerified' | 'phoneVerified') => {
    const c = cs.find((x) => x.profile[field] !== undefined && x.profile[flag] === true) ?? cs.find((x) => x.profile[field] !== undefined);
    if (!c) return;
    out[field] = c.profile[field];
    out[flag] = c.profile[flag] === true;
    out.provenance[field] = c.ref;
  };
  pickVerifiable('email', 'emailVerified');
  pickVerifiable('phone', 'phoneVerified');
  for (const field of ['name', 'givenName', 'familyName'] as const) {
    const c = cs.find((x) => x.profile[field] !== undefined);
    if (c) {
      out[field] = c.profile[field];
      out.provenance[field] = c.ref;
    }
  }
  for (const c of cs) {
    for (const [k, v] of Object.entries(c.profile.extra ?? {})) {
      if (v === undefined || Object.hasOwn(out.extra, k)) continue;
      out.extra[k] = v;
      out.provenance[k] = c.ref;
    }
  }
  return out;
}

export function toAccount(item: AccountItem, sealed: Sealed): Account {
  const eff = deriveProfile(sealed);
  return {
    sub: item.sub,
    status: item.status,
    ...(item.pendingReason ? { pendingReason: item.pendingReason } : {}),
    ...eff,
    passwordHash: sealed.password,
    ...(sealed.passwordChangedAt ? { passwordChangedAt: sealed.passwordChangedAt } : {}),
    identities: sealed.identities,
    federated: sealed.federated ?? [],
    merges: item.merges ?? [],
    version: item.version,
    createdAt: item.createdAt,
    updatedAt: item.updatedAt,
  };
}

/** Plaintext metadata that follows from the sealed content. */
export function metadataOf(sealed: Sealed): Pick<AccountItem, 'sources' | 'legacySources' | 'hasPassword' | 'connections'> {
  return {
    connections: [...new Set((sealed.federated ?? []).map((f) => f.connection))].sort(),
    // "local" marks attributes of an admin-merged local account, not a legacy source
    sources: [...new Set(sealed.identities.filter((i) => i.source !== 'local').map((i) => i.source))].sort(),
    legacySources: [...new Set(sealed.identities.filter((i) => i.legacy).map((i) => i.source))].sort(),
    hasPassword: sealed.password !== undefined,
  };
}

/** JSON with sorted keys, for comparing what a re-import would write. */
export function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object') {
    return `{${Object.keys(v).sort().filter((k) => (v as Record<string, unknown>)[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(v);
}
