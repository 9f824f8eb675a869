// The account page: self-service for two-step verification.
//
//   GET  /account                   status: authenticator app, recovery codes left, remembered devices
//   GET  /account/login             signs in (or again, ?reauth=1) through a normal authorization
//                                   request of the built-in first-party client `idp-account`
//   GET  /account/callback          the end of that request: back to /account
//   GET  /account/totp              set up (or replace) the authenticator app: QR code + secret
//   POST /account/totp              otp: confirm it; shows the new recovery codes once
//   POST /account/recovery          new recovery codes (the old set stops working); shown once
//   POST /account/devices/revoke    id=<device id> | all=1: forget remembered devices
//
// Who is signed in comes from oidc-provider's session cookie. Setting up,
// replacing or regenerating needs a recent sign-in (MFA_REAUTH_SECONDS) and,
// when the account already has an authenticator app, one with MFA
// (acr urn:idp:acr:mfa); otherwise the page sends the user through
// /account/login?reauth=1 (prompt=login, and acr_values urn:idp:acr:mfa when
// an app is enrolled). Revoking devices only reduces what the session can
// do, so any session may. Forms carry a CSRF token: HMAC of the session uid
// under a random secret in a signed, httpOnly, SameSite=Strict cookie.
import crypto from 'node:crypto';
import Router from '@koa/router';
import { bodyParser } from '@koa/bodyparser';
import type { Context } from 'koa';
import type Provider from 'oidc-provider';
import type { ClientMetadata } from 'oidc-provider';
import type { Views } from '../http/views.ts';
import type { AccountStore } from '../accounts/types.ts';
import { deviceId } from '../interactions/device.ts';
import { InteractionError } from '../interactions/errors.ts';
import { accountCsrfToken, accountSession, verifyAccountCsrf, type AccountPageSection, type AccountSession } from '../interactions/account-page.ts';
import type { MfaService } from './service.ts';
import { ACR_MFA, acrLevel } from './types.ts';

export const ACCOUNT_CLIENT_ID = 'idp-account';
const STATE_COOKIE = 'idp.account.state';

/** the static client of the account page (oidc-provider `clients`) */
export function accountClientMetadata(issuer: string): ClientMetadata {
  return {
    client_id: ACCOUNT_CLIENT_ID,
    client_name: 'Your account',
    token_endpoint_auth_method: 'none',
    grant_types: ['authorization_code'],
    response_types: ['code'],
    redirect_uris: [`${issuer}/account/callback`],
    first_party: true,
  };
}

export interface AccountPageDeps {
  provider: () => Provider;
  views: Views;
  accounts: AccountStore;
  mfa: MfaService;
  issuer: string;
  secureCookies: boolean;
  /** what other capabilities add to the page (e.g. linked sign-ins) */
  sections?: AccountPageSection[];
}

type Session = AccountSession;

const NEXT_PAGES = new Set(['/account', '/account/totp']);

