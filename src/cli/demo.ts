// `idp demo`: the quickstart's relying party. It registers the demo client
// (id `demo`, public, PKCE, redirect URIs on this machine's loopback only) and
// the user demo@example.com with a new random password at every start, then
// serves a tiny relying party on 127.0.0.1 (openid-client, as an application
// would use it): open the printed URL, sign in, and it shows the ID token's
// claims and the userinfo answer. Nothing is added to the IdP itself: the
// demo client can send codes only to 127.0.0.1, and `idp demo --remove` takes
// the client and the user away again.
import http from 'node:http';
import crypto from 'node:crypto';
import { parseArgs } from 'node:util';
import type { AddressInfo } from 'node:net';
import * as oidc from 'openid-client';
import type { AdapterPayload } from 'oidc-provider';
import { Registry } from '../provider/registry.ts';
import { openKeyring } from '../keys/index.ts';
import { argon2Hasher } from '../accounts/hasher.ts';
import { validateClient } from './validate-client.ts';
import { withAccounts, type CliKit, type CliOut } from './users.ts';
import type { CommandHelp } from './help.ts';

export const DEMO_CLIENT = 'demo';
export const DEMO_EMAIL = 'demo@example.com';
const DEMO_NAME = 'Demo app';

export const DEMO_USAGE: Record<string, string> = {
  demo: 'idp demo [--port N] [--remove] [--json]',
};

export const DEMO_HELP: Record<string, CommandHelp> = {
  demo: {
    about: `Sign in once without writing code: registers the client "${DEMO_CLIENT}" (public, loopback redirect URIs only) and the user ${DEMO_EMAIL} with a new random password, then runs a small application on 127.0.0.1 that prints its URL. Open it, sign in, and it shows the ID token and userinfo. Ctrl-C stops it. The IdP must be running (npm start).`,
    flags: {
      '--port N': 'the application\'s port on 127.0.0.1 (default 8080; another free port when 8080 is taken; 0: any)',
      '--remove': `remove the demo client and erase ${DEMO_EMAIL}, then exit`,
    },
  },
};

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** 20 random characters from a URL-safe alphabet: passes any password policy, easy to copy */
const newPassword = () => crypto.randomBytes(15).toString('base64url');

function listen(server: http.Server, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const fail = (err: Error) => {
      server.off('listening', ok);
      reject(err);
    };
    const ok = () => {
      server.off('error', fail);
      resolve((server.address() as AddressInfo).port);
    };
    server.once('error', fail);
    server.once('listening', ok);
    server.listen(port, '127.0.0.1');
  });
}

interface Signin { claims: Record<string, unknown>; userinfo: Record<string, unknown>; idToken: string }

