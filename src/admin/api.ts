// The admin API under /admin/api/v1: JSON over the admin service
// (service.ts), for clients holding an access token of this IdP for the
// resource `<issuer>/admin/api/v1` (docs/admin.md).
//
//   - authorization: a bearer access token issued here (a JWT checked with our
//     own published keys, issuer and audience; an opaque one looked up in the
//     provider's store). Missing, invalid, expired, or of another issuer: 401
//     with WWW-Authenticate. The scopes that count are the token's scopes that
//     its client is still granted (client metadata admin_scopes): each route
//     needs admin:<area> or admin:<area>:<read|write>, else 403;
//   - errors are RFC 9457 application/problem+json, naming the field
//     (`field`, and `errors: [{ field, detail }]`);
//   - lists take ?cursor=&limit= (1..200, default 50) and answer
//     { items, cursor? };
//   - writes take an Idempotency-Key: the first response for a key, route and
//     client is kept 24 h (meta table) and a repeat gets it back
//     (Idempotent-Replayed: true); the same key with another body is 422,
//     while the first is still running 409. The kept response is sealed
//     (AES-256-GCM) under a key derived from the Idempotency-Key, so a new
//     client's secret is not readable at rest;
//   - GET /openapi.json: the OpenAPI 3.1 document of exactly these routes
//     (made from the same table; a test compares it with the router).
import crypto from 'node:crypto';
import Router from '@koa/router';
import { bodyParser } from '@koa/bodyparser';
import type { Context } from 'koa';
import type Provider from 'oidc-provider';
import { createLocalJWKSet, jwtVerify, type JWK } from 'jose';
import { DeleteCommand, GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import type { Logger } from '../logging/index.ts';
import type { Storage } from '../storage/index.ts';
import { isUnavailable } from '../provider/errors.ts';
import { ADMIN_API_PATH, ADMIN_SCOPES_METADATA, type AdminArea } from '../config/admin.ts';
import { AdminError } from './errors.ts';
import type { Actor, AdminService } from './service.ts';

export interface ApiDeps {
  issuer: string;
  service: AdminService;
  provider: () => Provider;
  /** our published signing keys (keyring.publicJwks) */
  jwks: () => JWK[];
  storage: Pick<Storage, 'doc' | 'tables'>;
  log: Logger;
  /** how long a kept idempotent response lives (seconds, default 24 h) */
  idempotencySeconds?: number;
}

interface Call {
  ctx: Context;
  params: Record<string, string>;
  query: Record<string, string | undefined>;
  body: Record<string, unknown>;
  actor: Actor;
  service: AdminService;
}

type Method = 'get' | 'post' | 'patch' | 'delete';

/** one route: the OpenAPI path, the scope it needs, and what it does */
export interface ApiRoute {
  method: Method;
  /** OpenAPI style, under /admin/api/v1: /users/{sub} */
  path: string;
  area: AdminArea;
  access: 'read' | 'write';
  summary: string;
  query?: string[];
  body?: Record<string, { type: string; items?: { type: string }; description?: string }>;
  required?: string[];
  status?: number;
  /** problem statuses beyond the common ones (400, 401, 403, 404, 409, 422) */
  problems?: number[];
  run(c: Call): Promise<unknown>;
}

const listQuery = ['cursor', 'limit'];
const CLIENT_BODY = {
  client_id: { type: 'string' }, client_name: { type: 'string' }, redirect_uris: { type: 'array', items: { type: 'string' } },
  post_logout_redirect_uris: { type: 'array', items: { type: 'string' } }, grant_types: { type: 'array', items: { type: 'string' } },
  first_party: { type: 'boolean' }, mfa_policy: { type: 'string', description: 'off, optional, required or new_device' },
  logo_uri: { type: 'string' }, policy_uri: { type: 'string' }, tos_uri: { type: 'string' },
  admin_scopes: { type: 'array', items: { type: 'string' }, description: 'admin API scopes this client may use' },
};

export const ROUTES: ApiRoute[] = [
  {
    method: 'get', path: '/users', area: 'users', access: 'read', summary: 'Find a user by e-mail or phone (blind index), or list users', query: ['email', 'phone', ...listQuery],
    run: async ({ service, query }: Call) => (query.email || query.phone ? { items: await service.findUsers(query) } : service.listUsers(query)),
  },
  {
    method: 'post', path: '/users', area: 'users', access: 'write', summary: 'Create a user', status: 201,
    body: { email: { type: 'string' }, password: { type: 'string' }, name: { type: 'string' }, emailVerified: { type: 'boolean' }, phone: { type: 'string' }, phoneVerified: { type: 'boolean' } }, required: ['email'],
    run: ({ service, body, actor }: Call) => service.createUser(body, actor),
  },
  {
    method: 'get', path: '/users/{sub}', area: 'users', access: 'read', summary: 'One user; reveal=true adds the profile (audited as user.viewed)', query: ['reveal'],
    run: ({ service, params, query, actor }: Call) => service.getUser(params.sub, actor, { reveal: query.reveal === 'true' }),
  },
  {
    method: 'delete', path: '/users/{sub}', area: 'users', access: 'write', summary: 'Erase a user (crypto-shredding)',
    run: ({ service, params, actor }: Call) => service.erase(params.sub, actor),
  },
  {
    method: 'post', path: '/users/{sub}/disable', area: 'users', access: 'write', summary: 'Disable a user',
    run: ({ service, params, actor }: Call) => service.setDisabled(params.sub, true, actor),
  },
  {
    method: 'post', path: '/users/{sub}/enable', area: 'users', access: 'write', summary: 'Enable a user again',
    run: ({ service, params, actor }: Call) => service.setDisabled(params.sub, false, actor),
  },
  {
    method: 'post', path: '/users/{sub}/unlock', area: 'users', access: 'write', summary: 'Lift a lockout',
    run: ({ service, params, actor }: Call) => service.unlock(params.sub, actor),
  },
  {
    method: 'post', path: '/users/{sub}/password', area: 'users', access: 'write', summary: 'Set a password (it must pass the password policy)',
    body: { password: { type: 'string' } }, required: ['password'],
    run: ({ service, params, body, actor }: Call) => service.setPassword(params.sub, body.password, actor),
  },
  {
    method: 'post', path: '/users/{sub}/password-reset', area: 'users', access: 'write', summary: 'Send the user a password reset code at their verified e-mail address (429 after LOCKOUT_CODE_MAX_SENDS an hour)', problems: [429],
    run: ({ service, params, actor }: Call) => service.sendPasswordReset(params.sub, actor),
  },
  {
    method: 'post', path: '/users/{sub}/mfa/reset', area: 'users', access: 'write', summary: 'Remove every second factor and remembered device',
    run: ({ service, params, actor }: Call) => service.resetMfa(params.sub, actor),
  },
  {
    method: 'post', path: '/users/{sub}/devices/revoke', area: 'users', access: 'write', summary: 'Forget every remembered device',
    run: ({ service, params, actor }: Call) => service.revokeDevices(params.sub, actor),
  },
  {
    method: 'post', path: '/users/{sub}/merge', area: 'users', access: 'write', summary: 'Merge the account `from` into this one', body: { from: { type: 'string' } }, required: ['from'],
    run: ({ service, params, body, actor }: Call) => service.merge(params.sub, body.from, actor),
  },
  {
    method: 'post', path: '/merges/{mergeId}/undo', area: 'users', access: 'write', summary: 'Undo a merge',
    run: ({ service, params, actor }: Call) => service.unmerge(params.mergeId, actor),
  },
  {
    method: 'get', path: '/users/{sub}/sessions', area: 'sessions', access: 'read', summary: 'Sessions and grants of a user', query: listQuery,
    run: ({ service, params, query }: Call) => service.sessions(params.sub, query),
  },
  {
    method: 'delete', path: '/users/{sub}/sessions/{id}', area: 'sessions', access: 'write', summary: 'Revoke a session (and what it issued)',
    run: ({ service, params, actor }: Call) => service.revokeSession(params.sub, 'session', params.id, actor),
  },
  {
    method: 'delete', path: '/users/{sub}/grants/{id}', area: 'sessions', access: 'write', summary: 'Revoke a grant (and its tokens)',
    run: ({ service, params, actor }: Call) => service.revokeSession(params.sub, 'grant', params.id, actor),
  },
  {
    method: 'get', path: '/clients', area: 'clients', access: 'read', summary: 'List clients (never their secrets)', query: listQuery,
    run: ({ service, query }: Call) => service.listClients(query),
  },
  {
    method: 'post', path: '/clients', area: 'clients', access: 'write', summary: 'Register a client; a confidential one gets a secret, returned once', status: 201,
    body: { ...CLIENT_BODY, public: { type: 'boolean' } },
    run: ({ service, body, actor }: Call) => service.createClient(body, actor),
  },
  {
    method: 'get', path: '/clients/{id}', area: 'clients', access: 'read', summary: 'One client',
    run: ({ service, params }: Call) => service.getClient(params.id),
  },
  {
    method: 'patch', path: '/clients/{id}', area: 'clients', access: 'write', summary: 'Change the fields given', body: CLIENT_BODY,
    run: ({ service, params, body, actor }: Call) => service.updateClient(params.id, body, actor),
  },
  {
    method: 'delete', path: '/clients/{id}', area: 'clients', access: 'write', summary: 'Delete a client',
    run: ({ service, params, actor }: Call) => service.deleteClient(params.id, actor),
  },
  {
    method: 'post', path: '/clients/{id}/secret', area: 'clients', access: 'write', summary: 'Rotate the secret (the new one is returned once)',
    run: ({ service, params, actor }: Call) => service.rotateClientSecret(params.id, actor),
  },
  {
    method: 'get', path: '/keys', area: 'keys', access: 'read', summary: 'The signing and cookie keys: states and dates (no secret)',
    run: async ({ service }: Call) => ({ items: await service.listKeys() }),
  },
  {
    method: 'post', path: '/keys/rotate', area: 'keys', access: 'write', summary: 'Rotate: new keys as next (one algorithm with alg, the cookie key with cookie)',
    body: { alg: { type: 'string' }, cookie: { type: 'boolean' } },
    run: async ({ service, body, actor }: Call) => ({ actions: await service.rotateKeys(body, actor) }),
  },
  {
    method: 'get', path: '/audit', area: 'audit', access: 'read', summary: 'The audit log, newest first', query: ['subject', 'clientId', 'type', 'actor', 'from', 'to', ...listQuery],
    run: ({ service, query }: Call) => service.audit(query),
  },
];

const koaPath = (p: string) => p.replace(/\{(\w+)\}/g, ':$1');

// ---- the OpenAPI document ----

export function openApiDocument(issuer: string): Record<string, unknown> {
  const problem = { description: 'RFC 9457 problem', content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } } };
  const paths: Record<string, Record<string, unknown>> = {
    '/openapi.json': { get: { summary: 'This document', security: [], responses: { 200: { description: 'OpenAPI 3.1', content: { 'application/json': {} } } } } },
  };
  for (const r of ROUTES) {
    const params = [...r.path.matchAll(/\{(\w+)\}/g)].map((m) => ({ name: m[1], in: 'path', required: true, schema: { type: 'string' } }));
    const query = (r.query ?? []).map((name) => ({ name, in: 'query', required: false, schema: name === 'limit' ? { type: 'integer', minimum: 1, maximum: 200 } : { type: 'string' } }));
    const idem = r.access === 'write' ? [{ name: 'Idempotency-Key', in: 'header', required: false, schema: { type: 'string', maxLength: 255 } }] : [];
    paths[r.path] ??= {};
    paths[r.path][r.method] = {
      summary: r.summary,
      security: [{ bearer: [`admin:${r.area}`] }, { bearer: [`admin:${r.area}:${r.access}`] }],
      parameters: [...params, ...query, ...idem],
      ...(r.body ? { requestBody: { required: !!r.required, content: { 'application/json': { schema: { type: 'object', properties: r.body, ...(r.required ? { required: r.required } : {}), additionalProperties: false } } } } } : {}),
      responses: {
        [r.status ?? 200]: { description: 'done', content: { 'application/json': { schema: { type: 'object' } } } },
        400: problem, 401: problem, 403: problem, 404: problem, 409: problem, ...(r.access === 'write' ? { 422: problem } : {}),
        ...Object.fromEntries((r.problems ?? []).map((s) => [s, problem])),
      },
    };
  }
  return {
    openapi: '3.1.0',
    info: { title: 'IdP admin API', version: '1', description: 'Admin actions of the identity provider (docs/admin.md). Scopes: admin:<area> grants read and write, admin:<area>:read and admin:<area>:write one of them; a client must also be granted them (client metadata admin_scopes).' },
    servers: [{ url: `${issuer}${ADMIN_API_PATH}` }],
    security: [{ bearer: [] }],
    paths,
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: `An access token of ${issuer} for the resource ${issuer}${ADMIN_API_PATH} (client_credentials)` } },
      schemas: {
        Problem: {
          type: 'object',
          properties: { type: { type: 'string' }, title: { type: 'string' }, status: { type: 'integer' }, detail: { type: 'string' }, instance: { type: 'string' }, field: { type: 'string' }, errors: { type: 'array', items: { type: 'object', properties: { field: { type: 'string' }, detail: { type: 'string' } } } } },
        },
      },
    },
  };
}

