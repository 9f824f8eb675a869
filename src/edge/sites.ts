// The protected sites of forward-auth, read from EDGE_SITES_FILE and checked
// at start: a mistake stops the IdP with one line naming the site, the field
// and what it expects (a ConfigError).
//
//   { "sites": [ {
//       "id": "orders",                          letters, digits, . _ -
//       "audience": "https://orders.example.com", `aud` of the internal JWT; bearer tokens must carry it too
//       "hosts": ["orders.example.com"],         host or host:port; a host without a port matches every port
//       "session": true,                         default true: browsers sign in with our session cookie
//       "publicRoutes": ["/health", "/static/**", { "path": "/**", "methods": ["OPTIONS"] }],
//       "routes": [ { "path": "/api/**", "methods": ["GET"], "scopes": ["orders:read"], "roles": [] }, { "path": "/**" } ]
//   } ] }
//
// A request is matched on its method and its normalised path (below):
// public routes pass without credentials; otherwise the first route that
// matches decides (credentials, then its scopes and roles); a path no route
// matches is denied. Paths are globs: `*` is any run of characters within one
// segment, `**` any run across segments, and a trailing `/**` also matches
// the path without it (`/api/**` matches `/api`).
//
// Normalisation, so that the path we judge is the path the upstream serves:
// the query is dropped, each segment loses its `;parameters` (Java servlet
// containers ignore them) and is percent-decoded, `.` and `..` segments are
// resolved and empty segments dropped. A path with an encoded `/` or `\`, a
// NUL, or a bad escape is refused (null): no route can be trusted on it.
import fs from 'node:fs';
import { ConfigError, type Config } from '../config/index.ts';

export interface Route {
  /** the glob as written */
  path: string;
  /** upper-case methods; undefined = every method */
  methods?: ReadonlySet<string>;
  scopes: readonly string[];
  roles: readonly string[];
  match: RegExp;
}

export interface Site {
  id: string;
  audience: string;
  hosts: readonly string[];
  /** accept our session cookie and send browsers to sign in */
  session: boolean;
  publicRoutes: readonly Route[];
  routes: readonly Route[];
}

export type RouteDecision = { kind: 'public' } | { kind: 'route'; route: Route } | { kind: 'none' };

const SITE_KEYS = new Set(['id', 'audience', 'hosts', 'session', 'publicRoutes', 'routes']);
const ROUTE_KEYS = new Set(['path', 'methods', 'scopes', 'roles']);
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const HOST = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*(:\d{1,5})?$/;

/** the glob as a regular expression over normalised paths */
export function compileGlob(glob: string): RegExp {
  const tail = glob.endsWith('/**') && glob.length > 3;
  const body = tail ? glob.slice(0, -3) : glob;
  let re = '';
  for (let i = 0; i < body.length; i++) {
    const c = body[i];
    if (c === '*' && body[i + 1] === '*') {
      re += '.*';
      i++;
    } else if (c === '*') {
      re += '[^/]*';
    } else {
      re += c.replace(/[\\^$.|?+()[\]{}]/g, '\\$&');
    }
  }
  return new RegExp(`^${re}${tail ? '(?:/.*)?' : ''}$`);
}