export function accountRouter(deps: AccountPageDeps): Router {
  const router = new Router({ prefix: '/account' });
  const body = bodyParser({ enableTypes: ['form'], formLimit: '16kb' });
  const form = (ctx: Context) => ((ctx.request as unknown as { body?: Record<string, unknown> }).body ?? {});
  const { mfa } = deps;
  const cookieOpts = { signed: true, httpOnly: true, secure: deps.secureCookies, path: '/account', overwrite: true };

  router.use(async (ctx, next) => {
    ctx.set('Cache-Control', 'no-store');
    await next();
  });

  const session = (ctx: Context) => accountSession(deps.provider(), ctx);
  const csrf = (ctx: Context, s: Session) => accountCsrfToken(ctx, s, deps.secureCookies);
  const verifyCsrf = (ctx: Context, s: Session, submitted: unknown) => verifyAccountCsrf(ctx, s, submitted);

  /** recent enough to change factors: within MFA_REAUTH_SECONDS, and with MFA when an app is enrolled */
  async function fresh(s: Session & { accountId: string }): Promise<boolean> {
    const age = Math.floor(Date.now() / 1000) - (s.loginTs ?? 0);
    if (age > mfa.config.reauthSeconds) return false;
    return !(await mfa.hasTotp(s.accountId)) || acrLevel(s.acr) >= acrLevel(ACR_MFA);
  }

  const reauth = (ctx: Context, next: string) => {
    ctx.status = 303;
    ctx.redirect(`/account/login?reauth=1&next=${encodeURIComponent(next)}`);
  };

  async function requireSession(ctx: Context): Promise<(Session & { accountId: string }) | undefined> {
    const s = await session(ctx);
    if (!s) {
      ctx.status = 303;
      ctx.redirect('/account/login');
    }
    return s;
  }

  // the sections' notices are read per request: capabilities add their sections after this router is built
  const notices = (): Record<string, string> => Object.assign(Object.create(null) as Record<string, string>,
    { revoked: 'The device was forgotten.', 'revoked-all': 'All remembered devices were forgotten.', unlinked: 'The sign-in was removed from your account.' },
    ...(deps.sections ?? []).map((x) => x.notices ?? {}));

  router.get('/', async (ctx) => {
    const s = await session(ctx);
    ctx.type = 'html';
    if (!s) {
      ctx.body = await deps.views.page('account', { title: 'Your account', signedOut: true });
      return;
    }
    const [account, status, sections] = await Promise.all([
      deps.accounts.findBySub(s.accountId), mfa.status(s.accountId),
      Promise.all((deps.sections ?? []).map((x) => x.render(ctx, s))),
    ]);
    const here = mfa.currentDeviceId(deviceId(ctx));
    ctx.body = await deps.views.page('account', {
      title: 'Your account',
      display: account?.email ?? account?.phone ?? 'your account',
      csrf: csrf(ctx, s),
      totp: status.totp,
      recoveryRemaining: status.recoveryRemaining,
      devices: status.devices.map((d) => ({ id: d.id, label: d.label, createdAt: d.createdAt.slice(0, 10), expiresAt: new Date(d.expiresAt * 1000).toISOString().slice(0, 10), current: d.id === here })),
      sections,
      notice: typeof ctx.query.done === 'string' ? notices()[ctx.query.done] : undefined,
    });
  });

  router.get('/login', async (ctx) => {
    const s = await session(ctx);
    const next = typeof ctx.query.next === 'string' && NEXT_PAGES.has(ctx.query.next) ? ctx.query.next : '/account';
    const again = ctx.query.reauth === '1';
    const state = crypto.randomBytes(24).toString('base64url');
    const verifier = crypto.randomBytes(32).toString('base64url');
    ctx.cookies.set(STATE_COOKIE, JSON.stringify({ state, next }), { ...cookieOpts, sameSite: 'lax', maxAge: 15 * 60_000 });
    const params = new URLSearchParams({
      client_id: ACCOUNT_CLIENT_ID, response_type: 'code', scope: 'openid', state,
      redirect_uri: `${deps.issuer}/account/callback`,
      code_challenge: crypto.createHash('sha256').update(verifier).digest('base64url'), code_challenge_method: 'S256',
      ...(again ? { prompt: 'login' } : {}),
      ...(again && s && await mfa.hasTotp(s.accountId) ? { acr_values: ACR_MFA } : {}),
    });
    ctx.status = 303;
    ctx.redirect(`/auth?${params}`);
  });

  router.get('/callback', async (ctx) => {
    let saved: { state?: string; next?: string } = {};
    try {
      saved = JSON.parse(ctx.cookies.get(STATE_COOKIE, { signed: true }) ?? '{}');
    } catch { /* a broken cookie is no state */ }
    ctx.cookies.set(STATE_COOKIE, null, cookieOpts);
    if (!saved.state || ctx.query.state !== saved.state) throw new InteractionError(400, 'invalid_request', 'This sign-in link has expired. Open your account page again.');
    if (typeof ctx.query.error === 'string') {
      ctx.type = 'html';
      ctx.body = await deps.views.page('account', { title: 'Your account', signedOut: true, notice: 'The sign-in was cancelled.' });
      return;
    }
    // the session is what we use; the code is redeemed here so it is never left lying around
    if (typeof ctx.query.code === 'string') {
      const code = await deps.provider().AuthorizationCode.find(ctx.query.code);
      if (code?.clientId === ACCOUNT_CLIENT_ID) await code.consume();
    }
    ctx.status = 303;
    ctx.redirect(saved.next && NEXT_PAGES.has(saved.next) ? saved.next : '/account');
  });

  async function renderTotp(ctx: Context, s: Session & { accountId: string }, error?: string) {
    const account = await deps.accounts.findBySub(s.accountId);
    const setup = await mfa.totpSetup(s.accountId, `account:${s.uid}`, account?.email ?? account?.phone ?? s.accountId);
    ctx.type = 'html';
    ctx.body = await deps.views.page('account-totp', {
      title: 'Set up an authenticator app',
      action: '/account/totp', csrf: csrf(ctx, s), secret: setup.secret, qr: setup.qr,
      replacing: await mfa.hasTotp(s.accountId), error,
    });
  }

  router.get('/totp', async (ctx) => {
    const s = await requireSession(ctx);
    if (!s) return;
    if (!(await fresh(s))) return reauth(ctx, '/account/totp');
    await renderTotp(ctx, s);
  });

  router.post('/totp', body, async (ctx) => {
    const s = await requireSession(ctx);
    if (!s) return;
    verifyCsrf(ctx, s, form(ctx).csrf);
    if (!(await fresh(s))) return reauth(ctx, '/account/totp');
    const replace = await mfa.hasTotp(s.accountId);
    const codes = await mfa.confirmTotp(s.accountId, `account:${s.uid}`, form(ctx).otp, { replace, via: 'account' });
    if (!codes) {
      ctx.status = 400;
      return renderTotp(ctx, s, 'That code is not right. Check the time on your phone and enter the current code.');
    }
    ctx.type = 'html';
    ctx.body = await deps.views.page('mfa-recovery-codes', { title: 'Save your recovery codes', codes, backUrl: '/account' });
  });

  router.post('/recovery', body, async (ctx) => {
    const s = await requireSession(ctx);
    if (!s) return;
    verifyCsrf(ctx, s, form(ctx).csrf);
    if (!(await fresh(s))) return reauth(ctx, '/account');
    if (!(await mfa.hasTotp(s.accountId))) throw new InteractionError(400, 'invalid_request', 'Set up an authenticator app first: recovery codes come with it.');
    const codes = await mfa.regenerateRecoveryCodes(s.accountId, 'user');
    ctx.type = 'html';
    ctx.body = await deps.views.page('mfa-recovery-codes', { title: 'Your new recovery codes', codes, backUrl: '/account', regenerated: true });
  });

  router.post('/devices/revoke', body, async (ctx) => {
    const s = await requireSession(ctx);
    if (!s) return;
    const fields = form(ctx);
    verifyCsrf(ctx, s, fields.csrf);
    if (fields.all === '1') {
      await mfa.revokeAllDevices(s.accountId, 'user');
    } else if (typeof fields.id === 'string') {
      await mfa.revokeDevice(s.accountId, fields.id, 'user');
    }
    ctx.status = 303;
    ctx.redirect(`/account?done=${fields.all === '1' ? 'revoked-all' : 'revoked'}`);
  });

  return router;
}
