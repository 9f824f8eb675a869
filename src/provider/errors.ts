// Errors oidc-provider renders itself (JSON or the error page), typed here so
// that every part throws the same classes.
import { errors } from 'oidc-provider';
import { StorageUnavailable } from '../storage/errors.ts';

/** 503 temporarily_unavailable: a dependency (DynamoDB, KMS) cannot be reached. */
export class ServiceUnavailable extends errors.TemporarilyUnavailable {
  constructor(description = 'the service is temporarily unavailable, try again shortly', options?: { cause?: unknown }) {
    super(description, options as never);
    this.status = 503;
    this.statusCode = 503;
    this.expose = true;
  }
}

export function isUnavailable(err: unknown): boolean {
  return err instanceof StorageUnavailable || err instanceof ServiceUnavailable
    || (err as { error?: string })?.error === 'temporarily_unavailable';
}
