// The MFA capability: TOTP enrolment and verification, recovery codes,
// e-mail/SMS codes, remembered devices, reset. Routes (login step, account
// page) and the CLI call this; it reaches storage through MfaStore, the
// record's data key through RecordKeys, and emits one event per change.
import crypto from 'node:crypto';
import { generateSecret, generateURI, verify as verifyOtp } from 'otplib';
import QRCode from 'qrcode';
import type { OutgoingMessage } from '../events/messages.ts';
import {
  codeHash, deviceKey, newMessageCode, newRecoveryCode, normalizeRecoveryCode, openSecret, sameHash, sealSecret,
} from './crypto.ts';
import type { DeviceItem, FlowItem, MessageCode, MfaStore } from './store.ts';
import { MfaCodeRejected, type MfaConfig } from './types.ts';

/** the account record's data key (DynamoAccountStore.recordKey) */
export interface RecordKeys {
  recordKey(sub: string): Promise<Buffer | undefined>;
}

export type { EventRecorder as MfaEvents } from '../events/types.ts';
import type { EventRecorder as MfaEvents } from '../events/types.ts';

export interface MfaSender {
  send(m: OutgoingMessage): Promise<void>;
}

export const RECOVERY_CODE_COUNT = 10;
export const CODE_MAX_TRIES = 5;
export const CODE_MAX_SENDS = 5;
const PENDING_TTL_SECONDS = 15 * 60;
const TOTP_PERIOD = 30;

export class NoSuchAccount extends Error {
  override name = 'NoSuchAccount';
}

export class NoTotp extends Error {
  override name = 'NoTotp';
}

export interface MfaStatus {
  totp?: { enrolledAt: string };
  recoveryRemaining: number;
  devices: DeviceItem[];
}

export interface TotpSetup {
  /** base32, shown as text beside the QR code */
  secret: string;
  uri: string;
  /** data: URI of an SVG QR code */
  qr: string;
}

/**
 * The time step a 6-digit TOTP code belongs to, when it is one of the steps
 * now-1, now, now+1 (±30 s) and above `afterStep`; otherwise undefined.
 */
export async function totpStep(secret: string, token: string, epochSeconds: number, afterStep?: number): Promise<number | undefined> {
  if (!/^\d{6}$/.test(token)) return undefined;
  const r = await verifyOtp({
    secret, token, epoch: epochSeconds, epochTolerance: TOTP_PERIOD,
    ...(afterStep !== undefined ? { afterTimeStep: afterStep } : {}),
  });
  const step = r.valid ? (r as { timeStep?: number }).timeStep : undefined;
  return typeof step === 'number' ? step : undefined;
}

/** "Firefox on Linux": enough for a user to recognise a device in a list */
export function deviceLabel(userAgent: string | undefined): string {
  const ua = userAgent ?? '';
  const browser = /Edg\//.test(ua) ? 'Edge' : /Firefox\//.test(ua) ? 'Firefox' : /Chrome\//.test(ua) ? 'Chrome' : /Safari\//.test(ua) ? 'Safari' : 'Browser';
  const os = /Android/.test(ua) ? 'Android' : /iPhone|iPad/.test(ua) ? 'iOS' : /Windows/.test(ua) ? 'Windows' : /Mac OS X/.test(ua) ? 'macOS' : /Linux/.test(ua) ? 'Linux' : 'unknown system';
  return `${browser} on ${os}`;
}

const cleanOtp = (input: unknown) => (typeof input === 'string' ? input.replace(/[\s-]/g, '') : '');

export interface MfaServiceOptions {
  store: MfaStore;
  keys: RecordKeys;
  events: MfaEvents;
  messages?: MfaSender;
  config: MfaConfig;
  /** milliseconds since the epoch (tests move it) */
  now?: () => number;
}

export class MfaService {
  readonly config: MfaConfig;
  readonly store: MfaStore;
  private readonly keys: RecordKeys;
  private readonly events: MfaEvents;
  private readonly messages: MfaSender | undefined;
  private readonly now: () => number;

  constructor(opts: MfaServiceOptions) {
    this.store = opts.store;
    this.keys = opts.keys;
    this.events = opts.events;
    this.messages = opts.messages;
    this.config = opts.config;
    this.now = opts.now ?? Date.now;
  }

  private async key(sub: string): Promise<Buffer> {
    const k = await this.keys.recordKey(sub);
    if (!k) throw new NoSuchAccount(`no account ${sub}`);
    return k;
  }

  private newRecoverySet(key: Buffer): { set: string; codes: string[]; hashes: string[] } {
    const codes = Array.from({ length: RECOVERY_CODE_COUNT }, newRecoveryCode);
    return { set: crypto.randomUUID(), codes, hashes: codes.map((c) => codeHash(key, 'recovery', normalizeRecoveryCode(c))) };
  }

  // ---- status ----