export async function runDemo(args: string[], kit: CliKit): Promise<CliOut> {
  const usage = (m: string) => new kit.UsageError(`${m}\nusage: ${DEMO_USAGE.demo}`);
  let v: Record<string, string | boolean | undefined>;
  try {
    v = parseArgs({ args, options: { port: { type: 'string' }, remove: { type: 'boolean' }, json: { type: 'boolean' } }, strict: true, allowPositionals: false }).values;
  } catch (err) {
    throw usage((err as Error).message);
  }
  const { config } = kit;
  const out: CliOut = { json: v.json === true, lines: [], data: undefined };

  if (v.remove) {
    const removed = await kit.withStorage(config, (s) => new Registry(s).removeClient(DEMO_CLIENT));
    const erased = await withAccounts(kit, async (store) => {
      const a = await store.findByLogin(DEMO_EMAIL);
      return a ? store.erase(a.sub) : false;
    });
    out.data = { client: removed, user: erased };
    out.lines.push(`demo client ${removed ? 'removed' : 'was not registered'}; ${DEMO_EMAIL} ${erased ? 'erased' : 'did not exist'}`);
    return out;
  }

  const wanted = v.port === undefined ? 8080 : Number(v.port);
  if (!Number.isInteger(wanted) || wanted < 0 || wanted > 65535) throw usage('--port must be a whole number from 0 to 65535');

  // the IdP must answer before anything is registered: its discovery document
  const insecure = new URL(config.issuer).protocol === 'http:';
  let rp: oidc.Configuration;
  try {
    rp = await oidc.discovery(new URL(config.issuer), DEMO_CLIENT, undefined, oidc.None(), insecure ? { execute: [oidc.allowInsecureRequests] } : undefined);
  } catch (err) {
    throw new Error(`the IdP does not answer at ${config.issuer} (${(err as Error).message}): start it first with \`npm start\`, with the same ISSUER`);
  }

  const sessions = new Map<string, Signin>();
  const pending = new Map<string, { verifier: string; nonce: string }>();
  const server = http.createServer((req, res) => {
    handle(req, res).catch((err: unknown) => page(res, 500, 'Something went wrong', `<p>${esc((err as Error).message)}</p><p><a href="/">Start again</a></p>`));
  });
  let port: number;
  try {
    port = await listen(server, wanted);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || v.port !== undefined) throw new Error(`cannot listen on 127.0.0.1:${wanted}: ${(err as Error).message}`);
    port = await listen(server, 0);
  }
  const base = `http://127.0.0.1:${port}`;

  // the client and the user, as the demo needs them
  const password = newPassword();
  try {
    await register(kit, base, password);
  } catch (err) {
    server.close();
    throw err;
  }

  const cookie = (req: http.IncomingMessage, name: string) => new RegExp(`(?:^|;\\s*)${name}=([\\w-]+)`).exec(req.headers.cookie ?? '')?.[1];

  function page(res: http.ServerResponse, status: number, title: string, body: string, headers: Record<string, string> = {}) {
    res.writeHead(status, {
      'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', 'x-content-type-options': 'nosniff',
      'content-security-policy': `default-src 'none'; style-src ${new URL(config.issuer).origin}; img-src ${new URL(config.issuer).origin} https: data:; form-action 'none'; frame-ancestors 'none'; base-uri 'none'`,
      ...headers,
    });
    res.end(`<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)} · ${DEMO_NAME}</title><link rel="stylesheet" href="${esc(config.issuer)}/assets/idp.css"></head>
<body><header class="site-header"><p class="product">${DEMO_NAME}</p></header><main class="card">
<h1>${esc(title)}</h1>
${body}
</main><footer class="site-footer"><p>A relying party for trying the IdP at ${esc(config.issuer)} (idp demo).</p></footer></body></html>\n`);
  }

  async function handle(req: http.IncomingMessage, res: http.ServerResponse) {
    const url = new URL(req.url ?? '/', base);
    if (req.method !== 'GET') return page(res, 405, 'Not allowed', '<p>Only GET here.</p>');
    if (url.pathname === '/') {
      const s = sessions.get(cookie(req, 'demo.session') ?? '');
      if (!s) {
        return page(res, 200, 'Not signed in', `<p>This application signs you in with the IdP at <code>${esc(config.issuer)}</code> (authorization code flow with PKCE).</p>
<div class="actions"><a class="button primary" href="/login">Sign in</a></div>`);
      }
      return page(res, 200, 'Signed in', `<p class="account">Signed in as <strong id="signed-in-as">${esc(String(s.userinfo.email ?? s.claims.sub))}</strong></p>
<h2>ID token claims</h2>
<pre id="id-token-claims"><code>${esc(JSON.stringify(s.claims, null, 2))}</code></pre>
<h2>Userinfo</h2>
<pre id="userinfo"><code>${esc(JSON.stringify(s.userinfo, null, 2))}</code></pre>
<div class="actions"><a class="button secondary" href="/logout">Sign out</a></div>`);
    }
    if (url.pathname === '/login') {
      const state = oidc.randomState();
      const verifier = oidc.randomPKCECodeVerifier();
      const nonce = oidc.randomNonce();
      pending.set(state, { verifier, nonce });
      const to = oidc.buildAuthorizationUrl(rp, {
        redirect_uri: `${base}/callback`, scope: 'openid email profile', state, nonce,
        code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256',
      });
      res.writeHead(303, { location: to.href, 'set-cookie': `demo.state=${state}; Path=/; HttpOnly; SameSite=Lax; Max-Age=600`, 'cache-control': 'no-store' });
      return res.end();
    }
    if (url.pathname === '/callback') {
      const state = cookie(req, 'demo.state');
      const p = state ? pending.get(state) : undefined;
      if (url.searchParams.get('error')) {
        return page(res, 400, 'Not signed in', `<p>The IdP answered <code>${esc(url.searchParams.get('error')!)}</code>${url.searchParams.get('error_description') ? `: ${esc(url.searchParams.get('error_description')!)}` : ''}.</p><p><a href="/">Start again</a></p>`);
      }
      if (!state || !p) return page(res, 400, 'Not signed in', '<p>This answer does not belong to a sign-in started here.</p><p><a href="/">Start again</a></p>');
      pending.delete(state);
      const tokens = await oidc.authorizationCodeGrant(rp, url, { pkceCodeVerifier: p.verifier, expectedState: state, expectedNonce: p.nonce, idTokenExpected: true });
      const claims = tokens.claims()!;
      const userinfo = await oidc.fetchUserInfo(rp, tokens.access_token, claims.sub);
      const sid = crypto.randomBytes(16).toString('base64url');
      sessions.set(sid, { claims: { ...claims }, userinfo: { ...userinfo }, idToken: tokens.id_token! });
      res.writeHead(303, { location: '/', 'set-cookie': [`demo.session=${sid}; Path=/; HttpOnly; SameSite=Lax`, 'demo.state=; Path=/; Max-Age=0'], 'cache-control': 'no-store' });
      return res.end();
    }
    if (url.pathname === '/logout') {
      const sid = cookie(req, 'demo.session') ?? '';
      const s = sessions.get(sid);
      sessions.delete(sid);
      const to = s ? oidc.buildEndSessionUrl(rp, { id_token_hint: s.idToken, post_logout_redirect_uri: `${base}/` }).href : '/';
      res.writeHead(303, { location: to, 'set-cookie': 'demo.session=; Path=/; Max-Age=0', 'cache-control': 'no-store' });
      return res.end();
    }
    return page(res, 404, 'Not found', '<p><a href="/">Home</a></p>');
  }

  out.data = { url: `${base}/`, email: DEMO_EMAIL, password, client_id: DEMO_CLIENT, issuer: config.issuer };
  const banner = out.json ? [JSON.stringify(out.data)] : [
    `demo client "${DEMO_CLIENT}" and user ${DEMO_EMAIL} are ready at ${config.issuer}`,
    `open ${base}/ and sign in as`,
    `  e-mail:   ${DEMO_EMAIL}`,
    `  password: ${password}   (a new one at each start of the demo)`,
    'press Ctrl-C to stop',
  ];
  process.stdout.write(`${banner.join('\n')}\n`);
  await new Promise<void>((resolve) => {
    const stop = () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      server.closeAllConnections();
      server.close(() => resolve());
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  out.lines = ['demo stopped'];
  out.json = false;
  return out;
}

/** the demo client (created, or its redirect URIs moved to this port) and the demo user with a new password */
async function register(kit: CliKit, base: string, password: string): Promise<void> {
  const { config } = kit;
  const metadata: Record<string, unknown> = {
    client_id: DEMO_CLIENT, client_name: DEMO_NAME, token_endpoint_auth_method: 'none',
    grant_types: ['authorization_code'], response_types: ['code'],
    redirect_uris: [`${base}/callback`], post_logout_redirect_uris: [`${base}/`], first_party: false,
  };
  await kit.withStorage(config, async (s) => {
    const keyring = await openKeyring(config, s);
    try {
      const existing = await new Registry(s).clients.find(DEMO_CLIENT);
      if (existing && (existing.client_name !== DEMO_NAME || existing.token_endpoint_auth_method !== 'none')) {
        throw new kit.UsageError(`a client "${DEMO_CLIENT}" exists and is not the demo's: the demo will not change it`);
      }
      await validateClient(config, s, metadata, keyring);
      await new Registry(s, { keyring }).putClient(metadata as AdapterPayload & { client_id: string });
    } finally {
      keyring.close();
    }
  });
  await withAccounts(kit, async (store) => {
    const a = await store.findByLogin(DEMO_EMAIL);
    if (!a) await store.create({ email: DEMO_EMAIL, password, name: 'Demo User', emailVerified: true });
    else await store.setPassword(a, await argon2Hasher(config.argon2).hash(password));
  });
}
