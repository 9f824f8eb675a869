// Builds the oidc-provider instance and holds the current one. Anything that
// changes the provider's configuration (a key rotation) builds a new instance
// and swaps it in; requests already running finish on the old one, and all
// state lives in DynamoDB, so nothing is lost.
import Provider from 'oidc-provider';
import mount from 'koa-mount';
import type { Middleware } from 'koa';
import type { Logger } from '../logging/index.ts';
import type { Metrics } from '../logging/metrics.ts';
import { clientIdParam, noteFailure, oauthReason } from '../logging/failure.ts';
import { buildConfiguration, type ConfigurationDeps } from './configuration.ts';
import { installTokenPipeline, introspectionScope } from './token-pipeline.ts';
import { hintKey } from './token-kinds.ts';
import { MetadataCache } from './metadata-cache.ts';

/** oidc-provider's introspection route (configuration.routes leaves the default) */
const INTROSPECTION = '/token/introspection';

/**
 * oidc-provider's error events, one per endpoint (lib/helpers/initialize_app.js,
 * lib/shared/error_handler.js and authorization_error_handler.js): each is an
 * error page, an OAuth error response or an error redirect of that request.
 */
const ERROR_EVENTS = [
  'authorization.error', 'grant.error', 'userinfo.error', 'introspection.error', 'revocation.error', 'end_session.error',
  'end_session_confirm.error', 'end_session_success.error', 'jwks.error', 'discovery.error', 'pushed_authorization_request.error',
  'device_authorization.error', 'code_verification.error', 'device_resume.error', 'backchannel_authentication.error',
  'registration_create.error', 'registration_read.error', 'registration_update.error', 'registration_delete.error',
  'challenge.error', 'credential.error', 'openid_credential_issuer.error', 'server_error',
] as const;

interface OidcCtx {
  state?: Record<string, unknown>;
  oidc?: { client?: { clientId?: string }; params?: Record<string, unknown>; result?: { login?: { amr?: string[] } } };
  query?: Record<string, unknown>;
}

/** the sign-in method of a login's amr (password, federation, or the first amr value) */
function loginMethod(amr: string[] | undefined): string {
  if (!amr?.length) return 'unknown';
  if (amr.includes('fed')) return 'federation';
  if (amr.includes('pwd')) return 'password';
  return amr[0];
}

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

  private readonly metrics: Metrics | undefined;

  constructor(deps: ConfigurationDeps, log: Logger, metrics?: Metrics) {
    this.deps = deps;
    this.log = log;
    this.metrics = metrics;
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
    // every error answer of the provider: noted for the request's one log line (src/http/app.ts)
    const on = provider.on.bind(provider) as (e: string, f: (ctx: OidcCtx, err: Error) => void) => void;
    for (const ev of ERROR_EVENTS) {
      on(ev, (ctx, err) => {
        const e = err as Error & { error?: string };
        const server = ev === 'server_error';
        noteFailure(ctx?.state, {
          event: ev,
          error: server ? 'server_error' : e?.error ?? e?.message ?? 'invalid_request',
          reason: server ? e?.message : oauthReason(e),
          clientId: ctx?.oidc?.client?.clientId ?? clientIdParam(ctx?.oidc?.params?.client_id) ?? clientIdParam(ctx?.query?.client_id),
          err: server ? { name: e?.name, message: e?.message, stack: e?.stack } : { name: e?.name },
        });
      });
    }
    const { metrics } = this;
    if (metrics) {
      on('grant.success', (ctx) => metrics.tokenIssued(ctx?.oidc?.params?.grant_type));
      // a login is counted where oidc-provider takes it: the resume of an interaction that carries one
      on('interaction.ended', (ctx) => {
        const login = ctx?.oidc?.result?.login;
        if (login) metrics.loginSucceeded(loginMethod(login.amr));
      });
    }
    for (const ev of ['grant.revoked', 'end_session.success', 'backchannel.error'] as const) {
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
      if (this.metadata.handles(ctx)) {
        ctx.state.route = ctx.path === '/jwks' ? 'jwks' : 'discovery';
        return fromCache(ctx, next);
      }
      return this.handler(ctx, next);
    };
  }
}
