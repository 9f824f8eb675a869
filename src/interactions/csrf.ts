// CSRF protection for every interaction form: a random secret in a signed,
// httpOnly, SameSite=Strict cookie, and in the form a token derived from it
// and bound to the interaction uid (HMAC). A post is accepted only when the
// token matches, compared in constant time.
import crypto from 'node:crypto';
import type { Context } from 'koa';
import { CsrfError } from './errors.ts';

const COOKIE = 'idp.csrf';

function tokenFor(secret: string, uid: string): string {
  return crypto.createHmac('sha256', secret).update(uid).digest('base64url');
}

export function csrfToken(ctx: Context, uid: string, secure: boolean): string {
  let secret = ctx.cookies.get(COOKIE, { signed: true });
  if (!secret) {
    secret = crypto.randomBytes(32).toString('base64url');
    ctx.cookies.set(COOKIE, secret, { signed: true, httpOnly: true, sameSite: 'strict', secure, path: '/interaction', overwrite: true });
  }
  return tokenFor(secret, uid);
}

export function verifyCsrf(ctx: Context, uid: string, submitted: unknown): void {
  const secret = ctx.cookies.get(COOKIE, { signed: true });
  if (!secret || typeof submitted !== 'string') throw new CsrfError();
  const expected = Buffer.from(tokenFor(secret, uid));
  const got = Buffer.from(submitted);
  if (expected.length !== got.length || !crypto.timingSafeEqual(expected, got)) throw new CsrfError();
}
