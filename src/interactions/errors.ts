// Typed interaction errors. They are thrown where they happen and turned into
// a page in one place (src/http/errors.ts).
export class InteractionError extends Error {
  readonly status: number;
  readonly code: string;
  /** ways on from the error page (e.g. back to sign-in) */
  readonly links: Array<{ href: string; text: string }>;
  constructor(status: number, code: string, message: string, links: Array<{ href: string; text: string }> = []) {
    super(message);
    this.status = status;
    this.code = code;
    this.links = links;
  }
}

/** A form post without a valid CSRF token. */
export class CsrfError extends InteractionError {
  override name = 'CsrfError';
  constructor() {
    super(403, 'invalid_request', 'This form has expired. Go back and try again.');
  }
}

/** Wrong identifier or password: one message for every cause. */
export class LoginFailed extends Error {
  override name = 'LoginFailed';
  static readonly MESSAGE = 'The email or password is incorrect.';
  constructor() {
    super(LoginFailed.MESSAGE);
  }
}

/**
 * The legacy password matched, but its source's sunset has passed: the user
 * must reset the password. Shown only after a match, so it tells nothing to
 * someone who does not know the password.
 */
export class LegacyPasswordRetired extends LoginFailed {
  override name = 'LegacyPasswordRetired';
  static readonly RETIRED_MESSAGE = 'This password can no longer be used to sign in. Please reset your password to continue.';
  constructor() {
    super();
    this.message = LegacyPasswordRetired.RETIRED_MESSAGE;
  }
}

/** A prompt we do not handle at this route. */
export class UnexpectedPrompt extends InteractionError {
  override name = 'UnexpectedPrompt';
  constructor(prompt: string) {
    super(400, 'invalid_request', `This step (${prompt}) does not belong here.`);
  }
}

/** A request with a method the route does not take (e.g. a GET on the abort URL, which only takes a form POST). */
export class MethodNotAllowed extends InteractionError {
  override name = 'MethodNotAllowed';
  constructor(message: string) {
    super(405, 'invalid_request', message);
  }
}
