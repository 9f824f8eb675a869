// Typed configuration read once from environment variables and validated at
// start-up. A wrong value throws ConfigError, whose message is one line naming
// the variable and what it expects; main() prints that line and exits 1.
import os from 'node:os';
import path from 'node:path';
import type { AdminConfig } from './admin.ts';
import { MFA_POLICIES, OFFERED_METHODS, type MfaConfig, type MfaPolicy, type OfferedMethod } from './mfa.ts';

export class ConfigError extends Error {
  override name = 'ConfigError';
}

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
export type KeysMode = 'local' | 'kms-envelope' | 'kms-sign';

export interface Config {
  issuer: string;
  port: number;
  host: string;
  dataDir: string;
  /** unset: embedded dynalite under dataDir */
  dynamodbEndpoint: string | undefined;
  /** `lean`: item commands through src/storage/wire.ts; `sdk`: everything through the AWS SDK */
  dynamodbClient: 'lean' | 'sdk';
  /** lean client only: plain Gets and Puts issued in the same event-loop turn share requests (src/storage/coalesce.ts) */
  dynamodbCoalesce: boolean;
  awsRegion: string;
  tablePrefix: string;
  logLevel: LogLevel;
  /** number of reverse proxies in front of us whose X-Forwarded-* we trust (0 = none) */
  trustProxyHops: number;
  /**
   * OUTBOUND_ALLOW_LOOPBACK: oidc-provider's own outbound requests (back-channel
   * logout, sector_identifier_uri, jwks_uri of clients) may reach loopback
   * addresses. Off: its SSRF guard refuses every special-use address. For
   * development and tests only; private ranges stay refused either way.
   */
  outboundAllowLoopback: boolean;
  /** cookies get the Secure flag; defaults to true when the issuer is https */
  secureCookies: boolean;
  argon2: { memoryKiB: number; timeCost: number; parallelism: number };
  keys: {
    mode: KeysMode;
    kmsKeyId: string | undefined;
    kmsEndpoint: string | undefined;
    /** KMS unreachable at start: `fail` (exit non-zero) or `wait` (listen, /readyz 503, retry) */
    kmsStartup: 'fail' | 'wait';
    /** per-request KMS timeout */
    kmsTimeoutMs: number;
    /** a `next` key is published this long before it signs */
    prepublishSeconds: number;
    /** an active key is replaced after this long (0: only by `idp keys rotate`) */
    maxAgeSeconds: number;
    /** every instance re-reads the keys table this often */
    refreshSeconds: number;
    /** extra time a retired key stays published after its last token expired */
    removeGraceSeconds: number;
    /** JWKS_MAX_AGE_SECONDS: Cache-Control max-age of /jwks and discovery; a new key reaches every verifier before it signs */
    jwksMaxAgeSeconds: number;
  };
  events: {
    sink: 'file' | 'sqs' | 'none'; sqsQueueUrl: string | undefined; sqsEndpoint: string | undefined;
    /** `in-process`: each server publishes (and sweeps); `worker`: only `idp worker` sweeps (servers still send what they record) */
    publisher: 'in-process' | 'worker';
    retentionDays: number; sweepSeconds: number; recoverySeconds: number; failingAfter: number; retryMaxSeconds: number;
    /** test hook (EVENTS_TEST_KILL_AFTER_WRITE): SIGKILL right after a change's write, before its events are confirmed */
    testKillAfterWrite: boolean;
  };
  messages: { sender: 'outbox' | 'sqs'; queueUrl: string | undefined };
  /** optional JSON file with { clients: [...], resourceServers: [...] } upserted at start */
  seedFile: string | undefined;
  ttl: { accessToken: number; idToken: number; refreshToken: number; session: number; interaction: number; grant: number };
  /**
   * REFRESH_REUSE_GRACE_SECONDS: a rotated refresh token presented again by
   * its own client within this time (the answer to the first use was lost)
   * gets one fresh pair of the same family instead of revoking it (0: off)
   */
  refreshReuseGraceSeconds: number;
  /** processes serving HTTP (node:cluster when > 1); WORKERS=auto is one per CPU */
  workers: number;
  /** accounts (docs/accounts.md): legacy-password secrets and sunsets, data-key cache */
  accounts: AccountsConfig;
  /** two-step verification (docs/mfa.md) */
  mfa: MfaConfig;
  /** the admin console and API (docs/admin.md) */
  admin: AdminConfig;
  /** SESSION_COOKIE_DOMAIN: the Domain of the session cookie, so sites under it (forward-auth) receive it; unset: host-only */
  sessionCookieDomain: string | undefined;
  /** forward-auth for gateways (src/edge, README "Protecting sites and APIs at the edge") */
  edge: EdgeConfig;
  /** lockout and throttling of password, MFA and code attempts (docs/lockout.md) */
  lockout: LockoutConfig;
  /** what a new password must satisfy (docs/lockout.md, "Password policy") */
  passwordPolicy: PasswordPolicyConfig;
  /** the pages: branding, languages, the landing page's documentation link (README "Pages") */
  ui: UiConfig;
  /** consent, admin consent and roles (src/consent, README "Consent and roles") */
  consent: ConsentConfig;
  /** /metrics (docs/metrics.md) */
  metrics: MetricsConfig;
  /** /readyz (README "Health and readiness") */
  readiness: ReadinessConfig;
}

