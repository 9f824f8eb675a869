// The composition root: config → storage → migrations → keyring → accounts,
// registry, views → provider → Koa app → HTTP server. Tests start it
// in-process; src/main.ts starts it for `npm start`.
import http from 'node:http';
import type Koa from 'koa';
import cluster from 'node:cluster';
import type { AddressInfo } from 'node:net';
import { DescribeTableCommand } from '@aws-sdk/client-dynamodb';
import type { Config } from './config/index.ts';
import { createLogger, type Logger } from './logging/index.ts';
import { Metrics } from './logging/metrics.ts';
import { openStorage, type Storage } from './storage/index.ts';
import { migrate, currentVersion, LATEST_VERSION } from '../migrations/index.ts';
import { startKeyring } from './keys/startup.ts';
import { startKeyRefresh } from './keys/refresh.ts';
import type { Keyring } from './keys/types.ts';
import { argon2Hasher } from './accounts/hasher.ts';
import { DynamoAccountStore } from './accounts/dynamo-store.ts';
import { erasureHooks } from './erasure-hooks.ts';
import { loadLegacySecrets } from './accounts/legacy-config.ts';
import { Registry } from './provider/registry.ts';
import { createViews } from './http/views.ts';
import { ProviderHost } from './provider/index.ts';
import { createDynamoAdapter } from '../adapters/dynamodb.ts';
import { ClientCache, withClientCache } from './provider/client-cache.ts';
import { withSealedClientSecrets } from './provider/sealed-clients.ts';
import { withTokenKindLookup } from './provider/token-kinds.ts';
import { withTokenPipeline } from './provider/token-pipeline.ts';
import { interactionPipeline } from './provider/interaction-pipeline.ts';
import { createApp } from './http/app.ts';
import { readiness, type DependencyCheck } from './http/readiness.ts';
import { startMetricsServer } from './http/metrics.ts';
import { brandStylesheetUrl, site } from './http/site.ts';
import { interactionRouter } from './interactions/routes.ts';
import { LoginFlow, loginMethod } from './interactions/flow.ts';
import { passwordStrategy } from './interactions/strategies/password.ts';
import { applySeedFile } from './provider/seed.ts';
import { eventsFor, type Events } from './events/index.ts';
import { createMessageSender, type MessageSender } from './events/messages.ts';
import { createMfa, type Mfa } from './mfa/index.ts';
import { createLockout, meteredHasher, type Lockout } from './lockout/index.ts';
import { createFederation, type Federation } from './federation/index.ts';
import { createConsent, type Consent } from './consent/index.ts';
import { rolesFromClaims } from './consent/roles.ts';
import type { AccountPageSection } from './interactions/account-page.ts';
import { createEdge } from './edge/index.ts';
import { AdminService } from './admin/service.ts';
import { adminApiRouter } from './admin/api.ts';
import { adminConsoleRouter } from './admin/console.ts';
import { ensureAdminSetup } from './admin/setup.ts';

export interface RunningServer {
  url: string;
  server: http.Server;
  storage: Storage;
  keyring: Keyring;
  host: ProviderHost;
  log: Logger;
  /** the registry /metrics serves (METRICS_PORT or METRICS_TOKEN set), else undefined */
  metrics: Metrics | undefined;
  /** the metrics listener's URL (METRICS_PORT) */
  metricsUrl: string | undefined;
  events: Events;
  messages: MessageSender;
  /** two-step verification: the service (tests and the CLI reach factors through it) */
  mfa: Mfa;
  /** lockout guard, password policy, self-service pages; hashCalls counts argon2 calls */
  lockout: Lockout;
  /** sign-in through upstream IdPs: the connection store (tests reach it) */
  federation: Federation;
  /** what users and admins allowed, and roles (tests reach the stores) */
  consent: Consent;
  /** the admin service behind the console, the API and the CLI (src/admin) */
  admin: AdminService;
  close(): Promise<void>;
}

