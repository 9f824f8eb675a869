// A password reset an admin sends (console, API): a reset code to the
// account's own verified e-mail address, the same code the "Forgot your
// password?" page sends, so it is used on that page's "I already have a code"
// form and is bound by the same rules (keyed hash only, tries counted, used
// once, LOCKOUT_CODE_MAX_SENDS an hour). The admin never sees the code.
import type { Account } from '../accounts/types.ts';
import type { MessageSender } from '../events/messages.ts';
import type { OneTimeCodes } from './codes.ts';
import { keys } from './counters.ts';

/** sent; no verified address to send to (or the account is not active); the hourly limit is reached */
export type ResetSendResult = 'sent' | 'no_address' | 'limited';

export interface ResetSender {
  send(account: Account): Promise<ResetSendResult>;
}

export function resetSender(deps: { codes: OneTimeCodes; messages: Pick<MessageSender, 'send'> }): ResetSender {
  const minutes = String(Math.round(deps.codes.opts.ttlSeconds / 60));
  return {
    async send(account) {
      if (account.status !== 'active' || !account.emailVerified || !account.email) return 'no_address';
      const code = await deps.codes.issue(keys.account(account.sub), 'reset');
      if (!code) return 'limited';
      await deps.messages.send({ channel: 'email', to: account.email, template: 'password-reset-admin', vars: { code, minutes }, sub: account.sub });
      return 'sent';
    },
  };
}
