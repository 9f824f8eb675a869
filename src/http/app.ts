// The Koa application: request id and logging, security headers, health and
// readiness, static assets, interaction routes, then oidc-provider.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import Koa from 'koa';
import Router from '@koa/router';
import type { Logger } from '../logging/index.ts';
import type { Metrics } from '../logging/metrics.ts';
import type { RequestFailure } from '../logging/failure.ts';
import type { Readiness } from './readiness.ts';
import { metricsRoute } from './metrics.ts';
import type { Views } from './views.ts';
import { VIEWS_DIR } from './views.ts';
import { errorMiddleware } from './errors.ts';
import { withRequestLanguage } from './i18n.ts';
import type { Site } from './site.ts';

export interface AppDeps {
  log: Logger;
  views: Views;
  cookieKeys: string[];
  trustProxyHops: number;
  /** each dependency's state (readiness.ts) */
  ready: () => Promise<Readiness>;
  /** requests are counted and timed here; /metrics is served on this port when `metricsToken` is set */
  metrics?: Metrics;
  metricsToken?: string;
  routers: Router[];
  provider: Koa.Middleware;
  /** extra form-action sources of the pages' CSP (e.g. loopback upstream IdPs in development) */
  formActionSources?: () => string[];
  /** Strict-Transport-Security on every response (the issuer is https) */
  hsts?: boolean;
  /** the landing page, the brand stylesheet, the integrator guide and the 404 page (site.ts) */
  site?: Site;
  /** around the routers and the provider, inside the error handling (the interaction pipeline: src/provider/interaction-pipeline.ts) */
  around?: Koa.Middleware;
}

const FORM_ACTION = "form-action 'self' https: http://localhost:* http://127.0.0.1:*";
/**
 * The pages' CSP. No script of ours runs anywhere; the only scripts are
 * oidc-provider's inline auto-submit forms (response_mode=form_post, the
 * logout step when a user signs in as someone else, end_session without a
 * session), which it allows by adding their sha256 to an existing
 * `script-src` (lib/helpers/script_src_sha.js). So the header is set BEFORE
 * oidc-provider runs, with script-src 'none', and the hashes it added are
 * kept when the header is rebuilt afterwards: exactly those scripts run.
 */
const csp = (formAction: string, scripts: string[]) => [
  "default-src 'none'", `script-src ${scripts.length ? scripts.join(' ') : "'none'"}`, "style-src 'self'", "img-src 'self' data: https:",
  formAction, "frame-ancestors 'none'", "base-uri 'none'",
].join('; ');
const HSTS = 'max-age=31536000; includeSubDomains';

function underPrefix(router: Router, routerMw: ReturnType<Router['routes']> | ReturnType<Router['allowedMethods']>): Koa.Middleware {
  const mw = routerMw as unknown as Koa.Middleware;
  const prefix = router.opts.prefix;
  if (!prefix) return mw;
  return (ctx, next) => (ctx.path === prefix || ctx.path.startsWith(`${prefix}/`) ? mw(ctx, next) : next());
}

