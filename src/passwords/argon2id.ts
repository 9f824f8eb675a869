/**
 * argon2id: the scheme for every password we set.
 *
 * Hashing and verification run in the `argon2` package's native addon on
 * libuv's thread pool, so they do not block the event loop. Hashes are PHC
 * strings: $argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt>$<hash>.
 *
 * We write that string ourselves: the argon2 package (0.45) serializes the
 * parameters as "m=..,p=..,t=..", which the reference libargon2 decoder (and so
 * PHP's password_verify, among others) rejects; the PHC/reference order is
 * m, t, p. Reading accepts either order.
 */
import { randomBytes } from 'node:crypto';
import argon2 from 'argon2';

export interface Argon2Params {
  /** Memory in KiB (argon2 m). */
  memoryKiB: number;
  /** Passes over memory (argon2 t). */
  timeCost: number;
  /** Lanes (argon2 p). */
  parallelism: number;
}

/** OWASP Password Storage Cheat Sheet's first argon2id configuration: m=19456 KiB (19 MiB), t=2, p=1. */
export const DEFAULT_ARGON2_PARAMS: Readonly<Argon2Params> = Object.freeze({
  memoryKiB: 19456,
  timeCost: 2,
  parallelism: 1,
});

/** Limits on what we accept from a stored argon2 hash (ours or imported), so one hash cannot exhaust the host. */
export const ARGON2_LIMITS = Object.freeze({
  maxMemoryKiB: 1024 * 1024, // 1 GiB
  maxTimeCost: 64,
  maxParallelism: 64,
});

const ARGON2_VERSION = 0x13;
const SALT_BYTES = 16;
const HASH_BYTES = 32;

/** PHC base64: standard alphabet, no padding. */
function b64(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('base64').replace(/=+$/, '');
}

function resolve(params: Partial<Argon2Params> | undefined): Argon2Params {
  const p = { ...DEFAULT_ARGON2_PARAMS, ...params };
  if (!Number.isSafeInteger(p.memoryKiB) || p.memoryKiB < 8 * p.parallelism || p.memoryKiB > ARGON2_LIMITS.maxMemoryKiB) {
    throw new RangeError(`argon2 memoryKiB out of range: ${p.memoryKiB}`);
  }
  if (!Number.isSafeInteger(p.timeCost) || p.timeCost < 1 || p.timeCost > ARGON2_LIMITS.maxTimeCost) {
    throw new RangeError(`argon2 timeCost out of range: ${p.timeCost}`);
  }
  if (!Number.isSafeInteger(p.parallelism) || p.parallelism < 1 || p.parallelism > ARGON2_LIMITS.maxParallelism) {
    throw new RangeError(`argon2 parallelism out of range: ${p.parallelism}`);
  }
  return p;
}

/** Hashes `password` with argon2id and a fresh random 16-byte salt; returns the PHC string. */
export async function hashPassword(password: string, params?: Partial<Argon2Params>): Promise<string> {
  const p = resolve(params);
  const salt = randomBytes(SALT_BYTES);
  const raw = await argon2.hash(password, {
    type: argon2.argon2id,
    memoryCost: p.memoryKiB,
    timeCost: p.timeCost,
    parallelism: p.parallelism,
    version: ARGON2_VERSION,
    hashLength: HASH_BYTES,
    salt,
    raw: true,
  });
  return `$argon2id$v=${ARGON2_VERSION}$m=${p.memoryKiB},t=${p.timeCost},p=${p.parallelism}$${b64(salt)}$${b64(raw)}`;
}

export interface ParsedArgon2 {
  type: 'argon2id' | 'argon2i' | 'argon2d';
  version: number;
  memoryKiB: number;
  timeCost: number;
  parallelism: number;
}

// parameters may come in any order: the argon2 package itself writes m,p,t
const PHC_RE = /^\$(argon2id|argon2i|argon2d)\$(?:v=(\d+)\$)?([a-z]+=[^$,]*(?:,[a-z]+=[^$,]*)*)\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)$/;

/** Parses an argon2 PHC string's header, or undefined if it is not one. */
export function parseArgon2(hash: string): ParsedArgon2 | undefined {
  const m = PHC_RE.exec(hash);
  if (!m) return undefined;
  const params = new Map(m[3].split(',').map((kv) => kv.split('=') as [string, string]));
  const num = (k: string) => (/^\d+$/.test(params.get(k) ?? '') ? Number(params.get(k)) : NaN);
  const parsed = {
    type: m[1] as ParsedArgon2['type'],
    version: m[2] === undefined ? 0x10 : Number(m[2]),
    memoryKiB: num('m'),
    timeCost: num('t'),
    parallelism: num('p'),
  };
  return [parsed.memoryKiB, parsed.timeCost, parsed.parallelism].some(Number.isNaN) ? undefined : parsed;
}

/** Why an argon2 hash can never verify here (malformed, or costs beyond ARGON2_LIMITS), or undefined. */
export function argon2HashProblem(hash: string): string | undefined {
  const p = parseArgon2(hash);
  if (!p) return 'not a well-formed argon2 PHC string ($argon2id$v=19$m=..,t=..,p=..$salt$hash)';
  if (p.version !== 0x13 && p.version !== 0x10) return `unsupported argon2 version ${p.version}`;
  if (p.memoryKiB > ARGON2_LIMITS.maxMemoryKiB) return `argon2 memory ${p.memoryKiB} KiB is above the ${ARGON2_LIMITS.maxMemoryKiB} KiB limit`;
  if (p.timeCost < 1 || p.timeCost > ARGON2_LIMITS.maxTimeCost) return `argon2 time cost ${p.timeCost} is out of range`;
  if (p.parallelism < 1 || p.parallelism > ARGON2_LIMITS.maxParallelism) return `argon2 parallelism ${p.parallelism} is out of range`;
  if (p.memoryKiB < 8 * p.parallelism) return 'argon2 memory is below 8 KiB per lane';
  return undefined;
}

/**
 * Verifies `password` against an argon2 PHC string (argon2id, and also the
 * argon2i / argon2d variants for imported hashes). The argon2 package compares
 * with crypto.timingSafeEqual. Malformed or out-of-limit hashes return false.
 */
export async function verifyArgon2(hash: string, password: string): Promise<boolean> {
  if (typeof hash !== 'string' || typeof password !== 'string') return false;
  if (argon2HashProblem(hash) !== undefined) return false;
  try {
    return await argon2.verify(hash, password);
  } catch {
    return false;
  }
}

/**
 * True when `hash` should be replaced by a fresh hashPassword(): it is not an
 * argon2id hash of the current version (legacy schemes, argon2i/d, malformed)
 * or its costs differ from `params` (defaults: DEFAULT_ARGON2_PARAMS).
 */
export function needsRehash(hash: string, params?: Partial<Argon2Params>): boolean {
  const want = { ...DEFAULT_ARGON2_PARAMS, ...params };
  const p = typeof hash === 'string' ? parseArgon2(hash) : undefined;
  if (!p || p.type !== 'argon2id' || p.version !== ARGON2_VERSION) return true;
  return p.memoryKiB !== want.memoryKiB || p.timeCost !== want.timeCost || p.parallelism !== want.parallelism;
}
