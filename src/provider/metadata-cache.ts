// JWKS and discovery are the same bytes for every request to one provider
// instance: the key set changes only when the provider is rebuilt (a key
// rotation, ProviderHost.rebuild, which clears this cache), and discovery
// only by the origin its URLs are built from (oidc-provider builds them from
// the request's origin). The first answer per origin is kept and replayed,
// headers and all, without going through oidc-provider's middleware stack.
//
// Only plain GETs without an Origin header are served from here: CORS
// requests and preflights, and any answer but a 200, go to oidc-provider as
// before. The cache holds at most MAX_ORIGINS origins (the Host header is the
// client's to choose), dropping the oldest.
//
// For verifiers (docs/jwks.md), every 200 of these paths, from the cache or
// not, carries `Cache-Control: public, max-age=N` (JWKS_MAX_AGE_SECONDS,
// below the key pre-publication time, so a cached copy always holds the key
// that signs next) and a strong `ETag` (a hash of the body); a GET or HEAD
// whose If-None-Match names it gets 304 without a body.
import crypto from 'node:crypto';
import type { Context, Middleware } from 'koa';
import { TtlCache } from './client-cache.ts';

const MAX_ORIGINS = 16;
/** the headers oidc-provider sets on these answers that a replay must carry */
const KEPT_HEADERS = ['content-type', 'vary', 'access-control-allow-origin', 'access-control-expose-headers'];

interface Entry {
  body: string;
  etag: string;
  headers: Array<[string, string]>;
}

const etagOf = (body: string) => `"${crypto.createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`;

export class MetadataCache {
  readonly #paths: Set<string>;
  readonly #cacheControl: string;
  #entries: TtlCache<Entry>;

  constructor(paths: string[], opts: { maxAgeSeconds?: number } = {}) {
    this.#paths = new Set(paths);
    const maxAge = opts.maxAgeSeconds ?? 0;
    this.#cacheControl = maxAge > 0 ? `public, max-age=${maxAge}` : 'public, no-cache';
    this.#entries = this.#fresh();
  }

  #fresh(): TtlCache<Entry> {
    return new TtlCache<Entry>({ ttlMs: Infinity, maxEntries: MAX_ORIGINS * this.#paths.size });
  }

  /** forget everything (the provider was rebuilt) */
  clear(): void {
    this.#entries = this.#fresh();
  }

  /** whether this request is for one of the paths (GET or HEAD): answered here, from the cache or through `inner` */
  handles(ctx: { method: string; path: string }): boolean {
    return (ctx.method === 'GET' || ctx.method === 'HEAD') && this.#paths.has(ctx.path);
  }

  /** the caching headers; 304 when the client has this body already */
  #validate(ctx: Context, etag: string): void {
    ctx.set('Cache-Control', this.#cacheControl);
    ctx.etag = etag;
    if (ctx.fresh) {
      ctx.status = 304;
      ctx.body = null;
    }
  }

  /** answers from the cache, or runs `inner` and keeps a 200 */
  middleware(inner: Middleware): Middleware {
    return async (ctx, next) => {
      if (ctx.method !== 'GET' || ctx.get('origin')) {
        // HEAD and CORS requests: oidc-provider answers, with our caching headers on a 200
        await inner(ctx, next);
        if (ctx.status === 200 && ctx.body && typeof ctx.body === 'object' && !Buffer.isBuffer(ctx.body)) {
          const body = JSON.stringify(ctx.body);
          ctx.body = body;
          this.#validate(ctx, etagOf(body));
        }
        return;
      }
      // (Koa 3's ctx.origin is the Origin header, not the request's own origin)
      const key = `${ctx.protocol}://${ctx.host}${ctx.path}`;
      const hit = this.#entries.get(key)?.value;
      if (hit) {
        ctx.status = 200;
        for (const [name, value] of hit.headers) ctx.set(name, value);
        ctx.body = hit.body;
        this.#validate(ctx, hit.etag);
        return;
      }
      const entries = this.#entries;
      await inner(ctx, next);
      if (ctx.status !== 200 || ctx.body === null || typeof ctx.body !== 'object' || Buffer.isBuffer(ctx.body)) return;
      const body = JSON.stringify(ctx.body);
      const headers: Array<[string, string]> = [];
      for (const name of KEPT_HEADERS) {
        const v = ctx.response.get(name);
        if (v) headers.push([name, String(v)]);
      }
      ctx.body = body;
      const etag = etagOf(body);
      this.#validate(ctx, etag);
      // a rebuild while this request ran replaced the map: keep nothing from the old provider
      if (entries !== this.#entries) return;
      entries.set(key, { body, etag, headers });
    };
  }
}
