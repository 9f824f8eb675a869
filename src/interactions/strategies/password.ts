// Password strategy: identifier (e-mail or E.164 phone) + password.
//
// An account with an argon2id secret is checked against it. An imported
// account without one is checked against the legacy credentials of its
// linked, verified source identities; on a match the password becomes its
// argon2id secret and every legacy credential of the account is deleted, in
// ONE conditional write on the account's version (completeLegacyLogin), so two
// concurrent logins cannot leave two different secrets. Then a
// `password.migrated` event names the source and scheme (never the password).
//
// A legacy password is checked against today's password policy when it
// matches (LEGACY_PASSWORD_POLICY, per source). With `allow` it is rehashed
// as any other. With `change` (the default) a password that fails the policy
// still signs in, but the sign-in leaves the password-expiry step
// (src/lockout/self-service.ts) a note to ask for a new one before it
// completes, as for an expired password; the new one replaces the legacy
// credential (argon2id, the legacy hashes retired). Until then the legacy
// credential stays, so a user who cancels is asked again next time.
//
// An unknown identifier still costs one argon2 verify (dummyVerify), and every
// failure is the same LoginFailed, so neither the message nor the time tells
// whether an account exists. The one other message, LegacyPasswordRetired
// (the source's sunset has passed), is shown only after the legacy hash matched.
import type { Context } from 'koa';
import type { Logger } from 'pino';
import { ConcurrentUpdate, type Account, type AccountStore } from '../../accounts/types.ts';
import type { PasswordHasher } from '../../accounts/hasher.ts';
import { sunsetPassed } from '../../accounts/legacy-config.ts';
import { detectScheme, needsRehash, verifyLegacy, type Argon2Params, type LegacySecrets } from '../../passwords/index.ts';
import { LegacyPasswordRetired, LoginFailed } from '../errors.ts';
import type { Authenticated, LoginStrategy } from './types.ts';
import type { EventRecorder } from '../../events/types.ts';

const MAX_LOGIN = 320;
const MAX_PASSWORD = 1024;

export interface PasswordStrategyOptions {
  /** HMAC keys and Firebase parameters of legacy schemes (LEGACY_SECRETS_FILE) */
  legacySecrets?: LegacySecrets;
  /** source -> ISO instant from which its legacy hashes no longer sign in (LEGACY_SUNSET) */
  sunset?: Record<string, string>;
  /** our argon2id parameters: a secret with others is re-hashed at login */
  argon2?: Argon2Params;
  log?: Logger;
  /** the events seam, when there is one: password.migrated goes there (it logs the line too) */
  events?: EventRecorder;
  /** today's password policy: what is wrong with a password for this account (empty: nothing) */
  policy?: (password: string, account: Account) => Promise<string[]>;
  /** LEGACY_PASSWORD_POLICY: source (or "*") -> change | allow */
  legacyPolicy?: Record<string, 'change' | 'allow'>;
}

/** the step that asks for a new password (src/lockout/self-service.ts, PASSWORD_EXPIRY_STEP) */
export const WEAK_LEGACY_PASSWORD = { step: 'password-expiry', reason: 'policy' } as const;

export function passwordStrategy(accounts: AccountStore, hasher: PasswordHasher, opts: PasswordStrategyOptions = {}): LoginStrategy {
  const secrets = opts.legacySecrets ?? {};

  async function withArgon2(account: Account, hash: string, password: string): Promise<Authenticated> {
    const ok = await hasher.verify(hash, password);
    if (!ok || account.status !== 'active') throw new LoginFailed();
    let now: Account | undefined = account;
    if (opts.argon2 && needsRehash(hash, opts.argon2)) {
      // costs changed since this hash was made: best effort, a concurrent change wins
      now = await accounts.setPassword(account, await hasher.hash(password)).catch((err) => {
        if (!(err instanceof ConcurrentUpdate)) throw err;
        return undefined; // changed by someone else: not known here any more
      });
    }
    return { accountId: account.sub, amr: ['pwd'], ...(now ? { account: now } : {}) };
  }

  return {
    id: 'password',
    async authenticate(_ctx: Context, form, prefetched): Promise<Authenticated> {
      const login = typeof form.login === 'string' ? form.login.trim() : '';
      const password = typeof form.password === 'string' ? form.password : '';
      if (!login || !password || login.length > MAX_LOGIN || password.length > MAX_PASSWORD) {
        await hasher.dummyVerify(password.slice(0, MAX_PASSWORD));
        throw new LoginFailed();
      }
      // the same read findByLogin makes, when the caller started it beside its own
      const account = await (prefetched?.account ?? accounts.findByLogin(login));
      if (!account) {
        await hasher.dummyVerify(password);
        throw new LoginFailed();
      }
      if (account.passwordHash) return withArgon2(account, account.passwordHash, password);

      const candidates = account.identities.filter((i) => i.verifiedLink && i.legacy);
      if (candidates.length === 0) {
        await hasher.dummyVerify(password);
        throw new LoginFailed();
      }
      let match: (typeof candidates)[number] | undefined;
      for (const c of candidates) {
        if (await verifyLegacy(c.legacy!, password, secrets)) {
          match = c;
          break;
        }
      }
      if (!match || account.status !== 'active') throw new LoginFailed();
      if (sunsetPassed(opts.sunset ?? {}, match.source)) throw new LegacyPasswordRetired();

      // today's policy: a legacy password that fails it is replaced before the sign-in completes (unless its source allows it)
      const mode = opts.legacyPolicy?.[match.source] ?? opts.legacyPolicy?.['*'] ?? 'change';
      const problems = mode === 'change' && opts.policy ? await opts.policy(password, account) : [];
      if (problems.length > 0) {
        return { accountId: account.sub, amr: ['pwd'], account, pending: { step: WEAK_LEGACY_PASSWORD.step, data: { reason: WEAK_LEGACY_PASSWORD.reason, source: match.source, problems } } };
      }

      const scheme = match.legacy!.scheme ?? detectScheme(match.legacy!.hash) ?? 'unknown';
      let migrated: Account;
      try {
        const argon2 = await hasher.hash(password);
        const write = () => accounts.completeLegacyLogin(account, argon2, { source: match!.source, scheme });
        // password.migrated is stored with the rehash (the account's `passwordMigrated` records it too)
        migrated = opts.events ? await opts.events.commit({ type: 'password.migrated', sub: account.sub, data: { source: match.source, scheme } }, write) : await write();
      } catch (err) {
        if (!(err instanceof ConcurrentUpdate)) throw err;
        // a concurrent login changed the account first: whatever secret it stored decides
        const now = await accounts.findBySub(account.sub);
        if (!now?.passwordHash) throw new LoginFailed();
        return withArgon2(now, now.passwordHash, password);
      }
      if (!opts.events) opts.log?.info({ event: 'password.migrated', sub: account.sub, source: match.source, scheme }, 'legacy password replaced by argon2id');
      return { accountId: account.sub, amr: ['pwd'], account: migrated };
    },
  };
}
