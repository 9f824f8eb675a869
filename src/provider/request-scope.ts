// The current request's scope for the token and interaction pipelines
// (token-pipeline.ts, interaction-pipeline.ts), without AsyncLocalStorages of
// our own: every enabled AsyncLocalStorage makes every promise of the process
// dearer (about 35 ns each, a few hundred per request), and oidc-provider
// already runs each of its requests in one, with the Koa context as its store
// (lib/helpers/als.js). A scope is kept beside that context, for as long as
// `withScope` runs; our own routes (which call the provider's functions but are
// not its requests) enter that AsyncLocalStorage with their context here.
import als from 'oidc-provider/lib/helpers/als.js';

const scopes = new WeakMap<object, object>();

/** the scope of the request this code runs for, if it is an instance of `kind` */
export function currentScope<T extends object>(kind: abstract new (...a: never[]) => T): T | undefined {
  const ctx = als.getStore();
  const scope = ctx === undefined ? undefined : scopes.get(ctx);
  return scope instanceof kind ? scope : undefined;
}

/**
 * Runs `fn` with `scope` as the scope of the request whose Koa context is
 * `ctx` (entering oidc-provider's AsyncLocalStorage with it unless that is
 * already the store), and drops the scope when `fn` settles.
 */
export async function withScope<T>(ctx: object, scope: object, fn: () => Promise<T>): Promise<T> {
  const before = scopes.get(ctx);
  scopes.set(ctx, scope);
  try {
    return await (als.getStore() === ctx ? fn() : als.run(ctx, fn));
  } finally {
    if (before === undefined) scopes.delete(ctx);
    else scopes.set(ctx, before);
  }
}
