// Lockout and password policy, put together for the composition root
// (src/server.ts) and the CLI (src/lockout/cli.ts). docs/lockout.md tells
// the whole story: counters, order of work, known devices, dry-run, unlock
// paths, password policy, events.
import type { Config } from '../config/index.ts';
import type { Logger } from '../logging/index.ts';
import type { Storage } from '../storage/index.ts';
import type { Keyring } from '../keys/types.ts';
import type { Views } from '../http/views.ts';
import type { AccountStore } from '../accounts/types.ts';
import type { PasswordHasher } from '../accounts/hasher.ts';
import type { MessageSender } from '../events/messages.ts';
import type { LoginFlow, LoginPageExtension } from '../interactions/flow.ts';
import { PasswordPolicy } from '../passwords/policy.ts';
import { CounterStore, identifierHash } from './counters.ts';
import { OneTimeCodes } from './codes.ts';
import { DynamoLoginGuard, type EventsLike } from './guard.ts';
import { selfServiceRouter } from './self-service.ts';
import type { HashCalls } from './metered-hasher.ts';
import { codeSender, resetSender } from './code-sender.ts';

export { meteredHasher } from './metered-hasher.ts';
export type { ResetSender, ResetSendResult } from './code-sender.ts';
export type { LoginGuard } from '../interactions/guard.ts';

/** keyed hash of an identifier as typed (normalized like the account pointers), for the counters of unknown identifiers */
export function identifierHasher(keyring: Keyring): (login: string) => string {
  return (login: string) => identifierHash(keyring.blindIndexKey(), login);
}

export interface GuardParts {
  config: Config;
  storage: Storage;
  keyring: Keyring;
  accounts: Pick<AccountStore, 'findByLogin'>;
  events: EventsLike;
  log: Logger;
}

export function createGuard(p: GuardParts): { guard: DynamoLoginGuard; counters: CounterStore; codes: OneTimeCodes; identifierHash: (login: string) => string } {
  const c = p.config.lockout;
  const counters = new CounterStore(p.storage, { waitSeconds: c.waitSeconds, backoff: c.backoff, maxWaitSeconds: c.maxWaitSeconds });
  const identifierHash = identifierHasher(p.keyring);
  const guard = new DynamoLoginGuard({
    config: c, counters, identifierHash, events: p.events, log: p.log,
    resolve: async (login) => (await p.accounts.findByLogin(login))?.sub,
  });
  const codes = new OneTimeCodes(counters, () => p.keyring.blindIndexKey(), {
    digits: c.codeDigits, ttlSeconds: c.codeTtlSeconds, maxTries: c.codeMaxTries, maxSends: c.codeMaxSends,
  });
  return { guard, counters, codes, identifierHash };
}

export interface LockoutParts extends GuardParts {
  accounts: AccountStore;
  hasher: PasswordHasher & { calls?: HashCalls };
  messages: MessageSender;
  views: Views;
  /** the login flow: the change page checks the current password with its password strategy, and ends in its steps */
  flow: LoginFlow;
}

export function createLockout(p: LockoutParts) {
  const { guard, counters, codes, identifierHash } = createGuard(p);
  const policy = new PasswordPolicy(p.config.passwordPolicy, (hash, password) => p.hasher.verify(hash, password));
  // the list is read once, off the request path
  policy.warm().catch((err: unknown) => p.log.error({ err: { message: (err as Error).message } }, 'common password list not loaded'));
  const sender = codeSender({ codes, messages: p.messages });
  const router = selfServiceRouter({
    flow: p.flow, views: p.views, accounts: p.accounts, hasher: p.hasher,
    guard, codes, sender, policy, messages: p.messages, events: p.events, log: p.log, identifierHash,
    secureCookies: p.config.secureCookies, maxAgeSeconds: p.config.passwordPolicy.maxAgeSeconds,
  });
  if (p.config.lockout.mode === 'dry-run') p.log.warn({ lockout: 'dry-run' }, 'LOCKOUT_MODE=dry-run: lockout decisions are logged, not enforced');
  return {
    guard, counters, codes, policy, router,
    /** an admin-sent password reset code (src/admin) */
    resets: resetSender(sender),
    /** what lockout adds to the login flow: links under the sign-in form, and the forced change of an expired password */
    extension: { links: router.links } satisfies LoginPageExtension,
    expiryStep: router.step,
    /** hash calls so far, when the hasher is metered */
    hashCalls: p.hasher.calls,
  };
}

export type Lockout = ReturnType<typeof createLockout>;
