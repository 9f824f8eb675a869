// The admin console at /admin: server-rendered pages (views/admin-*.ejs) over
// the admin service (service.ts), working without JavaScript.
//
// Sign-in: the console is a first-party client of this IdP (`admin-console`,
// setup.ts): /admin/login sends the browser to /auth with PKCE (S256),
// state and nonce kept in a signed, httpOnly cookie; /admin/callback redeems
// the code right here, from the provider's own store (client, redirect URI,
// PKCE verifier, nonce, single use), so the console never calls itself over
// HTTP. The client's mfa_policy is `required`, so the login flow asks for a
// second factor (and sets one up) before it returns; the callback checks the
// code's amr says so (else sends the browser back for step-up, once), then
// that the account has the `admin` role (else 403). The console's own session
// is a signed, httpOnly, SameSite=Lax cookie on /admin holding the admin's
// sub, the sign-in time, the last request time and the CSRF token: it ends
// after ADMIN_SESSION_IDLE_SECONDS without a request (default 900) and
// ADMIN_SESSION_MAX_SECONDS after the sign-in. The role is checked again on
// every request. Every form carries the CSRF token, compared in constant time.
import crypto from 'node:crypto';
import Router from '@koa/router';
import { bodyParser } from '@koa/bodyparser';
import type { Context, Next } from 'koa';
import type Provider from 'oidc-provider';
import type { Views } from '../http/views.ts';
import { findKey } from '../http/i18n.ts';
import type { AdminConfig } from '../config/admin.ts';
import { ADMIN_CONSOLE_CLIENT, ADMIN_SCOPE_VALUES } from '../config/admin.ts';
import { ACR_MFA } from '../mfa/types.ts';
import { MFA_POLICIES } from '../mfa/types.ts';
import { AdminError } from './errors.ts';
import type { Actor, AdminService, ClientInput } from './service.ts';
import { consoleRedirectUri } from './setup.ts';

export interface ConsoleDeps {
  issuer: string;
  service: AdminService;
  provider: () => Provider;
  views: Views;
  secureCookies: boolean;
  admin: AdminConfig;
}

const SESSION = 'idp.admin';
const LOGIN = 'idp.admin.login';
/** second factors in an amr (the login flow adds "mfa" when one was used) */
const SECOND_FACTORS = ['mfa', 'otp', 'email', 'sms', 'hwk', 'swk'];

interface ConsoleSession { sub: string; at: number; seen: number; csrf: string }
interface LoginState { state: string; nonce: string; verifier: string; back: string; stepUp?: boolean }

const now = () => Math.floor(Date.now() / 1000);
const b64 = (v: unknown) => Buffer.from(JSON.stringify(v), 'utf8').toString('base64url');
function unb64<T>(v: string | undefined): T | undefined {
  if (!v) return undefined;
  try {
    return JSON.parse(Buffer.from(v, 'base64url').toString('utf8')) as T;
  } catch {
    return undefined;
  }
}
const safeBack = (v: unknown) => (typeof v === 'string' && /^\/admin(?:\/[\w\-./%?=&]*)?$/.test(v) && !v.includes('//') && !v.includes('..') ? v : '/admin');
const same = (a: string, b: unknown) => typeof b === 'string' && a.length === b.length && crypto.timingSafeEqual(Buffer.from(a), Buffer.from(b));

/** a message for a page: a catalogue text when the service's message is one, else the field named in a catalogue sentence */
function messageOf(err: AdminError): { error: string; field?: string } {
  if (findKey(err.message)) return { error: err.message, field: err.field };
  if (err.message.split(' ').length > 1) {
    // password policy refusals are several catalogue sentences
    const parts = err.message.match(/[^.!?]+[.!?]/g)?.map((s) => s.trim()) ?? [];
    if (parts.length && parts.every((p) => findKey(p))) return { error: parts[0], field: err.field };
  }
  switch (err.kind) {
    case 'not-found': return { error: 'Not found.', field: err.field };
    case 'conflict': return { error: 'This conflicts with what is stored already: {field}.', field: err.field };
    default: return { error: 'This value is not accepted: {field}.', field: err.field ?? 'client' };
  }
}

