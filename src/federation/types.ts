// Federation types: a connection to an upstream identity provider (generic
// OIDC, Entra ID, Google), the identity an upstream asserts, and the typed
// errors of the connection store (ConnectionInvalid & co.) and of the upstream
// client (UpstreamError). No I/O here: the login flow can import this file
// without pulling openid-client in.
import type { JWK } from 'jose';

export type ConnectionKind = 'oidc' | 'entra' | 'google';
export type LinkingMode = 'off' | 'prove' | 'verified-email';
export type ClientAuth = 'client_secret_basic' | 'client_secret_post' | 'private_key_jwt';

export const CONNECTION_KINDS: readonly ConnectionKind[] = ['oidc', 'entra', 'google'];
export const LINKING_MODES: readonly LinkingMode[] = ['off', 'prove', 'verified-email'];
export const CLIENT_AUTHS: readonly ClientAuth[] = ['client_secret_basic', 'client_secret_post', 'private_key_jwt'];

/** The placeholder of an Entra multi-tenant issuer, e.g. https://login.microsoftonline.com/{tenantid}/v2.0 */
export const TENANT_PLACEHOLDER = '{tenantid}';

/**
 * Our attributes a claim mapping may fill (Account profile fields; the rest
 * go to Profile.extra). email_verified is never mapped: it is derived per
 * kind (see upstream.ts identityOf).
 */
export const MAPPABLE_ATTRIBUTES = [
  'email', 'name', 'givenName', 'familyName', 'phone', 'middleName', 'nickname', 'preferredUsername',
  'picture', 'website', 'gender', 'birthdate', 'zoneinfo', 'locale',
] as const;
export type MappableAttribute = typeof MAPPABLE_ATTRIBUTES[number];

export interface Connection {
  /** /^[a-z0-9][a-z0-9-]{0,39}$/ */
  id: string;
  /** display name (button text) */
  name: string;
  kind: ConnectionKind;
  /** the expected issuer; Entra multi-tenant: a template containing {tenantid} */
  issuer: string;
  discoveryUrl: string;
  clientId: string;
  clientAuth: ClientAuth;
  /** plaintext only in memory; stored sealed with keyring.wrap(..., `connection-secret:${id}`) */
  clientSecret?: string;
  /**
   * private_key_jwt: the connection's own signing key (RS256), made when the
   * connection is added; the public half is what the upstream registers. The
   * private JWK is stored sealed (`connection-key:${id}`) and opened in memory only.
   */
  signingKey?: { kid: string; publicJwk: JWK; privateJwk?: JWK };
  /** must contain openid */
  scopes: string[];
  /** our attribute -> upstream claim name or dotted path */
  claimMapping: Record<string, string>;
  /** lower-cased e-mail domains served (home-realm discovery) */
  domains: string[];
  /** just-in-time accounts */
  allowSignup: boolean;
  linking: LinkingMode;
  trustEmailVerified: boolean;
  linkOnly: boolean;
  hidden: boolean;
  upstreamLogout: boolean;
  trustUpstreamMfa: boolean;
  /** entra: allowed tid values (required when the issuer is a {tenantid} template) */
  tenants?: string[];
  /** google: required `hd` claim */
  hostedDomain?: string;
  /** the roles its users get from an upstream claim (e.g. groups): claim, and upstream value → role names */
  roleMapping?: { claim: string; values: Record<string, string[]> };
  createdAt: string;
  updatedAt: string;
  version: number;
}

/** What an operator gives to add a connection; everything else has a default (connections.ts withDefaults). */
export type ConnectionInput = Pick<Connection, 'id' | 'name' | 'clientId'> & Partial<Omit<Connection, 'id' | 'name' | 'clientId' | 'signingKey' | 'createdAt' | 'updatedAt' | 'version'>>;

/**
 * A change: only the fields present change. `clientSecret: null` removes the
 * secret; `tenants: null` / `hostedDomain: null` clear those.
 */
export type ConnectionPatch = Partial<Omit<ConnectionInput, 'id' | 'clientSecret' | 'tenants' | 'hostedDomain' | 'roleMapping'>> & {
  clientSecret?: string | null;
  tenants?: string[] | null;
  hostedDomain?: string | null;
  roleMapping?: Connection['roleMapping'] | null;
};

