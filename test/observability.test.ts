// Operators' view of the running IdP (issue 15, parts 3-5): /metrics in the
// Prometheus text format (parsed with a text-format parser) showing what the
// test did — a login, a lockout, a token, DynamoDB calls — and refused without
// the token; one log line per refused request naming the error, the client and
// the reason with the reference id the user saw; /readyz per dependency, 503
// naming a required one that is down.
import crypto from 'node:crypto';
import { expect } from 'chai';
import parsePrometheus, { type PromFamily } from 'parse-prometheus-text-format';
import { DescribeTableCommand } from '@aws-sdk/client-dynamodb';
import { GetCommand } from '@aws-sdk/lib-dynamodb';
import { startTestIdp, freePort, type TestIdp } from './support/idp.ts';
import { IpAgent, REDIRECT, addClient, addUser, loginForm, post, signIn } from './support/lockout.ts';
import { UserAgent, readForm } from './support/user-agent.ts';
import { startKmsServer, type KmsTestServer } from './support/kms-server.ts';
import { Metrics } from '../src/logging/metrics.ts';
import { readiness } from '../src/http/readiness.ts';
import { loadConfig, ConfigError } from '../src/config/index.ts';

const TOKEN = crypto.randomBytes(24).toString('hex');
const PASSWORD = 'a long and right passphrase 42';

type Families = Map<string, PromFamily>;

/**
 * The exposition parsed twice by parse-prometheus-text-format: as it is (it
 * throws on a malformed line; families and their types), and with histograms
 * read as untyped, because the parser folds the label sets of a labelled
 * histogram into one: then each `_count`, `_sum` and `_bucket` series is a
 * family of its own with its labels.
 */
