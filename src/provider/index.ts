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
  /** JWKS and discovery answers of the current provider (metadata-cache.ts) */
  private readonly metadata = new MetadataCache(['/jwks', '/.well-known/openid-configuration']);

  constructor(deps: ConfigurationDeps, log: Logger) {
    this.deps = deps;
    this.log = log;
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
    this.pipeline = installTokenPipeline(provider, { loadAccount: (sub, onlyIf) => this.deps.accounts.findBySub(sub, { onlyIf }) });
    if (!this.pipeline.handlers || !this.pipeline.hints) {
      this.log.warn({ pipeline: this.pipeline }, 'token pipeline not (fully) installed: refresh and code exchange make more DynamoDB round trips');
    }
    provider.on('server_error', (ctx, err) => {
      this.log.error({ requestId: ctx.state?.requestId, err: { name: err.name, message: err.message, stack: err.stack } }, 'provider server_error');
    });
    for (const ev of ['grant.revoked', 'end_session.success', 'backchannel.error', 'grant.error', 'introspection.error', 'revocation.error'] as const) {
      (provider as unknown as { on(e: string, f: (ctx: { state?: { requestId?: string } }, d: unknown) => void): void }).on(ev, (ctx, detail) => {
        const d = detail instanceof Error ? { error: (detail as { error?: string }).error ?? detail.name, description: (detail as { error_description?: string }).error_description } : { grantId: typeof detail === 'string' ? detail : undefined };
        this.log.info({ requestId: ctx?.state?.requestId, event: ev, ...d }, 'provider event');
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
      if (ctx.method === 'POST' && ctx.path === INTROSPECTION) return introspectionScope(ctx, () => this.handler(ctx, next));
      if (this.metadata.handles(ctx)) return fromCache(ctx, next);
      return this.handler(ctx, next);
    };
  }
}