/**
 * Where /metrics is served. Neither set (the default): nowhere, and nothing is
 * collected. METRICS_PORT: on a listener of its own (METRICS_HOST), never on
 * the main port. METRICS_TOKEN alone: on the main port, only with
 * `Authorization: Bearer <token>`. Both: on the metrics port, with the token.
 */
export interface MetricsConfig {
  enabled: boolean;
  port: number | undefined;
  host: string;
  token: string | undefined;
}

export interface ReadinessConfig {
  /** READY_TIMEOUT_MS: each dependency check gives up after this long */
  timeoutMs: number;
  /** READY_CACHE_MS: an answer is reused this long, so /readyz cannot be used to hammer the dependencies */
  cacheMs: number;
}

export interface ConsentConfig {
  /** CONSENT_CACHE_SECONDS: admin consents, role definitions and users' roles are reused this long per process (0: read every time) */
  cacheSeconds: number;
  /** ROLES_CLAIMS_MAX_BYTES: above this JSON size the roles and permissions claims leave ID tokens and JWT access tokens */
  rolesClaimsMaxBytes: number;
}

export interface UiConfig {
  /** BRAND_NAME: the product name in every page's header and title (unset: the translated "Sign in") */
  productName: string | undefined;
  /** BRAND_LOGO_URL: an https URL or a data:image URL (both allowed by the pages' CSP), or a path on this origin */
  logoUrl: string | undefined;
  /** BRAND_PRIMARY_COLOR: #rgb or #rrggbb, served as a small stylesheet (/assets/brand.css), never inline */
  primaryColor: string | undefined;
  /** DOCS_URL: the landing page's documentation link (unset: this IdP's integrator guide, /docs/openid-configuration.md) */
  docsUrl: string | undefined;
  /** DEFAULT_LOCALE: the pages' language when neither ui_locales nor Accept-Language names a supported one */
  defaultLocale: 'en' | 'fr' | 'ar';
}

export interface AccountsConfig {
  /** LEGACY_SECRETS_FILE: JSON { hmacKeys, firebase } for legacy schemes (never from an import file) */
  legacySecretsFile: string | undefined;
  /** LEGACY_SUNSET "source=YYYY-MM-DD[,...]": from that instant (UTC) a legacy-hash login is refused */
  legacySunset: Record<string, string>;
  /**
   * LEGACY_PASSWORD_POLICY "source=change|allow[,...]" ("*" for every other
   * source; default change): a legacy password that fails today's password
   * policy still signs in; `change` then asks for a new one before the sign-in
   * completes (the expired-password page), which replaces it; `allow` keeps it
   */
  legacyPasswordPolicy: Record<string, 'change' | 'allow'>;
  /** ACCOUNT_KEY_CACHE_SIZE / ACCOUNT_KEY_CACHE_SECONDS: opened data keys kept in memory */
  dataKeyCacheSize: number;
  dataKeyCacheSeconds: number;
}

