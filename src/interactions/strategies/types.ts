// A strategy is one way to prove identity inside the login flow (Kratos's
// flow × strategy shape, src/interactions/flow.ts): the password (legacy
// hashes inside it) answers at once; an upstream IdP (src/federation) starts
// with a redirect and comes back through its own callback, which hands what
// it proved to the flow.
import type { Context } from 'koa';

import type { Account } from '../../accounts/types.ts';
import type { Details } from '../current.ts';

export interface Authenticated {
  accountId: string;
  /** RFC 8176 authentication method references */
  amr: string[];
  /** the account as it is after this login (its last write included), when the strategy read it: later steps need not read it again */
  account?: Account;
  /**
   * what a strategy leaves for a step after it (e.g. federation: an upstream
   * identity still to be linked, for its link step); steps ignore what is not theirs
   */
  pending?: { step: string; data: Record<string, unknown> };
  /**
   * the account is locked by strangers' failures (guard.ts, Decision.secondFactor):
   * the MFA step must prove a second factor whatever the policy, and lifts the lock
   */
  secondFactor?: { reason: string };
}

export interface LoginStrategy {
  readonly id: string;
  /**
   * A secret checked here and now (under the guard): resolves with the
   * account, or throws LoginFailed. `prefetched`: the account the form's
   * identifier names, when the caller started reading it already (the login
   * POST does, beside its other reads).
   */
  authenticate?(ctx: Context, form: Record<string, unknown>, prefetched?: { account: Promise<Account | undefined> }): Promise<Authenticated>;
  /** A proof made elsewhere: answers the login POST itself (a redirect to an upstream IdP) */
  start?(ctx: Context, details: Details, form: Record<string, unknown>): Promise<void>;
}
