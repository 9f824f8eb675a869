// The second factor: the last step of the login flow (src/interactions/flow.ts).
// After the first factor, the step decides whether MFA is needed: the client asked for urn:idp:acr:mfa (step-up), or its policy
// wants it (required; new_device on a device that is not remembered;
// optional with an authenticator app enrolled), unless the first factor was
// already multi-factor (an upstream IdP whose MFA its connection trusts:
// amr has `mfa`). If not, the login finishes with acr urn:idp:acr:pwd. If so, a flow item records the proven first
// factor for this interaction and the browser goes to /interaction/:uid/mfa:
//
//   GET  /interaction/:uid/mfa           the challenge (and the enrolment when no app is set up)
//   POST /interaction/:uid/mfa/totp      otp from the authenticator app
//   POST /interaction/:uid/mfa/recovery  otp = one recovery code
//   POST /interaction/:uid/mfa/send      channel = email | sms: send a 6-digit code
//   POST /interaction/:uid/mfa/code      otp = that code
//   POST /interaction/:uid/mfa/enrol     otp from the app being set up; shows the recovery codes once
//   POST /interaction/:uid/mfa/continue  after the recovery codes: finish the login
//
// Every code check asks the LoginGuard first and reports a wrong code to it,
// so failed MFA codes count towards the lockout policy. The interaction
// cookie binds the flow to this browser (interactionDetails checks it), and
// the CSRF token to this interaction.
import { currentInteraction } from '../interactions/current.ts';
import Router from '@koa/router';
import { bodyParser } from '@koa/bodyparser';
import type { Context } from 'koa';
import type { Views } from '../http/views.ts';
import type { AccountStore, Account } from '../accounts/types.ts';
import { TRY_LATER, type Attempt } from '../interactions/guard.ts';
import type { Details } from '../interactions/current.ts';
import type { LoginFlow, LoginStep } from '../interactions/flow.ts';
import { csrfToken, verifyCsrf } from '../interactions/csrf.ts';
import { deviceId, ensureDeviceId } from '../interactions/device.ts';
import { InteractionError, UnexpectedPrompt } from '../interactions/errors.ts';
import { maskEmail, maskPhone } from '../interactions/mask.ts';
import type { Authenticated } from '../interactions/strategies/types.ts';
import type { MfaEvents, MfaService } from './service.ts';
import { flowPk, type FlowItem } from './store.ts';
import {
  ACR_MFA, ACR_PWD, MfaCodeRejected, effectivePolicy, mfaAmr, requestsMfa, type MfaMethod, type MfaPolicy,
} from './types.ts';

export interface MfaInteractionDeps {
  /** the login flow: its provider, its guard (every code check asks it), and where a proven factor goes on */
  flow: LoginFlow;
  views: Views;
  accounts: AccountStore;
  mfa: MfaService;
  events: MfaEvents;
  secureCookies: boolean;
}

/** whether a login needs the second step, and why (what afterFirstFactor records in the flow) */
export interface MfaDecision {
  need: boolean;
  policy: MfaPolicy;
  stepUp: boolean;
}

class MfaUnavailable extends InteractionError {
  override name = 'MfaUnavailable';
  constructor() {
    super(403, 'access_denied', 'This application needs a second sign-in step, and no method for it is available on your account. Contact support.');
  }
}


