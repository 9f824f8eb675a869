// The baseline of `npm run bench`: bare oidc-provider, in its own process, with
// its default in-memory adapter and the same keys, algorithms, clients,
// resource servers, features and TTLs as our IdP, plus the smallest login and
// consent pages that drive its interactions (an argon2id check with the same
// parameters, no templates, no CSRF, no logging, no DynamoDB). What our IdP
// costs above this is what we add. For forward-auth, the bare version of what
// src/edge does: verify the bearer JWT (or load the session from the cookie),
// sign an ES256 internal JWT, answer with it; no routes, no decision cache.
//
// With `storage` in the spec it is the second baseline, the peer a user would
// pick: the same process with oidc-provider's state on DynamoDB through the
// community adapter (bench/community-dynamodb-adapter.ts), on the storage our
// IdP uses in that phase; accounts, keys and clients stay as above.
//
//   node bench/baseline.ts <spec.json>   (spec: see BaselineSpec in bench/lib/spec.ts)
// Prints "ready <url>" on stdout once listening.
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import argon2 from 'argon2';
import bcrypt from 'bcrypt';
import Provider, { errors, type Configuration, type KoaContextWithOIDC } from 'oidc-provider';
import { SignJWT, createLocalJWKSet, importJWK, jwtVerify, type JWK } from 'jose';
import type { BaselineSpec } from './lib/spec.ts';
import { communityAdapter, communityClient, createCommunityTable } from './community-dynamodb-adapter.ts';

const spec = JSON.parse(fs.readFileSync(process.argv[2], 'utf8')) as BaselineSpec;
let adapter: Configuration['adapter'];
if (spec.storage) {
  const { raw, doc } = communityClient(spec.storage);
  await createCommunityTable(raw, spec.storage.table);
  adapter = communityAdapter(doc, spec.storage.table);
}

const resources = new Map(spec.resourceServers.map((rs) => [rs.id, rs]));
// legacy users, as after an import: a bcrypt hash until the first login replaces it with argon2id
const legacy = new Map(spec.legacy.emails.map((email, i) => [email, { sub: `legacy-${i}`, bcrypt: spec.legacy.bcryptHash as string | undefined, argon2: undefined as string | undefined }]));

async function checkPassword(login: string, password: string): Promise<string | undefined> {
  if (login === spec.account.email) return await argon2.verify(spec.account.passwordHash, password) ? spec.account.sub : undefined;
  const user = legacy.get(login);
  if (!user) return undefined;
  if (user.argon2) return await argon2.verify(user.argon2, password) ? user.sub : undefined;
  if (!user.bcrypt || !await bcrypt.compare(password, user.bcrypt)) return undefined;
  const p = spec.legacy.argon2;
  user.argon2 = await argon2.hash(password, { type: argon2.argon2id, memoryCost: p.memoryKiB, timeCost: p.timeCost, parallelism: p.parallelism });
  user.bcrypt = undefined;
  return user.sub;
}

const configuration: Configuration = {
  ...(adapter ? { adapter } : {}),
  jwks: { keys: spec.jwks as never },
  cookies: {
    keys: spec.cookieKeys,
    long: { httpOnly: true, secure: false, sameSite: 'lax', signed: true },
    short: { httpOnly: true, secure: false, sameSite: 'lax', signed: true },
  },
  clients: spec.clients as never,
  scopes: ['openid', 'offline_access', 'email', 'profile', 'phone'],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    phone: ['phone_number', 'phone_number_verified'],
    profile: ['name', 'given_name', 'family_name', 'updated_at'],
  },
  conformIdTokenClaims: true,
  responseTypes: ['code'],
  pkce: { required: () => true },
  rotateRefreshToken: true,
  clientDefaults: {
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
    id_token_signed_response_alg: 'RS256',
  },
  ttl: {
    AccessToken: spec.ttl.accessToken,
    AuthorizationCode: 60,
    ClientCredentials: spec.ttl.accessToken,
    IdToken: spec.ttl.idToken,
    RefreshToken: spec.ttl.refreshToken,
    Session: spec.ttl.session,
    Interaction: spec.ttl.interaction,
    Grant: spec.ttl.grant,
  },
  features: {
    devInteractions: { enabled: false },
    introspection: { enabled: true },
    revocation: { enabled: true },
    userinfo: { enabled: true },
    clientCredentials: { enabled: true },
    backchannelLogout: { enabled: true },
    rpInitiatedLogout: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: async () => undefined,
      useGrantedResource: async () => true,
      getResourceServerInfo: async (_ctx, indicator) => {
        const rs = resources.get(indicator);
        if (!rs) throw new errors.InvalidTarget();
        return {
          scope: rs.scope,
          audience: rs.id,
          accessTokenTTL: spec.ttl.accessToken,
          accessTokenFormat: rs.accessTokenFormat,
          ...(rs.accessTokenFormat === 'jwt' ? { jwt: { sign: { alg: rs.jwtAlg ?? 'ES256' } } } : {}),
        };
      },
    },
  },
  interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
  findAccount: async (_ctx: KoaContextWithOIDC, sub: string) => {
    if (sub === spec.account.sub) return { accountId: sub, claims: async () => ({ sub, email: spec.account.email, email_verified: true, name: spec.account.name }) };
    const email = sub.startsWith('legacy-') ? spec.legacy.emails[Number(sub.slice(7))] : undefined;
    if (!email) return undefined;
    return { accountId: sub, claims: async () => ({ sub, email, email_verified: true }) };
  },
};