// ---- problems ----

const TITLES: Record<number, string> = {
  400: 'Bad request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not found', 405: 'Method not allowed', 409: 'Conflict', 413: 'Payload too large',
  415: 'Unsupported media type', 422: 'Unprocessable content', 429: 'Too many requests', 500: 'Internal error', 503: 'Service unavailable',
};

function problem(ctx: Context, status: number, detail: string, extra: { kind?: string; field?: string } = {}): void {
  ctx.status = status;
  ctx.type = 'application/problem+json';
  ctx.body = {
    type: extra.kind ? `${ADMIN_API_PATH}/problems/${extra.kind}` : 'about:blank', title: TITLES[status] ?? 'Error', status, detail, instance: ctx.path,
    ...(extra.field ? { field: extra.field, errors: [{ field: extra.field, detail }] } : {}),
    ...(status >= 500 ? { requestId: ctx.state.requestId } : {}),
  };
}

/** the body could not be read (koa-bodyparser / raw-body errors) */
function bodyProblem(err: unknown): { status: number; detail: string } | undefined {
  const e = err as { type?: string; status?: number };
  if (e?.type === 'entity.too.large') return { status: 413, detail: 'the request body is too large' };
  if (e?.type === 'entity.parse.failed' || e?.type === 'request.aborted' || e?.type === 'request.size.invalid' || e?.type === 'encoding.unsupported' || e?.type === 'charset.unsupported') {
    return { status: 400, detail: 'the request body is not valid JSON' };
  }
  // @koa/bodyparser's own refusals (malformed JSON, a body too large): http errors with a 4xx status
  if (typeof e?.status === 'number' && e.status >= 400 && e.status < 500) return { status: e.status === 413 ? 413 : e.status === 415 ? 415 : 400, detail: e.status === 413 ? 'the request body is too large' : 'the request body is not valid JSON' };
  return undefined;
}

