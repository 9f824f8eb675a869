// The account page's seam (/account, rendered by src/mfa/account.ts): who is
// signed in (oidc-provider's session cookie), the CSRF token of its forms
// (an HMAC of the session uid under a random secret in a signed, httpOnly,
// SameSite=Strict cookie on /account), and the sections other capabilities
// add to it (federation: linked sign-ins; consent: connected apps), each
// with forms that post to their own routes under /account.
import crypto from 'node:crypto';
import type { Context } from 'koa';
import type Provider from 'oidc-provider';
import { CsrfError } from './errors.ts';

const CSRF_COOKIE = 'idp.account.csrf';

export type AccountSession = Awaited<ReturnType<Provider['Session']['get']>> & { accountId: string };

/** the signed-in session of this browser, or undefined */
export async function accountSession(provider: Provider, ctx: Context): Promise<AccountSession | undefined> {
  const s = await provider.Session.get(ctx as never);
  return s.accountId ? (s as AccountSession) : undefined;
}

const tokenOf = (secret: string, s: { uid: string }) => crypto.createHmac('sha256', secret).update(`account:${s.uid}`).digest('base64url');

export function accountCsrfToken(ctx: Context, s: { uid: string }, secure: boolean): string {
  let secret = ctx.cookies.get(CSRF_COOKIE, { signed: true });
  if (!secret) {
    secret = crypto.randomBytes(32).toString('base64url');
    ctx.cookies.set(CSRF_COOKIE, secret, { signed: true, httpOnly: true, secure, path: '/account', overwrite: true, sameSite: 'strict' });
  }
  return tokenOf(secret, s);
}

export function verifyAccountCsrf(ctx: Context, s: { uid: string }, submitted: unknown): void {
  const secret = ctx.cookies.get(CSRF_COOKIE, { signed: true });
  if (!secret || typeof submitted !== 'string') throw new CsrfError();
  const expected = Buffer.from(tokenOf(secret, s));
  const got = Buffer.from(submitted);
  if (expected.length !== got.length || !crypto.timingSafeEqual(expected, got)) throw new CsrfError();
}

/** one row of a section: text, a detail line, and optionally a button that posts `fields` (with the page's CSRF token) to `action` */
export interface AccountSectionItem {
  text: string;
  /** an https image shown beside the text (e.g. an app's logo) */
  logoUri?: string;
  /** a short list under the text (e.g. what an app can see) */
  lines?: string[];
  detail?: string;
  action?: { url: string; fields: Record<string, string>; button: string };
}

export interface AccountSection {
  id: string;
  title: string;
  /** shown when there are no items */
  empty: string;
  items: AccountSectionItem[];
}

/** a capability's part of the account page */
export interface AccountPageSection {
  render(ctx: Context, session: AccountSession): Promise<AccountSection>;
  /** what /account?done=<key> says after this section's forms redirect back */
  notices?: Record<string, string>;
}