const provider = new Provider(spec.issuer, configuration);
const callback = provider.callback();

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const page = (uid: string, step: 'login' | 'consent') => `<!doctype html><title>${step}</title>
<form method="post" action="/interaction/${esc(uid)}/${step}">${step === 'login'
  ? '<input name="login" value=""><input type="password" name="password" value="">'
  : '<input type="hidden" name="ok" value="1">'}<button>go</button></form>`;

async function readForm(req: http.IncomingMessage): Promise<URLSearchParams> {
  let body = '';
  for await (const chunk of req) {
    body += chunk;
    if (body.length > 16_384) throw new Error('form too large');
  }
  return new URLSearchParams(body);
}

async function interaction(req: http.IncomingMessage, res: http.ServerResponse, path: string): Promise<void> {
  const details = await provider.interactionDetails(req, res);
  const [, , uid, action] = path.split('/');
  if (uid !== details.uid) throw new Error('interaction mismatch');
  if (req.method === 'GET' && action === undefined) {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
    res.end(page(uid, details.prompt.name === 'login' ? 'login' : 'consent'));
    return;
  }
  if (req.method === 'POST' && action === 'login' && details.prompt.name === 'login') {
    const form = await readForm(req);
    const sub = await checkPassword(form.get('login') ?? '', form.get('password') ?? '');
    if (!sub) {
      res.writeHead(401, { 'content-type': 'text/html; charset=utf-8' });
      res.end(page(uid, 'login'));
      return;
    }
    await provider.interactionFinished(req, res, { login: { accountId: sub } }, { mergeWithLastSubmission: false });
    return;
  }
  if (req.method === 'POST' && action === 'consent' && details.prompt.name === 'consent') {
    await readForm(req);
    const missing = details.prompt.details as { missingOIDCScope?: string[]; missingOIDCClaims?: string[]; missingResourceScopes?: Record<string, string[]> };
    const grant = details.grantId
      ? (await provider.Grant.find(details.grantId))!
      : new provider.Grant({ accountId: details.session!.accountId, clientId: String(details.params.client_id) });
    if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
    if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) grant.addResourceScope(indicator, scopes.join(' '));
    const grantId = await grant.save();
    await provider.interactionFinished(req, res, { consent: details.grantId ? {} : { grantId } }, { mergeWithLastSubmission: true });
    return;
  }
  throw new Error(`unexpected ${req.method} ${path} at prompt ${details.prompt.name}`);
}

// forward-auth, bare: the same keys verify and sign
const PRIVATE = new Set(['d', 'p', 'q', 'dp', 'dq', 'qi']);
const publicKeys = createLocalJWKSet({ keys: (spec.jwks as JWK[]).map((k) => Object.fromEntries(Object.entries(k).filter(([n]) => !PRIVATE.has(n))) as JWK) });
const es256 = (spec.jwks as JWK[]).find((k) => k.alg === 'ES256')!;
const es256Key = await importJWK(es256, 'ES256');

async function forwardAuth(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  const auth = req.headers.authorization;
  let who: { sub: string; scope: string; client_id?: string } | undefined;
  if (auth?.startsWith('Bearer ')) {
    try {
      const { payload } = await jwtVerify(auth.slice(7), publicKeys, { issuer: spec.issuer, typ: 'at+jwt' });
      if ([payload.aud].flat().includes(spec.forwardAuth.audience)) who = { sub: payload.sub!, scope: String(payload.scope ?? ''), client_id: payload.client_id as string };
    } catch { /* 401 */ }
  } else {
    const session = await provider.Session.get(provider.createContext(req, res) as never);
    if (session.accountId) who = { sub: session.accountId, scope: '' };
  }
  if (!who) {
    res.writeHead(401, { 'www-authenticate': 'Bearer' });
    res.end();
    return;
  }
  const jwt = await new SignJWT({ ...who, roles: [] }).setProtectedHeader({ alg: 'ES256', kid: es256.kid, typ: 'internal+jwt' })
    .setIssuer(spec.issuer).setAudience(spec.forwardAuth.audience).setIssuedAt().setExpirationTime('60s').sign(es256Key);
  res.writeHead(200, { authorization: `Bearer ${jwt}`, 'x-user-sub': who.sub, 'cache-control': 'no-store' });
  res.end();
}

const server = http.createServer((req, res) => {
  const path = (req.url ?? '/').split('?')[0];
  if (path === '/forward-auth') {
    forwardAuth(req, res).catch((err: Error) => {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(err.message);
    });
    return;
  }
  if (path.startsWith('/interaction/')) {
    interaction(req, res, path).catch((err: Error) => {
      if (!res.headersSent) res.writeHead(400, { 'content-type': 'text/plain' });
      res.end(err.message);
    });
    return;
  }
  void callback(req, res);
});
server.keepAliveTimeout = 65_000;
server.listen(spec.port, '127.0.0.1', () => {
  process.stdout.write(`ready http://127.0.0.1:${(server.address() as AddressInfo).port}\n`);
});
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.on('disconnect', stop);
