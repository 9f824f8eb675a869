// The event seam: audit and lifecycle events as CloudEvents-style JSON
// (docs/events.md lists every type). Events are recorded in the events table
// with the state change that caused it (store.ts) and moved to a sink by the
// publisher (publisher.ts); sinks only deliver.

/** one event, as stored, published and shown in the audit log */
export interface CloudEvent {
  specversion: '1.0';
  /** unique id: a redelivery after a crash carries the same id */
  id: string;
  /** dotted type, e.g. "password.migrated" */
  type: string;
  /** the issuer of the IdP that recorded it */
  source: string;
  /** ISO-8601 time */
  time: string;
  /** the account `sub` or the client id concerned; never an e-mail */
  subject?: string;
  datacontenttype: 'application/json';
  /** clientId, actor, requestId, reason and type-specific fields; no plaintext personal data */
  data: Record<string, unknown>;
}

/** @deprecated the old name; every event is a CloudEvent now */
export type AuditEvent = CloudEvent;

/**
 * Every event type the IdP records: a type outside this list does not
 * compile, and test/events.docs.test.ts checks that docs/events.md lists
 * exactly these.
 */
export const EVENT_TYPES = [
  'user.created', 'user.updated', 'user.disabled', 'user.enabled', 'user.merged', 'user.unmerged', 'user.deleted', 'user.viewed',
  'password.migrated', 'password.changed', 'password.reset', 'password.reset_requested', 'password.expired', 'password.weak',
  'login.succeeded', 'login.failed', 'login.suspicious',
  'account.locked', 'account.unlocked', 'ip.throttled',
  'mfa.enrolled', 'mfa.removed', 'mfa.reset', 'mfa.recovery.regenerated', 'mfa.recovery.used', 'mfa.succeeded', 'mfa.failed',
  'device.remembered', 'device.revoked',
  'consent.granted', 'consent.revoked', 'consent.admin.granted', 'consent.admin.revoked',
  'token.revoked',
  'federation.login', 'federation.linked', 'federation.unlinked',
  'connection.created', 'connection.updated', 'connection.deleted',
  'resource.saved',
  'client.created', 'client.updated', 'client.deleted',
  'role.saved', 'role.removed', 'roles.assigned', 'roles.unassigned',
  'key.rotated',
  'message.requested',
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

/** What a caller says about an event; the CloudEvent is built from it. */
export interface EventFields {
  /** the account concerned (a UUID, never an e-mail): becomes the CloudEvent `subject` */
  sub?: string;
  /** the client concerned: the `subject` when there is no `sub`; always `data.clientId` */
  clientId?: string;
  /** who did it when not the user themself: an admin's `sub`, or "cli" */
  actor?: string;
  requestId?: string;
  /** a reason code, e.g. "account_threshold" */
  reason?: string;
  /** further fields; personal data and secrets are stripped (see redact) */
  data?: Record<string, unknown>;
}

export interface EventSpec extends EventFields { type: EventType }

/** filter for the audit log; results come newest first */
export interface AuditQuery {
  /** the event subject: an account sub or a client id */
  subject?: string;
  /** events about a client: subject or data.clientId */
  clientId?: string;
  /** an exact type, or a prefix ending in "." ("user.") */
  type?: string;
  /** data.actor */
  actor?: string;
  /** ISO-8601 times, inclusive */
  from?: string;
  to?: string;
  /** from the previous page */
  cursor?: string;
  /** 1..200, default 50 */
  limit?: number;
}

export interface AuditPage { items: CloudEvent[]; cursor?: string }

/** A sink delivers batches; what it could not deliver is tried again later by the publisher. */
export interface EventSink {
  readonly kind: string;
  /** resolves with the ids that were not delivered (all of them when it throws) */
  deliver(events: CloudEvent[]): Promise<string[]>;
  /** one cheap call that rejects when the sink cannot take events now (/readyz) */
  ping?(signal: AbortSignal): Promise<void>;
  close(): Promise<void>;
}

/** Keys that must never reach an event: personal data and secrets. */
const FORBIDDEN = /^(e-?mail|phone|phone_?number|name|given_?name|family_?name|password|secret|code|otp|token|address|birthdate|username|login|ip)$/i;

/** A value shaped like an e-mail address, under any key (e.g. an operator's free-text `--by`). */
const EMAIL_LIKE = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;
const emailLike = (v: unknown) => typeof v === 'string' && EMAIL_LIKE.test(v.trim());

export function redact(data: Record<string, unknown> | undefined): Record<string, unknown> | undefined {
  if (!data) return undefined;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(data)) {
    if (FORBIDDEN.test(k) || emailLike(v)) continue;
    if (Array.isArray(v)) out[k] = v.filter((x) => !emailLike(x));
    else out[k] = v && typeof v === 'object' ? redact(v as Record<string, unknown>) : v;
  }
  return out;
}

/** the events of a change: a spec, several, or a function giving them at the change's first write */
export type Specs = EventSpec | EventSpec[] | (() => EventSpec | EventSpec[]);

/** what the capabilities use of Events (src/events/index.ts) */
export interface EventRecorder {
  /** an event of its own, stored in the background */
  emit(type: EventType, fields?: EventFields): unknown;
  /** an event of its own, stored before it resolves */
  append(type: EventType, fields?: EventFields): Promise<unknown>;
  /** events stored with the state change `write` makes, or not at all when it fails */
  commit<T>(specs: Specs, write: () => Promise<T>, opts?: { onlyIfWritten?: boolean }): Promise<T>;
  /** commit() for a write that says whether it happened: false (a condition not met) records nothing */
  commitIf(specs: Specs, write: () => Promise<boolean>): Promise<boolean>;
}