// ---- authorization ----

class Unauthorized extends Error {
  readonly code: 'invalid_token' | undefined;
  constructor(message: string, code: 'invalid_token' | undefined = 'invalid_token') {
    super(message);
    this.code = code;
  }
}

interface Caller { clientId: string; scopes: Set<string> }

/** does a scope set allow `access` to `area`? admin:<area> allows both */
export function allows(scopes: Set<string>, area: AdminArea, access: 'read' | 'write'): boolean {
  return scopes.has(`admin:${area}`) || scopes.has(`admin:${area}:${access}`);
}

async function authenticate(ctx: Context, deps: ApiDeps): Promise<Caller> {
  const header = ctx.get('authorization');
  const m = /^Bearer ([\x21-\x7e]{1,8000})$/i.exec(header);
  if (!m) throw new Unauthorized('a bearer access token is required', header ? 'invalid_token' : undefined);
  const token = m[1];
  const resource = `${deps.issuer}${ADMIN_API_PATH}`;
  let clientId: string | undefined;
  let scope = '';
  if (token.split('.').length === 3) {
    try {
      const { payload } = await jwtVerify(token, createLocalJWKSet({ keys: deps.jwks() }), { issuer: deps.issuer, audience: resource, typ: 'at+jwt', clockTolerance: 5 });
      clientId = typeof payload.client_id === 'string' ? payload.client_id : undefined;
      scope = typeof payload.scope === 'string' ? payload.scope : '';
    } catch {
      throw new Unauthorized('the access token is invalid, expired, or not this IdP\'s for this API');
    }
  } else {
    // our opaque tokens are short; anything longer is not one (and is never looked up)
    if (token.length > 256) throw new Unauthorized('the access token is invalid, expired, or not for this API');
    const p = deps.provider();
    const t = (await p.ClientCredentials.find(token)) ?? (await p.AccessToken.find(token));
    const aud = t ? (t as unknown as { aud?: string | string[] }).aud : undefined;
    if (!t || t.isExpired || !(Array.isArray(aud) ? aud.includes(resource) : aud === resource)) throw new Unauthorized('the access token is invalid, expired, or not for this API');
    clientId = t.clientId;
    scope = t.scope ?? '';
  }
  if (!clientId) throw new Unauthorized('the access token names no client');
  const client = await deps.provider().Client.find(clientId);
  if (!client) throw new Unauthorized('the access token\'s client no longer exists');
  const granted = new Set(String(client.metadata()[ADMIN_SCOPES_METADATA] ?? '').split(' ').filter(Boolean));
  // a grant of admin:<area> covers its :read and :write variants too
  const isGranted = (s: string) => granted.has(s) || granted.has(s.replace(/:(read|write)$/, ''));
  return { clientId, scopes: new Set(scope.split(' ').filter(isGranted)) };
}