/** The identity an upstream asserted, after validation (upstream.ts identityOf). */
export interface UpstreamIdentity {
  /** with subject, the identity key: the concrete issuer (Entra: the token's tenant issuer) */
  issuer: string;
  /** generic/google: `sub`; entra: `${tid}:${oid}` (both GUIDs) */
  subject: string;
  /** normalized (trimmed, lower-cased); never a key */
  email?: string;
  /** generic/google: email_verified === true; entra: xms_edov === true */
  emailVerified: boolean;
  profile: UpstreamProfile;
  /** the upstream's `amr`, when it sent one */
  amr?: string[];
  /** amr shows more than one factor ('mfa', or two kinds of factor) */
  upstreamMfa: boolean;
  /** entra: the tenant */
  tenant?: string;
}

export interface UpstreamProfile {
  name?: string;
  givenName?: string;
  familyName?: string;
  phone?: string;
  /** the other mapped attributes (middleName, locale, ...) */
  extra?: Record<string, unknown>;
}

/** A connection an operator described wrongly: one line saying what. */
export class ConnectionInvalid extends Error {
  override name = 'ConnectionInvalid';
}

export class ConnectionNotFound extends Error {
  override name = 'ConnectionNotFound';
  constructor(id: string) {
    super(`no connection ${id}`);
  }
}

export class ConnectionExists extends Error {
  override name = 'ConnectionExists';
  constructor(id: string) {
    super(`connection ${id} already exists`);
  }
}

/** A conditional write lost: the connection changed (or went) since it was read. */
export class ConnectionConflict extends Error {
  override name = 'ConnectionConflict';
  constructor(id: string) {
    super(`connection ${id} was changed meanwhile; read it again and retry`);
  }
}

export type UpstreamErrorReason =
  | 'unreachable' | 'discovery' | 'jwks' | 'issuer' | 'audience' | 'state' | 'nonce' | 'denied'
  | 'login_required' | 'upstream_error' | 'missing_claim' | 'tenant' | 'hosted_domain' | 'invalid_token';

/** What the user reads for each reason: plain words, no protocol terms. */
export const UPSTREAM_MESSAGES: Record<UpstreamErrorReason, string> = {
  unreachable: 'The sign-in service of your organisation is not answering right now. Please try again in a few minutes.',
  discovery: 'The sign-in service of your organisation is not set up correctly. Please try again later or contact support.',
  jwks: 'We could not check the answer of your organisation\'s sign-in service. Please try again later.',
  issuer: 'The answer came from a different sign-in service than the one you chose. Please start again.',
  audience: 'The answer of the sign-in service was meant for someone else. Please start again.',
  state: 'This sign-in attempt does not match the one you started. Please start again.',
  nonce: 'This sign-in attempt does not match the one you started. Please start again.',
  denied: 'Sign-in was cancelled or refused at your organisation\'s sign-in service.',
  login_required: 'Your organisation\'s sign-in service needs you to sign in again.',
  upstream_error: 'Your organisation\'s sign-in service reported a problem. Please try again.',
  missing_claim: 'Your organisation\'s sign-in service did not tell us who you are. Please contact support.',
  tenant: 'Accounts of your organisation cannot sign in here.',
  hosted_domain: 'This account is not part of the organisation that may sign in here.',
  invalid_token: 'We could not accept the answer of your organisation\'s sign-in service. Please start again.',
};

export class UpstreamError extends Error {
  override name = 'UpstreamError';
  readonly reason: UpstreamErrorReason;
  /** for the log: what failed, protocol terms allowed; never a token or secret */
  readonly detail: string;
  /** the connection concerned */
  readonly connection: string | undefined;
  /** the upstream's own error code, for reason denied/login_required/upstream_error */
  readonly upstreamError: string | undefined;

  constructor(reason: UpstreamErrorReason, detail: string, opts: { connection?: string; upstreamError?: string; cause?: unknown } = {}) {
    super(UPSTREAM_MESSAGES[reason], opts.cause === undefined ? undefined : { cause: opts.cause });
    this.reason = reason;
    this.detail = detail;
    this.connection = opts.connection;
    this.upstreamError = opts.upstreamError;
  }

  /** the user-facing message */
  get userMessage(): string {
    return this.message;
  }
}
