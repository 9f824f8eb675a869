// Fuzzing with fast-check against the running IdP (issue 14, item 13): the
// budget, hostile inputs, a raw browser, a walker over the forms a page
// serves, and the oracle every answer must satisfy:
//
//   - no 5xx; X-Content-Type-Options: nosniff on every answer;
//   - no stack trace, source path or internal error name in the body;
//   - no reflected unescaped input: the markers the inputs carry (`<fz…`,
//     `"onfz=`, `'onfz=`, a javascript: URL in an attribute) never appear
//     as markup in a non-JSON body;
//   - a well-formed answer: JSON with a string `error` (RFC 6749 5.2
//     characters) for a JSON error; for HTML, one of our pages (`<main`)
//     with an alert or an error code when it refuses, a page or a form
//     (oidc-provider's auto-submit) otherwise; a redirect stays on the IdP
//     or goes to a registered redirect URI or a configured upstream IdP;
//     nothing else (no text/plain "Not Found");
//   - nothing logged at error level meanwhile (the runner checks).
//
// Budget: `npm test` runs a fixed seed (FUZZ_SEED, default below) with the
// runs each target names; `npm run fuzz` (FUZZ=long) runs FUZZ_FACTOR (20)
// times as many with a random seed, printed first so a failure can be
// replayed with FUZZ_SEED=<seed> FUZZ=long. fast-check prints the
// counterexample and its seed/path on failure.
import http from 'node:http';
import { expect } from 'chai';
import fc from 'fast-check';
import { pageForms, pageLinks, type PageForm } from './forms.ts';

export const LONG = process.env.FUZZ === 'long';
const FACTOR = LONG ? Number(process.env.FUZZ_FACTOR ?? 20) : 1;
export const SEED = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : LONG ? Math.floor(Math.random() * 2 ** 31) : 20_140_614;

/** the runs of a target: its base count in npm test, times FUZZ_FACTOR in npm run fuzz */
export const runs = (base: number) => Math.max(1, Math.round(base * FACTOR));

// ---------------------------------------------------------------- inputs

/** markers whose raw appearance in a page means an input was reflected unescaped */
const MARKERS = ['<fz>', '"onfz=1 x="', "'onfz=1 x='", '</textarea><fz>', '<script>fz()</script>', 'javascript:fz()', '"><fz a="', '<img src=x onerror=fz()>'];
const REFLECTED = /<fz\b|<script>fz|["']onfz=|<img src=x onerror=fz|(?:href|action|src|formaction)\s*=\s*["']?\s*javascript:fz/i;

const SPECIAL = [
  '', ' ', '\u0000', '\r\n', '\t', '%00', '%0d%0aSet-Cookie:%20fz=1', '\r\nSet-Cookie: fz=1', '../../../../etc/passwd', '..%2f..%2f',
  '{"a":1}', '[]', '{}', 'null', 'undefined', 'true', '-1', '0', '1e309', 'NaN', '9007199254740993', '0x10', '1.5',
  '__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty',
  '\u202e', '\ud800', '\udfff', '\uffff', '\ufeff', '𝕏', 'é', 'ß', 'İ', 'ﬃ', '😀',
  '*', '%', '%%', '\\', '"', "'", '<', '>', '&', '&amp;', '&#0;', '${7*7}', '<%= 7*7 %>', '{{7*7}}', '#{7*7}',
  'a'.repeat(256), 'a'.repeat(1025), 'a'.repeat(2049), 'é'.repeat(700), 'a'.repeat(9000),
  'https://rp.fuzz.test/cb', 'https://rp.fuzz.test/cb/', 'http://localhost/', '//evil.example/', 'https://evil.example/', 'javascript:alert(1)', 'data:text/html,x',
  'openid', 'openid email profile phone offline_access', 'code', 'token', 'id_token', 'S256', 'plain', 'none', 'login', 'consent', 'select_account',
  'x@y', 'user@', '@example.com', 'a@b.c', '+14155550100', '+1', 'yes', 'no', 'on', 'off', '1', '000000', '123456', '12345678',
];

/** hostile strings: generated, special, long (past DynamoDB's key limits: 1024 and 2048 bytes), and markers inside generated text */
export const nasty: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: fc.string({ maxLength: 24 }) },
  { weight: 2, arbitrary: fc.tuple(fc.constantFrom(1025, 2049, 3000), fc.constantFrom('a', 'é', '%', '<fz>')).map(([n, c]) => c.repeat(Math.ceil(n / c.length))) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 24 }) },
  { weight: 4, arbitrary: fc.constantFrom(...SPECIAL) },
  { weight: 3, arbitrary: fc.tuple(fc.string({ maxLength: 6 }), fc.constantFrom(...MARKERS), fc.string({ maxLength: 6 })).map(([a, m, b]) => `${a}${m}${b}`) },
);

