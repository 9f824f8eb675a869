// The LoginGuard (src/lockout/types.ts) over DynamoDB counters.
//
// check()     before any hash runs: resolve the account (or the keyed hash of
//             an unknown identifier), decide which counters judge this
//             attempt, and admit it on each in turn (counted up-front, see
//             counters.ts). The first counter that refuses decides, and the
//             counters after it are not touched. When the IP counter is
//             certain to judge first whatever the account turns out to be (no
//             device cookie, so no known device), it is counted while the
//             account is being looked up: the same counters in the same order,
//             one round trip fewer.
// failed()    the attempt was already counted: emit login.failed, and when
//             this attempt was the limit-th of a counter, account.locked or
//             ip.throttled.
// succeeded() the failures are not consecutive any more: reset the account's
//             counters, give the IP back its attempt, remember the device
//             (independent items: written together).
//
// Which counters (kind password or mfa):
//   a device known for this account  ->  (account, device) only, so strangers
//   and this factor                      hammering elsewhere do not lock it out
//                                        (known: this factor succeeded from it before)
//   any other                        ->  IP, (account, IP), account
// Kinds unlock and reset (code entry) are judged by the IP counter only; the
// code itself allows few tries.
import type { Logger } from '../logging/index.ts';
import type { LockoutConfig } from '../config/index.ts';
import type { Attempt, Decision, LoginGuard } from './types.ts';
import { keys, sha256, type AdmitResult, type CounterKey, type CounterSpec, type CounterStore } from './counters.ts';

export const REASONS = {
  account: 'account_threshold',
  ip: 'ip_throttle',
  accountIp: 'account_ip_threshold',
  device: 'device_threshold',
  permanent: 'permanent_lock',
} as const;

export type { EventRecorder as EventsLike } from '../events/types.ts';
import type { EventRecorder } from '../events/types.ts';

export interface GuardDeps {
  config: LockoutConfig;
  counters: CounterStore;
  /** the account's sub for an identifier as typed, if there is one */
  resolve(login: string): Promise<string | undefined>;
  /** keyed hash of an identifier that names no account */
  identifierHash(login: string): string;
  events: EventRecorder;
  log: Logger;
}

type Scope = 'ip' | 'accountIp' | 'account' | 'device';

interface Judge {
  scope: Scope;
  key: CounterKey;
  spec: CounterSpec;
}

interface Plan {
  sub?: string;
  /** the pk of the account's (or unknown identifier's) items */
  accountPk?: string;
  deviceHash?: string;
  knownDevice: boolean;
  judges: Judge[];
  admitted: Array<{ judge: Judge; result: Extract<AdmitResult, { allowed: true }> }>;
  checked: boolean;
}

export interface AccountLockState {
  locked: boolean;
  permanent: boolean;
  reason?: string;
  retryAfterSeconds: number;
  failures: number;
}

export class DynamoLoginGuard implements LoginGuard {
  private readonly deps: GuardDeps;
  private readonly plans = new WeakMap<Attempt, Plan>();

  constructor(deps: GuardDeps) {
    this.deps = deps;
  }

  get mode(): LockoutConfig['mode'] {
    return this.deps.config.mode;
  }

  // Which locks can become permanent: those of failures that cannot be a
  // distributed attack by strangers — a known device's own counter, one
  // address against one account, and MFA codes (only tried after a right
  // password). The account's password counter (failures from browsers it does
  // not know, from anywhere) never becomes permanent: its lock is lifted by a
  // second factor (see check()).
  private spec(scope: Scope, kind: Attempt['kind']): CounterSpec {
    const c = this.deps.config;
    switch (scope) {
      case 'ip':
        return { reason: REASONS.ip, limit: c.ipMaxFailures, resetSeconds: c.ipResetSeconds, permanentAfter: 0 };
      case 'accountIp':
        return { reason: REASONS.accountIp, limit: c.accountIpMaxFailures, resetSeconds: c.resetSeconds, permanentAfter: c.permanentAfter };
      case 'device':
        return { reason: REASONS.device, limit: c.deviceMaxFailures, resetSeconds: c.resetSeconds, permanentAfter: c.permanentAfter };
      case 'account':
        return kind === 'mfa'
          ? { reason: REASONS.account, limit: c.mfaMaxFailures, resetSeconds: c.resetSeconds, permanentAfter: c.permanentAfter }
          : { reason: REASONS.account, limit: c.maxFailures, resetSeconds: c.resetSeconds, permanentAfter: 0 };
    }
  }

