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
import type { Middleware } from 'koa';
import { TtlCache } from './client-cache.ts';

const MAX_ORIGINS = 16;
/** the headers oidc-provider sets on these answers that a replay must carry */
const KEPT_HEADERS = ['content-type', 'vary', 'access-control-allow-origin', 'access-control-expose-headers', 'cache-control'];

interface Entry {
  body: string;
  headers: Array<[string, string]>;
}

export class MetadataCache {
  readonly #paths: Set<string>;
  #entries: TtlCache<Entry>;

  constructor(paths: string[]) {
    this.#paths = new Set(paths);
    this.#entries = this.#fresh();
  }

  #fresh(): TtlCache<Entry> {
    return new TtlCache<Entry>({ ttlMs: Infinity, maxEntries: MAX_ORIGINS * this.#paths.size });
  }

  /** forget everything (the provider was rebuilt) */
  clear(): void {
    this.#entries = this.#fresh();
  }

  /** whether this request may be answered from (or fill) the cache */
  handles(ctx: { method: string; path: string; get(name: string): string }): boolean {
    return ctx.method === 'GET' && this.#paths.has(ctx.path) && !ctx.get('origin');
  }

  /** answers from the cache, or runs `inner` and keeps a 200 */
  middleware(inner: Middleware): Middleware {
    return async (ctx, next) => {
      // (Koa 3's ctx.origin is the Origin header, not the request's own origin)
      const key = `${ctx.protocol}://${ctx.host}${ctx.path}`;
      const hit = this.#entries.get(key)?.value;
      if (hit) {
        ctx.status = 200;
        for (const [name, value] of hit.headers) ctx.set(name, value);
        ctx.body = hit.body;
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
      // a rebuild while this request ran replaced the map: keep nothing from the old provider
      if (entries !== this.#entries) return;
      entries.set(key, { body, headers });
    };
  }
}
