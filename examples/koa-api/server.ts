// Example: a small Koa API that accepts the IdP's JWT access tokens
// (RFC 9068) and checks them itself, with `jose`, against the IdP's JWKS:
// signature (a key of the JWKS, chosen by `kid`), `typ: at+jwt`, issuer,
// audience (this API's resource indicator), expiry, and the scope each route
// needs. Nothing is asked of the IdP per request: the JWKS is fetched once,
// cached, and fetched again when a token names a `kid` it does not know (at
// most once every 30 s).
//
//   ISSUER=https://id.example.com AUDIENCE=https://orders.example.com PORT=8080 node examples/koa-api/server.ts
//
// Register the API first: `idp resources add --id https://orders.example.com
// --scope "orders:read orders:write" --format jwt`; clients then ask for
// tokens with `resource=https://orders.example.com`. Tested by
// test/examples.test.ts.
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import Koa from 'koa';
import type { Context, Next } from 'koa';
import { createRemoteJWKSet, jwtVerify, type JWTPayload } from 'jose';

export interface ApiOptions {
  /** the IdP's issuer, exactly as in its discovery document */
  issuer: string;
  /** this API's resource indicator: the `aud` its tokens carry */
  audience: string;
  /** default: the discovery document's jwks_uri */
  jwksUri?: string;
}

/** verifies the bearer token; puts its payload in ctx.state.token, or answers 401 */
export async function tokenVerifier(opts: ApiOptions): Promise<(ctx: Context, next: Next) => Promise<void>> {
  let jwksUri = opts.jwksUri;
  if (!jwksUri) {
    const res = await fetch(`${opts.issuer}/.well-known/openid-configuration`);
    if (!res.ok) throw new Error(`discovery at ${opts.issuer} answered ${res.status}`);
    jwksUri = ((await res.json()) as { jwks_uri: string }).jwks_uri;
  }
  const jwks = createRemoteJWKSet(new URL(jwksUri), { cooldownDuration: 30_000, cacheMaxAge: 10 * 60_000 });
  return async (ctx, next) => {
    const token = /^Bearer\s+(\S+)$/i.exec(ctx.get('authorization'))?.[1];
    const refuse = (error?: string) => {
      ctx.status = 401;
      ctx.set('WWW-Authenticate', `Bearer realm="api"${error ? `, error="${error}"` : ''}`);
      ctx.body = { error: error ?? 'unauthorized' };
    };
    if (!token) return refuse();
    try {
      const { payload } = await jwtVerify(token, jwks, {
        issuer: opts.issuer,
        audience: opts.audience,
        typ: 'at+jwt',
        // only the IdP's asymmetric algorithms: never "none" or an HMAC
        algorithms: ['ES256', 'RS256', 'PS256', 'EdDSA'],
        requiredClaims: ['exp', 'sub'],
        clockTolerance: 30,
      });
      ctx.state.token = payload;
    } catch {
      return refuse('invalid_token');
    }
    await next();
  };
}

/** 403 unless the verified token has every one of `scopes` */
export function requireScope(...scopes: string[]) {
  return async (ctx: Context, next: Next) => {
    const granted = new Set(String((ctx.state.token as JWTPayload).scope ?? '').split(' '));
    if (!scopes.every((s) => granted.has(s))) {
      ctx.status = 403;
      ctx.set('WWW-Authenticate', `Bearer realm="api", error="insufficient_scope", scope="${scopes.join(' ')}"`);
      ctx.body = { error: 'insufficient_scope' };
      return;
    }
    await next();
  };
}

/** the API: GET /health (open), GET /orders (orders:read), POST /orders (orders:write) */
export async function createApi(opts: ApiOptions): Promise<Koa> {
  const verify = await tokenVerifier(opts);
  const read = requireScope('orders:read');
  const write = requireScope('orders:write');
  const app = new Koa();
  app.use(async (ctx, next) => {
    if (ctx.path === '/health') {
      ctx.body = { status: 'ok' };
      return;
    }
    await verify(ctx, next);
  });
  app.use(async (ctx) => {
    const who = (ctx.state.token as JWTPayload).sub;
    if (ctx.path === '/orders' && ctx.method === 'GET') {
      await read(ctx, async () => { ctx.body = { orders: [], for: who }; });
    } else if (ctx.path === '/orders' && ctx.method === 'POST') {
      await write(ctx, async () => { ctx.status = 201; ctx.body = { created: true, by: who }; });
    } else {
      ctx.status = 404;
      ctx.body = { error: 'not_found' };
    }
  });
  return app;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { ISSUER, AUDIENCE, PORT = '8080' } = process.env;
  if (!ISSUER || !AUDIENCE) {
    process.stderr.write('set ISSUER and AUDIENCE\n');
    process.exit(2);
  }
  const app = await createApi({ issuer: ISSUER, audience: AUDIENCE });
  http.createServer(app.callback()).listen(Number(PORT), () => process.stdout.write(`API on :${PORT}\n`));
}
