// oidc-provider's per-instance internals (lib/helpers/weak_cache.js): used
// only by token-pipeline.ts to wrap two grant handlers, and checked at run
// time there (nothing is wrapped when the shape is not the expected one).
declare module 'oidc-provider/lib/helpers/weak_cache.js' {
  const internals: (provider: object) => unknown;
  export default internals;
}

// oidc-provider's AsyncLocalStorage (lib/helpers/als.js): every provider
// request runs in it with its Koa context as the store. request-scope.ts keys
// the pipelines' per-request scopes on that context instead of enabling
// AsyncLocalStorages of our own (each costs every promise of the process).
declare module 'oidc-provider/lib/helpers/als.js' {
  import type { AsyncLocalStorage } from 'node:async_hooks';
  const als: AsyncLocalStorage<object>;
  export default als;
}