// ---- idempotency ----

const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,255}$/;

interface Kept { status: number; body: unknown; fingerprint: string; state: 'pending' | 'done'; expiresAt: number }

function sealKept(body: unknown, key: Buffer): string {
  const iv = crypto.randomBytes(12);
  const c = crypto.createCipheriv('aes-256-gcm', key, iv);
  const data = Buffer.concat([c.update(JSON.stringify(body), 'utf8'), c.final()]);
  return [iv, c.getAuthTag(), data].map((b) => b.toString('base64url')).join('.');
}

function openKept(sealed: string, key: Buffer): unknown {
  try {
    const [iv, tag, data] = sealed.split('.').map((p) => Buffer.from(p, 'base64url'));
    const d = crypto.createDecipheriv('aes-256-gcm', key, iv);
    d.setAuthTag(tag);
    return JSON.parse(Buffer.concat([d.update(data), d.final()]).toString('utf8')) as unknown;
  } catch {
    return undefined;
  }
}

export function adminApiRouter(deps: ApiDeps): Router {
  const router = new Router({ prefix: ADMIN_API_PATH });
  const json = bodyParser({ enableTypes: ['json'], jsonLimit: '64kb' });
  const ttl = deps.idempotencySeconds ?? 86_400;
  const meta = deps.storage.tables.meta;

  router.get('/openapi.json', (ctx) => {
    ctx.set('Cache-Control', 'no-cache');
    ctx.body = openApiDocument(deps.issuer);
  });

  for (const r of ROUTES) {
    router[r.method](koaPath(r.path), async (ctx) => {
      ctx.set('Cache-Control', 'no-store');
      let caller: Caller;
      try {
        caller = await authenticate(ctx, deps);
      } catch (err) {
        if (err instanceof Unauthorized) {
          ctx.set('WWW-Authenticate', `Bearer realm="admin"${err.code ? `, error="${err.code}"` : ''}`);
          return problem(ctx, 401, err.message);
        }
        if (isUnavailable(err)) return problem(ctx, 503, 'the service is temporarily unavailable; try again in a moment');
        throw err;
      }
      if (!allows(caller.scopes, r.area, r.access)) {
        ctx.set('WWW-Authenticate', `Bearer realm="admin", error="insufficient_scope", scope="admin:${r.area}:${r.access}"`);
        return problem(ctx, 403, `this route needs the scope admin:${r.area} or admin:${r.area}:${r.access}, granted to the client`, { kind: 'insufficient-scope' });
      }
      let body: Record<string, unknown> = {};
      if (r.method !== 'get') {
        try {
          await json(ctx, async () => {});
        } catch (err) {
          const p = bodyProblem(err);
          if (p) return problem(ctx, p.status, p.detail, { field: 'body' });
          throw err;
        }
        const raw = (ctx.request as { body?: unknown }).body;
        if (raw !== undefined && raw !== null && (typeof raw !== 'object' || Array.isArray(raw))) return problem(ctx, 400, 'the request body must be a JSON object', { field: 'body' });
        body = (raw ?? {}) as Record<string, unknown>;
        for (const f of r.required ?? []) if (body[f] === undefined) return problem(ctx, 400, `${f} is required`, { kind: 'invalid-input', field: f });
      }
      const query: Record<string, string | undefined> = {};
      for (const [k, v] of Object.entries(ctx.query)) {
        if (Array.isArray(v)) return problem(ctx, 400, `${k} is given more than once`, { kind: 'invalid-input', field: k });
        query[k] = v;
      }
      const actor: Actor = { id: caller.clientId, requestId: ctx.state.requestId };
      const exec = async (): Promise<{ status: number; body: unknown }> => {
        try {
          const out = await r.run({ ctx, params: ctx.params as Record<string, string>, query, body, actor, service: deps.service } as Call);
          return { status: r.status ?? 200, body: out };
        } catch (err) {
          if (err instanceof AdminError) {
            problem(ctx, err.status, err.message, { kind: err.kind, field: err.field });
            return { status: err.status, body: ctx.body };
          }
          if (isUnavailable(err)) {
            problem(ctx, 503, 'the service is temporarily unavailable; try again in a moment');
            return { status: 503, body: ctx.body };
          }
          deps.log.error({ requestId: ctx.state.requestId, err: { name: (err as Error)?.name, message: (err as Error)?.message }, stack: (err as Error)?.stack }, 'admin api failed');
          problem(ctx, 500, 'something went wrong on our side');
          return { status: 500, body: ctx.body };
        }
      };
      const send = (res: { status: number; body: unknown }) => {
        ctx.status = res.status;
        ctx.type = res.status >= 400 ? 'application/problem+json' : 'application/json';
        ctx.body = res.body;
      };

      const key = r.access === 'write' ? ctx.get('idempotency-key') : '';
      if (!key) return send(await exec());
      if (!IDEMPOTENCY_KEY.test(key)) return problem(ctx, 400, 'Idempotency-Key must be 1 to 255 printable characters', { kind: 'invalid-input', field: 'Idempotency-Key' });
      const pk = `idem#${crypto.createHash('sha256').update(`${caller.clientId}\n${r.method} ${ctx.path}\n${key}`).digest('base64url')}`;
      const fingerprint = crypto.createHash('sha256').update(JSON.stringify(body)).digest('base64url');
      // the kept response may carry a secret shown once (a new client's): sealed under a key made from the
      // Idempotency-Key itself, which only the caller knows (the table holds a hash of it, made differently)
      const sealKey = crypto.createHash('sha256').update(`idempotent-response\n${caller.clientId}\n${r.method} ${ctx.path}\n${key}`).digest();
      const now = Math.floor(Date.now() / 1000);
      const kept = (await deps.storage.doc.send(new GetCommand({ TableName: meta, Key: { pk, sk: '_' }, ConsistentRead: true }))).Item as Kept | undefined;
      if (kept && kept.expiresAt > now) {
        if (kept.fingerprint !== fingerprint) return problem(ctx, 422, 'this Idempotency-Key was used with another request body', { kind: 'idempotency-mismatch', field: 'Idempotency-Key' });
        if (kept.state === 'pending') return problem(ctx, 409, 'a request with this Idempotency-Key is still being processed', { kind: 'idempotency-pending', field: 'Idempotency-Key' });
        const replay = openKept(String(kept.body), sealKey);
        if (replay === undefined) return problem(ctx, 422, 'this Idempotency-Key was used with another request', { kind: 'idempotency-mismatch', field: 'Idempotency-Key' });
        ctx.set('Idempotent-Replayed', 'true');
        return send({ status: kept.status, body: replay });
      }
      try {
        await deps.storage.doc.send(new PutCommand({
          TableName: meta, Item: { pk, sk: '_', state: 'pending', fingerprint, expiresAt: now + 120 },
          ConditionExpression: 'attribute_not_exists(pk) OR expiresAt <= :now', ExpressionAttributeValues: { ':now': now },
        }));
      } catch (err) {
        if ((err as Error).name === 'ConditionalCheckFailedException') return problem(ctx, 409, 'a request with this Idempotency-Key is still being processed', { kind: 'idempotency-pending', field: 'Idempotency-Key' });
        throw err;
      }
      const res = await exec();
      if (res.status < 500) {
        await deps.storage.doc.send(new PutCommand({ TableName: meta, Item: { pk, sk: '_', state: 'done', status: res.status, body: sealKept(res.body ?? null, sealKey), fingerprint, expiresAt: now + ttl } }));
      } else {
        await deps.storage.doc.send(new DeleteCommand({ TableName: meta, Key: { pk, sk: '_' } }));
      }
      return send(res);
    });
  }
  return router;
}
