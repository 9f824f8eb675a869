// A strategy is one way to prove identity inside the login flow (Kratos's
// flow × strategy shape): password now; legacy hashes, one-time codes and
// federation plug in beside it.
import type { Context } from 'koa';

export interface Authenticated {
  accountId: string;
  /** RFC 8176 authentication method references */
  amr: string[];
}

export interface LoginStrategy {
  readonly id: string;
  /** resolves with the account, or throws LoginFailed */
  authenticate(ctx: Context, form: Record<string, unknown>): Promise<Authenticated>;
}