/** the step of the login flow (its id: `mfa`) */
export function mfaLoginStep(deps: MfaInteractionDeps): LoginStep {
  const { mfa } = deps;
  // reads only what the policy asks: nothing for off, required or a step-up
  async function decide(ctx: Context, details: Details, who: Authenticated): Promise<MfaDecision> {
    const client = await deps.flow.provider().Client.find(String(details.params.client_id));
    const policy = effectivePolicy(client?.metadata().mfa_policy, mfa.config.policy);
    const stepUp = requestsMfa(details.params);
    let need: boolean;
    if (stepUp || policy === 'required') need = true;
    else if (policy === 'new_device') need = !(await mfa.isRemembered(who.accountId, deviceId(ctx)));
    else if (policy === 'optional') need = await mfa.hasTotp(who.accountId);
    else need = false;
    return { need, policy, stepUp };
  }
  return {
    id: 'mfa',
    prepare: (ctx, details, who) => (who.amr.includes('mfa') ? Promise.resolve(undefined) : decide(ctx, details, who)),
    // A login result without MFA says under which policy that was decided
    // (`mfaChecked`), so the resume of this authorization need not ask again
    // (policy.ts, needsMfaPrompt).
    async run(ctx, details, who, prepared) {
      // the first factor was multi-factor already (a trusted upstream's MFA); it also lifts a lock by strangers
      if (who.amr.includes('mfa')) {
        if (who.secondFactor) await deps.flow.guard.clearedBySecondFactor(who.accountId, ctx.state.requestId as string | undefined);
        return { done: true, result: { acr: ACR_MFA } };
      }
      const clientId = String(details.params.client_id);
      const decided = await ((prepared as Promise<MfaDecision> | undefined) ?? decide(ctx, details, who));
      const { policy, stepUp } = decided;
      // an account locked by strangers' failures: a second factor whatever the policy (guard.ts, Decision.secondFactor)
      const unlock = who.secondFactor !== undefined;
      const need = decided.need || unlock;
      if (!need) return { done: true, result: { acr: ACR_PWD, mfaChecked: policy } };

      const now = Math.floor(Date.now() / 1000);
      const flow: FlowItem = {
        pk: flowPk(details.uid), sk: '_', uid: details.uid, sub: who.accountId, amr: who.amr, clientId, policy, stepUp,
        offerRemember: policy === 'new_device' && mfa.config.rememberDays > 0,
        ...(unlock ? { unlock: true } : {}),
        sends: 0, createdAt: new Date().toISOString(),
        expiresAt: typeof details.exp === 'number' && details.exp > now ? details.exp : now + 3600,
      };
      await mfa.store.putFlow(flow);
      ctx.status = 303;
      ctx.redirect(`/interaction/${details.uid}/mfa`);
      return { done: false };
    },
  };
}

interface ChallengeExtra {
  error?: string;
  /** the channel a code was just sent to (shows the code form) */
  sent?: 'email' | 'sms';
  status?: number;
}