/** a value from a pool of plausible ones most of the time, a hostile one otherwise */
export const oneOf = (...plausible: string[]): fc.Arbitrary<string> => fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...plausible) }, { weight: 2, arbitrary: nasty });

/**
 * Request parameters that are nearly valid, so that most requests get past
 * the first checks: every base parameter with a plausible value, some of the
 * optional ones (plausible values), then up to three hostile changes (a
 * value replaced, or a second value of the parameter added) and now and then
 * one base parameter dropped.
 */
export function paramSet(base: Record<string, string[]>, optional: Record<string, string[]> = {}): fc.Arbitrary<Array<[string, string]>> {
  const pick = (o: Record<string, string[]>) => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, fc.constantFrom(...v)]));
  const names = [...Object.keys(base), ...Object.keys(optional)];
  return fc.record({
    base: fc.record(pick(base)),
    optional: fc.record(pick(optional), { requiredKeys: [] }),
    // the base parameters (identifiers, mostly) are hit twice as often as the optional ones
    // a value replaced three times as often as a second one added
    hostile: fc.array(fc.tuple(
      fc.oneof({ weight: 2, arbitrary: fc.constantFrom(...Object.keys(base).length ? Object.keys(base) : names) }, { weight: 1, arbitrary: fc.constantFrom(...names) }),
      nasty,
      fc.oneof({ weight: 3, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
    ), { maxLength: 3 }),
    drop: Object.keys(base).length ? fc.oneof({ weight: 6, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.constantFrom(...Object.keys(base)) }) : fc.constant(undefined),
  }).map(({ base: b, optional: o, hostile, drop }) => {
    const m = new Map<string, string>(Object.entries({ ...b, ...o }) as Array<[string, string]>);
    if (drop !== undefined) m.delete(drop);
    const added: Array<[string, string]> = [];
    for (const [k, v, add] of hostile) {
      if (add) added.push([k, v]);
      else m.set(k, v);
    }
    return [...m, ...added];
  });
}

/** form field names the routes read, and some that no route reads */
const FIELD_NAMES = [
  'login', 'password', 'method', 'connection', 'csrf', 'otp', 'code', 'email', 'id', 'all', 'offered', 'optional', 'next', 'state', 'scope',
  'new_password', 'newPassword', 'confirm', 'current', 'logout', 'xsrf', 'remember', 'channel', 'grant', 'client_id', 'ref', 'uid',
  '__proto__', 'constructor', 'a[b]', 'a[]', '',
];

/** how one form is submitted: per field (cyclic) keep / plausible / hostile / drop / repeat, extra fields, the body's encoding */
export interface Mutation {
  ops: Array<'keep' | 'valid' | 'nasty' | 'drop' | 'dup'>;
  values: string[];
  keepCsrf: boolean;
  extra: Array<[string, string]>;
  encoding: 'form' | 'json' | 'text' | 'broken' | 'gzip-garbage' | 'unknown-encoding';
  button: number;
}

export const mutation: fc.Arbitrary<Mutation> = fc.record({
  ops: fc.array(fc.constantFrom<Mutation['ops'][number]>('keep', 'valid', 'valid', 'nasty', 'nasty', 'drop', 'dup'), { minLength: 1, maxLength: 6 }),
  values: fc.array(nasty, { minLength: 1, maxLength: 4 }),
  keepCsrf: fc.oneof({ weight: 9, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
  extra: fc.array(fc.tuple(fc.constantFrom(...FIELD_NAMES), nasty), { maxLength: 2 }),
  encoding: fc.oneof(
    { weight: 16, arbitrary: fc.constant<Mutation['encoding']>('form') },
    { weight: 1, arbitrary: fc.constantFrom<Mutation['encoding']>('json', 'text', 'broken', 'gzip-garbage', 'unknown-encoding') },
  ),
  button: fc.nat(),
});

// ---------------------------------------------------------------- a raw browser

export interface Answer { method: string; url: string; status: number; headers: http.IncomingHttpHeaders; body: string }

/**
 * A browser on node:http (any method, any body, any header; fetch refuses
 * TRACE and friends): a cookie jar, and redirects followed while they stay on
 * the IdP. Every answer, redirects included, goes to `onAnswer` (the oracle).
 */
export class FuzzAgent {
  readonly jar = new Map<string, string>();
  readonly origin: string;
  private readonly onAnswer: (a: Answer) => void;
  requests = 0;

  constructor(origin: string, onAnswer: (a: Answer) => void) {
    this.origin = origin;
    this.onAnswer = onAnswer;
  }

  send(method: string, url: string, opts: { body?: string | Buffer; headers?: Record<string, string> } = {}): Promise<Answer> {
    const u = new URL(url, this.origin);
    // a browser's Accept unless the request says otherwise ('' sends none)
    const headers: Record<string, string | number> = { accept: 'text/html,application/json;q=0.9', ...opts.headers };
    if (headers.accept === '') delete headers.accept;
    if (this.jar.size) headers.cookie = [...this.jar].map(([k, v]) => `${k}=${v}`).join('; ');
    if (opts.body !== undefined) headers['content-length'] = Buffer.byteLength(opts.body);
    this.requests++;
    return new Promise((resolve, reject) => {
      const req = http.request({ host: u.hostname, port: u.port, method, path: u.pathname + u.search, headers, agent: keepAlive }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          for (const c of res.headers['set-cookie'] ?? []) {
            const [pair, ...attrs] = c.split(';');
            const i = pair.indexOf('=');
            const name = pair.slice(0, i).trim();
            const value = pair.slice(i + 1).trim();
            if (value === '' || attrs.some((a) => /^\s*(max-age=0|expires=Thu, 01 Jan 1970)/i.test(a))) this.jar.delete(name);
            else this.jar.set(name, value);
          }
          const answer = { method, url: u.href, status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') };
          this.onAnswer(answer);
          resolve(answer);
        });
      });
      req.on('error', reject);
      req.end(opts.body);
    });
  }

  /** a request, then its redirects while they stay on the IdP (GET); the last answer and where the browser was sent off the IdP */
  async go(method: string, url: string, opts: { body?: string | Buffer; headers?: Record<string, string> } = {}): Promise<{ answer: Answer; offsite?: string }> {
    let answer = await this.send(method, url, opts);
    for (let i = 0; i < 10 && answer.status >= 300 && answer.status < 400 && answer.headers.location; i++) {
      const next = new URL(answer.headers.location, answer.url);
      if (next.origin !== this.origin) return { answer, offsite: next.href };
      answer = await this.send('GET', next.href);
    }
    return { answer };
  }
}

const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 8 });

