// Errors oidc-provider renders itself (JSON or the error page). They are
// defined beside StorageUnavailable in src/storage/errors.ts, so that the
// storage adapter, keys and capabilities below the provider can throw them
// too; re-exported here for the provider and HTTP layers.
export { ServiceUnavailable, isUnavailable } from '../storage/errors.ts';