  private async plan(a: Attempt): Promise<Plan> {
    const existing = this.plans.get(a);
    if (existing) return existing;
    const login = a.login?.trim();
    const sub = a.accountId ?? (login ? await (a.resolved ?? this.deps.resolve(login)) : undefined);
    const accountPk = sub ? keys.account(sub) : login ? keys.identifier(this.deps.identifierHash(login)) : undefined;
    const deviceHash = a.deviceId ? sha256(a.deviceId) : undefined;
    const k = a.kind;
    const factor = k === 'password' || k === 'mfa' ? k : undefined;
    const knownDevice = !!(sub && accountPk && deviceHash && factor && await this.deps.counters.isKnownDevice(accountPk, deviceHash, factor));
    const judges: Judge[] = [];
    const judge = (scope: Scope, key: CounterKey) => judges.push({ scope, key, spec: this.spec(scope, k) });
    if (k === 'password' || k === 'mfa') {
      if (knownDevice) {
        judge('device', { pk: accountPk!, sk: `c#${k}#dev#${deviceHash}` });
      } else {
        judge('ip', { pk: keys.ip(a.ip), sk: `c#${k}` });
        if (accountPk) {
          judge('accountIp', { pk: accountPk, sk: `c#${k}#ip#${keys.ip(a.ip).slice('lockout#ip#'.length)}` });
          judge('account', { pk: accountPk, sk: `c#${k}` });
        }
      }
    } else {
      judge('ip', { pk: keys.ip(a.ip), sk: `c#${k}` });
    }
    const plan: Plan = { sub, accountPk, deviceHash, knownDevice, judges, admitted: [], checked: false };
    this.plans.set(a, plan);
    return plan;
  }

  private logFields(a: Attempt, plan: Plan) {
    return { requestId: a.requestId, kind: a.kind, sub: plan.sub, knownDevice: plan.knownDevice };
  }

  /** the IP counter's key and spec when it is the first judge of `a` whatever its plan (see the header) */
  private ipJudgesFirst(a: Attempt): Judge | undefined {
    const k = a.kind;
    if ((k === 'password' || k === 'mfa') && a.deviceId) return undefined; // a known device is judged by its own counter
    return { scope: 'ip', key: { pk: keys.ip(a.ip), sk: `c#${k}` }, spec: this.spec('ip', k) };
  }

  /** admit on every judge in turn; the first refusal decides. `first`: the first judge's admission, already under way */
  private async admit(a: Attempt, plan: Plan, first?: { judge: Judge; result: Promise<AdmitResult> }): Promise<Decision> {
    plan.checked = true;
    for (const [i, judge] of plan.judges.entries()) {
      const early = i === 0 && first && first.judge.key.pk === judge.key.pk && first.judge.key.sk === judge.key.sk ? first.result : undefined;
      const r = await (early ?? this.deps.counters.admit(judge.key, judge.spec));
      if (!r.allowed) {
        // the account's own password lock (strangers' failures): the password may be
        // checked, and a right one leads to a second factor instead of a refusal. An
        // unknown identifier in the same state goes the same way (a dummy hash, then
        // the same refusal), so the answer and its time tell nothing.
        if (judge.scope === 'account' && a.kind === 'password' && !r.permanent) {
          return { allowed: true, secondFactor: { reason: judge.spec.reason } };
        }
        return { allowed: false, reason: r.permanent ? REASONS.permanent : judge.spec.reason, retryAfterSeconds: r.retryAfterSeconds };
      }
      plan.admitted.push({ judge, result: r });
    }
    return { allowed: true };
  }