export type EdgeJwtAlg = 'RS256' | 'PS256' | 'ES256' | 'EdDSA';

export interface EdgeConfig {
  /** EDGE_SITES_FILE: JSON of the protected sites and their routes (src/edge/sites.ts); unset: no /forward-auth */
  sitesFile: string | undefined;
  /** EDGE_JWT_TTL: lifetime of the internal JWT handed to upstreams */
  jwtTtlSeconds: number;
  /** EDGE_JWT_ALG: the algorithm (hence the keyring key) the internal JWT is signed with */
  jwtAlg: EdgeJwtAlg;
  /** EDGE_CACHE_SECONDS / EDGE_CACHE_SIZE: decisions on a valid token or session are reused this long, for at most this many credentials */
  cacheSeconds: number;
  cacheSize: number;
}

type Env = Record<string, string | undefined>;

function str(env: Env, name: string, def: string): string {
  const v = env[name];
  return v === undefined || v === '' ? def : v;
}

function int(env: Env, name: string, def: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return def;
  if (!/^\d+$/.test(raw)) throw new ConfigError(`${name} must be a whole number from ${min} to ${max}, got "${raw}"`);
  const n = Number(raw);
  if (n < min || n > max) throw new ConfigError(`${name} must be a whole number from ${min} to ${max}, got ${n}`);
  return n;
}

/** a decimal number of seconds or the like, within [min, max] */
function num(env: Env, name: string, def: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return def;
  const n = Number(raw);
  if (!/^\d+(\.\d+)?$/.test(raw) || n < min || n > max) throw new ConfigError(`${name} must be a number from ${min} to ${max}, got "${raw}"`);
  return n;
}

function oneOf<T extends string>(env: Env, name: string, def: T, allowed: readonly T[]): T {
  const v = str(env, name, def);
  if (!(allowed as readonly string[]).includes(v)) {
    throw new ConfigError(`${name} must be one of ${allowed.join(', ')}, got "${v}"`);
  }
  return v as T;
}

function bool(env: Env, name: string, def: boolean): boolean {
  const v = env[name];
  if (v === undefined || v === '') return def;
  if (/^(1|true|yes|on)$/i.test(v)) return true;
  if (/^(0|false|no|off)$/i.test(v)) return false;
  throw new ConfigError(`${name} must be true or false, got "${v}"`);
}

/** WORKERS: "auto" (one per CPU) or 1..64 */
function workers(env: Env): number {
  const v = env.WORKERS;
  if (v === 'auto') return Math.min(os.availableParallelism(), 64);
  if (v !== undefined && v !== '' && !/^\d+$/.test(v)) throw new ConfigError(`WORKERS must be "auto" or a whole number from 1 to 64, got "${v}"`);
  return int(env, 'WORKERS', 1, 1, 64);
}

function url(env: Env, name: string, def: string | undefined): string | undefined {
  const v = env[name] || def;
  if (v === undefined) return undefined;
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    throw new ConfigError(`${name} must be an absolute http(s) URL, got "${v}"`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    throw new ConfigError(`${name} must be an absolute http(s) URL, got "${v}"`);
  }
  return v;
}

