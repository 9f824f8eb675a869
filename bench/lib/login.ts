// The full authorization-code login over HTTP, as a browser and an RP would
// drive it: authorize (PKCE S256, prompt=consent for offline_access) → login
// page → login POST (argon2id on the server) → consent page → consent POST →
// code at the redirect URI → token request. A small driver runs it with
// bounded concurrency for a while and keeps the token responses (the refresh
// tokens feed the refresh scenario).
import crypto from 'node:crypto';
import { UserAgent, readForm } from '../../test/support/user-agent.ts';

export interface LoginTarget {
  origin: string;
  clientId: string;
  clientSecret: string;
  redirectUri: string;
  email: string;
  password: string;
}

export interface TokenResponse {
  access_token: string;
  refresh_token?: string;
  id_token?: string;
}

const b64u = (b: Buffer) => b.toString('base64url');

/** `ua`: the browser to log in (its cookie jar then holds the session), a fresh one by default */
export async function loginOnce(t: LoginTarget, ua = new UserAgent(t.origin)): Promise<TokenResponse> {
  const verifier = b64u(crypto.randomBytes(32));
  const params = new URLSearchParams({
    client_id: t.clientId, response_type: 'code', redirect_uri: t.redirectUri,
    scope: 'openid email profile offline_access', prompt: 'consent',
    state: b64u(crypto.randomBytes(12)), nonce: b64u(crypto.randomBytes(12)),
    code_challenge: b64u(crypto.createHash('sha256').update(verifier).digest()), code_challenge_method: 'S256',
  });
  let step = await ua.navigate(`/auth?${params}`);
  if (step.res.status !== 200) throw new Error(`authorize: ${step.res.status} ${(await step.res.text()).slice(0, 200)}`);
  const login = readForm(await step.res.text());
  step = await ua.navigate(login.action, { form: { ...login.fields, login: t.email, password: t.password } });
  if (!step.offsite) {
    if (step.res.status !== 200) throw new Error(`login: ${step.res.status} ${(await step.res.text()).slice(0, 200)}`);
    const consent = readForm(await step.res.text());
    step = await ua.navigate(consent.action, { form: consent.fields });
  }
  if (!step.offsite) throw new Error(`consent: ${step.res.status} ${(await step.res.text()).slice(0, 200)}`);
  const code = new URL(step.offsite).searchParams.get('code');
  if (!code) throw new Error(`no code in ${step.offsite}`);
  const res = await fetch(new URL('/token', t.origin), {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: `Basic ${Buffer.from(`${t.clientId}:${t.clientSecret}`).toString('base64')}`,
    },
    body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: t.redirectUri, code_verifier: verifier }),
  });
  const body = await res.text();
  if (res.status !== 200) throw new Error(`token: ${res.status} ${body.slice(0, 200)}`);
  return JSON.parse(body) as TokenResponse;
}

/** thrown by a flow when it has no fresh user left: that virtual user stops */
export class PoolEmpty extends Error {}

export interface LoginRun {
  completed: number;
  errors: number;
  firstError?: string;
  durationMs: number;
  /** per completed login, the whole flow, in ms */
  latencies: number[];
  tokens: TokenResponse[];
}

/** runs `flow` from `concurrency` virtual users until `durationMs` has passed (in-flight ones finish) */
export async function drive(flow: () => Promise<TokenResponse>, opts: { concurrency: number; durationMs: number }): Promise<LoginRun> {
  const run: LoginRun = { completed: 0, errors: 0, durationMs: 0, latencies: [], tokens: [] };
  const t0 = performance.now();
  const until = t0 + opts.durationMs;
  const user = async () => {
    while (performance.now() < until) {
      const s = performance.now();
      try {
        run.tokens.push(await flow());
        run.latencies.push(performance.now() - s);
        run.completed++;
      } catch (err) {
        if (err instanceof PoolEmpty) return;
        run.errors++;
        run.firstError ??= (err as Error).message;
      }
    }
  };
  await Promise.all(Array.from({ length: opts.concurrency }, user));
  run.durationMs = performance.now() - t0;
  return run;
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}
