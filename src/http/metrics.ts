// /metrics: the Prometheus text exposition of the server's registry
// (src/logging/metrics.ts), on the main port behind a bearer token
// (METRICS_TOKEN) or on a listener of its own (METRICS_PORT). docs/metrics.md.
import crypto from 'node:crypto';
import http from 'node:http';
import type { Middleware } from 'koa';
import type { Metrics } from '../logging/metrics.ts';

const digest = (s: string) => crypto.createHash('sha256').update(s).digest();

/** `Authorization: Bearer <token>`, compared in constant time */
export function bearerMatches(header: string | undefined, token: string): boolean {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
  return m !== null && crypto.timingSafeEqual(digest(m[1]), digest(token));
}

/** the main port's /metrics (GET, HEAD): 401 without the right token */
export function metricsRoute(metrics: Metrics, token: string): Middleware {
  return async (ctx) => {
    ctx.set('Cache-Control', 'no-store');
    if (!bearerMatches(ctx.get('authorization') || undefined, token)) {
      ctx.status = 401;
      ctx.set('WWW-Authenticate', 'Bearer realm="metrics"');
      ctx.body = { error: 'invalid_token', error_description: 'metrics need the bearer token (METRICS_TOKEN)' };
      return;
    }
    ctx.type = metrics.contentType;
    ctx.body = await metrics.text();
  };
}

/** the metrics listener (METRICS_PORT): /metrics only, with the token when one is set */
export async function startMetricsServer(metrics: { contentType: string; text(): Promise<string> }, opts: { port: number; host: string; token?: string }): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const send = (status: number, type: string, body: string, headers: Record<string, string> = {}) => {
      res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store', ...headers });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    if (path !== '/metrics') return send(404, 'text/plain; charset=utf-8', 'not found\n');
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'text/plain; charset=utf-8', 'method not allowed\n', { allow: 'GET, HEAD' });
    if (opts.token && !bearerMatches(req.headers.authorization, opts.token)) {
      return send(401, 'text/plain; charset=utf-8', 'metrics need the bearer token (METRICS_TOKEN)\n', { 'www-authenticate': 'Bearer realm="metrics"' });
    }
    metrics.text().then((text) => send(200, metrics.contentType, text), () => send(500, 'text/plain; charset=utf-8', 'metrics could not be collected\n'));
  });
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => resolve());
  });
  return server;
}
