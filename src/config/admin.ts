// Configuration vocabulary of the admin console and API (docs/admin.md): the
// scopes of the admin API, the client metadata that grants them to a client,
// and the ids the console and API are registered under. It lives in config
// so that the provider's client validation (level 5) and the admin
// capability (level 6) share it.

/** the areas of the admin API; each is a scope (read and write), with :read and :write variants */
export const ADMIN_AREAS = ['users', 'clients', 'sessions', 'keys', 'audit'] as const;
export type AdminArea = (typeof ADMIN_AREAS)[number];

/** every admin scope value: admin:<area> (read and write), admin:<area>:read, admin:<area>:write */
export const ADMIN_SCOPE_VALUES: readonly string[] = ADMIN_AREAS.flatMap((a) => [`admin:${a}`, `admin:${a}:read`, `admin:${a}:write`]);

/** client metadata: the admin scopes a client may use at the admin API (space-separated); without it, none */
export const ADMIN_SCOPES_METADATA = 'admin_scopes';

/** the console's own client (code + PKCE, first-party, MFA required) */
export const ADMIN_CONSOLE_CLIENT = 'admin-console';

/** the role that opens the console (`idp admins add`, or `idp users roles add --role admin`) */
export const ADMIN_ROLE = 'admin';

/** the admin API's path; its resource indicator is the issuer followed by it */
export const ADMIN_API_PATH = '/admin/api/v1';

export interface AdminConfig {
  /** ADMIN_SESSION_IDLE_SECONDS: a console session ends after this long without a request (default 900) */
  sessionIdleSeconds: number;
  /** ADMIN_SESSION_MAX_SECONDS: and at the latest this long after the sign-in (default 8 h) */
  sessionMaxSeconds: number;
}