  async check(a: Attempt): Promise<Decision> {
    let first: { judge: Judge; result: Promise<AdmitResult> } | undefined;
    const ipJudge = this.plans.has(a) ? undefined : this.ipJudgesFirst(a);
    if (ipJudge) {
      first = { judge: ipJudge, result: this.deps.counters.admit(ipJudge.key, ipJudge.spec) };
      first.result.catch(() => {}); // awaited in admit(); a failing plan must not leave it unhandled
    }
    const plan = await this.plan(a);
    if (first && plan.judges[0]?.scope !== 'ip') {
      // cannot happen (no device cookie means no known device), but never count an attempt on a counter that does not judge it
      const r = await first.result;
      if (r.allowed) await this.deps.counters.giveBack(first.judge.key);
      first = undefined;
    }
    const decision = await this.admit(a, plan, first);
    if (decision.allowed) {
      if (decision.secondFactor) {
        const fields = { ...this.logFields(a, plan), lockout: this.mode, decision: 'second_factor', reason: decision.secondFactor.reason };
        if (this.mode === 'dry-run') {
          this.deps.log.warn(fields, 'lockout decision not enforced (dry-run)');
          return { allowed: true };
        }
        this.deps.log.info(fields, 'account locked: a right password needs a second factor');
      }
      return decision;
    }
    await this.deps.events.append('login.failed', {
      sub: plan.sub, reason: decision.reason, requestId: a.requestId,
      data: { kind: a.kind, method: a.kind, refused: true, enforced: this.mode === 'enforce', knownDevice: plan.knownDevice },
    });
    if (this.mode === 'dry-run') {
      this.deps.log.warn({ ...this.logFields(a, plan), lockout: 'dry-run', decision: 'deny', reason: decision.reason, retryAfterSeconds: decision.retryAfterSeconds }, 'lockout decision not enforced (dry-run)');
      return { allowed: true };
    }
    this.deps.log.info({ ...this.logFields(a, plan), lockout: 'enforce', decision: 'deny', reason: decision.reason, retryAfterSeconds: decision.retryAfterSeconds }, 'attempt refused by lockout');
    return decision;
  }

  async failed(a: Attempt): Promise<Decision> {
    const plan = await this.plan(a);
    // a caller that skipped check() still gets its failure counted
    if (!plan.checked) await this.admit(a, plan);
    // the counters were written in check(); the events are stored before the answer
    const recorded: Array<Promise<unknown>> = [this.deps.events.append('login.failed', {
      sub: plan.sub, reason: a.kind === 'password' || a.kind === 'mfa' ? 'bad_credentials' : 'bad_code', requestId: a.requestId,
      data: { kind: a.kind, method: a.kind, knownDevice: plan.knownDevice },
    })];
    let decision: Decision = { allowed: true };
    for (const { judge, result } of plan.admitted) {
      if (!result.last) continue;
      const reason = result.permanent ? REASONS.permanent : judge.spec.reason;
      const retryAfterSeconds = result.lockSeconds;
      if (judge.scope === 'ip') {
        recorded.push(this.deps.events.append('ip.throttled', { reason, requestId: a.requestId, data: { kind: a.kind, ipHash: sha256(a.ip ?? ''), retryAfterSeconds, lock: result.lockNumber } }));
        // one IP failing across accounts: the IP counter counts every account's failures from it
        recorded.push(this.deps.events.append('login.suspicious', { reason: 'ip_failing_across_accounts', requestId: a.requestId, data: { kind: a.kind, ipHash: sha256(a.ip ?? ''), failures: result.n } }));
      } else {
        recorded.push(this.deps.events.append('account.locked', {
          sub: plan.sub, reason, requestId: a.requestId,
          data: { kind: a.kind, scope: judge.scope, permanent: result.permanent, retryAfterSeconds, lock: result.lockNumber, knownAccount: plan.sub !== undefined, ...(judge.scope === 'accountIp' ? { ipHash: sha256(a.ip ?? '') } : {}) },
        }));
      }
      if (decision.allowed) decision = { allowed: false, reason, retryAfterSeconds };
    }
    if (!decision.allowed) {
      this.deps.log.info({ ...this.logFields(a, plan), lockout: this.mode, reason: decision.reason, retryAfterSeconds: decision.retryAfterSeconds }, 'lock begins');
    }
    await Promise.all(recorded);
    return this.mode === 'dry-run' ? { allowed: true } : decision;
  }