/** Opens storage and brings the schema up to date (embedded) or checks it (external). */
export async function prepareStorage(config: Config, log: Logger, role: 'server' | 'cli', metrics?: Metrics): Promise<Storage> {
  const storage = await openStorage(config, { role, metrics });
  try {
    if (!config.dynamodbEndpoint) {
      await migrate(storage, (m) => log.info({ migration: m }, 'migrating'));
    } else if (role === 'server') {
      const v = await currentVersion(storage);
      if (v < LATEST_VERSION) throw new Error(`the DynamoDB schema is at version ${v}, this build needs ${LATEST_VERSION}: run "idp migrate" first`);
    }
  } catch (err) {
    await storage.close();
    throw err;
  }
  return storage;
}

const REVOCATION = '/token/revocation';

function revocationEvents(provider: Koa.Middleware, events: Events): Koa.Middleware {
  return (ctx, next) => {
    if (ctx.method !== 'POST' || ctx.path !== REVOCATION) return provider(ctx, next);
    const oidc = () => ctx.oidc as unknown as { client?: { clientId: string }; entities?: Record<string, { accountId?: string; jti?: string; kind?: string }> } | undefined;
    return events.commit(() => {
      const token = Object.values(oidc()?.entities ?? {}).find((e) => e?.kind && e.kind !== 'Client');
      const clientId = oidc()?.client?.clientId;
      return { type: 'token.revoked', sub: token?.accountId, clientId, requestId: ctx.state.requestId as string | undefined, data: { by: 'client', kind: token?.kind } };
    }, () => provider(ctx, next), { onlyIfWritten: true });
  };
}

/** what /readyz checks: DynamoDB; KMS in the KMS modes; the event sink (reported, not required) */
function dependencyChecks(storage: Storage, keyring: Keyring, events: Events): Record<string, DependencyCheck> {
  const checks: Record<string, DependencyCheck> = {
    dynamodb: {
      required: true,
      run: async (signal) => {
        await storage.raw.send(new DescribeTableCommand({ TableName: storage.tables.oidc }), { abortSignal: signal });
      },
    },
  };
  const { ping } = keyring;
  if (ping) checks.kms = { required: true, run: (signal) => ping(signal) };
  // events wait in the backlog while the sink is down: reported, never a reason to take the instance out
  checks.events = { required: false, run: (signal) => events.ping(signal) };
  return checks;
}

