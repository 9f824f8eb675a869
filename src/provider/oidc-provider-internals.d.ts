// oidc-provider's per-instance internals (lib/helpers/weak_cache.js): used
// only by token-pipeline.ts to wrap two grant handlers, and checked at run
// time there (nothing is wrapped when the shape is not the expected one).
declare module 'oidc-provider/lib/helpers/weak_cache.js' {
  const internals: (provider: object) => unknown;
  export default internals;
}