  async status(sub: string): Promise<MfaStatus> {
    const [f, devices] = await Promise.all([this.store.getFactors(sub), this.store.listDevices(sub)]);
    return {
      ...(f?.totpSecret && f.totpEnrolledAt ? { totp: { enrolledAt: f.totpEnrolledAt } } : {}),
      recoveryRemaining: f?.totpSecret ? Object.keys(f.recoveryCodes ?? {}).length : 0,
      devices,
    };
  }

  async hasTotp(sub: string): Promise<boolean> {
    return !!(await this.store.getFactors(sub))?.totpSecret;
  }

  // ---- TOTP ----

  /** the secret being enrolled in `context` (one login interaction, or the account page): the same one until it is confirmed or expires */
  async totpSetup(sub: string, context: string, label: string): Promise<TotpSetup> {
    const key = await this.key(sub);
    const pending = await this.store.getPending(sub, context);
    let secret: string;
    if (pending) {
      secret = openSecret(key, sub, 'totp-pending', pending.sealed);
    } else {
      secret = generateSecret({ length: 20 });
      await this.store.putPending(sub, context, sealSecret(key, sub, 'totp-pending', secret), PENDING_TTL_SECONDS);
    }
    const uri = generateURI({ issuer: this.config.totpIssuer, label, secret });
    const svg = await QRCode.toString(uri, { type: 'svg', margin: 2, errorCorrectionLevel: 'M' });
    return { secret, uri, qr: `data:image/svg+xml;base64,${Buffer.from(svg).toString('base64')}` };
  }

  /**
   * Completes an enrolment: the code must come from the pending secret.
   * Stores the secret (sealed) with its first accepted step and a new set of
   * recovery codes, returned here once. undefined: wrong code.
   */
  async confirmTotp(sub: string, context: string, otp: unknown, opts: { replace: boolean; via: 'login' | 'account' }): Promise<string[] | undefined> {
    const key = await this.key(sub);
    const pending = await this.store.getPending(sub, context);
    if (!pending) return undefined;
    const secret = openSecret(key, sub, 'totp-pending', pending.sealed);
    const step = await totpStep(secret, cleanOtp(otp), Math.floor(this.now() / 1000));
    if (step === undefined) return undefined;
    if (!(await this.store.takePending(sub, context, pending.sealed))) return undefined;
    const rec = this.newRecoverySet(key);
    const stored = await this.events.commitIf([
      { type: 'mfa.enrolled', sub, data: { method: 'totp', via: opts.via, replaced: opts.replace } },
      { type: 'mfa.recovery.regenerated', sub, data: { by: 'user', count: rec.codes.length, reason: 'enrolment' } },
    ], () => this.store.putTotp(sub, {
      sealed: sealSecret(key, sub, 'totp', secret), id: crypto.randomUUID(), step, recoverySet: rec.set, recoveryHashes: rec.hashes,
    }, opts.replace));
    if (!stored) return undefined;
    return rec.codes;
  }

  /** a code of the enrolled secret, within ±1 step, never accepted before (one conditional write) */
  async verifyTotp(sub: string, otp: unknown): Promise<boolean> {
    const f = await this.store.getFactors(sub);
    if (!f?.totpSecret || !f.totpId) return false;
    const secret = openSecret(await this.key(sub), sub, 'totp', f.totpSecret);
    const step = await totpStep(secret, cleanOtp(otp), Math.floor(this.now() / 1000), f.totpLastStep);
    if (step === undefined) return false;
    return this.store.consumeStep(sub, f.totpId, step);
  }

  // ---- recovery codes ----

  async useRecoveryCode(sub: string, input: unknown): Promise<{ ok: boolean; remaining: number }> {
    const code = typeof input === 'string' ? normalizeRecoveryCode(input) : '';
    const f = await this.store.getFactors(sub);
    if (!f?.totpSecret || !f.recoverySet || !/^[a-z0-9]{10}$/.test(code)) return { ok: false, remaining: Object.keys(f?.recoveryCodes ?? {}).length };
    const hash = codeHash(await this.key(sub), 'recovery', code);
    const known = Object.keys(f.recoveryCodes ?? {}).some((h) => sameHash(h, hash));
    const left = Object.keys(f.recoveryCodes ?? {}).length - 1;
    const ok = known && await this.events.commitIf({ type: 'mfa.recovery.used', sub, data: { remaining: left } }, () => this.store.consumeRecovery(sub, f.recoverySet!, hash));
    const remaining = ok ? left : left + 1;
    return { ok, remaining };
  }

  /** a new set of 10 codes (returned once); the old set stops working */
  async regenerateRecoveryCodes(sub: string, by: 'user' | 'admin'): Promise<string[]> {
    const rec = this.newRecoverySet(await this.key(sub));
    const replaced = await this.events.commitIf({ type: 'mfa.recovery.regenerated', sub, data: { by, count: rec.codes.length } }, () => this.store.replaceRecovery(sub, rec.set, rec.hashes));
    if (!replaced) throw new NoTotp('recovery codes come with an authenticator app, and this account has none');
    return rec.codes;
  }

