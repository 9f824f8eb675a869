// The login flow (the shape of Ory Kratos's flow × strategy): one sign-in
// goes through
//
//   identify   the identifier typed on the login page, or a hint in the
//              request, may be taken over by an extension (home-realm
//              discovery sends it to an upstream IdP)
//   guard      before a secret is checked, the guard (lockout) admits the
//              attempt; a first factor proven elsewhere asks it whether the
//              account is locked
//   strategy   a way to prove identity: password (legacy hashes inside it),
//              upstream IdP (src/federation)
//   steps      after the first factor, in order: a changed password when it
//              expired (src/lockout), the proof that links an upstream
//              identity to an existing account (src/federation), the second
//              factor (src/mfa). Each step may answer the request with a page
//              of its own; when that page is done it calls `proceed` with
//              `after` set to its id, and the flow goes on from there.
//   finish     the login result (account, acr, amr) goes to oidc-provider
//
// Capabilities plug into the flow from their own folders (they import this
// file; it imports none of them). src/server.ts puts the pieces together.
import type { Context } from 'koa';
import type Provider from 'oidc-provider';
import type { InteractionResults } from 'oidc-provider';
import type { Details } from './current.ts';
import type { Authenticated, LoginStrategy } from './strategies/types.ts';
import { openGuard, type LoginGuard } from './guard.ts';

/** what a finished login tells oidc-provider */
export interface LoginResult {
  accountId: string;
  amr: string[];
  acr?: string;
  /** extra fields a step adds to the login result (e.g. MFA's mfaChecked) */
  [key: string]: unknown;
}

/** a step's answer: go on (adding to the login result), or it answered the request itself */
export type StepOutcome = { done: true; result?: Partial<LoginResult> } | { done: false };

export interface LoginStep {
  readonly id: string;
  /**
   * reads the step will need, started early (the login POST starts them for
   * the account its identifier names, beside the guard's counters, before the
   * password is checked); handed back to run() only when the first factor
   * proved that same account. Reads only: nothing may be written or sent here.
   */
  prepare?(ctx: Context, details: Details, who: Authenticated): Promise<unknown>;
  run(ctx: Context, details: Details, who: Authenticated, prepared?: Promise<unknown>): Promise<StepOutcome>;
}

export interface LoginLink { href: string; text: string }
/** a sign-in button on the login page: a form POST (with the page's CSRF token and these hidden fields) to the login route */
export interface LoginButton { text: string; fields: Record<string, string> }

export interface LoginPageExtension {
  /** before the login page is shown: true when it answered the request (e.g. a hint named an upstream IdP) */
  beforePage?(ctx: Context, details: Details): Promise<boolean>;
  /** the identifier typed on the login page, before any secret is checked: true when it took the sign-in over */
  identify?(ctx: Context, details: Details, login: string): Promise<boolean>;
  links?(uid: string): LoginLink[];
  buttons?(ctx: Context, details: Details): Promise<LoginButton[]>;
  /** true when identify() may take over an identifier typed without a password (the password field is then optional) */
  identifiesWithoutPassword?(): Promise<boolean>;
}

export type Prepared = Map<string, Promise<unknown>>;

/** after every step passed, before the result goes to oidc-provider (login.succeeded is recorded here) */
export type SignedInHook = (ctx: Context, details: Details, who: Authenticated, result: LoginResult) => Promise<void>;

/** how the first factor was proven, from the amr: "federation", "password", or the amr's first value */
export function loginMethod(amr: readonly string[]): string {
  if (amr.includes('fed')) return 'federation';
  if (amr.includes('pwd')) return 'password';
  return amr[0] ?? 'unknown';
}

export class LoginFlow {
  readonly provider: () => Provider;
  guard: LoginGuard = openGuard;
  private readonly strategyMap = new Map<string, LoginStrategy>();
  private readonly stepList: LoginStep[] = [];
  readonly extensions: LoginPageExtension[] = [];
  private readonly signedInHooks: SignedInHook[] = [];

  constructor(provider: () => Provider) {
    this.provider = provider;
  }

  useGuard(guard: LoginGuard): this {
    this.guard = guard;
    return this;
  }

  useStrategy(strategy: LoginStrategy): this {
    this.strategyMap.set(strategy.id, strategy);
    return this;
  }

  /** steps run in the order they are added */
  useStep(step: LoginStep): this {
    if (this.stepList.some((s) => s.id === step.id)) throw new Error(`login step ${step.id} added twice`);
    this.stepList.push(step);
    return this;
  }

  onSignedIn(hook: SignedInHook): this {
    this.signedInHooks.push(hook);
    return this;
  }

  useExtension(ext: LoginPageExtension): this {
    this.extensions.push(ext);
    return this;
  }

  strategy(id: string): LoginStrategy | undefined {
    return this.strategyMap.get(id);
  }

  get steps(): readonly LoginStep[] {
    return this.stepList;
  }

  /** every step's early reads for this login (failures surface when the step awaits them) */
  prepare(ctx: Context, details: Details, who: Authenticated, after?: string): Prepared {
    const out: Prepared = new Map();
    for (const step of this.remaining(after)) {
      const p = step.prepare?.(ctx, details, who);
      if (!p) continue;
      p.catch(() => {}); // awaited by the step unless the request fails first
      out.set(step.id, p);
    }
    return out;
  }

  private remaining(after?: string): LoginStep[] {
    if (!after) return this.stepList;
    const i = this.stepList.findIndex((s) => s.id === after);
    if (i < 0) throw new Error(`unknown login step ${after}`);
    return this.stepList.slice(i + 1);
  }

  /**
   * A first factor is proven (`who`): run the steps after `after` (all of
   * them when absent), then finish. `result`: what earlier steps added.
   */
  async proceed(ctx: Context, details: Details, who: Authenticated, opts: { after?: string; result?: Partial<LoginResult>; prepared?: Prepared } = {}): Promise<void> {
    let result: LoginResult = { ...opts.result, accountId: who.accountId, amr: who.amr };
    const prepared = opts.prepared ?? this.prepare(ctx, details, who, opts.after);
    for (const step of this.remaining(opts.after)) {
      const outcome = await step.run(ctx, details, who, prepared.get(step.id));
      if (!outcome.done) return;
      result = { ...result, ...outcome.result, accountId: who.accountId };
    }
    for (const hook of this.signedInHooks) await hook(ctx, details, who, result);
    await this.finish(ctx, details, { login: { ...result, remember: true } }, false);
  }

  /**
   * Hands the result to oidc-provider and sends the browser back into the
   * authorization. `details` was read and checked at the start of this same
   * request, so it is saved as interactionResult would save it, without
   * reading the interaction (and its session) again; an interaction that has
   * expired meanwhile goes through interactionResult, which refuses it.
   */
  async finish(ctx: Context, details: Details, result: InteractionResults, merge: boolean): Promise<void> {
    const ttl = details.exp - Math.floor(Date.now() / 1000);
    let to: string;
    if (ttl > 0) {
      details.result = merge && !('error' in result) ? { ...details.lastSubmission, ...result } : result;
      await details.save(ttl);
      to = details.returnTo;
    } else {
      to = await this.provider().interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: merge });
    }
    ctx.status = 303;
    ctx.redirect(to);
  }
}