export function mfaInteractionRouter(deps: MfaInteractionDeps): Router {
  const router = new Router({ prefix: '/interaction' });
  const body = bodyParser({ enableTypes: ['form'], formLimit: '16kb' });
  const form = (ctx: Context) => ((ctx.request as unknown as { body?: Record<string, unknown> }).body ?? {});
  const { mfa } = deps;

  router.use(async (ctx, next) => {
    ctx.set('Cache-Control', 'no-store');
    await next();
  });

  /** the interaction (this browser's, at the login prompt) and its MFA flow; undefined after redirecting to the start */
  async function load(ctx: Context): Promise<{ details: Details; flow: FlowItem; account: Account } | undefined> {
    const details = await currentInteraction(deps.flow.provider(), ctx, 'login');
    const flow = await mfa.store.getFlow(details.uid);
    const account = flow ? await deps.accounts.findBySub(flow.sub) : undefined;
    if (!flow || !account || account.status !== 'active') {
      // no password step behind this (or it expired): start over
      ctx.status = 303;
      ctx.redirect(`/interaction/${details.uid}`);
      return undefined;
    }
    return { details, flow, account };
  }

  async function withForm(ctx: Context): Promise<{ details: Details; flow: FlowItem; account: Account; fields: Record<string, unknown> } | undefined> {
    const l = await load(ctx);
    if (!l) return undefined;
    const fields = form(ctx);
    verifyCsrf(ctx, l.details.uid, fields.csrf);
    return { ...l, fields };
  }

  // a lock's second factor may always use the verified address or number: it proves the owner, not a policy
  const channels = (account: Account, flow?: FlowItem) => ({
    email: (mfa.config.methods.includes('email') || flow?.unlock) && account.email && account.emailVerified ? account.email : undefined,
    sms: (mfa.config.methods.includes('sms') || flow?.unlock) && account.phone && account.phoneVerified ? account.phone : undefined,
  });

  async function renderChallenge(ctx: Context, details: Details, flow: FlowItem, account: Account, extra: ChallengeExtra = {}) {
    const hasTotp = await mfa.hasTotp(flow.sub);
    // never an enrolment to lift a lock: whoever has the password could enrol an app of their own
    const canEnrol = !flow.unlock && !hasTotp && mfa.config.methods.includes('totp');
    const ch = channels(account, flow);
    if (!hasTotp && !canEnrol && !ch.email && !ch.sms) throw flow.unlock ? new InteractionError(429, 'access_denied', TRY_LATER) : new MfaUnavailable();
    const client = await deps.flow.provider().Client.find(flow.clientId);
    const setup = canEnrol ? await mfa.totpSetup(flow.sub, `login:${flow.uid}`, account.email ?? account.phone ?? flow.sub) : undefined;
    const base = `/interaction/${details.uid}/mfa`;
    ctx.status = extra.status ?? 200;
    ctx.type = 'html';
    ctx.body = await deps.views.page('mfa', {
      title: canEnrol ? 'Set up two-step verification' : 'Two-step verification',
      base,
      csrf: csrfToken(ctx, details.uid, deps.secureCookies),
      clientName: client?.clientName ?? flow.clientId,
      abortUrl: `/interaction/${details.uid}/abort`,
      totp: hasTotp,
      setup: setup ? { secret: setup.secret, qr: setup.qr } : undefined,
      email: ch.email ? maskEmail(ch.email) : undefined,
      sms: ch.sms ? maskPhone(ch.sms) : undefined,
      sent: extra.sent && ch[extra.sent] ? { channel: extra.sent, to: extra.sent === 'email' ? maskEmail(ch.email!) : maskPhone(ch.sms!) } : undefined,
      minutes: Math.max(1, Math.round(mfa.config.codeTtlSeconds / 60)),
      offerRemember: flow.offerRemember,
      rememberDays: mfa.config.rememberDays,
      error: extra.error,
    });
  }

  const attempt = (ctx: Context, flow: FlowItem): Attempt => ({ kind: 'mfa', ip: ctx.ip, accountId: flow.sub, deviceId: deviceId(ctx) });

  /** asks the guard, runs the check, reports the outcome; a refusal is rendered and returns false */
  // a permanent lock has no meaningful wait: say "later", as the password form does
  function tooMany(reason: string, retryAfterSeconds: number): string {
    if (reason === 'permanent_lock' || retryAfterSeconds > 24 * 3600) return TRY_LATER;
    return `Too many attempts. Try again in ${Math.max(1, Math.ceil(retryAfterSeconds / 60))} minutes.`;
  }

  async function guarded(ctx: Context, details: Details, flow: FlowItem, account: Account, method: MfaMethod, check: () => Promise<boolean | string>, extra: ChallengeExtra = {}): Promise<boolean> {
    const a = attempt(ctx, flow);
    const decision = await deps.flow.guard.check(a);
    if (!decision.allowed) {
      await deps.events.append('mfa.failed', { sub: flow.sub, clientId: flow.clientId, reason: decision.reason, data: { method } });
      await renderChallenge(ctx, details, flow, account, { ...extra, status: 429, error: tooMany(decision.reason, decision.retryAfterSeconds) });
      return false;
    }
    const r = await check();
    if (r === true) {
      await deps.flow.guard.succeeded(a);
      return true;
    }
    const after = await deps.flow.guard.failed(a);
    await deps.events.append('mfa.failed', { sub: flow.sub, clientId: flow.clientId, reason: after.allowed ? 'wrong_code' : after.reason, data: { method } });
    const error = !after.allowed
      ? tooMany(after.reason, after.retryAfterSeconds)
      : typeof r === 'string' ? r : 'That code is not right, or it was already used.';
    await renderChallenge(ctx, details, flow, account, { ...extra, status: after.allowed ? 401 : 429, error });
    return false;
  }

  /** the second factor is proven: remember the device when asked, then finish the login with acr mfa */
  async function complete(ctx: Context, details: Details, flow: FlowItem, method: MfaMethod, remember: boolean) {
    if (remember && flow.offerRemember) {
      await mfa.rememberDevice(flow.sub, ensureDeviceId(ctx, deps.secureCookies), ctx.get('user-agent'));
    }
    await mfa.store.deleteFlow(flow.uid);
    if (flow.unlock) {
      // the owner proved password and second factor from this browser: the lock goes, and the browser is known from now on
      const requestId = ctx.state.requestId as string | undefined;
      await deps.flow.guard.clearedBySecondFactor(flow.sub, requestId);
      await deps.flow.guard.succeeded({ kind: 'password', ip: ctx.ip, accountId: flow.sub, deviceId: ensureDeviceId(ctx, deps.secureCookies), requestId });
    }
    await deps.events.append('mfa.succeeded', { sub: flow.sub, clientId: flow.clientId, data: { method, stepUp: flow.stepUp, ...(flow.unlock ? { unlock: true } : {}) } });
    await deps.flow.proceed(ctx, details, { accountId: flow.sub, amr: mfaAmr(flow.amr, method) }, { after: 'mfa', result: { acr: ACR_MFA } });
  }

  const wantsRemember = (fields: Record<string, unknown>) => fields.remember === '1' || fields.remember === 'on';

  router.get('/:uid/mfa', async (ctx) => {
    const l = await load(ctx);
    if (!l) return;
    // the factor was proven and the recovery codes shown: a reload finishes the login
    if (l.flow.verified) return complete(ctx, l.details, l.flow, l.flow.verified.method, l.flow.verified.remember);
    await renderChallenge(ctx, l.details, l.flow, l.account);
  });

  router.post('/:uid/mfa/totp', body, async (ctx) => {
    const l = await withForm(ctx);
    if (!l) return;
    const ok = await guarded(ctx, l.details, l.flow, l.account, 'totp', () => mfa.verifyTotp(l.flow.sub, l.fields.otp));
    if (ok) await complete(ctx, l.details, l.flow, 'totp', wantsRemember(l.fields));
  });

  router.post('/:uid/mfa/recovery', body, async (ctx) => {
    const l = await withForm(ctx);
    if (!l) return;
    const ok = await guarded(ctx, l.details, l.flow, l.account, 'recovery',
      async () => (await mfa.useRecoveryCode(l.flow.sub, l.fields.otp)).ok || 'That recovery code is not right, or it was already used.');
    if (ok) await complete(ctx, l.details, l.flow, 'recovery', wantsRemember(l.fields));
  });

  router.post('/:uid/mfa/send', body, async (ctx) => {
    const l = await withForm(ctx);
    if (!l) return;
    const channel = l.fields.channel === 'sms' ? 'sms' : l.fields.channel === 'email' ? 'email' : undefined;
    const to = channel ? channels(l.account, l.flow)[channel] : undefined;
    if (!channel || !to) throw new UnexpectedPrompt('send a code');
    if (!(await mfa.sendCode(l.flow, channel, to))) {
      return renderChallenge(ctx, l.details, l.flow, l.account, { status: 429, error: 'You have asked for too many codes. Start the sign-in again.' });
    }
    await renderChallenge(ctx, l.details, l.flow, l.account, { sent: channel });
  });

  router.post('/:uid/mfa/code', body, async (ctx) => {
    const l = await withForm(ctx);
    if (!l) return;
    const sent = l.flow.code?.channel;
    let channel: 'email' | 'sms' | undefined;
    const ok = await guarded(ctx, l.details, l.flow, l.account, sent ?? 'email', async () => {
      try {
        channel = await mfa.verifyCode(l.flow, l.fields.otp);
        return true;
      } catch (err) {
        if (err instanceof MfaCodeRejected) return err.message;
        throw err;
      }
    }, { sent });
    if (ok && channel) await complete(ctx, l.details, l.flow, channel, wantsRemember(l.fields));
  });

  router.post('/:uid/mfa/enrol', body, async (ctx) => {
    const l = await withForm(ctx);
    if (!l) return;
    if (l.flow.unlock || await mfa.hasTotp(l.flow.sub)) throw new UnexpectedPrompt('set up an authenticator app');
    let codes: string[] | undefined;
    const ok = await guarded(ctx, l.details, l.flow, l.account, 'totp', async () => {
      codes = await mfa.confirmTotp(l.flow.sub, `login:${l.flow.uid}`, l.fields.otp, { replace: false, via: 'login' });
      return codes ? true : 'That code is not right. Check the time on your phone and enter the current code.';
    });
    if (!ok || !codes) return;
    await mfa.store.markVerified(l.flow.uid, l.flow.sub, { method: 'totp', remember: wantsRemember(l.fields) });
    ctx.type = 'html';
    ctx.body = await deps.views.page('mfa-recovery-codes', {
      title: 'Save your recovery codes',
      codes,
      action: `/interaction/${l.details.uid}/mfa/continue`,
      csrf: csrfToken(ctx, l.details.uid, deps.secureCookies),
    });
  });

  router.post('/:uid/mfa/continue', body, async (ctx) => {
    const l = await withForm(ctx);
    if (!l) return;
    if (!l.flow.verified) throw new UnexpectedPrompt('continue');
    await complete(ctx, l.details, l.flow, l.flow.verified.method, l.flow.verified.remember);
  });

  return router;
}
