// Why a request was refused or failed, noted where that is known (our error
// middleware, oidc-provider's error events) and written once, in the request's
// own log line (src/http/app.ts): the reference id the user was shown, the
// OAuth error code, the client and the reason. Only codes, client ids and
// descriptions go in: never a parameter's value, a token, a code or a password.

export interface RequestFailure {
  /** the OAuth error code (invalid_client, invalid_grant, server_error, ...) or our own */
  error: string;
  /** oidc-provider's error_description (and error_detail), or our own refusal reason */
  reason?: string;
  clientId?: string;
  /** oidc-provider's event (authorization.error, grant.error, server_error, ...) when it came from there */
  event?: string;
  /** the thrown error: its name always; its message and stack for server errors only */
  err?: { name?: string; message?: string; stack?: string };
}

const MAX_REASON = 500;

/** a client_id as requested (possibly unknown): kept when it is a plausible identifier, never a long or binary value */
export function clientIdParam(v: unknown): string | undefined {
  if (typeof v !== 'string' || v === '') return undefined;
  return /^[\x21-\x7e]{1,200}$/.test(v) ? v : '[not an identifier]';
}

/** oidc-provider's error_description with its error_detail, shortened */
export function oauthReason(err: unknown): string | undefined {
  const e = err as { error_description?: unknown; error_detail?: unknown; message?: unknown };
  const description = typeof e?.error_description === 'string' ? e.error_description : undefined;
  const detail = typeof e?.error_detail === 'string' ? e.error_detail : undefined;
  const text = description && detail && detail !== description ? `${description} (${detail})` : description ?? detail;
  return text === undefined ? undefined : text.length > MAX_REASON ? `${text.slice(0, MAX_REASON)}…` : text;
}

/** notes the failure of the request whose ctx.state this is; a later note replaces an earlier one (the one answered) */
export function noteFailure(state: Record<string, unknown> | undefined, failure: RequestFailure): void {
  if (state) state.failure = failure;
}