export function loadConfig(env: Env = process.env): Config {
  const issuer = url(env, 'ISSUER', 'http://localhost:3000')!;
  if (/[?#]/.test(issuer) || issuer.endsWith('/')) {
    throw new ConfigError(`ISSUER must have no query, fragment or trailing slash, got "${issuer}"`);
  }
  const prefix = str(env, 'TABLE_PREFIX', 'idp_');
  if (!/^[A-Za-z0-9_.-]{0,200}$/.test(prefix)) {
    throw new ConfigError(`TABLE_PREFIX may hold only letters, digits, "_", "." and "-", got "${prefix}"`);
  }
  const keysMode = oneOf<KeysMode>(env, 'KEYS_MODE', 'local', ['local', 'kms-envelope', 'kms-sign']);
  const kmsKeyId = env.KMS_KEY_ID || undefined;
  if (keysMode !== 'local' && !kmsKeyId) {
    throw new ConfigError(`KMS_KEY_ID must be set when KEYS_MODE is ${keysMode}`);
  }

  const prepublishSeconds = int(env, 'KEY_PREPUBLISH_SECONDS', 86400, 0, 365 * 86400);
  const refreshSeconds = int(env, 'KEYS_REFRESH_SECONDS', 60, 1, 86400);
  // a `next` key reaches every instance within refreshSeconds, then every verifier within max-age: both before it signs
  const maxAgeRoom = Math.max(0, prepublishSeconds - refreshSeconds - 1);
  const jwksMaxAgeSeconds = int(env, 'JWKS_MAX_AGE_SECONDS', Math.min(3600, Math.floor(maxAgeRoom / 2)), 0, 86400);
  if (jwksMaxAgeSeconds > maxAgeRoom) {
    throw new ConfigError(`JWKS_MAX_AGE_SECONDS (${jwksMaxAgeSeconds}) must be below KEY_PREPUBLISH_SECONDS (${prepublishSeconds}) minus KEYS_REFRESH_SECONDS (${refreshSeconds}): verifiers must see a new key before it signs`);
  }
  const sessionCookieDomain = cookieDomain(env, issuer);

  if (env.EVENTS_SINK === 'sqs' && !env.SQS_QUEUE_URL) throw new ConfigError('SQS_QUEUE_URL must be set when EVENTS_SINK is sqs');
  if (env.MESSAGE_SENDER === 'sqs' && !env.MESSAGES_QUEUE_URL) throw new ConfigError('MESSAGES_QUEUE_URL must be set when MESSAGE_SENDER is sqs');

  return {
    issuer,
    port: int(env, 'PORT', 3000, 0, 65535),
    host: str(env, 'HOST', '0.0.0.0'),
    dataDir: path.resolve(str(env, 'DATA_DIR', './data')),
    dynamodbEndpoint: url(env, 'DYNAMODB_ENDPOINT', undefined),
    dynamodbClient: oneOf(env, 'DYNAMODB_CLIENT', 'lean', ['lean', 'sdk'] as const),
    dynamodbCoalesce: bool(env, 'DYNAMODB_COALESCE', true),
    awsRegion: str(env, 'AWS_REGION', 'us-east-1'),
    tablePrefix: prefix,
    logLevel: oneOf<LogLevel>(env, 'LOG_LEVEL', 'info', ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']),
    trustProxyHops: int(env, 'TRUST_PROXY_HOPS', 0, 0, 10),
    outboundAllowLoopback: bool(env, 'OUTBOUND_ALLOW_LOOPBACK', false),
    secureCookies: bool(env, 'SECURE_COOKIES', issuer.startsWith('https:')),
    argon2: {
      memoryKiB: int(env, 'ARGON2_MEMORY_KIB', 19456, 1024, 4 * 1024 * 1024),
      timeCost: int(env, 'ARGON2_TIME_COST', 2, 1, 100),
      parallelism: int(env, 'ARGON2_PARALLELISM', 1, 1, 16),
    },
    keys: {
      mode: keysMode, kmsKeyId, kmsEndpoint: url(env, 'KMS_ENDPOINT', undefined),
      kmsStartup: oneOf(env, 'KMS_STARTUP', 'fail', ['fail', 'wait'] as const),
      kmsTimeoutMs: int(env, 'KMS_TIMEOUT_MS', 2000, 50, 60_000),
      prepublishSeconds,
      maxAgeSeconds: int(env, 'KEY_MAX_AGE_SECONDS', 90 * 86400, 0, 10 * 365 * 86400),
      refreshSeconds,
      removeGraceSeconds: int(env, 'KEY_REMOVE_GRACE_SECONDS', 300, 0, 30 * 86400),
      jwksMaxAgeSeconds,
    },
    events: {
      sink: oneOf(env, 'EVENTS_SINK', 'file', ['file', 'sqs', 'none'] as const),
      sqsQueueUrl: url(env, 'SQS_QUEUE_URL', undefined),
      sqsEndpoint: url(env, 'SQS_ENDPOINT', undefined),
      publisher: oneOf(env, 'EVENTS_PUBLISHER', 'in-process', ['in-process', 'worker'] as const),
      retentionDays: int(env, 'EVENTS_RETENTION_DAYS', 400, 1, 3650),
      sweepSeconds: num(env, 'EVENTS_SWEEP_SECONDS', 5, 0.05, 3600),
      recoverySeconds: num(env, 'EVENTS_RECOVERY_SECONDS', 30, 0.05, 3600),
      failingAfter: int(env, 'EVENTS_FAILING_AFTER', 5, 1, 1000),
      retryMaxSeconds: num(env, 'EVENTS_RETRY_MAX_SECONDS', 300, 0.05, 86400),
      testKillAfterWrite: bool(env, 'EVENTS_TEST_KILL_AFTER_WRITE', false),
    },
    messages: {
      sender: oneOf(env, 'MESSAGE_SENDER', 'outbox', ['outbox', 'sqs'] as const),
      queueUrl: url(env, 'MESSAGES_QUEUE_URL', undefined),
    },
    seedFile: env.SEED_FILE ? path.resolve(env.SEED_FILE) : undefined,
    ttl: {
      accessToken: int(env, 'ACCESS_TOKEN_TTL', 3600, 5, 86400),
      idToken: int(env, 'ID_TOKEN_TTL', 3600, 5, 86400),
      refreshToken: int(env, 'REFRESH_TOKEN_TTL', 14 * 86400, 300, 365 * 86400),
      session: int(env, 'SESSION_TTL', 14 * 86400, 300, 365 * 86400),
      interaction: int(env, 'INTERACTION_TTL', 3600, 60, 86400),
      grant: int(env, 'GRANT_TTL', 14 * 86400, 300, 365 * 86400),
    },
    refreshReuseGraceSeconds: int(env, 'REFRESH_REUSE_GRACE_SECONDS', 30, 0, 300),
    workers: workers(env),
    accounts: accountsConfig(env),
    mfa: mfaConfig(env, issuer),
    admin: {
      sessionIdleSeconds: int(env, 'ADMIN_SESSION_IDLE_SECONDS', 900, 30, 86_400),
      sessionMaxSeconds: int(env, 'ADMIN_SESSION_MAX_SECONDS', 28_800, 60, 604_800),
    },
    sessionCookieDomain,
    edge: {
      sitesFile: env.EDGE_SITES_FILE ? path.resolve(env.EDGE_SITES_FILE) : undefined,
      jwtTtlSeconds: int(env, 'EDGE_JWT_TTL', 60, 5, 3600),
      jwtAlg: oneOf<EdgeJwtAlg>(env, 'EDGE_JWT_ALG', 'ES256', ['RS256', 'PS256', 'ES256', 'EdDSA']),
      cacheSeconds: int(env, 'EDGE_CACHE_SECONDS', 30, 0, 3600),
      cacheSize: int(env, 'EDGE_CACHE_SIZE', 10_000, 1, 1_000_000),
    },
    lockout: lockoutConfig(env),
    passwordPolicy: passwordPolicyConfig(env),
    ui: uiConfig(env),
    consent: {
      cacheSeconds: int(env, 'CONSENT_CACHE_SECONDS', 10, 0, 3600),
      rolesClaimsMaxBytes: int(env, 'ROLES_CLAIMS_MAX_BYTES', 4096, 64, 1_000_000),
    },
    metrics: metricsConfig(env),
    readiness: {
      timeoutMs: int(env, 'READY_TIMEOUT_MS', 1000, 50, 30_000),
      cacheMs: int(env, 'READY_CACHE_MS', 2000, 0, 60_000),
    },
  };
}

function metricsConfig(env: Env): MetricsConfig {
  const port = env.METRICS_PORT === undefined || env.METRICS_PORT === '' ? undefined : int(env, 'METRICS_PORT', 0, 1, 65535);
  if (port !== undefined && env.PORT !== undefined && env.PORT !== '' && String(port) === env.PORT) {
    throw new ConfigError(`METRICS_PORT must differ from PORT (${env.PORT}): the metrics listener is a port of its own`);
  }
  const token = env.METRICS_TOKEN || undefined;
  if (token !== undefined && !/^[\x21-\x7e]{32,512}$/.test(token)) {
    throw new ConfigError('METRICS_TOKEN must be 32 to 512 printable characters without spaces (e.g. `openssl rand -hex 32`)');
  }
  if (token !== undefined && port === undefined && workers(env) > 1) {
    throw new ConfigError('METRICS_PORT must be set when WORKERS > 1 and METRICS_TOKEN is: the cluster primary serves every worker\'s metrics there, the main port would answer for one worker');
  }
  return { enabled: port !== undefined || token !== undefined, port, host: str(env, 'METRICS_HOST', str(env, 'HOST', '0.0.0.0')), token };
}

function uiConfig(env: Env): UiConfig {
  const logoUrl = env.BRAND_LOGO_URL || undefined;
  if (logoUrl !== undefined && !/^(https:\/\/[^\s"'<>]+|\/(?!\/)[^\s"'<>]*|data:image\/(?:png|gif|jpeg|webp|svg\+xml);base64,[A-Za-z0-9+/=]+)$/.test(logoUrl)) {
    throw new ConfigError(`BRAND_LOGO_URL must be an https URL, a path on this server (starting with /) or a data:image/...;base64, URL, got "${logoUrl.slice(0, 80)}"`);
  }
  const primaryColor = env.BRAND_PRIMARY_COLOR || undefined;
  if (primaryColor !== undefined && !/^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$/.test(primaryColor)) {
    throw new ConfigError(`BRAND_PRIMARY_COLOR must be a hex colour like #1d4ed8 or #15a, got "${primaryColor}"`);
  }
  const productName = env.BRAND_NAME?.trim() || undefined;
  if (productName !== undefined && productName.length > 60) throw new ConfigError(`BRAND_NAME must be at most 60 characters, got ${productName.length}`);
  return {
    productName, logoUrl, primaryColor: primaryColor?.toLowerCase(),
    docsUrl: url(env, 'DOCS_URL', undefined),
    defaultLocale: oneOf(env, 'DEFAULT_LOCALE', 'en', ['en', 'fr', 'ar'] as const),
  };
}

/** SESSION_COOKIE_DOMAIN: a domain name the issuer's host is in (a browser refuses any other) */
function cookieDomain(env: Env, issuer: string): string | undefined {
  const raw = env.SESSION_COOKIE_DOMAIN;
  if (raw === undefined || raw === '') return undefined;
  const d = raw.replace(/^\./, '').toLowerCase();
  if (!/^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/.test(d)) {
    throw new ConfigError(`SESSION_COOKIE_DOMAIN must be a domain name like example.com, got "${raw}"`);
  }
  const host = new URL(issuer).hostname;
  if (host !== d && !host.endsWith(`.${d}`)) {
    throw new ConfigError(`SESSION_COOKIE_DOMAIN must be the issuer's host (${host}) or a parent domain of it, got "${raw}"`);
  }
  return d;
}

function accountsConfig(env: Env): AccountsConfig {
  const legacySunset: Record<string, string> = {};
  for (const part of str(env, 'LEGACY_SUNSET', '').split(',').map((x) => x.trim()).filter(Boolean)) {
    const m = /^([A-Za-z0-9][A-Za-z0-9._-]{0,63})=(\d{4}-\d{2}-\d{2}(?:T[\d:.]+Z)?)$/.exec(part);
    if (!m || Number.isNaN(Date.parse(m[2]))) {
      throw new ConfigError(`LEGACY_SUNSET must be source=YYYY-MM-DD pairs separated by commas, got "${part}"`);
    }
    legacySunset[m[1]] = new Date(m[2].length === 10 ? `${m[2]}T00:00:00Z` : m[2]).toISOString();
  }
  const legacyPasswordPolicy: Record<string, 'change' | 'allow'> = { '*': 'change' };
  for (const part of str(env, 'LEGACY_PASSWORD_POLICY', '').split(',').map((x) => x.trim()).filter(Boolean)) {
    const m = /^(\*|[A-Za-z0-9][A-Za-z0-9._-]{0,63})=(change|allow)$/.exec(part);
    if (!m) throw new ConfigError(`LEGACY_PASSWORD_POLICY must be source=change or source=allow pairs ("*" for every other source) separated by commas, got "${part}"`);
    legacyPasswordPolicy[m[1]] = m[2] as 'change' | 'allow';
  }
  return {
    legacySecretsFile: env.LEGACY_SECRETS_FILE ? path.resolve(env.LEGACY_SECRETS_FILE) : undefined,
    legacySunset,
    legacyPasswordPolicy,
    dataKeyCacheSize: int(env, 'ACCOUNT_KEY_CACHE_SIZE', 10_000, 0, 1_000_000),
    dataKeyCacheSeconds: int(env, 'ACCOUNT_KEY_CACHE_SECONDS', 600, 1, 86400),
  };
}

/** docs/lockout.md lists every knob with its default and meaning */
export interface LockoutConfig {
  /** LOCKOUT_MODE: enforce, or dry-run (decide and log, never refuse) */
  mode: 'enforce' | 'dry-run';
  /** LOCKOUT_MAX_FAILURES: failures per account before a temporary lock (0 = no account counter) */
  maxFailures: number;
  /** LOCKOUT_MFA_MAX_FAILURES: the same for MFA codes */
  mfaMaxFailures: number;
  /** LOCKOUT_ACCOUNT_IP_MAX_FAILURES: failures per (account, client IP) before that IP is throttled for that account */
  accountIpMaxFailures: number;
  /** LOCKOUT_DEVICE_MAX_FAILURES: failures per (account, known device) before that device is locked */
  deviceMaxFailures: number;
  /** LOCKOUT_IP_MAX_FAILURES / LOCKOUT_IP_RESET_SECONDS: failures per client IP across accounts (credential stuffing) */
  ipMaxFailures: number;
  ipResetSeconds: number;
  /** LOCKOUT_WAIT_SECONDS: the first lock's length, and the increment of later ones */
  waitSeconds: number;
  /** LOCKOUT_BACKOFF: linear (wait x n) or exponential (wait x 2^(n-1)) for the n-th lock */
  backoff: 'linear' | 'exponential';
  /** LOCKOUT_MAX_WAIT_SECONDS: no temporary lock is longer */
  maxWaitSeconds: number;
  /** LOCKOUT_RESET_SECONDS: counters (and the lock count) are forgotten this long after their last failure */
  resetSeconds: number;
  /** LOCKOUT_PERMANENT_AFTER: the lock that follows this many temporary locks is permanent (0 = never) */
  permanentAfter: number;
  /** LOCKOUT_KNOWN_DEVICE_DAYS: a device that signed in to an account stays known for it this long */
  knownDeviceDays: number;
  /** LOCKOUT_CODE_DIGITS / _TTL_SECONDS / _MAX_TRIES / _MAX_SENDS: e-mailed unlock and reset codes */
  codeDigits: number;
  codeTtlSeconds: number;
  codeMaxTries: number;
  /** codes sent per account and purpose per hour; more requests are silently dropped */
  codeMaxSends: number;
}

export interface PasswordPolicyConfig {
  /** PASSWORD_MIN_LENGTH / PASSWORD_MAX_LENGTH, in Unicode code points */
  minLength: number;
  maxLength: number;
  /** PASSWORD_COMMON_LIST_SIZE: refuse the N most common passwords (0 = no list) */
  commonListSize: number;
  /** PASSWORD_HISTORY: previous secrets that may not be reused (the current one never may) */
  history: number;
  /** PASSWORD_MAX_AGE_SECONDS: older passwords must be changed at the next login (0 = never) */
  maxAgeSeconds: number;
}

function lockoutConfig(env: Env): LockoutConfig {
  const day = 86400;
  return {
    mode: oneOf(env, 'LOCKOUT_MODE', 'enforce', ['enforce', 'dry-run'] as const),
    maxFailures: int(env, 'LOCKOUT_MAX_FAILURES', 10, 0, 100),
    mfaMaxFailures: int(env, 'LOCKOUT_MFA_MAX_FAILURES', 5, 0, 100),
    accountIpMaxFailures: int(env, 'LOCKOUT_ACCOUNT_IP_MAX_FAILURES', 5, 0, 100),
    deviceMaxFailures: int(env, 'LOCKOUT_DEVICE_MAX_FAILURES', 10, 0, 100),
    ipMaxFailures: int(env, 'LOCKOUT_IP_MAX_FAILURES', 100, 0, 1_000_000),
    ipResetSeconds: int(env, 'LOCKOUT_IP_RESET_SECONDS', 3600, 1, 30 * day),
    waitSeconds: int(env, 'LOCKOUT_WAIT_SECONDS', 60, 1, day),
    backoff: oneOf(env, 'LOCKOUT_BACKOFF', 'exponential', ['linear', 'exponential'] as const),
    maxWaitSeconds: int(env, 'LOCKOUT_MAX_WAIT_SECONDS', 900, 1, 30 * day),
    resetSeconds: int(env, 'LOCKOUT_RESET_SECONDS', day, 1, 365 * day),
    permanentAfter: int(env, 'LOCKOUT_PERMANENT_AFTER', 9, 0, 1000),
    knownDeviceDays: int(env, 'LOCKOUT_KNOWN_DEVICE_DAYS', 180, 1, 400),
    codeDigits: int(env, 'LOCKOUT_CODE_DIGITS', 8, 6, 12),
    codeTtlSeconds: int(env, 'LOCKOUT_CODE_TTL_SECONDS', 600, 60, day),
    codeMaxTries: int(env, 'LOCKOUT_CODE_MAX_TRIES', 5, 1, 20),
    codeMaxSends: int(env, 'LOCKOUT_CODE_MAX_SENDS', 5, 1, 100),
  };
}

function passwordPolicyConfig(env: Env): PasswordPolicyConfig {
  const minLength = int(env, 'PASSWORD_MIN_LENGTH', 12, 8, 256);
  const maxLength = int(env, 'PASSWORD_MAX_LENGTH', 256, 64, 1024);
  if (maxLength < minLength) throw new ConfigError(`PASSWORD_MAX_LENGTH (${maxLength}) must not be below PASSWORD_MIN_LENGTH (${minLength})`);
  return {
    minLength, maxLength,
    commonListSize: int(env, 'PASSWORD_COMMON_LIST_SIZE', 100_000, 0, 999_999),
    history: int(env, 'PASSWORD_HISTORY', 5, 0, 24),
    maxAgeSeconds: int(env, 'PASSWORD_MAX_AGE_SECONDS', 0, 0, 10 * 365 * 86400),
  };
}

/** MFA_*: docs/mfa.md lists them with their defaults */
function mfaConfig(env: Env, issuer: string): MfaConfig {
  const methods = str(env, 'MFA_METHODS', OFFERED_METHODS.join(',')).split(',').map((m) => m.trim()).filter(Boolean);
  for (const m of methods) {
    if (!(OFFERED_METHODS as readonly string[]).includes(m)) throw new ConfigError(`MFA_METHODS must be a comma-separated list of ${OFFERED_METHODS.join(', ')}, got "${m}"`);
  }
  return {
    policy: oneOf<MfaPolicy>(env, 'MFA_POLICY', 'optional', MFA_POLICIES),
    rememberDays: int(env, 'MFA_REMEMBER_DAYS', 30, 0, 365),
    methods: [...new Set(methods)] as OfferedMethod[],
    totpIssuer: str(env, 'MFA_TOTP_ISSUER', new URL(issuer).host),
    codeTtlSeconds: int(env, 'MFA_CODE_TTL_SECONDS', 300, 60, 3600),
    reauthSeconds: int(env, 'MFA_REAUTH_SECONDS', 600, 60, 86400),
  };
}