  async succeeded(a: Attempt): Promise<void> {
    const plan = await this.plan(a);
    const sub = a.accountId ?? plan.sub;
    const accountPk = sub ? keys.account(sub) : plan.accountPk;
    const c = this.deps.counters;
    // every write here is to an item of its own and none depends on another: together
    const writes: Array<Promise<unknown>> = [];
    for (const judge of plan.judges) {
      if (judge.scope === 'ip') {
        if (plan.admitted.some((x) => x.judge === judge)) writes.push(c.giveBack(judge.key));
      } else if (judge.key.pk === accountPk) {
        writes.push(c.reset(judge.key));
      }
    }
    // a right secret from a known device also ends the consecutive failures of the account
    if (accountPk && plan.knownDevice && (a.kind === 'password' || a.kind === 'mfa')) writes.push(c.reset({ pk: accountPk, sk: `c#${a.kind}` }));
    const device = a.deviceId ? sha256(a.deviceId) : undefined;
    if (sub && device && (a.kind === 'password' || a.kind === 'mfa')) writes.push(c.rememberDevice(keys.account(sub), device, a.kind, this.deps.config.knownDeviceDays));
    // a new device right after failures that came from other IPs: someone may have guessed it
    const countOf = (scope: Scope) => plan.admitted.find((x) => x.judge.scope === scope)?.result.n ?? 0;
    const earlier = countOf('account') - 1;
    if (sub && !plan.knownDevice && earlier > 0 && countOf('account') > countOf('accountIp')) {
      writes.push(this.deps.events.append('login.suspicious', {
        sub, reason: 'new_device_after_failures', requestId: a.requestId, data: { kind: a.kind, failures: earlier, fromOtherIps: countOf('account') - countOf('accountIp') },
      }));
    }
    await Promise.all(writes);
  }

  /** a first factor proven elsewhere (an upstream IdP): refused while the account is locked; nothing is counted */
  async accountState(sub: string): Promise<Decision> {
    const s = await this.state(sub);
    if (!s.locked) return { allowed: true };
    // as for a password from an unknown browser: the upstream's proof leads to a second factor, which lifts the lock
    this.deps.log.info({ sub, lockout: this.mode, decision: s.permanent ? 'deny' : 'second_factor', reason: s.reason, kind: 'federated' }, 'account locked');
    if (this.mode === 'dry-run') return { allowed: true };
    return s.permanent ? { allowed: false, reason: s.reason!, retryAfterSeconds: s.retryAfterSeconds } : { allowed: true, secondFactor: { reason: s.reason! } };
  }

  async clearedBySecondFactor(sub: string, requestId?: string): Promise<void> {
    await this.unlock(sub, 'second_factor', requestId);
  }

  /** the account's lock state, without counting (admin) */
  async state(sub: string, kind: 'password' | 'mfa' = 'password'): Promise<AccountLockState> {
    const spec = this.spec('account', kind);
    const s = await this.deps.counters.peek({ pk: keys.account(sub), sk: `c#${kind}` }, spec);
    return { locked: s.locked, permanent: s.permanent, retryAfterSeconds: s.retryAfterSeconds, failures: s.n, ...(s.locked ? { reason: s.permanent ? REASONS.permanent : REASONS.account } : {}) };
  }

  /** clears every counter of the account (admin, self-service code, password reset) */
  /** `actor`: who lifted it when an admin did (their sub, an API client's id, or "cli": the admin service) */
  async unlock(sub: string, by: 'admin' | 'self_service' | 'password_reset' | 'second_factor', requestId?: string, opts: { actor?: string } = {}): Promise<{ cleared: number; wasLocked: boolean }> {
    const before = await this.state(sub);
    let cleared = 0;
    // stored with the counters' removal; nothing removed, nothing to tell
    await this.deps.events.commit(() => ({ type: 'account.unlocked', sub, reason: by, requestId, actor: opts.actor, data: { wasLocked: before.locked, permanent: before.permanent } }), async () => {
      cleared = await this.deps.counters.clear(keys.account(sub));
    }, { onlyIfWritten: true });
    return { cleared, wasLocked: before.locked };
  }
}
