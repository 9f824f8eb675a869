// Helpers for the lockout and password-policy tests: a browser from a chosen
// client IP (X-Forwarded-For, with TRUST_PROXY_HOPS=1), a first-party client
// (no consent page), the login form, the outbox and the captured events.
import path from 'node:path';
import crypto from 'node:crypto';
import { readOutbox } from '../../src/events/messages.ts';
import type { TestIdp } from './idp.ts';
import { UserAgent, readForm, type Form } from './user-agent.ts';

export const REDIRECT = 'https://rp.example.test/cb';

/** a browser whose requests come from `ip` (through one trusted proxy) */
export class IpAgent extends UserAgent {
  ip: string;
  constructor(origin: string, ip: string) {
    super(origin);
    this.ip = ip;
  }

  override request(url: string, init: { method?: string; form?: Record<string, string>; headers?: Record<string, string> } = {}): Promise<Response> {
    return super.request(url, { ...init, headers: { 'x-forwarded-for': this.ip, ...init.headers } });
  }

  get hasDeviceCookie(): boolean {
    return this.jar.has('idp.device');
  }
}

export async function addClient(idp: TestIdp): Promise<void> {
  await idp.cli('clients', 'add', '--id', 'app', '--public', '--first-party', '--redirect-uri', REDIRECT, '--grant-types', 'authorization_code');
}

export async function addUser(idp: TestIdp, email: string, password: string, name = 'Test User'): Promise<string> {
  const r = await idp.cli('users', 'add', '--email', email, '--password', password, '--name', name, '--email-verified') as { sub: string };
  return r.sub;
}

export function authorizeUrl(idp: TestIdp, extra: Record<string, string> = {}): string {
  const verifier = crypto.randomBytes(32).toString('base64url');
  const u = new URL('/auth', idp.issuer);
  u.search = new URLSearchParams({
    client_id: 'app', response_type: 'code', redirect_uri: REDIRECT, scope: 'openid', state: crypto.randomBytes(8).toString('hex'),
    code_challenge: crypto.createHash('sha256').update(verifier).digest('base64url'), code_challenge_method: 'S256', prompt: 'login', ...extra,
  }).toString();
  return u.href;
}

/** starts an authorization and returns the sign-in form */
export async function loginForm(idp: TestIdp, ua: UserAgent): Promise<Form & { uid: string }> {
  const step = await ua.navigate(authorizeUrl(idp));
  if (step.res.status !== 200) throw new Error(`login page: ${step.res.status}`);
  const form = readForm(await step.res.text());
  const uid = /\/interaction\/([^/]+)\/login$/.exec(form.action)?.[1];
  if (!uid) throw new Error(`no interaction uid in ${form.action}`);
  return { ...form, uid };
}

export interface Outcome {
  status: number;
  html: string;
  /** the redirect to the RP when the login completed */
  offsite?: string;
}

export async function post(ua: UserAgent, action: string, form: Record<string, string>): Promise<Outcome> {
  const step = await ua.navigate(action, { form });
  return { status: step.res.status, html: step.offsite ? '' : await step.res.text(), offsite: step.offsite };
}

/** one full sign-in from the start: a fresh interaction, then the form */
export async function signIn(idp: TestIdp, ua: UserAgent, login: string, password: string): Promise<Outcome> {
  const form = await loginForm(idp, ua);
  return post(ua, form.action, { ...form.fields, login, password });
}

export const succeeded = (o: Outcome) => typeof o.offsite === 'string' && o.offsite.startsWith(`${REDIRECT}?code=`);

/** the decoded text of an alert on a page */
export function alertText(html: string): string {
  const m = /<div class="alert"[^>]*>([\s\S]*?)<\/div>/.exec(html);
  return (m?.[1] ?? '').replace(/<[^>]+>/g, ' ').replace(/&#39;/g, "'").replace(/&quot;/g, '"').replace(/&amp;/g, '&').replace(/\s+/g, ' ').trim();
}

/** waits for an e-mailed code to `to` (the newest one after `after` messages) */
export async function waitForCode(idp: TestIdp, to: string, template: string, after = 0): Promise<string> {
  const file = path.join(idp.config.dataDir, 'outbox.jsonl');
  for (let i = 0; i < 100; i++) {
    const msgs = readOutbox(file).filter((m) => m.data.to === to && m.data.template === template);
    if (msgs.length > after) {
      const code = /code is (\d+)/.exec(msgs[msgs.length - 1].data.text)?.[1];
      if (code) return code;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no ${template} message to ${to}`);
}

export function outboxCount(idp: TestIdp, to?: string): number {
  return readOutbox(path.join(idp.config.dataDir, 'outbox.jsonl')).filter((m) => to === undefined || m.data.to === to).length;
}

/** the events the IdP logged (Events.emit writes one line per event) */
export function events(idp: TestIdp, type?: string): Array<{ event: string; sub?: string; reason?: string }> {
  return idp.logs.flatMap((l) => {
    try {
      const o = JSON.parse(l) as { msg?: string; event?: string; subject?: string; reason?: string };
      return o.msg === 'event' && (type === undefined || o.event === type) ? [{ event: o.event!, sub: o.subject, reason: o.reason }] : [];
    } catch {
      return [];
    }
  });
}
