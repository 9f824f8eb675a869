// Configuration of legacy passwords: the secrets some schemes need (HMAC keys,
// Firebase scrypt parameters), read from LEGACY_SECRETS_FILE and never from an
// import file, and the per-source sunset dates of LEGACY_SUNSET.
import fs from 'node:fs';
import { ConfigError, type Config } from '../config/index.ts';
import type { FirebaseScryptConfig, LegacySecrets } from '../passwords/index.ts';

/** Reads and checks LEGACY_SECRETS_FILE: { "hmacKeys": { name: key }, "firebase": { name: { signerKey, saltSeparator, rounds, memCost } } } */
export function loadLegacySecrets(config: Config): LegacySecrets {
  const file = config.accounts.legacySecretsFile;
  if (!file) return {};
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new ConfigError(`LEGACY_SECRETS_FILE ${file} is not readable JSON (${(err as NodeJS.ErrnoException).code ?? 'parse error'})`);
  }
  const bad = (why: string): never => { throw new ConfigError(`LEGACY_SECRETS_FILE ${file}: ${why}`); };
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) bad('must be a JSON object');
  const o = raw as Record<string, unknown>;
  const out: { hmacKeys?: Record<string, string>; firebase?: Record<string, FirebaseScryptConfig> } = {};
  if (o.hmacKeys !== undefined) {
    if (!o.hmacKeys || typeof o.hmacKeys !== 'object') bad('hmacKeys must be an object of name: key');
    out.hmacKeys = {};
    for (const [name, key] of Object.entries(o.hmacKeys as Record<string, unknown>)) {
      if (typeof key !== 'string' || key === '') bad(`hmacKeys.${name} must be a non-empty string`);
      out.hmacKeys[name] = key as string;
    }
  }
  if (o.firebase !== undefined) {
    if (!o.firebase || typeof o.firebase !== 'object') bad('firebase must be an object of name: parameters');
    out.firebase = {};
    for (const [name, p] of Object.entries(o.firebase as Record<string, Record<string, unknown>>)) {
      if (!p || typeof p.signerKey !== 'string' || typeof p.saltSeparator !== 'string' || !Number.isInteger(p.rounds) || !Number.isInteger(p.memCost)) {
        bad(`firebase.${name} needs signerKey, saltSeparator (base64), rounds and memCost (integers)`);
      }
      out.firebase[name] = { signerKey: p.signerKey as string, saltSeparator: p.saltSeparator as string, rounds: p.rounds as number, memCost: p.memCost as number };
    }
  }
  return out;
}

/** True when `source` has a sunset (an instant, see LEGACY_SUNSET) that is not in the future. */
export function sunsetPassed(sunset: Record<string, string>, source: string, now = new Date()): boolean {
  const at = Object.hasOwn(sunset, source) ? sunset[source] : undefined;
  return at !== undefined && Date.parse(at) <= now.getTime();
}