function parseMetrics(text: string): Families {
  const typed = parsePrometheus(text);
  const flat = parsePrometheus(text.replace(/^# TYPE (\S+) histogram$/gm, '# TYPE $1 untyped'));
  const out: Families = new Map(typed.filter((f) => f.type !== 'HISTOGRAM').map((f) => [f.name, f]));
  for (const f of flat) {
    if (out.has(f.name) && f.type === 'UNTYPED' && f.metrics.length === 0) continue;
    const seen = out.get(f.name);
    if (!seen && f.metrics.length) out.set(f.name, { ...f, metrics: [...f.metrics] });
    else if (seen && f.type === 'UNTYPED' && seen.type === 'UNTYPED') seen.metrics.push(...f.metrics);
  }
  // a histogram's own name stays its typed family (with the series under _count, _sum, _bucket)
  for (const f of typed) if (f.type === 'HISTOGRAM') out.set(f.name, { ...f, metrics: [] });
  return out;
}

/** the sum over the samples of `name` whose labels include `labels`; a histogram's: its _count */
function total(f: Families, name: string, labels: Record<string, string> = {}): number {
  const fam = f.get(name)?.type === 'HISTOGRAM' ? f.get(`${name}_count`) : f.get(name);
  if (!fam) return 0;
  return fam.metrics
    .filter((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v))
    .reduce((n, m) => n + Number(m.value), 0);
}

/** the log lines (parsed) of one request */
function linesOf(idp: TestIdp, requestId: string): Array<Record<string, unknown>> {
  return idp.logs.filter((l) => l.includes(`"requestId":"${requestId}"`)).map((l) => JSON.parse(l) as Record<string, unknown>);
}

function pkce() {
  const verifier = crypto.randomBytes(32).toString('base64url');
  return { verifier, challenge: crypto.createHash('sha256').update(verifier).digest('base64url') };
}

function authUrl(idp: TestIdp, params: Record<string, string>): string {
  const u = new URL('/auth', idp.issuer);
  u.search = new URLSearchParams({ response_type: 'code', redirect_uri: REDIRECT, scope: 'openid', state: 'st', ...params }).toString();
  return u.href;
}

describe('observability: metrics, logs that explain, readiness', function () {
  this.timeout(120_000);

  describe('one IdP with METRICS_TOKEN (metrics on the main port)', () => {
    let idp: TestIdp;
    /** values the logs must never hold */
    const secrets: string[] = [PASSWORD];

    before(async () => {
      idp = await startTestIdp({
        METRICS_TOKEN: TOKEN, TRUST_PROXY_HOPS: '1',
        LOCKOUT_MAX_FAILURES: '3', LOCKOUT_ACCOUNT_IP_MAX_FAILURES: '0', LOCKOUT_WAIT_SECONDS: '600',
      });
      await addClient(idp);
    });

    after(async () => {
      await idp?.close();
    });

    async function scrape(): Promise<Families> {
      const res = await fetch(`${idp.issuer}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
      expect(res.status).to.equal(200);
      expect(res.headers.get('content-type')).to.match(/^text\/plain; version=0\.0\.4/);
      return parseMetrics(await res.text());
    }

    /** a full sign-in with a known PKCE verifier: the code and the verifier */
    async function codeFor(ua: UserAgent, email: string): Promise<{ code: string; verifier: string }> {
      const { verifier, challenge } = pkce();
      const step = await ua.navigate(authUrl(idp, { client_id: 'app', code_challenge: challenge, code_challenge_method: 'S256', prompt: 'login' }));
      const form = readForm(await step.res.text());
      const done = await post(ua, form.action, { ...form.fields, login: email, password: PASSWORD });
      const code = new URL(done.offsite!).searchParams.get('code')!;
      secrets.push(code, verifier);
      return { code, verifier };
    }

    function token(fields: Record<string, string>) {
      return fetch(`${idp.issuer}/token`, {
        method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
        body: new URLSearchParams({ grant_type: 'authorization_code', redirect_uri: REDIRECT, client_id: 'app', ...fields }),
      });
    }

    it('/metrics is refused without the bearer token, or with a wrong one', async () => {
      for (const headers of [{}, { authorization: `Bearer ${TOKEN.slice(1)}x` }, { authorization: `Basic ${Buffer.from(`x:${TOKEN}`).toString('base64')}` }] as Array<Record<string, string>>) {
        const res = await fetch(`${idp.issuer}/metrics`, { headers });
        expect(res.status).to.equal(401);
        expect(res.headers.get('www-authenticate')).to.match(/^Bearer/);
        expect(await res.text()).to.not.include('idp_');
      }
    });

    it('/metrics parses and shows the login, the lockout, the token and the DynamoDB calls this test made', async () => {
      const before = await scrape();

      // a login and its code exchanged for tokens
      const email = 'metered@example.com';
      await addUser(idp, email, PASSWORD);
      const ua = new IpAgent(idp.issuer, '192.0.2.20');
      const { code, verifier } = await codeFor(ua, email);
      const tokens = await token({ code, code_verifier: verifier });
      expect(tokens.status).to.equal(200);
      const body = await tokens.json() as { access_token: string; id_token: string };
      secrets.push(body.access_token, body.id_token);

      // three wrong passwords lock another account
      const victim = 'locked-out@example.com';
      await addUser(idp, victim, PASSWORD);
      for (let i = 0; i < 3; i++) expect((await signIn(idp, new IpAgent(idp.issuer, `198.51.100.${i + 1}`), victim, `wrong ${i}`)).status).to.equal(401);

      // DynamoDB calls of the test's own: the lean path, the SDK path, and one that fails
      await idp.storage.doc.send(new GetCommand({ TableName: idp.storage.tables.oidc, Key: { pk: 'observability-test', sk: 'x' } }));
      await idp.storage.raw.send(new DescribeTableCommand({ TableName: idp.storage.tables.oidc }));
      const missing = await idp.storage.doc.send(new GetCommand({ TableName: 'no_such_table', Key: { pk: 'a', sk: 'b' } })).then(() => undefined, (e: Error) => e);
      expect(missing?.name).to.equal('ResourceNotFoundException');

      const after = await scrape();
      const delta = (name: string, labels: Record<string, string> = {}) => total(after, name, labels) - total(before, name, labels);

      expect(delta('idp_logins_total', { result: 'success', method: 'password' }), 'logins').to.equal(1);
      expect(delta('idp_logins_total', { result: 'failure', method: 'password' }), 'failed logins').to.equal(3);
      expect(delta('idp_login_failures_total', { method: 'password', reason: 'bad_credentials' })).to.equal(3);
      expect(delta('idp_lockouts_total', { scope: 'account', reason: 'account_threshold' }), 'lockouts').to.equal(1);
      expect(delta('idp_tokens_issued_total', { grant_type: 'authorization_code' }), 'tokens').to.equal(1);
      expect(delta('idp_dynamodb_request_duration_seconds', { operation: 'GetItem' })).to.be.at.least(2);
      expect(delta('idp_dynamodb_request_duration_seconds', { operation: 'DescribeTable' })).to.be.at.least(1);
      expect(delta('idp_dynamodb_errors_total', { operation: 'GetItem', error: 'ResourceNotFoundException' })).to.equal(1);

      // requests by bounded route names: oidc-provider's, our routers' patterns; never a raw path
      expect(delta('idp_http_request_duration_seconds', { route: 'token', method: 'POST', status: '200' })).to.equal(1);
      expect(delta('idp_http_request_duration_seconds', { route: 'authorization', method: 'GET', status: '303' })).to.be.at.least(4);
      const routes = new Set(after.get('idp_http_request_duration_seconds_count')!.metrics.map((m) => m.labels!.route));
      expect([...routes].filter((r) => r.startsWith('/interaction/')).every((r) => r.includes(':uid')), [...routes].join(' ')).to.equal(true);
      expect([...routes].some((r) => r.startsWith('/interaction/'))).to.equal(true);
      expect(routes.has('/metrics')).to.equal(true);

      // process metrics, key ages, the event backlog
      expect(total(after, 'process_cpu_user_seconds_total')).to.be.greaterThan(0);
      expect(after.get('nodejs_eventloop_lag_seconds')?.type).to.equal('GAUGE');
      const active = after.get('idp_key_age_seconds')!.metrics.filter((m) => m.labels!.state === 'active');
      expect(active.map((m) => m.labels!.kind)).to.include.members(['signing', 'cookie']);
      for (const m of active) expect(Number(m.value)).to.be.at.least(0);
      expect(after.get('idp_events_backlog_size')!.metrics[0].value).to.equal('0');
      expect(after.get('idp_events_backlog_oldest_age_seconds')!.metrics[0].value).to.equal('0');
    });

    it('/auth with an unknown client: the error page shows the reference id, and one log line names it with invalid_client, the client and the reason', async () => {
      const res = await new UserAgent(idp.issuer).request(authUrl(idp, { client_id: 'no-such-app', code_challenge: pkce().challenge, code_challenge_method: 'S256' }));
      expect(res.status).to.equal(400);
      const ref = res.headers.get('x-request-id')!;
      expect(await res.text()).to.include(ref);
      const lines = linesOf(idp, ref);
      expect(lines, 'one line for the request').to.have.length(1);
      expect(lines[0]).to.include({ msg: 'request refused', status: 400, error: 'invalid_client', clientId: 'no-such-app', event: 'authorization.error' });
      expect(lines[0].reason).to.match(/client/);
    });

    it('a wrong PKCE verifier at /token: one log line names invalid_grant, the client and the reason, and holds neither the code nor the verifier', async () => {
      const email = 'pkce@example.com';
      await addUser(idp, email, PASSWORD);
      const { code } = await codeFor(new IpAgent(idp.issuer, '192.0.2.21'), email);
      const wrong = pkce().verifier;
      secrets.push(wrong);
      const res = await token({ code, code_verifier: wrong });
      expect(res.status).to.equal(400);
      expect(((await res.json()) as { error: string }).error).to.equal('invalid_grant');
      const lines = linesOf(idp, res.headers.get('x-request-id')!);
      expect(lines).to.have.length(1);
      expect(lines[0]).to.include({ msg: 'request refused', status: 400, error: 'invalid_grant', clientId: 'app', event: 'grant.error' });
      expect(lines[0].reason).to.match(/code_verifier/);
    });

    it('an error redirect (prompt=none without a session): one log line names the error and the client', async () => {
      const res = await new UserAgent(idp.issuer).request(authUrl(idp, { client_id: 'app', prompt: 'none', code_challenge: pkce().challenge, code_challenge_method: 'S256' }));
      expect(res.status).to.equal(303);
      expect(new URL(res.headers.get('location')!).searchParams.get('error')).to.equal('login_required');
      const lines = linesOf(idp, res.headers.get('x-request-id')!);
      expect(lines).to.have.length(1);
      expect(lines[0]).to.include({ error: 'login_required', clientId: 'app', event: 'authorization.error' });
      expect(lines[0].reason).to.be.a('string');
    });

    it('our own error page (an interaction without its cookie): the reference id shown is the one logged, with the reason', async () => {
      const ua = new IpAgent(idp.issuer, '192.0.2.22');
      const form = await loginForm(idp, ua);
      const res = await new UserAgent(idp.issuer).request(form.action, { form: { ...form.fields, login: 'x@example.com', password: PASSWORD } });
      expect(res.status).to.be.within(400, 499);
      const ref = res.headers.get('x-request-id')!;
      expect(await res.text()).to.include(ref);
      const lines = linesOf(idp, ref);
      expect(lines).to.have.length(1);
      expect(lines[0]).to.include({ msg: 'request refused' });
      expect(lines[0].error).to.be.a('string');
      expect(lines[0].reason).to.be.a('string');
      expect(JSON.stringify(lines[0])).to.not.include('x@example.com');
    });

    it('the 404 page: its reference id is the one logged, with not_found; the route label is "unmatched", never the path', async () => {
      const res = await new UserAgent(idp.issuer).request('/no/such/page-3f9a');
      expect(res.status).to.equal(404);
      const ref = res.headers.get('x-request-id')!;
      expect(await res.text()).to.include(ref);
      expect(linesOf(idp, ref)).to.have.length(1);
      expect(linesOf(idp, ref)[0]).to.include({ msg: 'request refused', error: 'not_found' });
      const text = await (await fetch(`${idp.issuer}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })).text();
      expect(text).to.not.include('page-3f9a');
      expect(text).to.match(/idp_http_request_duration_seconds_count\{route="unmatched",method="GET",status="404"\} [1-9]/);
    });

    it('/readyz names each dependency with its state, and asks them at most once per READY_CACHE_MS however often it is called', async () => {
      const before = total(await scrape(), 'idp_dynamodb_request_duration_seconds', { operation: 'DescribeTable' });
      const answers = await Promise.all(Array.from({ length: 20 }, () => fetch(`${idp.issuer}/readyz`)));
      for (const r of answers) expect(r.status).to.equal(200);
      const body = await answers[0].json() as { status: string; checks: Record<string, Record<string, unknown>> };
      expect(body.status).to.equal('ready');
      expect(Object.keys(body.checks).sort()).to.deep.equal(['dynamodb', 'events']);
      expect(body.checks.dynamodb).to.include({ state: 'up', required: true });
      expect(body.checks.dynamodb.latencyMs).to.be.a('number');
      expect(body.checks.events).to.include({ state: 'up', required: false, sink: 'file' });
      const after = total(await scrape(), 'idp_dynamodb_request_duration_seconds', { operation: 'DescribeTable' });
      expect(after - before, 'DescribeTable calls for 20 /readyz').to.be.at.most(1);
    });

    it('logged no password, code, verifier or token', () => {
      const logs = idp.logs.join('');
      expect(logs.length).to.be.greaterThan(1000);
      for (const s of secrets) expect(logs.includes(s), `a secret (${s.slice(0, 6)}…) in the logs`).to.equal(false);
    });
  });

  describe('KMS mode, METRICS_PORT, an event sink that is down', () => {
    let kms: KmsTestServer;
    let idp: TestIdp;

    before(async () => {
      kms = await startKmsServer();
      const keyId = (await kms.createKey('SYMMETRIC_DEFAULT')).keyId;
      const deadSqs = `http://127.0.0.1:${await freePort()}`;
      idp = await startTestIdp({
        KEYS_MODE: 'kms-envelope', KMS_ENDPOINT: kms.endpoint, KMS_KEY_ID: keyId, KMS_TIMEOUT_MS: '500',
        METRICS_PORT: String(await freePort()), METRICS_HOST: '127.0.0.1',
        EVENTS_SINK: 'sqs', SQS_ENDPOINT: deadSqs, SQS_QUEUE_URL: `${deadSqs}/000000000000/events`,
        READY_CACHE_MS: '0', READY_TIMEOUT_MS: '1500',
      });
    });

    after(async () => {
      await idp?.close();
      await kms?.close();
    });

    const readyz = async () => {
      const res = await fetch(`${idp.issuer}/readyz`);
      return { status: res.status, body: await res.json() as { status: string; reason?: string; checks: Record<string, Record<string, unknown>> } };
    };

    it('metrics are on their own port only: the main port has no /metrics; the metrics port shows the KMS calls', async () => {
      expect((await fetch(`${idp.issuer}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })).status).to.equal(404);
      expect(idp.metricsUrl).to.be.a('string');
      const res = await fetch(idp.metricsUrl!);
      expect(res.status).to.equal(200);
      const f = parseMetrics(await res.text());
      expect(total(f, 'idp_kms_request_duration_seconds', { operation: 'GenerateDataKey' }) + total(f, 'idp_kms_request_duration_seconds', { operation: 'Decrypt' })).to.be.greaterThan(0);
      expect((await fetch(idp.metricsUrl!.replace('/metrics', '/other'))).status).to.equal(404);
    });

    it('/readyz: KMS up, the event sink down (optional): ready, with each state; KMS down: 503 naming kms; back up: ready', async () => {
      const up = await readyz();
      expect(up.status).to.equal(200);
      expect(up.body.checks.dynamodb).to.include({ state: 'up' });
      expect(up.body.checks.kms).to.include({ state: 'up', required: true });
      expect(up.body.checks.events).to.include({ state: 'down', required: false });
      expect(up.body.checks.events.error).to.be.a('string');

      await kms.down();
      const down = await readyz();
      expect(down.status).to.equal(503);
      expect(down.body.status).to.equal('unavailable');
      expect(down.body.reason).to.equal('down: kms');
      expect(down.body.checks.kms).to.include({ state: 'down', required: true });
      expect(down.body.checks.dynamodb).to.include({ state: 'up' });
      expect(JSON.stringify(down.body)).to.not.include(kms.endpoint);
      expect(idp.logs.some((l) => l.includes('"event":"readiness.down"') && l.includes('"dependency":"kms"'))).to.equal(true);

      const m = parseMetrics(await (await fetch(idp.metricsUrl!)).text());
      expect(total(m, 'idp_kms_errors_total', { operation: 'DescribeKey' })).to.be.greaterThan(0);

      await kms.up();
      expect((await readyz()).status).to.equal(200);
    });
  });

  describe('units', () => {
    it('configuration: no metrics by default; a short token and METRICS_PORT = PORT are refused', () => {
      expect(loadConfig({}).metrics).to.include({ enabled: false, port: undefined, token: undefined });
      expect(loadConfig({ METRICS_TOKEN: TOKEN }).metrics).to.include({ enabled: true, token: TOKEN });
      expect(() => loadConfig({ METRICS_TOKEN: 'short' })).to.throw(ConfigError, /METRICS_TOKEN/);
      expect(() => loadConfig({ PORT: '9100', METRICS_PORT: '9100' })).to.throw(ConfigError, /METRICS_PORT/);
    });

    it('readiness: a check that hangs is down (TimeoutError) within the timeout; an optional one down keeps it ready; answers are cached', async () => {
      let calls = 0;
      const ready = readiness({
        fast: { required: true, run: async () => { calls++; return { extra: 1 }; } },
        hangs: { required: true, run: () => new Promise(() => {}) },
        optional: { required: false, run: async () => { throw Object.assign(new Error('secret endpoint http://10.0.0.1'), { name: 'ECONNREFUSED' }); } },
      }, { timeoutMs: 100, cacheMs: 60_000 });
      const started = Date.now();
      const r = await ready();
      expect(Date.now() - started).to.be.below(1000);
      expect(r).to.deep.include({ status: 'unavailable', reason: 'down: hangs' });
      expect(r.checks.fast).to.include({ state: 'up', extra: 1 });
      expect(r.checks.hangs).to.include({ state: 'down', error: 'TimeoutError' });
      expect(r.checks.optional).to.include({ state: 'down', required: false, error: 'ECONNREFUSED' });
      expect(JSON.stringify(r)).to.not.include('10.0.0.1');
      await Promise.all([ready(), ready(), ready()]);
      expect(calls).to.equal(1);
      const optionalOnly = await readiness({ optional: { required: false, run: async () => { throw new Error('x'); } } }, { timeoutMs: 100, cacheMs: 0 })();
      expect(optionalOnly.status).to.equal('ready');
    });

    it('MFA challenges are counted from events; label values from events stay bounded', async () => {
      const m = new Metrics({ processMetrics: false });
      m.onEvent({ type: 'mfa.succeeded', data: { method: 'totp' } });
      m.onEvent({ type: 'mfa.failed', data: { method: 'email', reason: 'wrong_code' } });
      for (let i = 0; i < 40; i++) m.onEvent({ type: 'login.failed', data: { kind: 'password', reason: `reason_${i}` } });
      m.onEvent({ type: 'login.failed', data: { kind: 'password', reason: 'has spaces and {braces}' } });
      const f = parseMetrics(await m.text());
      expect(total(f, 'idp_mfa_challenges_total', { result: 'success', method: 'totp' })).to.equal(1);
      expect(total(f, 'idp_mfa_challenges_total', { result: 'failure', method: 'email' })).to.equal(1);
      const reasons = new Set(f.get('idp_login_failures_total')!.metrics.map((x) => x.labels!.reason));
      expect(reasons.size).to.be.at.most(31);
      expect(total(f, 'idp_login_failures_total', { reason: 'other' })).to.equal(11);
    });
  });
});