/** the path the upstream will serve for this request-target, or null when it cannot be judged safely */
export function normalizePath(target: string): string | null {
  const raw = target.split(/[?#]/, 1)[0];
  if (!raw.startsWith('/')) return null;
  const out: string[] = [];
  const segments = raw.split('/');
  for (let i = 1; i < segments.length; i++) {
    let seg = segments[i].split(';', 1)[0];
    try {
      seg = decodeURIComponent(seg);
    } catch {
      return null;
    }
    if (/[/\\\0]/.test(seg)) return null;
    if (seg === '' || seg === '.') continue;
    if (seg === '..') out.pop();
    else out.push(seg);
  }
  const trailing = raw.length > 1 && raw.endsWith('/') && out.length > 0;
  return `/${out.join('/')}${trailing ? '/' : ''}`;
}

function routeMatches(r: Route, method: string, path: string): boolean {
  return (!r.methods || r.methods.has(method)) && r.match.test(path);
}

/** public route, the deciding route, or none (denied) */
export function decideRoute(site: Site, method: string, path: string): RouteDecision {
  if (site.publicRoutes.some((r) => routeMatches(r, method, path))) return { kind: 'public' };
  const route = site.routes.find((r) => routeMatches(r, method, path));
  return route ? { kind: 'route', route } : { kind: 'none' };
}

/** whether a browser on `host` (no port) sends the session cookie */
function receivesSessionCookie(host: string, config: Pick<Config, 'issuer' | 'sessionCookieDomain'>): boolean {
  const d = config.sessionCookieDomain;
  if (d) return host === d || host.endsWith(`.${d}`);
  return host === new URL(config.issuer).hostname;
}

export class Sites {
  readonly list: readonly Site[];
  readonly #byId = new Map<string, Site>();
  /** "host:port" and bare "host" entries */
  readonly #byHost = new Map<string, Site>();

  constructor(list: Site[]) {
    this.list = list;
    for (const s of list) {
      this.#byId.set(s.id, s);
      for (const h of s.hosts) this.#byHost.set(h, s);
    }
  }

  byId(id: string): Site | undefined {
    return this.#byId.get(id);
  }

  /** by the request's host (host or host:port, any case); an entry with a port wins over one without */
  byHost(hostHeader: string): Site | undefined {
    const h = hostHeader.trim().toLowerCase().replace(/\.(?=:|$)/, '');
    const exact = this.#byHost.get(h);
    if (exact) return exact;
    const bare = h.startsWith('[') ? undefined : h.replace(/:\d+$/, '');
    return bare === undefined ? undefined : this.#byHost.get(bare);
  }
}

/** parse and check the sites document; `where` names it in errors */
export function parseSites(doc: unknown, where: string, config: Pick<Config, 'issuer' | 'sessionCookieDomain'>): Sites {
  const bad = (path: string, why: string): never => {
    throw new ConfigError(`${where}: ${path} ${why}`);
  };
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) bad('the document', 'must be a JSON object { "sites": [...] }');
  const sitesRaw = (doc as { sites?: unknown }).sites;
  if (!Array.isArray(sitesRaw) || sitesRaw.length === 0) return bad('"sites"', 'must be a non-empty array');
  const seenIds = new Set<string>();
  const seenHosts = new Map<string, string>();

  const strings = (v: unknown, path: string, check: (s: string) => boolean, what: string): string[] => {
    if (v === undefined) return [];
    if (!Array.isArray(v)) return bad(path, `must be an array of ${what}`);
    return v.map((x, i) => (typeof x === 'string' && check(x) ? x : bad(`${path}[${i}]`, `must be ${what}, got ${JSON.stringify(x)}`)));
  };

  const route = (raw: unknown, path: string, isPublic: boolean): Route => {
    const r = (typeof raw === 'string' ? { path: raw } : raw) as Record<string, unknown>;
    if (!r || typeof r !== 'object' || Array.isArray(r)) return bad(path, 'must be a path string or { "path": ..., "methods": [...] }');
    for (const k of Object.keys(r)) if (!ROUTE_KEYS.has(k)) bad(path, `has an unknown field "${k}" (allowed: ${[...ROUTE_KEYS].join(', ')})`);
    if (typeof r.path !== 'string' || !r.path.startsWith('/') || /[?#\s]/.test(r.path)) {
      bad(`${path}.path`, `must be a path starting with "/" (globs: * and **), got ${JSON.stringify(r.path)}`);
    }
    if (isPublic && (r.scopes !== undefined || r.roles !== undefined)) bad(path, 'is public: it cannot require scopes or roles');
    const methods = r.methods === undefined ? undefined : strings(r.methods, `${path}.methods`, (m) => TOKEN.test(m), 'an HTTP method').map((m) => m.toUpperCase());
    if (methods?.length === 0) bad(`${path}.methods`, 'must name at least one method (or be left out for every method)');
    return {
      path: r.path as string,
      ...(methods ? { methods: new Set(methods) } : {}),
      scopes: strings(r.scopes, `${path}.scopes`, (x) => /^[\x21\x23-\x5B\x5D-\x7E]+$/.test(x), 'a scope'),
      roles: strings(r.roles, `${path}.roles`, (x) => x.length > 0 && x.length <= 128, 'a role name'),
      match: compileGlob(r.path as string),
    };
  };

  const list = sitesRaw.map((raw, i): Site => {
    const at = `sites[${i}]`;
    if (!raw || typeof raw !== 'object' || Array.isArray(raw)) return bad(at, 'must be an object');
    const s = raw as Record<string, unknown>;
    for (const k of Object.keys(s)) if (!SITE_KEYS.has(k)) bad(at, `has an unknown field "${k}" (allowed: ${[...SITE_KEYS].join(', ')})`);
    if (typeof s.id !== 'string' || !/^[A-Za-z0-9._-]{1,64}$/.test(s.id)) bad(`${at}.id`, `must be 1-64 letters, digits, ".", "_" or "-", got ${JSON.stringify(s.id)}`);
    const id = s.id as string;
    if (seenIds.has(id)) bad(`${at}.id`, `"${id}" is used by another site`);
    seenIds.add(id);
    const here = `sites[${i}] ("${id}")`;
    if (typeof s.audience !== 'string' || s.audience.trim() === '' || s.audience.length > 512) bad(`${here}.audience`, 'must be a non-empty string (the `aud` of the internal JWT, e.g. https://orders.example.com)');
    const hosts = strings(s.hosts, `${here}.hosts`, (h) => HOST.test(h.toLowerCase()), 'a host name or host:port').map((h) => h.toLowerCase());
    for (const h of hosts) {
      const other = seenHosts.get(h);
      if (other) bad(`${here}.hosts`, `"${h}" belongs to site "${other}" already`);
      seenHosts.set(h, id);
    }
    if (s.session !== undefined && typeof s.session !== 'boolean') bad(`${here}.session`, 'must be true or false');
    const session = s.session !== false;
    if (session) {
      if (hosts.length === 0) bad(`${here}.hosts`, 'must list the site\'s host names: browsers sign in and are sent back there (or set "session": false for a bearer-only site)');
      for (const h of hosts) {
        const name = h.replace(/:\d+$/, '');
        if (!receivesSessionCookie(name, config)) {
          bad(`${here}.hosts`, config.sessionCookieDomain
            ? `"${h}" is not under SESSION_COOKIE_DOMAIN (${config.sessionCookieDomain}): browsers would not send it the session cookie`
            : `"${h}" is not the issuer's host (${new URL(config.issuer).hostname}): set SESSION_COOKIE_DOMAIN to a domain both are under, or "session": false`);
        }
      }
    }
    if (s.publicRoutes !== undefined && !Array.isArray(s.publicRoutes)) bad(`${here}.publicRoutes`, 'must be an array');
    if (s.routes !== undefined && !Array.isArray(s.routes)) bad(`${here}.routes`, 'must be an array');
    const publicRoutes = ((s.publicRoutes ?? []) as unknown[]).map((r, j) => route(r, `${here}.publicRoutes[${j}]`, true));
    const routes = ((s.routes ?? []) as unknown[]).map((r, j) => route(r, `${here}.routes[${j}]`, false));
    if (publicRoutes.length + routes.length === 0) bad(here, 'has no routes: everything would be denied');
    return { id, audience: s.audience as string, hosts, session, publicRoutes, routes };
  });
  return new Sites(list);
}

/** EDGE_SITES_FILE, read and checked; undefined when unset (no forward-auth) */
export function loadSites(config: Config): Sites | undefined {
  const file = config.edge.sitesFile;
  if (!file) return undefined;
  let doc: unknown;
  try {
    doc = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new ConfigError(`EDGE_SITES_FILE ${file} is not readable JSON (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  return parseSites(doc, `EDGE_SITES_FILE ${file}`, config);
}
