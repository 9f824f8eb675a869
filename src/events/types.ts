// The event seam: audit and lifecycle events (login.failed, account.locked,
// password.migrated, mfa.reset, message.requested, ...). Publishing never
// fails a request: sinks buffer, retry, and fall back to a local file.
export interface AuditEvent {
  /** unique id, for de-duplication by consumers */
  id: string;
  /** dotted type, e.g. "password.migrated" */
  type: string;
  /** ISO-8601 time */
  time: string;
  /** the account concerned (a UUID, never an e-mail) */
  sub?: string;
  clientId?: string;
  requestId?: string;
  /** a reason code, e.g. "account_threshold" */
  reason?: string;
  /** further fields; personal data is stripped (see redact) */
  data?: Record<string, unknown>;
}

export interface EventSink {
  readonly kind: string;
  publish(event: AuditEvent): void;
  /** resolves when everything published so far was delivered or spooled */
  flush(): Promise<void>;
  close(): Promise<void>;
}

/** Keys that must never reach an event: personal data and secrets. */
const FORBIDDEN = /^(e-?mail|phone|phone_?number|name|given_?name|family_?name|password|secret|code|otp|token|address|birthdate)$/i;

export function redact(data: Record<string, unknown> | undefined): Record<string, unknown> | undefined {
  if (!data) return undefined;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(data)) {
    if (FORBIDDEN.test(k)) continue;
    out[k] = v && typeof v === 'object' && !Array.isArray(v) ? redact(v as Record<string, unknown>) : v;
  }
  return out;
}
