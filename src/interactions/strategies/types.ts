// A strategy is one way to prove identity inside the login flow (Kratos's
// flow × strategy shape): password now; legacy hashes, one-time codes and
// federation plug in beside it.
import type { Context } from 'koa';

import type { Account } from '../../accounts/types.ts';

export interface Authenticated {
  accountId: string;
  /** RFC 8176 authentication method references */
  amr: string[];
  /** the account as it is after this login (its last write included), when the strategy read it: later steps need not read it again */
  account?: Account;
}

export interface LoginStrategy {
  readonly id: string;
  /**
   * resolves with the account, or throws LoginFailed. `prefetched`: the
   * account the form's identifier names, when the caller started reading it
   * already (the login POST does, beside its other reads).
   */
  authenticate(ctx: Context, form: Record<string, unknown>, prefetched?: { account: Promise<Account | undefined> }): Promise<Authenticated>;
}
