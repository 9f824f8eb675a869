// What an error page says to people. Our own errors (InteractionError) are
// written for people already; protocol errors (oidc-provider's, the
// authorization request's) are told in plain words by their code, and their
// protocol wording (error, error_description) stays on the page under
// "Details for developers". The sentences are catalogue keys (i18n.ts).

export interface ErrorText {
  heading: string;
  /** the sentence for people */
  message: string;
  /** the protocol description, for developers (absent when the message is it) */
  protocol?: string;
}

const BY_CODE: Record<string, string> = {
  invalid_client: 'This application is not registered here, or its sign-in settings are wrong. Please tell the people who run the application.',
  invalid_redirect_uri: 'This application asked to send you back to an address it has not registered. Please tell the people who run the application.',
  unauthorized_client: 'This application may not sign you in this way. Please tell the people who run the application.',
  unsupported_response_type: 'This application may not sign you in this way. Please tell the people who run the application.',
  unsupported_response_mode: 'This application may not sign you in this way. Please tell the people who run the application.',
  invalid_scope: 'This application asked for something this service does not offer. Please tell the people who run the application.',
  invalid_target: 'This application asked for something this service does not offer. Please tell the people who run the application.',
  invalid_request_object: 'The application sent a sign-in request we cannot accept. Go back to the application and try again.',
  invalid_request_uri: 'The application sent a sign-in request we cannot accept. Go back to the application and try again.',
  request_not_supported: 'The application sent a sign-in request we cannot accept. Go back to the application and try again.',
  invalid_request: 'The application sent a sign-in request we cannot accept. Go back to the application and try again.',
  access_denied: 'The sign-in was cancelled or refused.',
  login_required: 'You need to sign in again. Go back to the application and start again.',
  consent_required: 'You need to sign in again. Go back to the application and start again.',
  interaction_required: 'You need to sign in again. Go back to the application and start again.',
  account_selection_required: 'You need to sign in again. Go back to the application and start again.',
  invalid_grant: 'This sign-in has expired or was already used. Go back to the application and start again.',
  invalid_token: 'This sign-in has expired or was already used. Go back to the application and start again.',
  temporarily_unavailable: 'The service is temporarily unavailable. Please try again in a moment.',
  server_error: 'Something went wrong on our side. Please try again in a moment.',
  not_found: 'There is no page at this address. Check the address, or start from the application you were using.',
};

const SESSION_GONE = 'This sign-in page has expired, or was opened in another browser. Go back to the application and start again.';
const DEFAULT = 'Something went wrong. Go back to the application and try again.';

/**
 * The page's words for an error. `human`: the description was written for
 * people (ours); otherwise it is protocol wording, kept for developers.
 */
export function errorText(code: unknown, description: unknown, status: unknown, human = false): ErrorText {
  const s = Number(status);
  const c = typeof code === 'string' && code !== '' ? code : 'server_error';
  const d = typeof description === 'string' && description !== '' ? description : undefined;
  const heading = s === 503 ? 'The service is temporarily unavailable — please try again in a moment'
    : s === 404 ? 'Page not found' : 'Something went wrong';
  if (human && d) return { heading, message: d };
  // a lost or foreign interaction cookie: the commonest error a person meets
  const message = d && /session|cookie|interaction/i.test(d) && (c === 'invalid_request' || c === 'session_not_found') ? SESSION_GONE
    : BY_CODE[c] ?? (s === 404 ? BY_CODE.not_found : DEFAULT);
  return { heading, message, ...(d ? { protocol: d } : {}) };
}