export function adminConsoleRouter(deps: ConsoleDeps): Router {
  const router = new Router({ prefix: '/admin' });
  const form = bodyParser({ enableTypes: ['form'], formLimit: '32kb' });
  const cookieOpts = { signed: true, httpOnly: true, sameSite: 'lax' as const, secure: deps.secureCookies, path: '/admin', overwrite: true };
  const redirectUri = consoleRedirectUri(deps.issuer);

  const render = async (ctx: Context, name: string, locals: Record<string, unknown>, status = 200) => {
    ctx.status = status;
    ctx.type = 'html';
    ctx.set('Cache-Control', 'no-store');
    ctx.body = await deps.views.page(name, { wide: true, header: 'Admin console', ...locals });
  };

  const denied = (ctx: Context, text: string) => render(ctx, 'admin-denied', { title: 'Access denied', text }, 403);

  function readSession(ctx: Context): ConsoleSession | undefined {
    const s = unb64<ConsoleSession>(ctx.cookies.get(SESSION, { signed: true }));
    if (!s || typeof s.sub !== 'string' || typeof s.csrf !== 'string') return undefined;
    const t = now();
    if (t - s.seen > deps.admin.sessionIdleSeconds || t - s.at > deps.admin.sessionMaxSeconds) return undefined;
    return s;
  }

  /** every page but the sign-in: a live console session of an admin */
  const requireAdmin = async (ctx: Context, next: Next) => {
    const s = readSession(ctx);
    if (!s) {
      ctx.cookies.set(SESSION, null, cookieOpts);
      ctx.status = 303;
      ctx.redirect(`/admin/login?back=${encodeURIComponent(ctx.method === 'GET' ? ctx.originalUrl : '/admin')}`);
      return;
    }
    if (!(await deps.service.isAdmin(s.sub))) {
      ctx.cookies.set(SESSION, null, cookieOpts);
      return denied(ctx, 'Your account is not an administrator of this service.');
    }
    s.seen = now();
    ctx.cookies.set(SESSION, b64(s), cookieOpts);
    ctx.state.admin = s;
    return next();
  };

  const actorOf = (ctx: Context): Actor => ({ id: (ctx.state.admin as ConsoleSession).sub, requestId: ctx.state.requestId });
  const csrfOf = (ctx: Context) => (ctx.state.admin as ConsoleSession).csrf;

  /** POSTed forms: the body, and the CSRF token checked */
  const posted = async (ctx: Context, next: Next) => {
    await form(ctx, async () => {});
    const body = ((ctx.request as { body?: Record<string, unknown> }).body ?? {}) as Record<string, unknown>;
    if (!same(csrfOf(ctx), body.csrf)) return render(ctx, 'admin-denied', { title: 'Access denied', text: 'This form has expired. Go back and try again.' }, 403);
    ctx.state.form = body;
    return next();
  };
  const formOf = (ctx: Context) => ctx.state.form as Record<string, unknown>;

  // ---- sign-in ----

  router.get('/login', async (ctx) => {
    if (readSession(ctx)) return ctx.redirect(safeBack(ctx.query.back));
    const st: LoginState = { state: crypto.randomBytes(16).toString('base64url'), nonce: crypto.randomBytes(16).toString('base64url'), verifier: crypto.randomBytes(32).toString('base64url'), back: safeBack(ctx.query.back) };
    return startLogin(ctx, st);
  });

  function startLogin(ctx: Context, st: LoginState) {
    ctx.cookies.set(LOGIN, b64(st), { ...cookieOpts, maxAge: 600_000 });
    const u = new URL('/auth', deps.issuer);
    u.search = new URLSearchParams({
      client_id: ADMIN_CONSOLE_CLIENT, response_type: 'code', scope: 'openid', redirect_uri: redirectUri, state: st.state, nonce: st.nonce,
      code_challenge: crypto.createHash('sha256').update(st.verifier).digest('base64url'), code_challenge_method: 'S256',
      ...(st.stepUp ? { acr_values: ACR_MFA } : {}),
    }).toString();
    ctx.status = 303;
    ctx.redirect(u.pathname + u.search);
  }

  router.get('/callback', async (ctx) => {
    const st = unb64<LoginState>(ctx.cookies.get(LOGIN, { signed: true }));
    ctx.cookies.set(LOGIN, null, cookieOpts);
    const q = ctx.query;
    if (!st || typeof q.state !== 'string' || !same(st.state, q.state)) return denied(ctx, 'This sign-in has expired. Start again from the admin console.');
    if (typeof q.error === 'string') return denied(ctx, 'The sign-in did not complete.');
    if (typeof q.code !== 'string' || q.code.length > 500) return denied(ctx, 'The sign-in did not complete.');
    const code = await deps.provider().AuthorizationCode.find(q.code);
    const challenge = crypto.createHash('sha256').update(st.verifier).digest('base64url');
    if (!code || !code.isValid || code.clientId !== ADMIN_CONSOLE_CLIENT || code.redirectUri !== redirectUri || code.codeChallengeMethod !== 'S256'
      || code.codeChallenge !== challenge || code.nonce !== st.nonce || !code.accountId) {
      return denied(ctx, 'The sign-in did not complete.');
    }
    await code.consume();
    const sub = code.accountId;
    const amr = Array.isArray(code.amr) ? code.amr : [];
    if (!amr.some((m) => SECOND_FACTORS.includes(m))) {
      // a second factor is required: once more through the login, asking for it (step-up)
      if (!st.stepUp) return startLogin(ctx, { ...st, state: crypto.randomBytes(16).toString('base64url'), stepUp: true });
      return denied(ctx, 'The admin console needs a sign-in with a second factor.');
    }
    if (!(await deps.service.isAdmin(sub))) return denied(ctx, 'Your account is not an administrator of this service.');
    const t = now();
    ctx.cookies.set(SESSION, b64({ sub, at: t, seen: t, csrf: crypto.randomBytes(24).toString('base64url') } satisfies ConsoleSession), cookieOpts);
    ctx.status = 303;
    ctx.redirect(safeBack(st.back));
  });

  router.post('/logout', requireAdmin, posted, async (ctx) => {
    ctx.cookies.set(SESSION, null, cookieOpts);
    return render(ctx, 'message', { title: 'Signed out', heading: 'You are signed out of the admin console', text: 'You can close this window.' });
  });

  // ---- pages ----

  const fail = async (ctx: Context, err: unknown, again: () => Promise<void>) => {
    if (!(err instanceof AdminError)) throw err;
    ctx.state.problem = messageOf(err);
    ctx.state.problemStatus = err.status;
    await again();
  };
  const problemLocals = (ctx: Context) => (ctx.state.problem ? { error: (ctx.state.problem as { error: string }).error, field: (ctx.state.problem as { field?: string }).field } : {});

  router.get('/', requireAdmin, (ctx) => render(ctx, 'admin-home', { title: 'Admin console', csrf: csrfOf(ctx) }));

  // users
  const usersPage = async (ctx: Context, q: string) => {
    let users: unknown[] | undefined;
    if (q) {
      try {
        users = await deps.service.findUsers(q.includes('@') ? { email: q } : { phone: q });
      } catch (err) {
        if (!(err instanceof AdminError)) throw err;
        return render(ctx, 'admin-users', { title: 'Users', csrf: csrfOf(ctx), q, ...messageOf(err) }, 400);
      }
    }
    return render(ctx, 'admin-users', { title: 'Users', csrf: csrfOf(ctx), q, users, ...problemLocals(ctx), notice: ctx.query.done === 'created' ? 'The user was created.' : undefined }, ctx.state.problemStatus ?? 200);
  };
  router.get('/users', requireAdmin, (ctx) => usersPage(ctx, typeof ctx.query.q === 'string' ? ctx.query.q.trim() : ''));
  router.post('/users', requireAdmin, posted, async (ctx) => {
    const f = formOf(ctx);
    try {
      const u = await deps.service.createUser({ email: f.email, password: f.password, name: f.name, emailVerified: f.emailVerified === 'on' }, actorOf(ctx));
      ctx.status = 303;
      return ctx.redirect(`/admin/users/${encodeURIComponent(u.sub)}?done=created`);
    } catch (err) {
      return fail(ctx, err, () => usersPage(ctx, ''));
    }
  });

  const NOTICES: Record<string, string> = {
    created: 'The user was created.', disabled: 'The user is disabled.', enabled: 'The user is enabled.', unlocked: 'The user is unlocked.',
    password: 'The password was set.', 'reset-sent': 'A password reset code was sent to the user\'s e-mail address.', 'mfa-reset': 'Two-step verification was reset.', 'devices-revoked': 'Remembered devices were forgotten.',
    revoked: 'The session was revoked.', erased: 'The user was erased.', merged: 'The accounts were merged.', unmerged: 'The merge was undone.',
    unlinked: 'The sign-in from the other service was unlinked.',
  };

  const userPage = async (ctx: Context, sub: string) => {
    const reveal = ctx.query.reveal === '1';
    let user;
    try {
      user = await deps.service.getUser(sub, actorOf(ctx), { reveal });
    } catch (err) {
      if (err instanceof AdminError && err.status === 404) return render(ctx, 'admin-denied', { title: 'Not found', heading: 'Not found', text: 'There is no such user.' }, 404);
      throw err;
    }
    const sessions = (await deps.service.sessions(sub, { limit: 200 })).items;
    const done = typeof ctx.query.done === 'string' ? NOTICES[ctx.query.done] : undefined;
    return render(ctx, 'admin-user', { title: 'User', csrf: csrfOf(ctx), user, sessions, reveal, notice: done, ...problemLocals(ctx) }, ctx.state.problemStatus ?? 200);
  };
  router.get('/users/:sub', requireAdmin, (ctx) => userPage(ctx, ctx.params.sub));

  const ACTIONS: Record<string, (sub: string, f: Record<string, unknown>, a: Actor) => Promise<unknown>> = {
    disable: (sub, _f, a) => deps.service.setDisabled(sub, true, a),
    enable: (sub, _f, a) => deps.service.setDisabled(sub, false, a),
    unlock: (sub, _f, a) => deps.service.unlock(sub, a),
    password: (sub, f, a) => deps.service.setPassword(sub, f.password, a),
    'password-reset': (sub, _f, a) => deps.service.sendPasswordReset(sub, a),
    'mfa-reset': (sub, _f, a) => deps.service.resetMfa(sub, a),
    merge: (sub, f, a) => deps.service.merge(sub, f.from, a),
    'devices-revoke': (sub, _f, a) => deps.service.revokeDevices(sub, a),
    unlink: (sub, f, a) => deps.service.unlinkFederated(sub, f.link, a),
  };
  const DONE: Record<string, string> = { unlink: 'unlinked', merge: 'merged', disable: 'disabled', enable: 'enabled', unlock: 'unlocked', password: 'password', 'password-reset': 'reset-sent', 'mfa-reset': 'mfa-reset', 'devices-revoke': 'devices-revoked' };

  router.post('/users/:sub/erase', requireAdmin, posted, async (ctx) => {
    const sub = ctx.params.sub;
    if (formOf(ctx).confirm !== sub) {
      ctx.state.problem = { error: 'Type the user id to confirm.', field: 'confirm' };
      ctx.state.problemStatus = 400;
      return userPage(ctx, sub);
    }
    try {
      await deps.service.erase(sub, actorOf(ctx));
    } catch (err) {
      return fail(ctx, err, () => userPage(ctx, sub));
    }
    ctx.status = 303;
    return ctx.redirect('/admin/users?done=erased');
  });

  router.post('/users/:sub/sessions/:kind/:id/revoke', requireAdmin, posted, async (ctx) => {
    const { sub, kind, id } = ctx.params;
    try {
      await deps.service.revokeSession(sub, kind, id, actorOf(ctx));
    } catch (err) {
      return fail(ctx, err, () => userPage(ctx, sub));
    }
    ctx.status = 303;
    return ctx.redirect(`/admin/users/${encodeURIComponent(sub)}?done=revoked`);
  });

  router.post('/merges/:id/undo', requireAdmin, posted, async (ctx) => {
    const back = typeof formOf(ctx).sub === 'string' ? String(formOf(ctx).sub) : '';
    try {
      const rec = await deps.service.unmerge(ctx.params.id, actorOf(ctx));
      ctx.status = 303;
      return ctx.redirect(`/admin/users/${encodeURIComponent(rec.into)}?done=unmerged`);
    } catch (err) {
      if (!(err instanceof AdminError)) throw err;
      if (back) return fail(ctx, err, () => userPage(ctx, back));
      return render(ctx, 'admin-denied', { title: 'Not possible', heading: 'Not possible', ...messageOf(err), text: messageOf(err).error }, err.status);
    }
  });

  router.post('/users/:sub/:action', requireAdmin, posted, async (ctx) => {
    const { sub, action } = ctx.params;
    const run = Object.hasOwn(ACTIONS, action) ? ACTIONS[action] : undefined;
    if (!run) return render(ctx, 'admin-denied', { title: 'Not found', heading: 'Not found', text: 'There is no such page.' }, 404);
    try {
      await run(sub, formOf(ctx), actorOf(ctx));
    } catch (err) {
      return fail(ctx, err, () => userPage(ctx, sub));
    }
    ctx.status = 303;
    return ctx.redirect(`/admin/users/${encodeURIComponent(sub)}?done=${DONE[action]}`);
  });

  // clients
  router.get('/clients', requireAdmin, async (ctx) => {
    const page = await deps.service.listClients({ cursor: ctx.query.cursor, limit: 100 }).catch((err: unknown) => {
      if (err instanceof AdminError) return { items: [], cursor: undefined };
      throw err;
    });
    const done = ctx.query.done === 'deleted' ? 'The client was deleted.' : undefined;
    return render(ctx, 'admin-clients', { title: 'Clients', csrf: csrfOf(ctx), clients: page.items, cursor: page.cursor, notice: done });
  });

  const clientForm = (ctx: Context, client: Record<string, unknown> | undefined, values: Record<string, unknown>, status = 200) => render(ctx, 'admin-client', {
    title: client ? 'Edit client' : 'New client', csrf: csrfOf(ctx), client, values, policies: MFA_POLICIES, adminScopes: ADMIN_SCOPE_VALUES,
    notice: ctx.query.done === 'updated' ? 'The client was saved.' : undefined, ...problemLocals(ctx),
  }, ctx.state.problemStatus ?? status);

  /** the form's fields as the service takes them (checkboxes: absent = false) */
  const clientInput = (f: Record<string, unknown>, adding: boolean): ClientInput => {
    const lines = (v: unknown) => (typeof v === 'string' ? v.split(/\s+/).filter(Boolean) : []);
    const scopes = ([] as unknown[]).concat(f.admin_scopes ?? []).filter((s): s is string => typeof s === 'string');
    return {
      ...(adding ? { client_id: f.client_id, public: f.public === 'on' } : {}),
      client_name: f.client_name, redirect_uris: lines(f.redirect_uris), post_logout_redirect_uris: lines(f.post_logout_redirect_uris),
      grant_types: ([] as unknown[]).concat(f.grant_types ?? []).filter((g): g is string => typeof g === 'string'),
      first_party: f.first_party === 'on', mfa_policy: f.mfa_policy ?? '', logo_uri: f.logo_uri ?? '', policy_uri: f.policy_uri ?? '', tos_uri: f.tos_uri ?? '',
      admin_scopes: scopes,
    };
  };

  router.get('/clients/new', requireAdmin, (ctx) => clientForm(ctx, undefined, { grant_types: ['authorization_code', 'refresh_token'] }));
  router.post('/clients', requireAdmin, posted, async (ctx) => {
    const f = formOf(ctx);
    try {
      const r = await deps.service.createClient(clientInput(f, true), actorOf(ctx));
      return render(ctx, 'admin-secret', { title: 'Client created', csrf: csrfOf(ctx), clientId: r.client.client_id, secret: r.client_secret, created: true }, 201);
    } catch (err) {
      const values = { ...f, grant_types: ([] as unknown[]).concat(f.grant_types ?? []), admin_scopes: ([] as unknown[]).concat(f.admin_scopes ?? []) };
      return fail(ctx, err, () => clientForm(ctx, undefined, values));
    }
  });
  router.get('/clients/:id', requireAdmin, async (ctx) => {
    let c;
    try {
      c = await deps.service.getClient(ctx.params.id);
    } catch (err) {
      if (err instanceof AdminError && err.status === 404) return render(ctx, 'admin-denied', { title: 'Not found', heading: 'Not found', text: 'There is no such client.' }, 404);
      throw err;
    }
    return clientForm(ctx, c, { ...c, admin_scopes: String(c.admin_scopes ?? '').split(' ').filter(Boolean) });
  });
  router.post('/clients/:id', requireAdmin, posted, async (ctx) => {
    const id = ctx.params.id;
    const f = formOf(ctx);
    try {
      await deps.service.updateClient(id, clientInput(f, false), actorOf(ctx));
    } catch (err) {
      const c = await deps.service.getClient(id).catch(() => undefined);
      if (!c) return render(ctx, 'admin-denied', { title: 'Not found', heading: 'Not found', text: 'There is no such client.' }, 404);
      return fail(ctx, err, () => clientForm(ctx, c, { ...f, grant_types: ([] as unknown[]).concat(f.grant_types ?? []), admin_scopes: ([] as unknown[]).concat(f.admin_scopes ?? []) }));
    }
    ctx.status = 303;
    return ctx.redirect(`/admin/clients/${encodeURIComponent(id)}?done=updated`);
  });
  router.post('/clients/:id/secret', requireAdmin, posted, async (ctx) => {
    try {
      const r = await deps.service.rotateClientSecret(ctx.params.id, actorOf(ctx));
      return render(ctx, 'admin-secret', { title: 'New client secret', csrf: csrfOf(ctx), clientId: r.client_id, secret: r.client_secret, created: false });
    } catch (err) {
      if (!(err instanceof AdminError)) throw err;
      return render(ctx, 'admin-denied', { title: 'Not possible', heading: 'Not possible', text: messageOf(err).error, field: messageOf(err).field }, err.status);
    }
  });
  router.post('/clients/:id/delete', requireAdmin, posted, async (ctx) => {
    const id = ctx.params.id;
    if (formOf(ctx).confirm !== 'on') {
      ctx.state.problem = { error: 'Tick the box to confirm the deletion.', field: 'confirm' };
      ctx.state.problemStatus = 400;
      const c = await deps.service.getClient(id).catch(() => undefined);
      if (!c) return render(ctx, 'admin-denied', { title: 'Not found', heading: 'Not found', text: 'There is no such client.' }, 404);
      return clientForm(ctx, c, { ...c, admin_scopes: String(c.admin_scopes ?? '').split(' ').filter(Boolean) });
    }
    try {
      await deps.service.deleteClient(id, actorOf(ctx));
    } catch (err) {
      if (!(err instanceof AdminError)) throw err;
      return render(ctx, 'admin-denied', { title: 'Not possible', heading: 'Not possible', text: messageOf(err).error, field: messageOf(err).field }, err.status);
    }
    ctx.status = 303;
    return ctx.redirect('/admin/clients?done=deleted');
  });

  // keys
  router.get('/keys', requireAdmin, async (ctx) => render(ctx, 'admin-keys', {
    title: 'Keys', csrf: csrfOf(ctx), keys: await deps.service.listKeys(), algs: deps.service.deps.keyring.algs,
    notice: ctx.query.done === 'rotated' ? 'New keys were made.' : undefined, ...problemLocals(ctx),
  }, ctx.state.problemStatus ?? 200));
  router.post('/keys/rotate', requireAdmin, posted, async (ctx) => {
    try {
      await deps.service.rotateKeys({ alg: formOf(ctx).alg || undefined }, actorOf(ctx));
    } catch (err) {
      if (!(err instanceof AdminError)) throw err;
      return render(ctx, 'admin-denied', { title: 'Not possible', heading: 'Not possible', ...messageOf(err), text: messageOf(err).error }, err.status);
    }
    ctx.status = 303;
    return ctx.redirect('/admin/keys?done=rotated');
  });

  // federation connections, resource servers, legacy migration (read-only)
  router.get('/connections', requireAdmin, async (ctx) => render(ctx, 'admin-connections', { title: 'Connections', csrf: csrfOf(ctx), connections: await deps.service.listConnections() }));
  router.get('/resources', requireAdmin, async (ctx) => render(ctx, 'admin-resources', { title: 'Resource servers', csrf: csrfOf(ctx), resources: await deps.service.listResources() }));
  router.get('/migration', requireAdmin, async (ctx) => render(ctx, 'admin-migration', { title: 'Legacy migration', csrf: csrfOf(ctx), status: await deps.service.migrationStatus() }));

  // audit
  router.get('/audit', requireAdmin, async (ctx) => {
    const pick = (k: string) => (typeof ctx.query[k] === 'string' && ctx.query[k] !== '' ? ctx.query[k] as string : undefined);
    const filters = { subject: pick('subject'), clientId: pick('clientId'), type: pick('type'), actor: pick('actor'), from: pick('from'), to: pick('to') };
    try {
      const page = await deps.service.audit({ ...filters, cursor: pick('cursor'), limit: 50 });
      const next = page.cursor ? `/admin/audit?${new URLSearchParams({ ...Object.fromEntries(Object.entries(filters).filter(([, v]) => v)) as Record<string, string>, cursor: page.cursor })}` : undefined;
      return render(ctx, 'admin-audit', { title: 'Audit log', csrf: csrfOf(ctx), filters, events: page.items, next });
    } catch (err) {
      if (!(err instanceof AdminError)) throw err;
      return render(ctx, 'admin-audit', { title: 'Audit log', csrf: csrfOf(ctx), filters, events: [], ...messageOf(err) }, 400);
    }
  });

  return router;
}
