// The consent vocabulary (docs: openid-configuration.md "Consent", README
// "Consent and roles"): what a user allowed a client (a connected app), what
// an admin allowed a client for every user, and roles (named sets of
// permissions, each permission optionally tied to one resource server).

/** scopes, claims and resource scopes: what a consent covers */
export interface ConsentScope {
  /** OpenID scopes */
  scope: string[];
  /** claims asked for by name (the `claims` parameter) */
  claims: string[];
  /** resource indicator → its scopes */
  resources: Record<string, string[]>;
}

/** what one user allowed one client: a connected app */
export interface AppConsent extends ConsentScope {
  sub: string;
  clientId: string;
  /** optional scopes the user left unticked: not asked again */
  declined: string[];
  grantedAt: string;
  updatedAt: string;
  /** the last sign-in to the app that started a grant from this consent */
  lastUsedAt: string;
  /** the grants issued under this consent (grant id → expiry, epoch seconds): removing access revokes them all */
  grants: Record<string, number>;
}

/** what an admin allowed one client for every user (tenant-wide consent) */
export interface AdminConsent extends ConsentScope {
  clientId: string;
  grantedBy: string;
  grantedAt: string;
}

/** one recorded admin consent change: who, when, what */
export interface AdminConsentChange extends ConsentScope {
  action: 'granted' | 'revoked';
  clientId: string;
  by: string;
  at: string;
}

/** a permission; with `resource`, it goes only into tokens for that resource server */
export interface Permission {
  value: string;
  resource?: string;
}

export interface Role {
  name: string;
  description?: string;
  permissions: Permission[];
  updatedAt: string;
}

/** the roles a user has: assigned by an operator, and given by federated connections (claim mappings) */
export interface UserRoles {
  assigned: string[];
  /** connection id → role names its claim mapping gave at the last sign-in */
  federated: Record<string, string[]>;
}

/** bad input to the consent or role stores: a one-line message for the operator */
export class ConsentInvalid extends Error {
  override name = 'ConsentInvalid';
}

/** a ∪ b, order kept, duplicates and empty strings dropped */
export function union(a: readonly string[], b: readonly string[]): string[] {
  return [...new Set([...a, ...b])].filter((x) => typeof x === 'string' && x !== '');
}

/** space-separated words, trimmed and de-duplicated */
export const words = (s: string | undefined): string[] => union([], (s ?? '').split(/\s+/));
