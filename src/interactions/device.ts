// The device token: a random id in a signed, httpOnly cookie, set when a
// browser completes a login. Lockout judges a known device by its own
// (account, device) counter, and MFA's remembered devices are records keyed by
// it. It proves nothing by itself: it is only as good as the cookie's secrecy.
import crypto from 'node:crypto';
import type { Context } from 'koa';

export const DEVICE_COOKIE = 'idp.device';
const MAX_AGE_MS = 400 * 24 * 3600 * 1000;

export function deviceId(ctx: Context): string | undefined {
  const v = ctx.cookies.get(DEVICE_COOKIE, { signed: true });
  return v && /^[A-Za-z0-9_-]{22,64}$/.test(v) ? v : undefined;
}

/** the device id of this browser, creating and setting it when absent */
export function ensureDeviceId(ctx: Context, secure: boolean): string {
  const existing = deviceId(ctx);
  if (existing) return existing;
  const id = crypto.randomBytes(18).toString('base64url');
  ctx.cookies.set(DEVICE_COOKIE, id, { signed: true, httpOnly: true, secure, sameSite: 'lax', maxAge: MAX_AGE_MS, overwrite: true });
  return id;
}
