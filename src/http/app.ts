// The Koa application: request id and logging, security headers, health and
// readiness, static assets, interaction routes, then oidc-provider.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import Koa from 'koa';
import Router from '@koa/router';
import type { Logger } from '../logging/index.ts';
import type { Views } from './views.ts';
import { VIEWS_DIR } from './views.ts';
import { errorMiddleware } from './errors.ts';

export interface AppDeps {
  log: Logger;
  views: Views;
  cookieKeys: string[];
  trustProxyHops: number;
  /** resolves when storage answers; rejects otherwise */
  ready: () => Promise<void>;
  routers: Router[];
  provider: Koa.Middleware;
  /** around the routers and the provider, inside the error handling (the interaction pipeline: src/provider/interaction-pipeline.ts) */
  around?: Koa.Middleware;
}

const CSP = [
  "default-src 'none'", "style-src 'self'", "img-src 'self' data: https:", "form-action 'self' https: http://localhost:* http://127.0.0.1:*",
  "frame-ancestors 'none'", "base-uri 'none'",
].join('; ');

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

  app.use(async (ctx, next) => {
    const incoming = ctx.get('x-request-id');
    ctx.state.requestId = /^[\w.-]{1,64}$/.test(incoming) ? incoming : crypto.randomUUID();
    ctx.set('X-Request-Id', ctx.state.requestId);
    const started = process.hrtime.bigint();
    try {
      await next();
    } finally {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      const level = ctx.status >= 500 ? 'error' : 'info';
      deps.log[level]({ requestId: ctx.state.requestId, method: ctx.method, path: ctx.path, status: ctx.status, ms: Math.round(ms * 10) / 10 }, 'request');
    }
  });

  app.use(async (ctx, next) => {
    ctx.set('X-Content-Type-Options', 'nosniff');
    ctx.set('Referrer-Policy', 'no-referrer');
    ctx.set('X-Frame-Options', 'DENY');
    await next();
    if (ctx.response.type === 'text/html') ctx.set('Content-Security-Policy', CSP);
  });

  app.use(errorMiddleware(deps.views, deps.log));
  if (deps.around) app.use(deps.around);

  // health, readiness and the stylesheet: three exact paths, checked before any router
  const css = path.join(VIEWS_DIR, 'assets', 'idp.css');
  const infra: Record<string, Koa.Middleware> = {
    '/healthz': (ctx) => {
      ctx.body = { status: 'ok' };
    },
    '/readyz': async (ctx) => {
      try {
        await deps.ready();
        ctx.body = { status: 'ready' };
      } catch {
        ctx.status = 503;
        ctx.body = { status: 'unavailable', reason: 'storage unreachable' };
      }
    },
    '/assets/idp.css': (ctx) => {
      ctx.type = 'text/css';
      ctx.set('Cache-Control', 'public, max-age=3600');
      ctx.body = fs.createReadStream(css);
    },
  };
  app.use((ctx, next) => {
    const handler = (ctx.method === 'GET' || ctx.method === 'HEAD') && Object.hasOwn(infra, ctx.path) ? infra[ctx.path] : undefined;
    return handler ? handler(ctx, next) : next();
  });
  // each router is consulted only for paths under its prefix: a token,
  // introspection or JWKS request goes straight to the provider
  for (const r of deps.routers) app.use(underPrefix(r, r.routes())).use(underPrefix(r, r.allowedMethods()));
  app.use(deps.provider);
  return app;
}