export function createApp(deps: AppDeps): Koa {
  const app = new Koa({ proxy: deps.trustProxyHops > 0, maxIpsCount: deps.trustProxyHops });
  // shared with oidc-provider, so cookies signed on either side verify on both
  app.keys = deps.cookieKeys;
  app.silent = true;

  // one log line per request; a refused or failed one carries why (the error code, the
  // client, the reason: src/logging/failure.ts) beside the reference id its page shows
  const { metrics } = deps;
  app.use(async (ctx, next) => {
    const incoming = ctx.get('x-request-id');
    ctx.state.requestId = /^[\w.-]{1,64}$/.test(incoming) ? incoming : crypto.randomUUID();
    ctx.set('X-Request-Id', ctx.state.requestId);
    const started = process.hrtime.bigint();
    try {
      await next();
    } finally {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      // a bounded route name: oidc-provider's route, an exact path of ours, or a router's pattern; never the raw path
      metrics?.observeRequest(ctx.oidc?.route ?? ctx.state.route ?? (ctx._matchedRoute === undefined ? 'unmatched' : String(ctx._matchedRoute)), ctx.method, ctx.status, ms / 1000);
      const failure = ctx.state.failure as RequestFailure | undefined;
      const level = ctx.status >= 500 ? 'error' : 'info';
      const line = { requestId: ctx.state.requestId, method: ctx.method, path: ctx.path, status: ctx.status, ms: Math.round(ms * 10) / 10 };
      if (failure) deps.log[level]({ ...line, ...failure }, ctx.status >= 500 ? 'request failed' : 'request refused');
      else deps.log[level](line, 'request');
    }
  });

  app.use(async (ctx, next) => {
    ctx.set('X-Content-Type-Options', 'nosniff');
    ctx.set('Referrer-Policy', 'no-referrer');
    ctx.set('X-Frame-Options', 'DENY');
    if (deps.hsts) ctx.set('Strict-Transport-Security', HSTS);
    ctx.set('Content-Security-Policy', csp(FORM_ACTION, []));
    try {
      await next();
    } finally {
      if (ctx.response.type === 'text/html') {
        const scripts = /(?:^|;)\s*script-src([^;]*)/.exec(ctx.response.get('Content-Security-Policy'))?.[1].match(/'sha256-[A-Za-z0-9+/=]+'/g) ?? [];
        const extra = deps.formActionSources?.() ?? [];
        ctx.set('Content-Security-Policy', csp(extra.length ? `${FORM_ACTION} ${extra.join(' ')}` : FORM_ACTION, scripts));
      } else {
        ctx.remove('Content-Security-Policy');
      }
    }
  });

  // the page's language: ui_locales (here, or the interaction's: interactions/current.ts), then Accept-Language (i18n.ts)
  app.use((ctx, next) => withRequestLanguage({
    uiLocales: typeof ctx.query.ui_locales === 'string' ? ctx.query.ui_locales : undefined,
    acceptLanguage: ctx.get('accept-language') || undefined,
  }, next));

  app.use(errorMiddleware(deps.views));
  if (deps.around) app.use(deps.around);

  // health, readiness, the stylesheets and the site's pages: exact paths, checked before any router
  const css = path.join(VIEWS_DIR, 'assets', 'idp.css');
  const infra: Record<string, Koa.Middleware> = {
    '/healthz': (ctx) => {
      ctx.body = { status: 'ok' };
    },
    '/readyz': async (ctx) => {
      const r = await deps.ready();
      ctx.set('Cache-Control', 'no-store');
      if (r.status !== 'ready') {
        ctx.status = 503;
        ctx.set('Retry-After', '5');
      }
      ctx.body = r;
    },
    ...(metrics && deps.metricsToken ? { '/metrics': metricsRoute(metrics, deps.metricsToken) } : {}),
    '/assets/idp.css': (ctx) => {
      ctx.type = 'text/css';
      ctx.set('Cache-Control', 'public, max-age=3600');
      ctx.body = fs.createReadStream(css);
    },
    ...deps.site?.routes,
  };
  app.use((ctx, next) => {
    const handler = (ctx.method === 'GET' || ctx.method === 'HEAD') && Object.hasOwn(infra, ctx.path) ? infra[ctx.path] : undefined;
    if (!handler) return next();
    // these paths are few and fixed: the path is their route name (metrics)
    ctx.state.route = ctx.path;
    return handler(ctx, next);
  });
  // each router is consulted only for paths under its prefix: a token,
  // introspection or JWKS request goes straight to the provider
  // a method no route of a path takes (TRACE, PROPFIND, ...) is 405 with Allow, like a known one, never 501
  const allowed = (r: Router): Koa.Middleware => {
    const mw = underPrefix(r, r.allowedMethods());
    return async (ctx, next) => {
      await mw(ctx, next);
      if (ctx.status === 501 && ctx.response.get('Allow')) ctx.status = 405;
    };
  };
  for (const r of deps.routers) app.use(underPrefix(r, r.routes())).use(allowed(r));
  app.use(deps.provider);
  // nothing answered: the styled 404 (JSON for API clients)
  if (deps.site) app.use(deps.site.notFound);
  return app;
}
