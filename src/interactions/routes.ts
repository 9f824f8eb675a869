// Interaction routes: the pages oidc-provider sends the browser to when it
// needs a login or a consent. request → route → capability (strategy,
// consent) → provider result → redirect back into the authorization flow.
import { currentInteraction, type Details } from './current.ts';
import Router from '@koa/router';
import { bodyParser } from '@koa/bodyparser';
import type { Context } from 'koa';
import type { Views } from '../http/views.ts';
import type { Account, AccountStore } from '../accounts/types.ts';
import { csrfToken, verifyCsrf } from './csrf.ts';
import { LegacyPasswordRetired, LoginFailed, MethodNotAllowed, UnexpectedPrompt } from './errors.ts';
import { deviceId, ensureDeviceId } from './device.ts';
import { TRY_LATER, type Attempt } from './guard.ts';
import { describeClaims, describeScopes } from './describe.ts';
import { approveConsent, type ConsentScreen } from './consent.ts';
import type { LoginFlow } from './flow.ts';

export interface InteractionDeps {
  /** the login flow: strategies, guard, steps, login-page extensions (flow.ts) */
  flow: LoginFlow;
  views: Views;
  accounts: AccountStore;
  secureCookies: boolean;
  /** the consent capability (src/consent): the page's further locals and what Allow does */
  consent?: ConsentScreen;
}

function clientView(client: { clientName?: string; clientId: string; clientUri?: string; logoUri?: string; policyUri?: string; tosUri?: string }) {
  return {
    name: client.clientName ?? client.clientId,
    uri: client.clientUri, logoUri: client.logoUri, policyUri: client.policyUri, tosUri: client.tosUri,
  };
}

