// Sends a one-time code (self-service unlock, password reset) to an account's
// own verified e-mail address: the "Forgot your password?" / "Locked out?"
// pages after their answer, and an admin's "Send a password reset" (console,
// API), whose code the user enters under "I already have a code". The rules
// are the codes' (codes.ts): keyed hash only, tries counted, used once,
// LOCKOUT_CODE_MAX_SENDS an hour. Whoever asks never sees the code.
import type { Account } from '../accounts/types.ts';
import type { MessageSender } from '../events/messages.ts';
import type { CodePurpose, OneTimeCodes } from './codes.ts';
import { keys } from './counters.ts';

/** sent; no verified address to send to (or the account is not active); the hourly limit is reached */
export type CodeSendResult = 'sent' | 'no_address' | 'limited';

export interface CodeSender {
  send(account: Account, purpose: CodePurpose, template: string): Promise<CodeSendResult>;
}

export function codeSender(deps: { codes: OneTimeCodes; messages: Pick<MessageSender, 'send'> }): CodeSender {
  const minutes = String(Math.round(deps.codes.opts.ttlSeconds / 60));
  return {
    async send(account, purpose, template) {
      if (account.status !== 'active' || !account.emailVerified || !account.email) return 'no_address';
      const code = await deps.codes.issue(keys.account(account.sub), purpose);
      if (!code) return 'limited';
      await deps.messages.send({ channel: 'email', to: account.email, template, vars: { code, minutes }, sub: account.sub });
      return 'sent';
    },
  };
}

/** an admin's password reset: the reset code, in the message that says an administrator asked */
export type ResetSendResult = CodeSendResult;
export interface ResetSender {
  send(account: Account): Promise<ResetSendResult>;
}
export const resetSender = (codes: CodeSender): ResetSender => ({ send: (account) => codes.send(account, 'reset', 'password-reset-admin') });
