// Self-service pages inside a login (docs/lockout.md, "Pages"), all under
// /interaction/:uid/ so they share the interaction's CSRF protection and lead
// back into the sign-in:
//
//   GET/POST /unlock, POST /unlock/verify   "Locked out? Unlock by e-mail"
//   GET/POST /reset,  POST /reset/verify    "Forgot your password?" (e-mailed code + new password)
//   GET      /reset/code                    "I already have a code" (one an admin sent, or an earlier one)
//   GET/POST /change                        change the password (current one + new one), then signed in
//   POST     /password                      the forced change of an expired password, after a right one
//
// The forced change is a step of the login flow (`password-expiry`,
// src/interactions/flow.ts): after a right password that has expired, or a
// legacy password that matched but fails today's policy (the password
// strategy leaves the step a note, LEGACY_PASSWORD_POLICY), the step answers
// with the change page, and the change goes on with the steps after it
// (linking, MFA). The change page ends the same way.
//
// Asking for a code always shows the same page, whether or not the address
// names an account, and whether or not that account is locked; the code is
// sent in the background, so the answer takes the same time. A code goes only
// to the account's own verified e-mail address, as typed.
import { currentInteraction, type Details } from '../interactions/current.ts';
import Router from '@koa/router';
import { bodyParser } from '@koa/bodyparser';
import type { Context } from 'koa';
import type { Logger } from '../logging/index.ts';
import type { Views } from '../http/views.ts';
import type { Account, AccountStore } from '../accounts/types.ts';
import { ConcurrentUpdate, isValidEmail, normalizeEmail } from '../accounts/types.ts';
import type { PasswordHasher } from '../accounts/hasher.ts';
import type { MessageSender } from '../events/messages.ts';
import { csrfToken, verifyCsrf } from '../interactions/csrf.ts';
import { LoginFailed, UnexpectedPrompt } from '../interactions/errors.ts';
import { deviceId, ensureDeviceId } from '../interactions/device.ts';
import type { Authenticated } from '../interactions/strategies/types.ts';
import type { LoginFlow, LoginLink, LoginStep } from '../interactions/flow.ts';
import { POLICY_MESSAGES, type PasswordPolicy } from '../passwords/policy.ts';
import { keys } from './counters.ts';
import type { CodePurpose, OneTimeCodes } from './codes.ts';
import type { CodeSender } from './code-sender.ts';
import type { DynamoLoginGuard, EventsLike } from './guard.ts';
import { TRY_LATER, type Attempt } from '../interactions/guard.ts';

export interface SelfServiceDeps {
  /** the login flow: its password strategy checks the current password, and a change goes on with its steps */
  flow: LoginFlow;
  views: Views;
  accounts: AccountStore;
  hasher: PasswordHasher;
  guard: DynamoLoginGuard;
  codes: OneTimeCodes;
  /** sends a code to an account's verified address (code-sender.ts) */
  sender: CodeSender;
  policy: PasswordPolicy;
  messages: MessageSender;
  events: EventsLike;
  log: Logger;
  identifierHash(login: string): string;
  secureCookies: boolean;
  /** PASSWORD_MAX_AGE_SECONDS (0 = passwords do not expire) */
  maxAgeSeconds: number;
}

/** the id of the forced-change step in the login flow */
export const PASSWORD_EXPIRY_STEP = 'password-expiry';

export const SELF_SERVICE_MESSAGES = {
  codeSent: 'If an account uses this address, we have sent a code to it. Enter the code below.',
  badCode: 'The code is wrong or has expired. Check the latest message, or ask for a new code.',
  unlocked: 'Your account is unlocked. You can sign in again.',
  passwordChanged: 'Your password is changed. Sign in with the new password.',
  expired: 'Your password has expired. Choose a new one to continue.',
  weak: 'Your password does not meet our password rules any more. Choose a new one to continue.',
  badEmail: 'Enter the e-mail address of your account.',
  conflict: 'Your account changed meanwhile. Please try again.',
} as const;

const EXPIRED_COOKIE = 'idp.pwexpired';

interface Pending { uid: string; sub: string; amr: string[]; exp: number }

