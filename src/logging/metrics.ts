// Prometheus metrics (prom-client), one registry per running server, so that
// several IdPs in one process (the tests) each count their own. It sits low in
// the tree (logging, level 0): storage, keys, events and the HTTP layer all
// record into it, each through a small method here; nothing below knows about
// prom-client. docs/metrics.md lists every metric with example queries.
//
// Cost on the hot paths (every request, every DynamoDB call): the child of a
// histogram or counter for one label set is made once and kept in a Map, so a
// request is a few Map lookups and one observe(), with no label object built.
// Label values that come from the outside (event data) are bounded: a value
// that is not a short identifier, or past the 30th distinct one, is "other".
import client, { type Gauge, type Histogram, type Registry } from 'prom-client';
import type { InitializeMiddleware, MiddlewareStack } from '@smithy/types';

/** the shape of an event this module reads (src/events CloudEvent) without importing events */
export interface MetricsEvent {
  type: string;
  data?: Record<string, unknown>;
}

/** what /metrics reports of the event backlog (Events.backlog()) */
export type BacklogReader = () => Promise<{ size: number; oldestAgeSeconds: number }>;
/** the keys as loaded (Keyring.keys()): kind, kid, alg, state and creation time */
export type KeysReader = () => Array<{ kind: string; kid: string; alg?: string; state: string; createdAt: string }>;

interface Observer { observe(v: number): void }
interface Incrementer { inc(v?: number): void }

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const CALL_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);
const LABEL = /^[A-Za-z0-9_.:/-]{1,64}$/;
const MAX_VALUES = 30;

/** keeps the values of one label bounded: short identifiers only, at most MAX_VALUES of them, else "other" */
class BoundedLabel {
  private readonly seen = new Set<string>();
  value(v: unknown, fallback = 'unknown'): string {
    if (v === undefined || v === null || v === '') return fallback;
    const s = String(v);
    if (this.seen.has(s)) return s;
    if (!LABEL.test(s) || this.seen.size >= MAX_VALUES) return 'other';
    this.seen.add(s);
    return s;
  }
}

/** children of a labelled metric, made once per label set (joined with \u0000) */
function childCache<T>(make: (...labels: string[]) => T) {
  const cache = new Map<string, T>();
  return (...labels: string[]): T => {
    const key = labels.length === 1 ? labels[0] : labels.join('\u0000');
    let c = cache.get(key);
    if (!c) {
      c = make(...labels);
      cache.set(key, c);
    }
    return c;
  };
}

export class Metrics {
  readonly registry: Registry;
  private readonly httpDuration: Histogram<'route' | 'method' | 'status'>;
  /** route → (method index × 1000 + status) → child: no string built per request */
  private readonly httpChildren = new Map<string, Map<number, Observer>>();
  private readonly methodIndex = new Map([...METHODS, 'OTHER'].map((m, i) => [m, i]));
  private readonly dynamoCall: (op: string) => Observer;
  private readonly dynamoError: (op: string, error: string) => Incrementer;
  private readonly kmsCall: (op: string) => Observer;
  private readonly kmsError: (op: string, error: string) => Incrementer;
  private readonly logins: (result: string, method: string) => Incrementer;
  private readonly loginFailures: (method: string, reason: string) => Incrementer;
  private readonly lockouts: (scope: string, reason: string) => Incrementer;
  private readonly mfaChallenges: (result: string, method: string) => Incrementer;
  private readonly tokens: (grantType: string) => Incrementer;
  private readonly labels = {
    method: new BoundedLabel(), reason: new BoundedLabel(), scope: new BoundedLabel(), mfaMethod: new BoundedLabel(),
    grantType: new BoundedLabel(), dynamoOp: new BoundedLabel(), dynamoError: new BoundedLabel(), kmsOp: new BoundedLabel(), kmsError: new BoundedLabel(),
  };
  private backlogReader: BacklogReader | undefined;
  private keysReader: KeysReader | undefined;
  /** one backlog read per scrape, shared by both gauges */
  private backlogRead: { at: number; value: Promise<{ size: number; oldestAgeSeconds: number }> } | undefined;