export async function startServer(config: Config, opts: { log?: Logger } = {}): Promise<RunningServer> {
  const log = opts.log ?? createLogger(config.logLevel);
  // nothing is collected unless /metrics is served somewhere (docs/metrics.md)
  const metrics = config.metrics.enabled ? new Metrics() : undefined;
  const storage = await prepareStorage(config, log, 'server', metrics);
  try {
    const keyring = await startKeyring(config, storage, log, metrics);
    const hasher = meteredHasher(argon2Hasher(config.argon2));
    const accounts = new DynamoAccountStore(storage, hasher, keyring, {
      dataKeyCache: { maxEntries: config.accounts.dataKeyCacheSize, maxAgeMs: config.accounts.dataKeyCacheSeconds * 1000 },
      erasureHooks: erasureHooks(),
    });
    // client metadata is read on every request: cached briefly, invalidated by writes here
    const clientCache = new ClientCache();
    const registry = new Registry(storage, { clientCache, keyring });
    if (config.seedFile) await applySeedFile(config.seedFile, registry, log);
    const events = eventsFor(config, storage, log, 'server');
    if (metrics) {
      events.subscribe((e) => metrics.onEvent(e));
      metrics.watchBacklog(() => events.backlog());
      metrics.watchKeys(() => keyring.keys());
    }
    const messages = createMessageSender({ sender: config.messages.sender, messagesQueueUrl: config.messages.queueUrl, sqsEndpoint: config.events.sqsEndpoint, region: config.awsRegion, dataDir: config.dataDir }, events);
    // the pages: branding and languages, the landing page and the 404 (README "Pages")
    const views = createViews({ brand: { productName: config.ui.productName, logoUrl: config.ui.logoUrl, stylesheet: brandStylesheetUrl(config.ui.primaryColor) }, defaultLocale: config.ui.defaultLocale });
    const pages = site(views, { issuer: config.issuer, docsUrl: config.ui.docsUrl, primaryColor: config.ui.primaryColor });
    // two-step verification (docs/mfa.md): its login check goes into the provider, its routers into the app
    // the login flow (src/interactions/flow.ts): each capability plugs its strategy, guard, steps and page extensions in below
    const flow = new LoginFlow(() => host.provider);
    const accountSections: AccountPageSection[] = [];
    const mfa = createMfa({ config, storage, accounts, events, messages, views, flow, accountSections });
    // consent: remembered and admin consent, the consent screen, connected apps, roles claims
    const consent = createConsent({ config, storage, events, provider: () => host.provider });
    // refresh and code exchange prefetch and write together (token-pipeline.ts); outermost, the
    // resumes, the interaction page and the consent POST do too (interaction-pipeline.ts)
    const pipeline = interactionPipeline(withTokenPipeline(withTokenKindLookup(withClientCache(withSealedClientSecrets(createDynamoAdapter({ doc: storage.doc, table: storage.tables.oidc }), () => keyring,
      (clientId, err) => log.error({ event: 'client.secret.integrity', clientId, err: { name: err.name, message: err.message } }, 'sealed client secret refused')), clientCache))),
    { loadAccount: (sub) => accounts.findBySub(sub) });
    // findAccount and the consent page take the account such a request read early
    const scopedAccounts = pipeline.accounts(accounts);
    // forward-auth for gateways (src/edge), when EDGE_SITES_FILE is set: its sign-in client goes into the provider
    const edge = createEdge({ config, keyring, accounts, views, provider: () => host.provider });
    const host = new ProviderHost({ config, adapter: pipeline.Adapter, accounts: scopedAccounts, keyring, registry, views, mfa: mfa.hooks, consent: consent.providerHooks, clients: edge?.clients }, log, metrics);

    const password = passwordStrategy(accounts, hasher, {
      legacySecrets: loadLegacySecrets(config), sunset: config.accounts.legacySunset, argon2: config.argon2, log, events,
      // a legacy password that fails today's policy is changed before the sign-in completes (LEGACY_PASSWORD_POLICY)
      legacyPolicy: config.accounts.legacyPasswordPolicy,
      policy: (pw, a) => lockout.policy.problems(pw, { email: a.email, phone: a.phone, name: a.name, givenName: a.givenName, familyName: a.familyName }),
    });
    const lockout = createLockout({ config, storage, keyring, accounts, hasher, events, messages, log, views, flow });
    // sign-in through upstream IdPs (docs: README, openid-configuration.md)
    const federation = createFederation({
      config, storage, keyring, accounts, flow, views, events, messages, log,
      // a connection's roleMapping sets the roles its users get from their upstream claims, at each sign-in
      onSignedIn: async (sub, c, claims) => {
        if (c.roleMapping) await consent.roles.setFederated(sub, c.id, rolesFromClaims(c.roleMapping, claims));
      },
    });
    accountSections.push(federation.accountSection, consent.accountSection);
    flow.useStrategy(password).useStrategy(federation.strategy).useGuard(lockout.guard)
      .useExtension(federation.extension).useExtension(lockout.extension);
    // the steps after the first factor, in their order
    flow.useStep(lockout.expiryStep).useStep(federation.linkStep).useStep(mfa.loginStep);
    // login.succeeded is stored before the browser goes back to the app
    flow.onSignedIn(async (ctx, details, who, result) => {
      await events.append('login.succeeded', {
        sub: who.accountId, clientId: String(details.params.client_id), requestId: ctx.state.requestId as string | undefined,
        data: { method: loginMethod(result.amr), amr: result.amr },
      });
    });
    // token.revoked: stored with the token's removal at the revocation endpoint (nothing removed, no event)
    const providerMw = revocationEvents(host.middleware(), events);

    // the admin console and API (docs/admin.md): one service; the console's client, the API's resource server and the admin role made here
    const admin = new AdminService({
      config, storage, accounts, registry, events, guard: lockout.guard, mfa: mfa.service, roles: consent.roles, policy: lockout.policy, hasher, keyring,
      connections: federation.connections, resets: lockout.resets,
      validateClient: async (m) => {
        await host.provider.Client.validate(m as never);
      },
    });
    await ensureAdminSetup({ issuer: config.issuer, registry, roles: consent.roles, algs: keyring.algs, accessTokenTTL: config.ttl.accessToken });
    const adminRouters = [
      adminApiRouter({ issuer: config.issuer, service: admin, provider: () => host.provider, jwks: () => keyring.publicJwks(), storage, log }),
      adminConsoleRouter({ issuer: config.issuer, service: admin, provider: () => host.provider, views, secureCookies: config.secureCookies, admin: config.admin }),
    ];

    const app = createApp({
      log, views,
      cookieKeys: keyring.cookieKeys(),
      trustProxyHops: config.trustProxyHops,
      ready: readiness(dependencyChecks(storage, keyring, events), { ...config.readiness, log }),
      metrics,
      // on the main port only when it has no port of its own
      metricsToken: config.metrics.port === undefined ? config.metrics.token : undefined,
      around: pipeline.middleware,
      routers: [interactionRouter({ flow, views, accounts: scopedAccounts, secureCookies: config.secureCookies, consent: consent.screen }), lockout.router, ...mfa.routers, ...federation.routers, ...consent.routers, ...(edge?.routers ?? []), ...adminRouters],
      // plain-http (loopback) upstream IdPs and edge sites that sign-ins redirect to
      formActionSources: () => [...federation.formActionSources(), ...(edge?.formActions ?? [])],
      hsts: config.issuer.startsWith('https:'),
      site: pages,
      // upstream logout follows ours (federation/logout.ts)
      provider: (ctx, next) => federation.middleware(ctx, () => providerMw(ctx, next)),
    });

    const server = http.createServer(app.callback());
    server.keepAliveTimeout = 65_000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(config.port, config.host, () => resolve());
    });
    const { port } = server.address() as AddressInfo;
    const url = `http://127.0.0.1:${port}`;
    let metricsServer: http.Server | undefined;
    // in a cluster, the primary serves the workers' aggregate on METRICS_PORT (src/cluster.ts)
    if (metrics && cluster.isWorker) metrics.shareWithClusterPrimary();
    else if (metrics && config.metrics.port !== undefined) {
      try {
        metricsServer = await startMetricsServer(metrics, { port: config.metrics.port, host: config.metrics.host, token: config.metrics.token });
      } catch (err) {
        server.close();
        throw err;
      }
    }
    const metricsUrl = metricsServer ? `http://127.0.0.1:${(metricsServer.address() as AddressInfo).port}/metrics` : undefined;
    log.info({ url, issuer: config.issuer, storage: config.dynamodbEndpoint ? 'dynamodb' : 'embedded dynalite', keys: keyring.mode }, 'idp listening');

    // rotation without a restart: follow the keys table; on a change, rebuild the provider and app.keys
    const keysRefresh = startKeyRefresh({
      keyring, log, intervalMs: config.keys.refreshSeconds * 1000,
      onChange: () => {
        host.rebuild();
        app.keys = keyring.cookieKeys();
      },
    });

    let closing: Promise<void> | undefined;
    return {
      url, server, storage, keyring, host, log, metrics, metricsUrl, events, messages, lockout, mfa, federation, consent, admin,
      close() {
        closing ??= (async () => {
          keysRefresh.stop();
          metricsServer?.closeAllConnections();
          metricsServer?.close();
          // stop accepting, let in-flight requests finish, then drop idle keep-alive sockets
          const done = new Promise<void>((resolve) => server.close(() => resolve()));
          server.closeIdleConnections();
          const force = setTimeout(() => server.closeAllConnections(), 10_000);
          await done;
          clearTimeout(force);
          await Promise.all([events.close(), messages.close()]);
          keyring.close();
          await storage.close();
        })();
        return closing;
      },
    };
  } catch (err) {
    await storage.close();
    throw err;
  }
}