/** the body of a form submission under a mutation, with its headers */
export function encodeForm(pairs: Array<[string, string]>, encoding: Mutation['encoding']): { body: string | Buffer; headers: Record<string, string> } {
  const form = { 'content-type': 'application/x-www-form-urlencoded' };
  switch (encoding) {
    case 'json': return { body: JSON.stringify(Object.fromEntries(pairs)), headers: { 'content-type': 'application/json' } };
    case 'text': return { body: pairs.map(([k, v]) => `${k}=${v}`).join('\n'), headers: { 'content-type': 'text/plain' } };
    case 'broken': return { body: `${new URLSearchParams(pairs)}&%zz=%&=&a=%E0%A4%A`, headers: form };
    case 'gzip-garbage': return { body: Buffer.from([0x1f, 0x8b, 0x08, 0, 1, 2, 3]), headers: { ...form, 'content-encoding': 'gzip' } };
    case 'unknown-encoding': return { body: new URLSearchParams(pairs).toString(), headers: { ...form, 'content-encoding': 'fz-zip' } };
    default: return { body: new URLSearchParams(pairs).toString(), headers: form };
  }
}

/** the pairs a form submits under a mutation; `plausible(name)` gives a value that may get further (a real e-mail, a code) */
export function mutateForm(form: PageForm, m: Mutation, plausible: (name: string) => string | undefined): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  form.fields.forEach(([name, value], i) => {
    const isToken = name === 'csrf' || name === 'xsrf';
    const op = isToken && m.keepCsrf ? 'keep' : m.ops[i % m.ops.length];
    const hostile = m.values[i % m.values.length];
    if (op === 'keep') out.push([name, value]);
    else if (op === 'valid') out.push([name, plausible(name) ?? value]);
    else if (op === 'nasty') out.push([name, hostile]);
    else if (op === 'dup') out.push([name, value], [name, hostile]);
  });
  if (form.buttons.length) out.push(form.buttons[m.button % form.buttons.length]);
  return [...out, ...m.extra];
}