export function selfServiceRouter(deps: SelfServiceDeps): Router & { step: LoginStep; links(uid: string): LoginLink[] } {
  const router = new Router({ prefix: '/interaction' });
  const body = bodyParser({ enableTypes: ['form'], formLimit: '16kb' });
  const form = (ctx: Context) => ((ctx.request as unknown as { body?: Record<string, unknown> }).body ?? {});
  const str = (v: unknown, max = 1024) => (typeof v === 'string' ? v.slice(0, max) : '');
  const minutes = Math.round(deps.codes.opts.ttlSeconds / 60);

  router.use(async (ctx, next) => {
    ctx.set('Cache-Control', 'no-store');
    await next();
  });

  const loginDetails = (ctx: Context): Promise<Details> => currentInteraction(deps.flow.provider(), ctx, 'login');

  const back = (uid: string) => [{ href: `/interaction/${uid}`, text: 'Back to sign in' }];

  async function page(ctx: Context, uid: string, locals: Record<string, unknown>, status = 200) {
    ctx.status = status;
    ctx.type = 'html';
    ctx.body = await deps.views.page('form', { csrf: csrfToken(ctx, uid, deps.secureCookies), links: back(uid), ...locals, title: locals.heading });
  }

  const attemptOf = (ctx: Context, kind: Attempt['kind'], login?: string): Attempt => ({
    kind, ip: ctx.ip, login: login || undefined, deviceId: deviceId(ctx), requestId: ctx.state.requestId as string | undefined,
  });

  /** the account an address names, when a code may go to it */
  async function codeTarget(email: string): Promise<Account | undefined> {
    if (!isValidEmail(email)) return undefined;
    const account = await deps.accounts.findByLogin(email);
    if (!account || account.status !== 'active' || !account.emailVerified || account.email !== normalizeEmail(email)) return undefined;
    return account;
  }

  const pkFor = async (email: string) => {
    const account = isValidEmail(email) ? await deps.accounts.findByLogin(email) : undefined;
    return { account, pk: account ? keys.account(account.sub) : keys.identifier(deps.identifierHash(email || '-')) };
  };

  /** a login whose password is new: the steps after the forced change (linking, MFA), then signed in */
  const finishLogin = (ctx: Context, details: Details, who: Authenticated) => deps.flow.proceed(ctx, details, who, { after: PASSWORD_EXPIRY_STEP });

  /** policy problems of a new password for this account, reuse included */
  async function problems(account: Account, password: string, confirm: string, login?: string): Promise<string[]> {
    if (password !== confirm) return [POLICY_MESSAGES.mismatch];
    const out = await deps.policy.problems(password, {
      email: account.email, phone: account.phone, name: account.name, givenName: account.givenName, familyName: account.familyName, login,
    });
    if (out.length === 0 && await deps.policy.reused(password, account.passwordHash, await deps.accounts.passwordHistory(account.sub))) out.push(POLICY_MESSAGES.reused);
    return out;
  }

  async function setPassword(account: Account, password: string, reason: 'change' | 'reset' | 'expired', requestId?: string): Promise<void> {
    const hash = await deps.hasher.hash(password);
    await deps.events.commit({ type: reason === 'reset' ? 'password.reset' : 'password.changed', sub: account.sub, reason, requestId },
      () => deps.accounts.changePassword(account.sub, hash, { keepHistory: deps.policy.opts.history, expectedVersion: account.version }));
  }

  const newPasswordFields = [
    { name: 'password', label: 'New password', type: 'password', autocomplete: 'new-password', hint: deps.policy.hint },
    { name: 'confirm', label: 'New password again', type: 'password', autocomplete: 'new-password' },
  ];

  // ---- codes: unlock and reset ----

  const CODE_PAGES: Record<CodePurpose, { heading: string; text: string; template: string }> = {
    unlock: { heading: 'Unlock your account', text: 'Too many wrong attempts can lock an account for a while. We can send a code to your e-mail address to unlock it now.', template: 'unlock-code' },
    reset: { heading: 'Reset your password', text: 'We will send a code to your e-mail address. With it you can choose a new password.', template: 'password-reset' },
  };

  const emailField = (value: string) => ({ name: 'email', label: 'E-mail address', type: 'email', autocomplete: 'username', inputmode: 'email', value });
  const codeField = { name: 'code', label: 'Code', type: 'text', autocomplete: 'one-time-code', inputmode: 'numeric' };

  function requestPage(ctx: Context, uid: string, purpose: CodePurpose, extra: Record<string, unknown> = {}, status = 200) {
    const p = CODE_PAGES[purpose];
    return page(ctx, uid, {
      heading: p.heading, text: p.text, action: `/interaction/${uid}/${purpose}`, submit: 'Send code',
      fields: [emailField(str(extra.email, 320))],
      ...(purpose === 'reset' ? { links: [{ href: `/interaction/${uid}/reset/code`, text: 'I already have a code' }, ...back(uid)] } : {}),
      ...extra,
    }, status);
  }

  function verifyPage(ctx: Context, uid: string, purpose: CodePurpose, email: string, extra: Record<string, unknown> = {}, status = 200) {
    return page(ctx, uid, {
      heading: CODE_PAGES[purpose].heading, notice: SELF_SERVICE_MESSAGES.codeSent, text: `The code expires ${minutes} minutes after it was sent.`,
      action: `/interaction/${uid}/${purpose}/verify`, hidden: { email },
      fields: purpose === 'reset' ? [codeField, ...newPasswordFields] : [codeField],
      submit: purpose === 'reset' ? 'Set new password' : 'Unlock',
      links: [{ href: `/interaction/${uid}/${purpose}`, text: 'Send a new code' }, ...back(uid)],
      ...extra,
    }, status);
  }

  // a code the user already holds (an admin sent it, or an earlier request): the address is typed here
  router.get('/:uid/reset/code', async (ctx) => {
    const details = await loginDetails(ctx);
    await page(ctx, details.uid, {
      heading: CODE_PAGES.reset.heading, text: 'Enter your e-mail address, the code from our message, and a new password.',
      action: `/interaction/${details.uid}/reset/verify`, fields: [emailField(''), codeField, ...newPasswordFields], submit: 'Set new password',
      links: [{ href: `/interaction/${details.uid}/reset`, text: 'Send a new code' }, ...back(details.uid)],
    });
  });

  for (const purpose of ['unlock', 'reset'] as const) {
    router.get(`/:uid/${purpose}`, async (ctx) => {
      const details = await loginDetails(ctx);
      await requestPage(ctx, details.uid, purpose);
    });

    router.post(`/:uid/${purpose}`, body, async (ctx) => {
      const details = await loginDetails(ctx);
      const fields = form(ctx);
      verifyCsrf(ctx, details.uid, fields.csrf);
      const email = str(fields.email, 320).trim();
      if (!isValidEmail(email)) return requestPage(ctx, details.uid, purpose, { email, error: SELF_SERVICE_MESSAGES.badEmail }, 400);
      // every request counts on the IP (mail bombing, probing); nothing says what happened
      const decision = await deps.guard.check(attemptOf(ctx, purpose));
      if (!decision.allowed) return requestPage(ctx, details.uid, purpose, { email, error: TRY_LATER }, 429);
      // Whether the address names an account is looked up only after the answer
      // has gone: a known address (pointer, record, its data key) and an unknown
      // one (pointer only) do the same work before answering, so neither the page
      // nor its time tells them apart.
      const requestId = ctx.state.requestId as string | undefined;
      ctx.res.once('finish', () => {
        void (async () => {
          const account = await codeTarget(email);
          if (!account) return;
          if (await deps.sender.send(account, purpose, CODE_PAGES[purpose].template) === 'limited') {
            deps.log.info({ requestId, sub: account.sub, purpose }, 'code not sent: hourly limit reached');
          }
        })().catch((err: unknown) => deps.log.error({ requestId, purpose, err: { name: (err as Error).name, message: (err as Error).message } }, 'code not sent'));
      });
      await verifyPage(ctx, details.uid, purpose, email);
    });
  }

  router.post('/:uid/unlock/verify', body, async (ctx) => {
    const details = await loginDetails(ctx);
    const fields = form(ctx);
    verifyCsrf(ctx, details.uid, fields.csrf);
    const email = str(fields.email, 320).trim();
    const attempt = attemptOf(ctx, 'unlock');
    const decision = await deps.guard.check(attempt);
    if (!decision.allowed) return verifyPage(ctx, details.uid, 'unlock', email, { error: TRY_LATER }, 429);
    const { account, pk } = await pkFor(email);
    if (!(await deps.codes.verify(pk, 'unlock', str(fields.code, 32), true)) || !account) {
      await deps.guard.failed(attempt);
      return verifyPage(ctx, details.uid, 'unlock', email, { error: SELF_SERVICE_MESSAGES.badCode, notice: undefined }, 401);
    }
    attempt.accountId = account.sub;
    await deps.guard.succeeded(attempt);
    await deps.guard.unlock(account.sub, 'self_service', attempt.requestId);
    await page(ctx, details.uid, { heading: 'Account unlocked', text: SELF_SERVICE_MESSAGES.unlocked });
  });

  router.post('/:uid/reset/verify', body, async (ctx) => {
    const details = await loginDetails(ctx);
    const fields = form(ctx);
    verifyCsrf(ctx, details.uid, fields.csrf);
    const email = str(fields.email, 320).trim();
    const password = str(fields.password);
    const confirm = str(fields.confirm);
    if (password !== confirm) return verifyPage(ctx, details.uid, 'reset', email, { error: POLICY_MESSAGES.mismatch, notice: undefined }, 400);
    const attempt = attemptOf(ctx, 'reset');
    const decision = await deps.guard.check(attempt);
    if (!decision.allowed) return verifyPage(ctx, details.uid, 'reset', email, { error: TRY_LATER }, 429);
    const { account, pk } = await pkFor(email);
    const code = str(fields.code, 32);
    // the code first: only its holder learns whether the password fits the account
    if (!(await deps.codes.verify(pk, 'reset', code, false)) || !account) {
      await deps.guard.failed(attempt);
      return verifyPage(ctx, details.uid, 'reset', email, { error: SELF_SERVICE_MESSAGES.badCode, notice: undefined }, 401);
    }
    const bad = await problems(account, password, confirm, email);
    if (bad.length > 0) return verifyPage(ctx, details.uid, 'reset', email, { errors: bad, notice: undefined }, 400);
    if (!(await deps.codes.verify(pk, 'reset', code, true))) {
      await deps.guard.failed(attempt);
      return verifyPage(ctx, details.uid, 'reset', email, { error: SELF_SERVICE_MESSAGES.badCode, notice: undefined }, 401);
    }
    try {
      await setPassword(account, password, 'reset', attempt.requestId);
    } catch (err) {
      if (!(err instanceof ConcurrentUpdate)) throw err;
      return requestPage(ctx, details.uid, 'reset', { email, error: SELF_SERVICE_MESSAGES.conflict }, 409);
    }
    attempt.accountId = account.sub;
    await deps.guard.succeeded(attempt);
    // the holder of the mailbox chose a new password: the failures of before do not count
    await deps.guard.unlock(account.sub, 'password_reset', attempt.requestId);
    await page(ctx, details.uid, { heading: 'Password changed', text: SELF_SERVICE_MESSAGES.passwordChanged });
  });

  // ---- change: current password + new one ----

  function changePage(ctx: Context, uid: string, extra: Record<string, unknown> = {}, status = 200) {
    return page(ctx, uid, {
      heading: 'Change your password', action: `/interaction/${uid}/change`, submit: 'Change password and sign in',
      fields: [
        { name: 'login', label: 'Email or phone', type: 'text', autocomplete: 'username', inputmode: 'email', value: str(extra.login, 320) },
        { name: 'current', label: 'Current password', type: 'password', autocomplete: 'current-password' },
        ...newPasswordFields,
      ],
      ...extra,
    }, status);
  }

  router.get('/:uid/change', async (ctx) => {
    const details = await loginDetails(ctx);
    await changePage(ctx, details.uid);
  });

  router.post('/:uid/change', body, async (ctx) => {
    const details = await loginDetails(ctx);
    const fields = form(ctx);
    verifyCsrf(ctx, details.uid, fields.csrf);
    const login = str(fields.login, 320).trim();
    const password = str(fields.password);
    const confirm = str(fields.confirm);
    if (password !== confirm) return changePage(ctx, details.uid, { login, error: POLICY_MESSAGES.mismatch }, 400);
    const attempt = attemptOf(ctx, 'password', login);
    const decision = await deps.guard.check(attempt);
    if (!decision.allowed) return changePage(ctx, details.uid, { login, error: TRY_LATER }, 429);
    let who: Authenticated;
    try {
      const password = deps.flow.strategy('password');
      if (!password?.authenticate) throw new UnexpectedPrompt('change your password');
      who = await password.authenticate(ctx, { login, password: str(fields.current) });
    } catch (err) {
      if (!(err instanceof LoginFailed)) throw err;
      await deps.guard.failed(attempt);
      return changePage(ctx, details.uid, { login, error: LoginFailed.MESSAGE }, 401);
    }
    attempt.accountId = who.accountId;
    attempt.deviceId = ensureDeviceId(ctx, deps.secureCookies);
    await deps.guard.succeeded(attempt);
    const account = await deps.accounts.findBySub(who.accountId);
    if (!account) throw new LoginFailed();
    const bad = await problems(account, password, confirm, login);
    if (bad.length > 0) return changePage(ctx, details.uid, { login, errors: bad }, 400);
    try {
      await setPassword(account, password, 'change', attempt.requestId);
    } catch (err) {
      if (!(err instanceof ConcurrentUpdate)) throw err;
      return changePage(ctx, details.uid, { login, error: SELF_SERVICE_MESSAGES.conflict }, 409);
    }
    await finishLogin(ctx, details, who);
  });

  // ---- forced change of an expired password ----

  function readPending(ctx: Context, uid: string): Pending | undefined {
    const raw = ctx.cookies.get(EXPIRED_COOKIE, { signed: true });
    if (!raw) return undefined;
    try {
      const p = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8')) as Pending;
      return p.uid === uid && typeof p.sub === 'string' && Array.isArray(p.amr) && p.exp > Date.now() ? p : undefined;
    } catch {
      return undefined;
    }
  }

  function expiredPage(ctx: Context, uid: string, extra: Record<string, unknown> = {}, status = 200) {
    return page(ctx, uid, {
      heading: 'Choose a new password', notice: SELF_SERVICE_MESSAGES.expired, action: `/interaction/${uid}/password`,
      fields: newPasswordFields, submit: 'Change password and continue', links: [], abortUrl: `/interaction/${uid}/abort`,
      ...extra,
    }, status);
  }

  router.post('/:uid/password', body, async (ctx) => {
    const details = await loginDetails(ctx);
    const fields = form(ctx);
    verifyCsrf(ctx, details.uid, fields.csrf);
    const pending = readPending(ctx, details.uid);
    if (!pending) throw new UnexpectedPrompt('password change');
    const account = await deps.accounts.findBySub(pending.sub);
    if (!account) throw new UnexpectedPrompt('password change');
    const password = str(fields.password);
    const bad = await problems(account, password, str(fields.confirm));
    if (bad.length > 0) return expiredPage(ctx, details.uid, { errors: bad, notice: undefined }, 400);
    try {
      await setPassword(account, password, 'expired', ctx.state.requestId as string | undefined);
    } catch (err) {
      if (!(err instanceof ConcurrentUpdate)) throw err;
      return expiredPage(ctx, details.uid, { error: SELF_SERVICE_MESSAGES.conflict, notice: undefined }, 409);
    }
    ctx.cookies.set(EXPIRED_COOKIE, '', { signed: true, httpOnly: true, secure: deps.secureCookies, sameSite: 'strict', path: '/interaction', maxAge: 0, overwrite: true });
    await finishLogin(ctx, details, { accountId: pending.sub, amr: pending.amr });
  });

  return Object.assign(router, {
    links: (uid: string) => [
      { href: `/interaction/${uid}/reset`, text: 'Forgot your password?' },
      { href: `/interaction/${uid}/unlock`, text: 'Locked out? Unlock by e-mail' },
      { href: `/interaction/${uid}/change`, text: 'Change your password' },
    ],
    /** after a right password: an expired one, or a legacy one that fails the policy, must be changed before the login completes */
    step: {
      id: PASSWORD_EXPIRY_STEP,
      async run(ctx: Context, details: Details, who: Authenticated) {
        // only a password sign-in can find its password expired or weak
        if (!who.amr.includes('pwd')) return { done: true };
        const note = who.pending?.step === PASSWORD_EXPIRY_STEP ? who.pending.data : undefined;
        const weak = note?.reason === 'policy' ? note : undefined;
        if (!weak) {
          if (deps.maxAgeSeconds <= 0) return { done: true };
          // the strategy read it (and wrote it, for a legacy login) moments ago
          const account = who.account ?? await deps.accounts.findBySub(who.accountId);
          if (!account) return { done: true };
          const since = Date.parse(account.passwordChangedAt ?? account.createdAt);
          if (!(Date.now() - since > deps.maxAgeSeconds * 1000)) return { done: true };
        }
        const pending: Pending = { uid: details.uid, sub: who.accountId, amr: who.amr, exp: Date.now() + 15 * 60_000 };
        ctx.cookies.set(EXPIRED_COOKIE, Buffer.from(JSON.stringify(pending)).toString('base64url'), {
          signed: true, httpOnly: true, secure: deps.secureCookies, sameSite: 'strict', path: '/interaction', maxAge: 15 * 60_000, overwrite: true,
        });
        const requestId = ctx.state.requestId as string | undefined;
        if (weak) {
          await deps.events.append('password.weak', { sub: who.accountId, requestId, data: { source: weak.source } });
          await expiredPage(ctx, details.uid, { notice: SELF_SERVICE_MESSAGES.weak, errors: Array.isArray(weak.problems) ? weak.problems : [] });
        } else {
          await deps.events.append('password.expired', { sub: who.accountId, requestId });
          await expiredPage(ctx, details.uid);
        }
        return { done: false };
      },
    } satisfies LoginStep,
  });
}