  constructor(opts: { processMetrics?: boolean } = {}) {
    const registry = new client.Registry();
    this.registry = registry;
    const registers = [registry];
    if (opts.processMetrics !== false) client.collectDefaultMetrics({ register: registry });

    this.httpDuration = new client.Histogram({
      name: 'idp_http_request_duration_seconds', help: 'HTTP requests by route (oidc-provider route name or router pattern), method and status, with their latency',
      labelNames: ['route', 'method', 'status'], buckets: LATENCY_BUCKETS, registers,
    });

    const dynamoDuration = new client.Histogram({
      name: 'idp_dynamodb_request_duration_seconds', help: 'DynamoDB calls by operation (GetItem, PutItem, Query, ...), retries included, with their latency',
      labelNames: ['operation'], buckets: CALL_BUCKETS, registers,
    });
    const dynamoErrors = new client.Counter({
      name: 'idp_dynamodb_errors_total', help: 'DynamoDB calls that failed, by operation and error name (ConditionalCheckFailedException, TimeoutError, ...)',
      labelNames: ['operation', 'error'], registers,
    });
    this.dynamoCall = childCache((op) => dynamoDuration.labels(op));
    this.dynamoError = childCache((op, error) => dynamoErrors.labels(op, error));

    const kmsDuration = new client.Histogram({
      name: 'idp_kms_request_duration_seconds', help: 'AWS KMS calls by operation (Sign, Decrypt, GenerateDataKey, ...), with their latency',
      labelNames: ['operation'], buckets: CALL_BUCKETS, registers,
    });
    const kmsErrors = new client.Counter({
      name: 'idp_kms_errors_total', help: 'AWS KMS calls that failed, by operation and error name', labelNames: ['operation', 'error'], registers,
    });
    this.kmsCall = childCache((op) => kmsDuration.labels(op));
    this.kmsError = childCache((op, error) => kmsErrors.labels(op, error));

    const logins = new client.Counter({
      name: 'idp_logins_total', help: 'Sign-ins by result (success, failure) and method (password, federation, ...)', labelNames: ['result', 'method'], registers,
    });
    const loginFailures = new client.Counter({
      name: 'idp_login_failures_total', help: 'Failed sign-in attempts by method and reason (bad_credentials, a lockout reason, federation_...)', labelNames: ['method', 'reason'], registers,
    });
    const lockouts = new client.Counter({
      name: 'idp_lockouts_total', help: 'Locks that began: accounts, (account, IP) pairs, devices, and throttled client IPs, by scope and reason', labelNames: ['scope', 'reason'], registers,
    });
    const mfa = new client.Counter({
      name: 'idp_mfa_challenges_total', help: 'Second-factor challenges answered, by result (success, failure) and method', labelNames: ['result', 'method'], registers,
    });
    const tokens = new client.Counter({
      name: 'idp_tokens_issued_total', help: 'Successful token endpoint responses by grant type', labelNames: ['grant_type'], registers,
    });
    this.logins = childCache((result, method) => logins.labels(result, method));
    this.loginFailures = childCache((method, reason) => loginFailures.labels(method, reason));
    this.lockouts = childCache((scope, reason) => lockouts.labels(scope, reason));
    this.mfaChallenges = childCache((result, method) => mfa.labels(result, method));
    this.tokens = childCache((g) => tokens.labels(g));

    const readBacklog = () => {
      const now = Date.now();
      if (!this.backlogReader) return undefined;
      if (!this.backlogRead || now - this.backlogRead.at > 1000) {
        this.backlogRead = { at: now, value: this.backlogReader() };
      }
      return this.backlogRead.value;
    };
    new client.Gauge({
      name: 'idp_events_backlog_size', help: 'Events recorded but not yet delivered to the sink', registers,
      // every worker of a cluster reads the same backlog: one value, not their sum
      aggregator: 'max',
      async collect(this: Gauge) {
        const b = await readBacklog()?.catch(() => undefined);
        if (b) this.set(b.size);
      },
    });
    new client.Gauge({
      name: 'idp_events_backlog_oldest_age_seconds', help: 'Age of the oldest event not yet delivered (0 when none waits)', registers, aggregator: 'max',
      async collect(this: Gauge) {
        const b = await readBacklog()?.catch(() => undefined);
        if (b) this.set(b.oldestAgeSeconds);
      },
    });
    const keys = () => this.keysReader?.() ?? [];
    new client.Gauge({
      name: 'idp_key_age_seconds', help: 'Age of each loaded key (signing keys by alg, the cookie key) by state (next, active, retired)',
      labelNames: ['kind', 'alg', 'state', 'kid'], registers, aggregator: 'max',
      collect(this: Gauge<'kind' | 'alg' | 'state' | 'kid'>) {
        this.reset();
        const now = Date.now();
        for (const k of keys()) {
          const created = Date.parse(k.createdAt);
          if (Number.isFinite(created)) this.labels(k.kind, k.alg ?? '', k.state, k.kid).set(Math.max(0, (now - created) / 1000));
        }
      },
    });
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** the text exposition of every metric */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  /** one HTTP request: route is a bounded name (never the raw path) */
  observeRequest(route: string, method: string, status: number, seconds: number): void {
    let byRoute = this.httpChildren.get(route);
    if (!byRoute) {
      byRoute = new Map();
      this.httpChildren.set(route, byRoute);
    }
    const m = this.methodIndex.get(method) ?? this.methodIndex.get('OTHER')!;
    const key = m * 1000 + status;
    let child = byRoute.get(key);
    if (!child) {
      child = this.httpDuration.labels(route, METHODS.has(method) ? method : 'OTHER', String(status));
      byRoute.set(key, child);
    }
    child.observe(seconds);
  }

  /** one DynamoDB call (as the caller saw it: retries included); `error` is the error name when it failed */
  observeDynamo(operation: string, seconds: number, error?: string): void {
    const op = this.labels.dynamoOp.value(operation);
    this.dynamoCall(op).observe(seconds);
    if (error !== undefined) this.dynamoError(op, this.labels.dynamoError.value(error, 'Error')).inc();
  }

  /** one KMS call */
  observeKms(operation: string, seconds: number, error?: string): void {
    const op = this.labels.kmsOp.value(operation);
    this.kmsCall(op).observe(seconds);
    if (error !== undefined) this.kmsError(op, this.labels.kmsError.value(error, 'Error')).inc();
  }

  /** a completed sign-in (oidc-provider accepted the login); method: password, federation, ... */
  loginSucceeded(method: string): void {
    this.logins('success', this.labels.method.value(method)).inc();
  }

  /** a token endpoint success */
  tokenIssued(grantType: unknown): void {
    this.tokens(this.labels.grantType.value(grantType)).inc();
  }

  /**
   * Counts what an event says: failed sign-ins, locks, MFA challenges. Login
   * successes are counted where oidc-provider accepts the login
   * (loginSucceeded, from its `interaction.ended`), not from
   * `login.succeeded` events: one source, so never counted twice.
   */
  onEvent(e: MetricsEvent): void {
    const d = e.data ?? {};
    switch (e.type) {
      case 'login.failed': {
        const reason = typeof d.reason === 'string' ? d.reason : undefined;
        const method = d.method ?? (reason?.startsWith('federation_') || d.kind === 'federated' ? 'federation' : d.kind);
        const m = this.labels.method.value(method);
        this.logins('failure', m).inc();
        this.loginFailures(m, this.labels.reason.value(reason)).inc();
        break;
      }
      case 'account.locked':
        this.lockouts(this.labels.scope.value(d.scope, 'account'), this.labels.reason.value(d.reason)).inc();
        break;
      case 'ip.throttled':
        this.lockouts('ip', this.labels.reason.value(d.reason)).inc();
        break;
      case 'mfa.succeeded':
      case 'mfa.failed':
        this.mfaChallenges(e.type === 'mfa.succeeded' ? 'success' : 'failure', this.labels.mfaMethod.value(d.method)).inc();
        break;
      default:
    }
  }

  /**
   * In a cluster worker (WORKERS > 1): the primary's metrics listener asks every
   * worker for this registry and serves their aggregate (prom-client's
   * AggregatorRegistry; counters and histograms are summed).
   */
  shareWithClusterPrimary(): void {
    client.AggregatorRegistry.setRegistries([this.registry]);
    // constructing one is what makes prom-client answer the primary's requests in a worker
    new client.AggregatorRegistry();
  }

  /** the event backlog gauges read this at each scrape (at most once a second) */
  watchBacklog(reader: BacklogReader): void {
    this.backlogReader = reader;
  }

  /** the key age gauge reads this at each scrape */
  watchKeys(reader: KeysReader): void {
    this.keysReader = reader;
  }
}

/** the cluster primary's view (WORKERS > 1): the workers' registries, aggregated at each scrape */
export function clusterMetrics(): { contentType: string; text(): Promise<string> } {
  const aggregator = new client.AggregatorRegistry();
  return { contentType: aggregator.contentType, text: () => aggregator.clusterMetrics() };
}

/** the time since `started` (process.hrtime.bigint()) in seconds */
export function secondsSince(started: bigint): number {
  return Number(process.hrtime.bigint() - started) / 1e9;
}


/**
 * Times every command an AWS SDK client sends (the initialize step: retries
 * included, as the caller waits) and reports its name without "Command"
 * (GetItem, Decrypt, ...) and the error's name when it fails.
 */
export function instrumentSdkClient<I extends object, O extends object>(sdk: { middlewareStack: MiddlewareStack<I, O> }, observe: (operation: string, seconds: number, error?: string) => void): void {
  const mw: InitializeMiddleware<I, O> = (next, context) => {
    const op = (context.commandName ?? 'Unknown').replace(/Command$/, '');
    return async (args) => {
      const started = process.hrtime.bigint();
      try {
        const out = await next(args);
        observe(op, secondsSince(started));
        return out;
      } catch (err) {
        observe(op, secondsSince(started), (err as Error)?.name ?? 'Error');
        throw err;
      }
    };
  };
  sdk.middlewareStack.add(mw, { step: 'initialize', name: 'idpMetrics' });
}