  /** removes every factor, pending enrolment and remembered device of the account */
  async reset(sub: string, by: 'admin' | 'user', opts: { actor?: string; requestId?: string } = {}): Promise<{ factors: boolean; devices: number }> {
    let r = { factors: false, devices: 0 };
    // the user removing their own factors is mfa.removed; an admin's reset is mfa.reset (actor: the admin service's)
    await this.events.commit(() => ({ type: by === 'user' ? 'mfa.removed' : 'mfa.reset', sub, actor: opts.actor, requestId: opts.requestId, data: { by } }), async () => {
      r = await this.store.deleteAll(sub);
    });
    return r;
  }

  // ---- remembered devices ----

  async rememberDevice(sub: string, deviceId: string, userAgent: string | undefined): Promise<void> {
    if (this.config.rememberDays <= 0) return;
    await this.events.commit({ type: 'device.remembered', sub, data: { days: this.config.rememberDays } },
      () => this.store.putDevice(sub, deviceKey(deviceId), deviceLabel(userAgent), this.config.rememberDays));
  }

  async isRemembered(sub: string, deviceId: string | undefined): Promise<boolean> {
    if (!deviceId || this.config.rememberDays <= 0) return false;
    const key = deviceKey(deviceId);
    const d = await this.store.getDevice(sub, key);
    if (!d) return false;
    await this.store.touchDevice(sub, key);
    return true;
  }

  listDevices(sub: string): Promise<DeviceItem[]> {
    return this.store.listDevices(sub);
  }

  /** the public id of this browser's device record, if it is one */
  currentDeviceId(deviceId: string | undefined): string | undefined {
    return deviceId ? deviceKey(deviceId).slice(0, 16) : undefined;
  }

  async revokeDevice(sub: string, id: string, by: 'user' | 'admin'): Promise<boolean> {
    const d = (await this.store.listDevices(sub)).find((x) => x.id === id);
    return !!d && this.events.commitIf({ type: 'device.revoked', sub, data: { by, device: d.id } }, () => this.store.deleteDevice(sub, d.sk));
  }

  async revokeAllDevices(sub: string, by: 'user' | 'admin', opts: { actor?: string; requestId?: string } = {}): Promise<number> {
    let n = 0;
    for (const d of await this.store.listDevices(sub)) {
      if (await this.events.commitIf({ type: 'device.revoked', sub, actor: opts.actor, requestId: opts.requestId, data: { by, device: d.id } }, () => this.store.deleteDevice(sub, d.sk))) n++;
    }
    return n;
  }

  // ---- e-mail / SMS codes (inside a login flow) ----

  /** sends a new code (replacing the previous one); false when this flow has sent its last one */
  async sendCode(flow: FlowItem, channel: 'email' | 'sms', to: string): Promise<boolean> {
    if (!this.messages) throw new Error('no message sender configured');
    const key = await this.key(flow.sub);
    const code = newMessageCode();
    const c: MessageCode = {
      id: crypto.randomUUID(), channel, hash: codeHash(key, 'message', `${flow.uid}:${code}`),
      exp: Math.floor(this.now() / 1000) + this.config.codeTtlSeconds, tries: 0, sentAt: new Date(this.now()).toISOString(),
    };
    if (!(await this.store.setCode(flow.uid, flow.sub, c, CODE_MAX_SENDS))) return false;
    await this.messages.send({
      channel, to, template: 'login-code', sub: flow.sub,
      vars: { code, minutes: String(Math.max(1, Math.round(this.config.codeTtlSeconds / 60))) },
    });
    return true;
  }

  /** checks a message code: resolves with its channel, or throws MfaCodeRejected */
  async verifyCode(flow: FlowItem, input: unknown): Promise<'email' | 'sms'> {
    const otp = cleanOtp(input);
    const counted = await this.store.tryCode(flow.uid, flow.sub, CODE_MAX_TRIES);
    if ('refused' in counted) {
      switch (counted.refused) {
        case 'none': throw new MfaCodeRejected('invalid', 'Ask for a code first.');
        case 'used': throw new MfaCodeRejected('used', 'This code was already used. Ask for a new code.');
        case 'exhausted': throw new MfaCodeRejected('exhausted', 'Too many wrong codes. Ask for a new code.');
        default: throw new MfaCodeRejected('expired', 'This code has expired. Ask for a new code.');
      }
    }
    const c = counted.code;
    const hash = codeHash(await this.key(flow.sub), 'message', `${flow.uid}:${otp}`);
    if (!/^\d{6}$/.test(otp) || !sameHash(c.hash, hash)) {
      const left = CODE_MAX_TRIES - c.tries;
      throw new MfaCodeRejected('invalid', left > 0 ? `That code is not right. ${left} ${left === 1 ? 'try' : 'tries'} left.` : 'That code is not right. Ask for a new code.');
    }
    if (!(await this.store.useCode(flow.uid, flow.sub, c.id))) throw new MfaCodeRejected('used', 'This code was already used. Ask for a new code.');
    return c.channel;
  }
}
