// Lockout and password policy, put together for the composition root
// (src/server.ts) and the CLI (src/lockout/cli.ts). docs/lockout.md tells
// the whole story: counters, order of work, known devices, dry-run, unlock
// paths, password policy, events.
import type Provider from 'oidc-provider';
import type { Config } from '../config/index.ts';
import type { Logger } from '../logging/index.ts';
import type { Storage } from '../storage/index.ts';
import type { Keyring } from '../keys/types.ts';
import type { Views } from '../http/views.ts';
import type { AccountStore } from '../accounts/types.ts';
import type { PasswordHasher } from '../accounts/hasher.ts';
import type { MessageSender } from '../events/messages.ts';
import type { LoginStrategy } from '../interactions/strategies/types.ts';
import { PasswordPolicy } from '../passwords/policy.ts';
import { CounterStore, identifierHash } from './counters.ts';
import { OneTimeCodes } from './codes.ts';
import { DynamoLoginGuard, type EventsLike } from './guard.ts';
import { selfServiceRouter, type SecondFactor } from './self-service.ts';
import type { HashCalls } from './metered-hasher.ts';

export { meteredHasher } from './metered-hasher.ts';
export type { LoginGuard } from './types.ts';

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
  provider: () => Provider;
  /** the password strategy: the change page checks the current password with it */
  strategy: LoginStrategy;
  /** MFA's step after the first factor (src/mfa): the change pages end in a login that passes it */
  secondFactor?: () => SecondFactor | undefined;
}

export function createLockout(p: LockoutParts) {
  const { guard, counters, codes, identifierHash } = createGuard(p);
  const policy = new PasswordPolicy(p.config.passwordPolicy, (hash, password) => p.hasher.verify(hash, password));
  // the list is read once, off the request path
  policy.warm().catch((err: unknown) => p.log.error({ err: { message: (err as Error).message } }, 'common password list not loaded'));
  const router = selfServiceRouter({
    provider: p.provider, views: p.views, accounts: p.accounts, hasher: p.hasher, strategy: p.strategy,
    guard, codes, policy, messages: p.messages, events: p.events, log: p.log, identifierHash,
    secureCookies: p.config.secureCookies, maxAgeSeconds: p.config.passwordPolicy.maxAgeSeconds, secondFactor: p.secondFactor,
  });
  if (p.config.lockout.mode === 'dry-run') p.log.warn({ lockout: 'dry-run' }, 'LOCKOUT_MODE=dry-run: lockout decisions are logged, not enforced');
  return {
    guard, counters, codes, policy, router,
    /** what the login route needs (InteractionDeps.loginExtras) */
    loginExtras: { links: router.links, afterLogin: router.afterLogin },
    /** hash calls so far, when the hasher is metered */
    hashCalls: p.hasher.calls,
  };
}

export type Lockout = ReturnType<typeof createLockout>;