// ---------------------------------------------------------------- the oracle

const STACK = /\n\s+at [^\n]*:\d+:\d+|\bat (?:async )?[\w.<>]+ \([^)]*:\d+:\d+\)|node_modules[\\/]|file:\/\/\/|[\w/-]+\.(?:ts|js|mjs|cjs):\d+|\b(?:TypeError|ReferenceError|RangeError|SyntaxError|ValidationException|ConditionalCheckFailed|ResourceNotFoundException|ERR_[A-Z_]{4,})\b/;
const ERROR_CODE = /^[\x20-\x21\x23-\x5B\x5D-\x7E]+$/;

export interface OracleOptions {
  origin: string;
  /** where a redirect may leave the IdP to (registered redirect URIs, post-logout URIs, upstream IdPs): prefixes */
  offsite: string[];
}

/** what is wrong with an answer (empty when nothing) */
export function violations(a: Answer, o: OracleOptions): string[] {
  const out: string[] = [];
  const type = String(a.headers['content-type'] ?? '');
  // node:http's own refusal of a request head over its limit, before any of our code runs
  if (a.status === 431 && a.body === '') return out;
  if (a.status >= 500) out.push(`status ${a.status}`);
  if (a.headers['x-content-type-options'] !== 'nosniff') out.push('no X-Content-Type-Options: nosniff');
  if (STACK.test(a.body)) out.push(`a stack trace or internal name in the body: ${STACK.exec(a.body)![0]}`);
  if (!/json/.test(type) && REFLECTED.test(a.body)) out.push(`input reflected unescaped: …${a.body.slice(Math.max(0, a.body.search(REFLECTED) - 60), a.body.search(REFLECTED) + 60)}…`);
  if (a.status >= 300 && a.status < 400) {
    const location = a.headers.location;
    if (!location) out.push('a redirect without Location');
    else {
      let to: URL | undefined;
      try {
        to = new URL(location, a.url);
      } catch {
        out.push(`a Location that is no URL: ${location}`);
      }
      if (to && to.origin !== o.origin && !o.offsite.some((p) => to.href.startsWith(p))) out.push(`a redirect off the IdP to ${to.href}`);
    }
    return out;
  }
  if (a.method === 'HEAD' || a.body === '') {
    if (a.status >= 400 && a.method !== 'HEAD') out.push(`an empty ${a.status}`);
    return out;
  }
  if (/^application\/(?:[\w.+-]+\+)?json/.test(type)) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(a.body);
    } catch {
      out.push('JSON that does not parse');
    }
    const e = parsed as { error?: unknown; error_description?: unknown } | undefined;
    if (a.status >= 400 && !(typeof e?.error === 'string' && ERROR_CODE.test(e.error))) out.push(`a JSON ${a.status} without a well-formed "error": ${a.body.slice(0, 200)}`);
    if (a.status >= 400 && e?.error_description !== undefined && typeof e.error_description !== 'string') out.push('error_description is not a string');
  } else if (/^text\/html/.test(type)) {
    // oidc-provider's response_mode=form_post page: an auto-submitted form to the client's redirect URI (errors too)
    const formTo = /<form method="post" action="([^"]*)"/.exec(a.body)?.[1];
    if (formTo && o.offsite.some((p) => formTo.replace(/&amp;/g, '&').startsWith(p))) return out;
    if (a.status >= 400 && !(/<main\b/.test(a.body) && /role="alert"|class="details"|class="description"/.test(a.body))) out.push(`an HTML ${a.status} that is not a message page: ${a.body.slice(0, 200)}`);
    if (a.status < 400 && !/<main\b|<form\b/.test(a.body)) out.push(`an HTML ${a.status} that is neither a page nor a form`);
  } else if (!(a.status < 300 && /^(text\/css|image\/)/.test(type))) {
    out.push(`a ${a.status} of type "${type}" (neither an OAuth error nor a page): ${a.body.slice(0, 120)}`);
  }
  return out;
}

// ---------------------------------------------------------------- runs and counts

export interface Tally { target: string; runs: number; requests: number; routes?: Map<string, number> }

