// The one place where errors from our own routes become responses. Typed
// errors carry their status and code; storage outages are 503
// temporarily_unavailable; anything else is a generic 500 with the request id,
// logged in full but never shown. Our errors are written for people; the
// page tells protocol errors in plain words and keeps their wording for
// developers (error-text.ts). What was refused and why is not logged here:
// it is noted (src/logging/failure.ts) and written in the request's one log
// line (app.ts), with the reference id the page shows.
import type { Context, Next } from 'koa';
import { clientIdParam, noteFailure, oauthReason } from '../logging/failure.ts';
import type { Views } from './views.ts';
import { InteractionError } from '../interactions/errors.ts';
import { isUnavailable } from '../provider/errors.ts';

interface Rendered { status: number; error: string; description: string; links?: Array<{ href: string; text: string }>; human?: boolean }

/** a request body that cannot be read: an unknown Content-Encoding, a broken gzip/deflate stream, a body too large or malformed */
function bodyError(err: unknown): Rendered | undefined {
  const e = err as { type?: string; code?: unknown; message?: unknown };
  if (e?.type === 'encoding.unsupported' || (typeof e?.message === 'string' && e.message.startsWith('Unsupported Content-Encoding'))) {
    return { status: 415, error: 'invalid_request', description: 'The request body is in an encoding we do not accept.' };
  }
  if (e?.type === 'charset.unsupported') return { status: 415, error: 'invalid_request', description: 'The request body is in a character set we do not accept.' };
  if (e?.type === 'entity.too.large') return { status: 413, error: 'invalid_request', description: 'The request body is too large.' };
  if ((typeof e?.code === 'string' && e.code.startsWith('Z_')) || e?.type === 'entity.parse.failed' || e?.type === 'request.aborted' || e?.type === 'request.size.invalid') {
    return { status: 400, error: 'invalid_request', description: 'The request body could not be read.' };
  }
  return undefined;
}

function classify(err: unknown): Rendered {
  const body = bodyError(err);
  if (body) return body;
  if (isUnavailable(err)) {
    return { status: 503, error: 'temporarily_unavailable', description: 'The service is temporarily unavailable. Please try again in a moment.', human: true };
  }
  if (err instanceof InteractionError) return { status: err.status, error: err.code, description: err.message, links: err.links, human: true };
  const e = err as { expose?: boolean; status?: number; error?: string; error_description?: string; message?: string };
  if (e?.expose && e.status && e.status < 500) {
    // oidc-provider errors (SessionNotFound...) and Koa's http errors
    return { status: e.status, error: e.error ?? 'invalid_request', description: e.error_description ?? e.message ?? 'invalid request' };
  }
  return { status: 500, error: 'server_error', description: 'Something went wrong on our side. Please try again in a moment.', human: true };
}

export function errorMiddleware(views: Views) {
  return async (ctx: Context, next: Next) => {
    try {
      await next();
    } catch (err) {
      const r = classify(err);
      const e = err as Error | undefined;
      noteFailure(ctx.state, {
        error: r.error,
        // our refusal reason as the page tells it; a server error's own message stays in the log only
        reason: r.status >= 500 ? e?.message : (r.human ? r.description : oauthReason(err) ?? r.description),
        clientId: (ctx.oidc as { client?: { clientId?: string } } | undefined)?.client?.clientId ?? (ctx.state.clientId as string | undefined) ?? clientIdParam(ctx.query.client_id),
        err: r.status >= 500 ? { name: e?.name, message: e?.message, stack: e?.stack } : { name: e?.name },
      });
      ctx.status = r.status;
      if (r.status === 503) ctx.set('Retry-After', '5');
      if (ctx.accepts('json', 'html') === 'html') {
        ctx.type = 'html';
        ctx.body = await views.page('error', {
          title: r.status === 503 ? 'Temporarily unavailable' : 'Error',
          error: r.error, description: r.description, human: r.human === true, requestId: ctx.state.requestId, status: r.status, links: r.links ?? [],
        });
      } else {
        ctx.body = { error: r.error, error_description: r.description };
      }
    }
  };
}
