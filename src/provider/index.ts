// Builds the oidc-provider instance and holds the current one. Anything that
// changes the provider's configuration (a key rotation) builds a new instance
// and swaps it in; requests already running finish on the old one, and all
// state lives in DynamoDB, so nothing is lost.
import Provider from 'oidc-provider';
import mount from 'koa-mount';
import type { Middleware } from 'koa';
import type { Logger } from '../logging/index.ts';
import { buildConfiguration, type ConfigurationDeps } from './configuration.ts';
import { installTokenPipeline, introspectionScope } from './token-pipeline.ts';
import { hintKey } from './token-kinds.ts';
import { MetadataCache } from './metadata-cache.ts';

/** oidc-provider's introspection route (configuration.routes leaves the default) */
const INTROSPECTION = '/token/introspection';

export class ProviderHost {
  private current!: Provider;
  private handler!: Middleware;
  private readonly deps: ConfigurationDeps;
  private readonly log: Logger;
  /** what of the token pipeline (token-pipeline.ts) runs in the current provider */
  pipeline = { handlers: false, hints: false };
  /** seals and opens the hints in token values (token-kinds.ts) */
  hintKey!: Buffer;
  /** JWKS and discovery answers of the current provider (metadata-cache.ts) */
  private readonly metadata: MetadataCache;

  constructor(deps: ConfigurationDeps, log: Logger) {
    this.deps = deps;
    this.log = log;
    this.metadata = new MetadataCache(['/jwks', '/.well-known/openid-configuration'], { maxAgeSeconds: deps.config.keys.jwksMaxAgeSeconds });
    this.rebuild();
  }

  get provider(): Provider {
    return this.current;
  }

  /** build a provider from the current keyring and swap it in */
  rebuild(): void {
    const provider = new Provider(this.deps.config.issuer, buildConfiguration(this.deps));
    provider.proxy = this.deps.config.trustProxyHops > 0;
    // refresh and code exchange: reads prefetched, writes sent together (token-pipeline.ts)
    this.hintKey = hintKey(this.deps.keyring.blindIndexKey());
    this.pipeline = installTokenPipeline(provider, {
      loadAccount: (sub, onlyIf) => this.deps.accounts.findBySub(sub, { onlyIf }), hintKey: this.hintKey,
      refreshReuseGraceSeconds: this.deps.config.refreshReuseGraceSeconds,
      onGrace: (clientId, grantId) => this.log.warn({ event: 'refresh.reuse_grace', clientId, grantId }, 'a rotated refresh token was presented again within the grace: answered once'),
    });
    if (!this.pipeline.handlers || !this.pipeline.hints) {
      this.log.warn({ pipeline: this.pipeline }, 'token pipeline not (fully) installed: refresh and code exchange make more DynamoDB round trips');
    }
    provider.on('server_error', (ctx, err) => {
      this.log.error({ requestId: ctx.state?.requestId, err: { name: err.name, message: err.message, stack: err.stack } }, 'provider server_error');
    });
    for (const ev of ['grant.revoked', 'end_session.success', 'backchannel.error', 'grant.error', 'introspection.error', 'revocation.error'] as const) {
      (provider as unknown as { on(e: string, f: (ctx: { state?: { requestId?: string } }, d: unknown, client?: { clientId?: string }) => void): void }).on(ev, (ctx, detail, client) => {
        // an error's reason is kept: oidc-provider's description, or the message of a network failure (backchannel.error)
        const d = detail instanceof Error
          ? { error: (detail as { error?: string }).error ?? detail.name, description: (detail as { error_description?: string }).error_description ?? detail.message, ...(detail.cause instanceof Error ? { cause: detail.cause.message } : {}) }
          : { grantId: typeof detail === 'string' ? detail : undefined };
        const level = detail instanceof Error ? 'warn' : 'info';
        this.log[level]({ requestId: ctx?.state?.requestId, event: ev, ...(client?.clientId ? { clientId: client.clientId } : {}), ...d }, 'provider event');
      });
    }
    this.current = provider;
    this.handler = mount(provider as never);
    this.metadata.clear();
  }

  middleware(): Middleware {
    const fromCache = this.metadata.middleware((ctx, next) => this.handler(ctx, next));
    return (ctx, next) => {
      // the token and its grant in one round trip (token-pipeline.ts)
      if (ctx.method === 'POST' && ctx.path === INTROSPECTION) return introspectionScope(ctx, () => this.handler(ctx, next), this.hintKey);
      if (this.metadata.handles(ctx)) return fromCache(ctx, next);
      return this.handler(ctx, next);
    };
  }
}
