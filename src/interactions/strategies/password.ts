// Password strategy: identifier + password against the account's argon2id
// secret. An unknown identifier still costs one argon2 verify (dummyVerify),
// and every failure is the same LoginFailed, so neither the message nor the
// time tells whether an account exists.
import type { Context } from 'koa';
import type { AccountStore } from '../../accounts/types.ts';
import type { PasswordHasher } from '../../accounts/hasher.ts';
import { LoginFailed } from '../errors.ts';
import type { Authenticated, LoginStrategy } from './types.ts';

const MAX_LOGIN = 320;
const MAX_PASSWORD = 1024;

export function passwordStrategy(accounts: AccountStore, hasher: PasswordHasher): LoginStrategy {
  return {
    id: 'password',
    async authenticate(_ctx: Context, form): Promise<Authenticated> {
      const login = typeof form.login === 'string' ? form.login.trim() : '';
      const password = typeof form.password === 'string' ? form.password : '';
      if (!login || !password || login.length > MAX_LOGIN || password.length > MAX_PASSWORD) {
        await hasher.dummyVerify(password.slice(0, MAX_PASSWORD));
        throw new LoginFailed();
      }
      const account = await accounts.findByLogin(login);
      if (!account?.passwordHash) {
        await hasher.dummyVerify(password);
        throw new LoginFailed();
      }
      const ok = await hasher.verify(account.passwordHash, password);
      if (!ok || account.status !== 'active') throw new LoginFailed();
      return { accountId: account.sub, amr: ['pwd'] };
    },
  };
}
