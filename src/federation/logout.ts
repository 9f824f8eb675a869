// Upstream logout. RP-initiated logout ends our session (oidc-provider's
// /session/end); when the sign-in came through a connection with
// `upstreamLogout`, the browser then visits that upstream's end-session
// endpoint (with the upstream's ID token as id_token_hint) and comes back to
// /federation/logout, which sends it on to where our logout was going (the
// RP's post_logout_redirect_uri, already checked by oidc-provider).
//
// What it needs travels in two signed, httpOnly cookies, not in storage:
// `idp.fedlogout` (path /session/end: only our end-session endpoints see it)
// holds the connection and the upstream ID token from the sign-in;
// `idp.fedreturn` (path /federation/logout) holds the state and where to go after.
import crypto from 'node:crypto';
import type { Context, Middleware } from 'koa';
import Router from '@koa/router';
import type { Logger } from '../logging/index.ts';
import type { Views } from '../http/views.ts';
import type { Connection } from './types.ts';
import type { ConnectionStore } from './connections.ts';

const SIGNIN_COOKIE = 'idp.fedlogout';
const RETURN_COOKIE = 'idp.fedreturn';

export interface UpstreamLogoutDeps {
  connections: ConnectionStore;
  endSessionUrl(c: Connection, p: { idTokenHint?: string; postLogoutRedirectUri?: string; state?: string }): Promise<URL | undefined>;
  views: Views;
  log: Logger;
  issuer: string;
  secureCookies: boolean;
  /** our session's lifetime: the sign-in cookie lives as long */
  sessionSeconds: number;
}

export function upstreamLogout(deps: UpstreamLogoutDeps) {
  const opts = (path: string) => ({ signed: true, httpOnly: true, secure: deps.secureCookies, sameSite: 'lax' as const, path, overwrite: true });

  /** after a federated sign-in through a connection with upstreamLogout */
  function remember(ctx: Context, c: Connection, idToken: string | undefined): void {
    if (!c.upstreamLogout) return;
    ctx.cookies.set(SIGNIN_COOKIE, Buffer.from(JSON.stringify({ c: c.id, t: idToken })).toString('base64url'), { ...opts('/session/end'), maxAge: deps.sessionSeconds * 1000 });
  }

  /** around oidc-provider: when a logout confirmation ended the session, go by the upstream first */
  const middleware: Middleware = async (ctx, next) => {
    await next();
    if (ctx.method !== 'POST' || ctx.path !== '/session/end/confirm' || ctx.status < 300 || ctx.status >= 400) return;
    const raw = ctx.cookies.get(SIGNIN_COOKIE, { signed: true });
    if (!raw) return;
    const ended = (ctx.response.get('set-cookie') as unknown as string[] | string | undefined);
    const cookies = Array.isArray(ended) ? ended : ended ? [ended] : [];
    // only when oidc-provider really ended the session (its cookie cleared), not when the user chose to stay
    if (!cookies.some((c) => /^idp\.session=;/.test(c) && /expires=Thu, 01 Jan 1970/i.test(c))) return;
    ctx.cookies.set(SIGNIN_COOKIE, '', { ...opts('/session/end'), maxAge: 0 });
    try {
      const { c: id, t: idToken } = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8')) as { c?: string; t?: string };
      const c = typeof id === 'string' ? await deps.connections.get(id) : undefined;
      if (!c?.upstreamLogout) return;
      const state = crypto.randomBytes(24).toString('base64url');
      const url = await deps.endSessionUrl(c, { idTokenHint: idToken, postLogoutRedirectUri: `${deps.issuer}/federation/logout`, state });
      if (!url) return;
      ctx.cookies.set(RETURN_COOKIE, Buffer.from(JSON.stringify({ s: state, to: ctx.response.get('location') })).toString('base64url'), { ...opts('/federation/logout'), maxAge: 10 * 60_000 });
      ctx.redirect(url.href);
    } catch (err) {
      // the local logout is done either way
      deps.log.warn({ requestId: ctx.state.requestId, event: 'federation.logout.failed', err: { name: (err as Error).name, message: (err as Error).message } }, 'upstream logout skipped');
    }
  };

  const router = new Router({ prefix: '/federation' });
  router.get('/logout', async (ctx) => {
    ctx.set('Cache-Control', 'no-store');
    const raw = ctx.cookies.get(RETURN_COOKIE, { signed: true });
    ctx.cookies.set(RETURN_COOKIE, '', { ...opts('/federation/logout'), maxAge: 0 });
    let saved: { s?: string; to?: string } = {};
    try {
      saved = raw ? JSON.parse(Buffer.from(raw, 'base64url').toString('utf8')) : {};
    } catch { /* no saved return */ }
    if (saved.s && saved.to && ctx.query.state === saved.s) {
      ctx.status = 303;
      ctx.redirect(saved.to);
      return;
    }
    ctx.type = 'html';
    ctx.body = await deps.views.page('message', { title: 'Signed out', heading: 'You are signed out', text: 'You can close this window.' });
  });

  return { remember, middleware, router };
}