export function interactionRouter(deps: InteractionDeps): Router {
  const router = new Router({ prefix: '/interaction' });
  const body = bodyParser({ enableTypes: ['form'], formLimit: '16kb' });
  const form = (ctx: Context) => ((ctx.request as unknown as { body?: Record<string, unknown> }).body ?? {});
  const { flow } = deps;

  // The pages must never be cached or framed.
  router.use(async (ctx, next) => {
    ctx.set('Cache-Control', 'no-store');
    await next();
  });

  async function client(details: Details) {
    const c = await flow.provider().Client.find(String(details.params.client_id));
    if (!c) throw new UnexpectedPrompt('unknown client');
    return c;
  }

  /** what every interaction form carries: where it posts, where Cancel posts (with the same CSRF token), the token, the client */
  async function formBase(ctx: Context, details: Details, step: 'login' | 'consent') {
    return {
      action: `/interaction/${details.uid}/${step}`,
      abortUrl: `/interaction/${details.uid}/abort`,
      csrf: csrfToken(ctx, details.uid, deps.secureCookies),
      client: clientView(await client(details)),
    };
  }

  async function renderLogin(ctx: Context, details: Details, extra: { login?: string; error?: string } = {}) {
    ctx.type = 'html';
    ctx.body = await deps.views.page('login', {
      title: 'Sign in',
      ...(await formBase(ctx, details, 'login')),
      login: extra.login ?? (typeof details.params.login_hint === 'string' ? details.params.login_hint : ''),
      error: extra.error,
      links: flow.extensions.flatMap((e) => e.links?.(details.uid) ?? []),
      buttons: (await Promise.all(flow.extensions.map((e) => e.buttons?.(ctx, details) ?? []))).flat(),
      passwordOptional: (await Promise.all(flow.extensions.map((e) => e.identifiesWithoutPassword?.() ?? false))).some(Boolean),
    });
  }

  async function renderConsent(ctx: Context, details: Details) {
    const d = details.prompt.details as { missingOIDCScope?: string[]; missingOIDCClaims?: string[]; missingResourceScopes?: Record<string, string[]> };
    const account = details.session?.accountId ? await deps.accounts.findBySub(details.session.accountId) : undefined;
    ctx.type = 'html';
    ctx.body = await deps.views.page('consent', {
      title: 'Allow access',
      ...(await formBase(ctx, details, 'consent')),
      account: { display: account?.email ?? account?.name ?? 'your account' },
      scopes: describeScopes(d.missingOIDCScope ?? []),
      claims: describeClaims(d.missingOIDCClaims ?? []),
      resources: Object.entries(d.missingResourceScopes ?? {}).map(([indicator, scopes]) => ({ indicator, scopes })),
      ...(deps.consent ? await deps.consent.locals(ctx, details) : {}),
    });
  }

  router.get('/:uid', async (ctx) => {
    const details = await currentInteraction(flow.provider(), ctx);
    if (details.prompt.name === 'login') {
      // a hint may name the way in (idp_hint, or a login_hint whose domain an upstream IdP serves)
      for (const ext of flow.extensions) if (ext.beforePage && await ext.beforePage(ctx, details)) return;
      return renderLogin(ctx, details);
    }
    if (details.prompt.name === 'consent') {
      // first-party clients are ours: their consent is given by policy, even
      // when prompt=consent (which OIDC requires for offline_access)
      if ((await client(details)).metadata().first_party === true) {
        return flow.finish(ctx, details, { consent: await approveConsent(flow.provider(), details) }, true);
      }
      return renderConsent(ctx, details);
    }
    throw new UnexpectedPrompt(details.prompt.name);
  });

  // The login POST's DynamoDB calls, in round trips (no device cookie):
  //   1. the interaction ∥ the login pointer  (reads only: nothing is counted before the checks below)
  //   2. the IP counter ∥ the account record  (lockout: the counters in their order, guard.ts)
  //   3. the (account, IP) counter ∥ the steps' early reads (MFA policy) for the account the
  //      identifier names   4. the account counter
  //   -- the password hash --
  //   5. the counters' resets and the known device ∥ the interaction's result
  // The early reads are only reads, and their answers are used only once the
  // password proved that very account (otherwise the steps read again).
  router.post('/:uid/login', body, async (ctx) => {
    const fields = form(ctx);
    const method = typeof fields.method === 'string' ? fields.method : 'password';
    const login = typeof fields.login === 'string' ? fields.login.trim() : undefined;
    // the account the identifier names (pointer, then record), read beside the interaction:
    // the guard needs its sub, the strategy its record; one read for both
    let account: Promise<Account | undefined> | undefined;
    if (login && method === 'password') {
      account = deps.accounts.findByLogin(login);
      account.catch(() => {}); // awaited below unless the request fails first
    }
    const details = await currentInteraction(flow.provider(), ctx, 'login');
    verifyCsrf(ctx, details.uid, fields.csrf);
    // identify: the identifier may belong elsewhere (home-realm discovery)
    if (login) for (const ext of flow.extensions) if (ext.identify && await ext.identify(ctx, details, login)) return;
    const strategy = flow.strategy(method);
    if (!strategy) throw new UnexpectedPrompt(`sign-in method ${method}`);
    // a proof made elsewhere (an upstream IdP): the strategy sends the browser there
    if (strategy.start) return strategy.start(ctx, details, fields);
    if (!strategy.authenticate) throw new UnexpectedPrompt(`sign-in method ${method}`);
    // the steps' reads (flow.ts, prepare) for the account the identifier names, as soon as it is known
    const early = account?.then((a) => (a ? { who: { accountId: a.sub, amr: ['pwd'] }, prepared: flow.prepare(ctx, details, { accountId: a.sub, amr: ['pwd'] }) } : undefined));
    early?.catch(() => {}); // awaited below unless the request fails first
    // guard first: a refused attempt costs no hash, and says only "try again later"
    const attempt: Attempt = {
      kind: 'password', ip: ctx.ip, login, resolved: account?.then((a) => a?.sub),
      deviceId: deviceId(ctx), requestId: ctx.state.requestId,
    };
    const decision = await flow.guard.check(attempt);
    if (!decision.allowed) {
      ctx.status = 429;
      return renderLogin(ctx, details, { login: attempt.login ?? '', error: TRY_LATER });
    }
    let who;
    try {
      who = await strategy.authenticate(ctx, fields, account ? { account } : undefined);
    } catch (err) {
      if (!(err instanceof LoginFailed)) throw err;
      // a retired legacy password was right: not a failure to count
      if (!(err instanceof LegacyPasswordRetired)) await flow.guard.failed(attempt);
      // on a locked account a wrong password is refused like any attempt there
      ctx.status = decision.secondFactor ? 429 : 401;
      return renderLogin(ctx, details, { login: typeof fields.login === 'string' ? fields.login : '', error: decision.secondFactor ? TRY_LATER : err.message });
    }
    attempt.accountId = who.accountId;
    attempt.deviceId = ensureDeviceId(ctx, deps.secureCookies);
    if (decision.secondFactor) {
      // the account is locked by strangers: the right password leads to a second
      // factor, which lifts the lock (the guard hears of this success only then)
      return flow.proceed(ctx, details, { ...who, secondFactor: decision.secondFactor });
    }
    const guess = await early;
    const prepared = guess && guess.who.accountId === who.accountId && guess.who.amr.join(' ') === who.amr.join(' ')
      ? guess.prepared : flow.prepare(ctx, details, who);
    // the guard's writes travel with the steps and the interaction's result; the answer waits for both
    const [guarded, proceeded] = await Promise.allSettled([flow.guard.succeeded(attempt), flow.proceed(ctx, details, who, { prepared })]);
    if (guarded.status === 'rejected') throw guarded.reason;
    if (proceeded.status === 'rejected') throw proceeded.reason;
  });

  router.post('/:uid/consent', body, async (ctx) => {
    const provider = flow.provider();
    const details = await currentInteraction(provider, ctx, 'consent');
    verifyCsrf(ctx, details.uid, form(ctx).csrf);
    const consent = deps.consent ? await deps.consent.approve(ctx, details, form(ctx)) : await approveConsent(provider, details);
    await flow.finish(ctx, details, { consent }, true);
  });

  // Cancel / Deny: a POST carrying the interaction's CSRF token, from any
  // interaction page (login, consent, MFA, the forced password change). A GET
  // cancels nothing: a link on another site must not end someone's sign-in.
  router.post('/:uid/abort', body, async (ctx) => {
    const details = await currentInteraction(flow.provider(), ctx);
    verifyCsrf(ctx, details.uid, form(ctx).csrf);
    await flow.finish(ctx, details, { error: 'access_denied', error_description: 'End-User aborted interaction' }, false);
  });

  router.get('/:uid/abort', (ctx) => {
    ctx.set('Allow', 'POST');
    throw new MethodNotAllowed('To cancel, use the Cancel button on the sign-in page.');
  });

  return router;
}
