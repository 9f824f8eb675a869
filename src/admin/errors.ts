// What the admin service refuses, said once for its three front ends: the API
// turns these into RFC 9457 problem+json (api.ts), the console into a form
// message (console.ts), the CLI into a usage error (exit 2). Each names the
// field at fault when there is one; none carries personal data.

export class AdminError extends Error {
  override name = 'AdminError';
  readonly status: number;
  /** a short machine-readable kind: the problem type's last path segment */
  readonly kind: string;
  /** the input field at fault (query parameter, body property, form field) */
  readonly field?: string;

  constructor(status: number, kind: string, message: string, field?: string) {
    super(message);
    this.status = status;
    this.kind = kind;
    this.field = field;
  }
}

/** bad input: 400 (422 would do too; 400 is what the API documents) */
export class InvalidInput extends AdminError {
  constructor(field: string, message: string) {
    super(400, 'invalid-input', message, field);
  }
}

export class NotFound extends AdminError {
  constructor(message: string, field?: string) {
    super(404, 'not-found', message, field);
  }
}

export class Conflict extends AdminError {
  constructor(message: string, field?: string) {
    super(409, 'conflict', message, field);
  }
}

/** a limit on how often something may be done (e.g. reset codes an hour) */
export class TooMany extends AdminError {
  constructor(message: string, field?: string) {
    super(429, 'too-many-requests', message, field);
  }
}
