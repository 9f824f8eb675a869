// `idp users unlock (--sub SUB | --email EMAIL)`: clears every lockout counter
// of an account (temporary and permanent locks, per-IP and per-device
// counters), and emits account.unlocked (reason "admin"). src/cli/main.ts
// dispatches here.
import type { ParseArgsConfig } from 'node:util';
import type { Config } from '../config/index.ts';
import type { Storage } from '../storage/index.ts';
import { createLogger } from '../logging/index.ts';
import { openKeyring } from '../keys/index.ts';
import { argon2Hasher } from '../accounts/hasher.ts';
import { DynamoAccountStore } from '../accounts/dynamo-store.ts';
import { eventsFor } from '../events/index.ts';
import { createGuard } from './index.ts';

export const LOCKOUT_USAGE: Record<string, string> = {
  'users unlock': 'idp users unlock (--sub SUB | --email EMAIL) [--json]',
};

export interface LockoutCliDeps {
  parse(cmd: string, args: string[], options: ParseArgsConfig['options']): Record<string, string | boolean | string[] | undefined>;
  withStorage<T>(config: Config, fn: (s: Storage) => Promise<T>): Promise<T>;
  usage(cmd: string, message: string): Error;
}

export class NoSuchAccount extends Error {
  override name = 'NoSuchAccount';
}

export async function lockoutCommand(cmd: string, args: string[], config: Config, deps: LockoutCliDeps): Promise<{ json: boolean; lines: string[]; data: unknown }> {
  const v = deps.parse(cmd, args, { sub: { type: 'string' }, email: { type: 'string' } });
  const bySub = typeof v.sub === 'string' && v.sub !== '' ? v.sub : undefined;
  const byEmail = typeof v.email === 'string' && v.email !== '' ? v.email : undefined;
  if (!bySub === !byEmail) throw deps.usage(cmd, 'give exactly one of --sub and --email');
  const log = createLogger('silent');
  const data = await deps.withStorage(config, async (s) => {
    const keyring = await openKeyring(config, s);
    const events = eventsFor(config, s, log, 'cli');
    try {
      const accounts = new DynamoAccountStore(s, argon2Hasher(config.argon2), keyring);
      const account = bySub ? await accounts.findBySub(bySub) : await accounts.findByLogin(byEmail!);
      if (!account) throw new NoSuchAccount(bySub ? `no account ${bySub}` : 'no account with that e-mail address');
      const { guard } = createGuard({ config, storage: s, keyring, accounts, events, log });
      const r = await guard.unlock(account.sub, 'admin');
      return { sub: account.sub, ...r };
    } finally {
      await events.close();
      (keyring as { close?: () => void }).close?.();
    }
  });
  return {
    json: !!v.json,
    data,
    lines: [data.wasLocked ? `account ${data.sub} unlocked (${data.cleared} counters cleared)` : `account ${data.sub} was not locked (${data.cleared} counters cleared)`],
  };
}
