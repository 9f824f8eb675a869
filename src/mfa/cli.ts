// `idp users mfa ...` and `idp users devices ...`: operator commands for
// two-step verification (src/cli/main.ts dispatches here). Nothing secret is
// printed except new recovery codes, which the operator hands to the user.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import type { Config } from '../config/index.ts';
import type { Storage } from '../storage/index.ts';
import { openKeyring } from '../keys/index.ts';
import { argon2Hasher } from '../accounts/hasher.ts';
import { DynamoAccountStore } from '../accounts/dynamo-store.ts';
import { eventsFor } from '../events/index.ts';
import { createLogger } from '../logging/index.ts';
import { MfaService } from './service.ts';
import { MfaStore } from './store.ts';

export const MFA_USAGE: Record<string, string> = {
  'users mfa': 'idp users mfa status|reset|recovery-codes --sub SUB [--json]',
  'users devices': 'idp users devices list --sub SUB [--json] | idp users devices revoke --sub SUB (--device ID | --all) [--json]',
};

export interface MfaCliKit {
  config: Config;
  UsageError: new (message: string) => Error;
  withStorage<T>(config: Config, fn: (s: Storage) => Promise<T>): Promise<T>;
  table(rows: Array<Record<string, unknown>>, cols: string[]): string[];
}

interface Out {
  json: boolean;
  lines: string[];
  data: unknown;
}

const ACTIONS: Record<string, string[]> = { 'users mfa': ['status', 'reset', 'recovery-codes'], 'users devices': ['list', 'revoke'] };

async function withMfa<T>(kit: MfaCliKit, fn: (mfa: MfaService, accounts: DynamoAccountStore) => Promise<T>): Promise<T> {
  const { config } = kit;
  return kit.withStorage(config, async (s) => {
    const keyring = await openKeyring(config, s);
    const events = eventsFor(config, s, createLogger('silent'), 'cli');
    try {
      const accounts = new DynamoAccountStore(s, argon2Hasher(config.argon2), keyring);
      const mfa = new MfaService({ store: new MfaStore(s), keys: accounts, events, config: config.mfa });
      return await fn(mfa, accounts);
    } finally {
      await events.close();
      (keyring as { close?: () => void }).close?.();
    }
  });
}

export async function runMfaCli(cmd: string, args: string[], kit: MfaCliKit): Promise<Out> {
  const [action, ...rest] = args;
  const usage = (m: string) => new kit.UsageError(`${m}\nusage: ${MFA_USAGE[cmd]}`);
  if (!action || !ACTIONS[cmd].includes(action)) throw usage(action ? `unknown action "${action}"` : 'missing action');
  const options: ParseArgsConfig['options'] = { sub: { type: 'string' }, json: { type: 'boolean' }, ...(action === 'revoke' ? { device: { type: 'string' }, all: { type: 'boolean' } } : {}) };
  let v: Record<string, string | boolean | undefined>;
  try {
    v = parseArgs({ args: rest, options, strict: true, allowPositionals: false }).values as typeof v;
  } catch (err) {
    throw usage((err as Error).message);
  }
  const sub = v.sub;
  if (typeof sub !== 'string' || sub === '') throw usage('missing --sub');
  const out: Out = { json: !!v.json, lines: [], data: undefined };

  await withMfa(kit, async (mfa, accounts) => {
    if (!(await accounts.findBySub(sub))) throw new kit.UsageError(`no account ${sub}`);
    switch (`${cmd} ${action}`) {
      case 'users mfa status': {
        const st = await mfa.status(sub);
        out.data = { sub, totp: st.totp ? { enrolledAt: st.totp.enrolledAt } : null, recoveryRemaining: st.recoveryRemaining, devices: st.devices.length };
        out.lines.push(`authenticator app: ${st.totp ? `on since ${st.totp.enrolledAt}` : 'off'}`,
          `recovery codes left: ${st.recoveryRemaining}`, `remembered devices: ${st.devices.length}`);
        return;
      }
      case 'users mfa reset': {
        const r = await mfa.reset(sub, 'admin');
        out.data = { sub, reset: true, factors: r.factors, devicesRevoked: r.devices };
        out.lines.push(`two-step verification reset for ${sub}: ${r.factors ? 'authenticator app and recovery codes removed' : 'nothing was enrolled'}, ${r.devices} remembered device(s) forgotten`);
        return;
      }
      case 'users mfa recovery-codes': {
        let codes: string[];
        try {
          codes = await mfa.regenerateRecoveryCodes(sub, 'admin');
        } catch (err) {
          if ((err as Error).name === 'NoTotp') throw new kit.UsageError(`${sub} has no authenticator app: recovery codes come with one`);
          throw err;
        }
        out.data = { sub, recoveryCodes: codes };
        out.lines.push('new recovery codes (the old ones no longer work; shown once):', ...codes.map((c) => `  ${c}`));
        return;
      }
      case 'users devices list': {
        const list = await mfa.listDevices(sub);
        out.data = list.map((d) => ({ id: d.id, label: d.label, createdAt: d.createdAt, lastUsedAt: d.lastUsedAt, expiresAt: new Date(d.expiresAt * 1000).toISOString() }));
        out.lines.push(...kit.table(out.data as Array<Record<string, unknown>>, ['id', 'label', 'createdAt', 'lastUsedAt', 'expiresAt']));
        return;
      }
      case 'users devices revoke': {
        if (!!v.all === (typeof v.device === 'string')) throw usage('give --device ID or --all');
        if (v.all) {
          const n = await mfa.revokeAllDevices(sub, 'admin');
          out.data = { sub, revoked: n };
          out.lines.push(`${n} remembered device(s) forgotten`);
        } else {
          const ok = await mfa.revokeDevice(sub, v.device as string, 'admin');
          if (!ok) throw new kit.UsageError(`no remembered device ${v.device}`);
          out.data = { sub, device: v.device, revoked: 1 };
          out.lines.push(`device ${v.device} forgotten`);
        }
        return;
      }
    }
  });
  return out;
}
