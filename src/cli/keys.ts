// `idp keys list` and `idp keys rotate`: the keys table as stored, and new
// `next` keys on demand. Neither opens a stored secret; `rotate` makes new key
// material (locally wrapped, KMS-enveloped, or a new KMS key in kms-sign).
// Running servers pick the change up within KEYS_REFRESH_SECONDS.
import { eventsFor } from '../events/index.ts';
import type { ParseArgsConfig } from 'node:util';
import type { Config } from '../config/index.ts';
import type { Storage } from '../storage/index.ts';
import { createLogger } from '../logging/index.ts';
import { createKeyring } from '../keys/index.ts';
import type { KeyInfo, SigningAlg } from '../keys/types.ts';

export const KEYS_USAGE: Record<string, string> = {
  'keys list': 'idp keys list [--json]',
  'keys rotate': 'idp keys rotate [--alg RS256|PS256|ES256|EdDSA] [--cookie] [--activate-in SECONDS] [--kms-key-id KMS_KEY] [--json]',
};

export interface KeysCliDeps {
  parse(cmd: string, args: string[], options: ParseArgsConfig['options']): Record<string, string | boolean | string[] | undefined>;
  withStorage<T>(config: Config, fn: (s: Storage) => Promise<T>): Promise<T>;
  table(rows: Array<Record<string, unknown>>, cols: string[]): string[];
  usage(cmd: string, message: string): Error;
}

interface Out {
  json: boolean;
  lines: string[];
  data: unknown;
}

/** 2026-01-02T03:04:05.678Z → 2026-01-02 03:04:05Z */
const short = (t: string | undefined) => (t ? t.replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '');

function rows(keys: KeyInfo[]): Array<Record<string, unknown>> {
  return keys.map((k) => ({
    kind: k.kind,
    kid: k.kid,
    alg: k.alg ?? '',
    state: k.state,
    created: short(k.createdAt),
    activates: short(k.activatesAt),
    retires: short(k.retiresAt),
    removes: short(k.removesAt),
    kms_key: k.kmsKeyId ?? '',
  }));
}

export async function keysCommand(cmd: string, args: string[], config: Config, deps: KeysCliDeps): Promise<Out> {
  const out: Out = { json: false, lines: [], data: undefined };
  const log = createLogger('silent');
  if (cmd === 'keys list') {
    const v = deps.parse(cmd, args, {});
    out.json = !!v.json;
    const keys = await deps.withStorage(config, async (s) => {
      const keyring = createKeyring(config, s, { log });
      try {
        return await keyring.describe();
      } finally {
        keyring.close();
      }
    });
    out.data = keys;
    const cols = ['kind', 'kid', 'alg', 'state', 'created', 'activates', 'retires', 'removes', ...(config.keys.mode === 'kms-sign' ? ['kms_key'] : [])];
    out.lines.push(...deps.table(rows(keys), cols));
    return out;
  }

  // keys rotate
  const v = deps.parse(cmd, args, { alg: { type: 'string' }, cookie: { type: 'boolean' }, 'activate-in': { type: 'string' }, 'kms-key-id': { type: 'string' } });
  out.json = !!v.json;
  const alg = v.alg as string | undefined;
  if (alg !== undefined && !['RS256', 'PS256', 'ES256', 'EdDSA'].includes(alg)) throw deps.usage(cmd, '--alg must be RS256, PS256, ES256 or EdDSA');
  if (alg === 'EdDSA' && config.keys.mode === 'kms-sign') throw deps.usage(cmd, 'EdDSA is not available in KEYS_MODE=kms-sign: KMS has no Ed25519 keys');
  let activateIn: number | undefined;
  if (v['activate-in'] !== undefined) {
    activateIn = Number(v['activate-in']);
    if (!/^\d+$/.test(String(v['activate-in'])) || activateIn > 365 * 86400) throw deps.usage(cmd, '--activate-in must be a whole number of seconds (0 to 31536000)');
  }
  const kmsKeyId = v['kms-key-id'] as string | undefined;
  if (kmsKeyId !== undefined && (config.keys.mode !== 'kms-sign' || !alg)) throw deps.usage(cmd, '--kms-key-id needs KEYS_MODE=kms-sign and --alg');
  const actions = await deps.withStorage(config, async (s) => {
    const keyring = createKeyring(config, s, { log });
    const events = eventsFor(config, s, log, 'cli');
    try {
      const done = await keyring.rotate({
        ...(alg ? { alg: alg as SigningAlg } : {}),
        ...(v.cookie ? { cookie: true } : {}),
        ...(activateIn !== undefined ? { activateInSeconds: activateIn } : {}),
        ...(kmsKeyId ? { kmsKeyId } : {}),
      });
      // recorded after the key is stored (docs/events.md: key.rotated is not stored with its write)
      for (const a of done) {
        if (a.action !== 'skip') await events.append('key.rotated', { actor: 'cli', reason: 'operator_cli', data: { kind: a.kind, kid: a.kid, alg: a.alg, activates: a.at } });
      }
      return done;
    } finally {
      keyring.close();
      await events.close();
    }
  });
  out.data = actions;
  for (const a of actions) {
    const what = a.kind === 'cookie' ? 'cookie key' : `${a.alg} signing key`;
    if (a.action === 'skip') out.lines.push(`${what}: ${a.note} (${a.kid}, activates ${short(a.at)}); nothing created`);
    else out.lines.push(`${what} ${a.kid} created as next; it is published now and starts signing at ${short(a.at)}${a.note ? ` (${a.note})` : ''}`);
  }
  out.lines.push(`running servers pick this up within KEYS_REFRESH_SECONDS (${config.keys.refreshSeconds}s)`);
  return out;
}