/** FUZZ_ROUTES=1: print, per target, the routes reached and their statuses (how deep the runs got) */
const SHOW_ROUTES = process.env.FUZZ_ROUTES === '1';
export function countRoute(tally: Tally, a: Answer): void {
  if (!SHOW_ROUTES) return;
  const route = `${a.method} ${new URL(a.url).pathname.replace(/\/interaction\/[^/]+/, '/interaction/:uid').replace(/\/federation\/[^/]+\/callback/, '/federation/:id/callback')} ${a.status}`;
  tally.routes ??= new Map();
  tally.routes.set(route, (tally.routes.get(route) ?? 0) + 1);
}
export const tallies: Tally[] = [];

/**
 * Runs one target: fast-check generates `n` inputs (fixed seed), `property`
 * sends them and returns nothing; every answer of the run went through the
 * oracle (`answers` collects the violations). The count is printed.
 */
export async function fuzzTarget<T>(target: string, n: number, arb: fc.Arbitrary<T>, property: (input: T, tally: Tally) => Promise<void>): Promise<void> {
  const tally: Tally = { target, runs: 0, requests: 0 };
  const started = Date.now();
  await fc.assert(fc.asyncProperty(arb, async (input) => {
    tally.runs++;
    await property(input, tally);
  }), { seed: SEED, numRuns: n, endOnFailure: !LONG });
  tallies.push(tally);
  console.log(`      fuzz ${target}: ${tally.runs} runs, ${tally.requests} requests, ${((Date.now() - started) / 1000).toFixed(1)} s`);
  for (const [route, n] of [...tally.routes ?? []].sort()) console.log(`        ${String(n).padStart(5)}  ${route}`);
}

/**
 * Answers of known, reported bugs that the fixed budget leaves out (so that
 * npm test stays green until they are fixed); FUZZ_KNOWN=1 puts them back.
 * Each is counted and the count printed.
 */
export const KNOWN_BUGS: Array<{ id: string; what: string; test(a: Answer): boolean }> = [
  {
    id: 'options-404-plain',
    what: 'OPTIONS without an Origin header on oidc-provider\'s CORS routes (/me, /token, /token/introspection, /token/revocation, /request, /jwks, /.well-known/openid-configuration) is Koa\'s 404 text/plain "Not Found", neither an OAuth error nor a page (with an Origin it is the 204 preflight)',
    test: (a) => a.method === 'OPTIONS' && a.status === 404 && a.body === 'Not Found' && /^text\/plain/.test(String(a.headers['content-type'])),
  },
];
const knownCounts = new Map<string, number>();
/** request ids of answers left out as known bugs: their error-level log lines are left out too */
export const knownRequestIds = new Set<string>();
const INCLUDE_KNOWN = process.env.FUZZ_KNOWN === '1';

/** fails with every violation of the answers given, naming the request */
export function expectClean(answers: Answer[], o: OracleOptions): void {
  const checked = answers.filter((a) => {
    const known = INCLUDE_KNOWN ? undefined : KNOWN_BUGS.find((k) => k.test(a));
    if (known) {
      knownCounts.set(known.id, (knownCounts.get(known.id) ?? 0) + 1);
      if (typeof a.headers['x-request-id'] === 'string') knownRequestIds.add(a.headers['x-request-id']);
    }
    return !known;
  });
  const bad = checked.flatMap((a) => violations(a, o).map((v) => `${a.method} ${a.url.slice(0, 300)} → ${a.status}: ${v}`));
  expect(bad, bad.join('\n')).to.deep.equal([]);
}

/** the forms and same-site links of a page, as things a walker can do */
export function pageActions(html: string): Array<{ form?: PageForm; link?: string }> {
  return [...pageForms(html).map((form) => ({ form })), ...pageLinks(html).filter((l) => !l.startsWith('/assets/')).map((link) => ({ link }))];
}

function printTotals(): void {
  if (!tallies.length) return;
  for (const k of KNOWN_BUGS) if (knownCounts.get(k.id)) console.log(`      fuzz: ${knownCounts.get(k.id)} answers of known bug ${k.id} left out (FUZZ_KNOWN=1 to fail on them): ${k.what}`);
  const total = tallies.reduce((s, t) => ({ runs: s.runs + t.runs, requests: s.requests + t.requests }), { runs: 0, requests: 0 });
  console.log(`\nfuzz: ${tallies.length} targets, ${total.runs} runs, ${total.requests} requests, seed ${SEED}${LONG ? ` (npm run fuzz; replay: FUZZ=long FUZZ_SEED=${SEED} npm run fuzz)` : ' (fixed budget)'}`);
}

// a root hook: the totals once, after every test file of the run (when loaded by mocha)
if (typeof after === 'function') after(printTotals);
