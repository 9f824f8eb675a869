// Fuzzing every endpoint and form the IdP serves (issue 14, item 13), with
// fast-check, against the running IdP and a real upstream IdP
// (test/support/upstream.ts) for the federation pages. The oracle, the budget
// and the walker live in test/support/fuzz.ts: every answer of every run
// (redirects included) must be a clean one, and nothing may be logged at
// error level during a target.
//
//   protocol endpoints  /auth, /token, /token/introspection, /token/revocation,
//                       /me, /session/end (+ /confirm), /request (PAR): random
//                       parameter sets from plausible and hostile values, real
//                       tokens among them, every client authentication shape
//   interaction forms   a fresh interaction (or session) per run, reached the
//                       way a browser does, then 1-3 steps: any form or link on
//                       the page, its fields kept, plausible, hostile, dropped or
//                       repeated, extra fields, odd body encodings; the next
//                       step works on the page that came back. Login, consent,
//                       MFA (enrolment and code entry), the lockout
//                       self-service pages (unlock, reset, change, the forced
//                       change), the federation link step, the account pages
//   other entry points  the federation callback (with this browser's real
//                       state and without), upstream logout return, the
//                       account page's login/callback, any method on any path
//
// Answers of known, reported bugs (KNOWN_BUGS in test/support/fuzz.ts) are
// left out of the oracle and counted; FUZZ_KNOWN=1 fails on them.
//
// The IdP runs with LOCKOUT_MODE=dry-run (the guard decides and logs but does
// not refuse) so that the fuzzer's wrong passwords and codes never lock the
// accounts the targets sign in with, and with a cheap argon2id. Run counts
// per target are printed; `npm run fuzz` multiplies them with a random seed.
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { expect } from 'chai';
import fc from 'fast-check';
import { generateSync } from 'otplib';
import { startTestIdp, tempDir, type TestIdp } from './support/idp.ts';
import { UserAgent } from './support/user-agent.ts';
import { startUpstream, type Upstream } from './support/upstream.ts';
import { formEndingWith, pageForms } from './support/forms.ts';
import {
  FuzzAgent, LONG, SEED, countRoute, knownRequestIds, encodeForm, expectClean, fuzzTarget, mutateForm, mutation, nasty, oneOf, pageActions, paramSet, runs,
  type Answer, type Mutation, type OracleOptions, type Tally,
} from './support/fuzz.ts';
import { readOutbox } from '../src/events/messages.ts';
import { redirectUriFor } from '../src/federation/connections.ts';

const REDIRECT = 'https://rp.fuzz.test/cb';
const POST_LOGOUT = 'https://rp.fuzz.test/bye';
const API = 'https://api.fuzz.test';
const SECRET = 'fuzz-secret-0123456789abcdefghijklmnop';
const PASSWORD = 'correct horse battery staple 42';
/** a path segment must be well-formed UTF-16 to be percent-encoded: lone surrogates become U+FFFD, as a browser sends them */
const wellFormed = (s: string) => Buffer.from(s, 'utf8').toString('utf8');

const USERS = {
  login: 'login@fuzz.test', consent: 'consent@fuzz.test', mfa: 'mfa@fuzz.test', totp: 'totp@fuzz.test',
  account: 'account@fuzz.test', linker: 'linker@fuzz.test', logout: 'logout@fuzz.test', tokens: 'tokens@fuzz.test',
};

describe('fuzzing every endpoint and form (fast-check)', function () {
  this.timeout(LONG ? 0 : 120_000);
  let idp: TestIdp;
  let corp: Upstream;
  let oracle: OracleOptions;
  const subs: Record<string, string> = {};
  let totpSecret = '';
  /** real artifacts of one sign-in, so that some fuzzed requests carry valid values */
  const real = { code: '', verifier: '', accessToken: '', refreshToken: '', idToken: '' };

  before(async () => {
    if (LONG) console.log(`      fuzz: seed ${SEED} (replay: FUZZ=long FUZZ_SEED=${SEED} npm run fuzz)`);
    const seed = path.join(tempDir('idp-fuzz-'), 'seed.json');
    const client = (id: string, extra: Record<string, unknown> = {}) => ({
      client_id: id, client_secret: SECRET, client_name: `Fuzz ${id}`, redirect_uris: [REDIRECT], post_logout_redirect_uris: [POST_LOGOUT],
      grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'], token_endpoint_auth_method: 'client_secret_basic', ...extra,
    });
    fs.writeFileSync(seed, JSON.stringify({
      clients: [
        client('fuzz-web'),
        client('fuzz-post', { token_endpoint_auth_method: 'client_secret_post' }),
        client('fuzz-pub', { token_endpoint_auth_method: 'none', client_secret: undefined }),
        client('fuzz-mfa', { first_party: true, mfa_policy: 'required' }),
        client('fuzz-svc', { grant_types: ['client_credentials'], redirect_uris: [], response_types: [] }),
      ],
      resourceServers: [{ id: API, scope: 'api:read api:write', accessTokenFormat: 'jwt', jwtAlg: 'ES256' }],
    }));
    idp = await startTestIdp({
      SEED_FILE: seed, LOG_LEVEL: 'info', LOCKOUT_MODE: 'dry-run', ARGON2_MEMORY_KIB: '4096', ARGON2_TIME_COST: '1', MFA_POLICY: 'optional',
    });
    for (const [i, [key, email]] of Object.entries(USERS).entries()) {
      subs[key] = ((await idp.cli('users', 'add', '--email', email, '--password', PASSWORD, '--name', `Fuzz ${key}`, '--email-verified', '--phone', `+1415555010${i}`, '--phone-verified')) as { sub: string }).sub;
    }
    // an authenticator app for the TOTP user, through the service the account page uses
    const setup = await idp.mfa.service.totpSetup(subs.totp, 'fuzz', USERS.totp);
    totpSecret = setup.secret;
    expect(await idp.mfa.service.confirmTotp(subs.totp, 'fuzz', generateSync({ secret: totpSecret }), { replace: false, via: 'account' })).to.be.an('array');
    // an upstream IdP whose user has the linker's address: signing in through it asks to prove the local account
    corp = await startUpstream({ kind: 'oidc', clients: [{ client_id: 'fuzz-idp', client_secret: SECRET, redirect_uris: [redirectUriFor(idp.issuer, 'corp')], post_logout_redirect_uris: [`${idp.issuer}/federation/logout`] }] });
    corp.users.set(USERS.linker, { email: USERS.linker, email_verified: true, name: 'Linker Upstream' });
    await idp.federation.connections.add({
      id: 'corp', name: 'Corp', kind: 'oidc', issuer: corp.issuer, discoveryUrl: corp.discoveryUrl, clientId: 'fuzz-idp', clientSecret: SECRET,
      domains: ['corp.fuzz.test'], linking: 'prove', allowSignup: true,
    } as Parameters<typeof idp.federation.connections.add>[0]);
    oracle = { origin: idp.issuer, offsite: [REDIRECT, POST_LOGOUT, corp.origin] };

    // one real sign-in: a code (then used), tokens and an ID token for the protocol targets
    const a = await authorize('fuzz-web', { scope: 'openid email offline_access', prompt: 'consent' });
    const ua = new UserAgent(idp.issuer);
    let step = await ua.navigate(a.url);
    const login = formEndingWith(await step.res.text(), '/login')!;
    step = await ua.navigate(login.action, { form: { ...Object.fromEntries(login.fields), login: USERS.tokens, password: PASSWORD } });
    const consent = formEndingWith(await step.res.text(), '/consent')!;
    step = await ua.navigate(consent.action, { form: Object.fromEntries(consent.fields) });
    real.code = new URL(step.offsite!).searchParams.get('code')!;
    real.verifier = a.verifier;
    const t = await fetch(`${idp.issuer}/token`, {
      method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic('fuzz-web') },
      body: new URLSearchParams({ grant_type: 'authorization_code', code: real.code, redirect_uri: REDIRECT, code_verifier: a.verifier }),
    }).then((r) => r.json() as Promise<Record<string, string>>);
    Object.assign(real, { accessToken: t.access_token, refreshToken: t.refresh_token, idToken: t.id_token });
    expect(real.refreshToken).to.be.a('string');
  });

  after(async () => {
    await corp?.close();
    await idp?.close();
  });

  const basic = (id: string, secret = SECRET) => `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;

  async function authorize(clientId: string, extra: Record<string, string> = {}) {
    const verifier = crypto.randomBytes(32).toString('base64url');
    const url = new URL('/auth', idp.issuer);
    url.search = new URLSearchParams({
      client_id: clientId, response_type: 'code', scope: 'openid', redirect_uri: REDIRECT, state: crypto.randomUUID(),
      code_challenge: crypto.createHash('sha256').update(verifier).digest('base64url'), code_challenge_method: 'S256', ...extra,
    }).toString();
    return { url: url.href, verifier };
  }

  /** one run's agent: its answers are collected for the oracle; `from` copies a signed-in browser's cookies */
  function agentFor(tally: Tally, from?: { jar: Map<string, string> }) {
    const answers: Answer[] = [];
    const agent = new FuzzAgent(idp.issuer, (a) => {
      answers.push(a);
      countRoute(tally, a);
    });
    for (const [k, v] of from?.jar ?? []) agent.jar.set(k, v);
    return {
      agent,
      done: () => {
        tally.requests += agent.requests;
        expectClean(answers, oracle);
      },
    };
  }

  /** nothing logged at error level since `mark` (but for the requests of known bugs, which the oracle left out) */
  const errorLogs = (mark: number) => idp.logs.slice(mark).filter((l) => /"level":(50|60)\b/.test(l))
    .filter((l) => ![...knownRequestIds].some((id) => l.includes(`"requestId":"${id}"`)));

  /** the latest one-time code the IdP sent (MFA, unlock, reset, link), from the embedded outbox */
  const latestCode = () => {
    const m = readOutbox(path.join(idp.env.DATA_DIR, 'outbox.jsonl')).at(-1);
    return m ? /\b(\d{6,8})\b/.exec(m.data.text)?.[1] : undefined;
  };

  /** values that get further on our forms, for the walker's "valid" choice */
  function plausibleFor(user: string, html: () => string) {
    return (name: string): string | undefined => {
      switch (name) {
        case 'login': case 'email': return user;
        case 'password': case 'current': case 'currentPassword': return PASSWORD;
        case 'new_password': case 'newPassword': case 'password2': case 'confirm': return 'another rather long passphrase 8';
        case 'otp': case 'code': {
          const onPage = /id="totp-secret">([A-Z2-7 ]+)</.exec(html())?.[1]?.replace(/ /g, '');
          if (onPage) return generateSync({ secret: onPage });
          if (user === USERS.totp) return generateSync({ secret: totpSecret });
          return latestCode();
        }
        default: return undefined;
      }
    };
  }

  interface Step { pick: number; m: Mutation; query?: [string, string] | null }
  const walkSteps = fc.array(fc.record({ pick: fc.nat(), m: mutation, query: fc.option(fc.tuple(fc.constantFrom('next', 'done', 'state', 'ref', 'x'), nasty)) }), { minLength: 1, maxLength: 3 });

  /** 1-3 steps from a page: a form (mutated) or a link of the page each time; stops off the IdP or on a non-page */
  async function walk(agent: FuzzAgent, start: Answer, steps: Step[], user: string) {
    let here = start;
    for (const s of steps) {
      if (!/^text\/html/.test(String(here.headers['content-type']))) return;
      const actions = pageActions(here.body);
      if (!actions.length) return;
      const act = actions[s.pick % actions.length];
      let r;
      if (act.link !== undefined) {
        const u = new URL(act.link, here.url);
        if (s.query) u.searchParams.append(s.query[0], s.query[1]);
        r = await agent.go('GET', u.href);
      } else {
        const form = act.form!;
        const page = here.body;
        const pairs = mutateForm(form, s.m, plausibleFor(user, () => page));
        const target = new URL(form.action || here.url, here.url);
        if (form.method === 'GET') {
          for (const [k, v] of pairs) target.searchParams.append(k, v);
          r = await agent.go('GET', target.href);
        } else {
          r = await agent.go('POST', target.href, encodeForm(pairs, s.m.encoding));
        }
      }
      if (r.offsite) return;
      here = r.answer;
    }
  }

  /** a fresh interaction's login page for a client (the walker's usual start) */
  async function loginPage(agent: FuzzAgent, clientId = 'fuzz-web', extra: Record<string, string> = {}) {
    const { answer } = await agent.go('GET', (await authorize(clientId, extra)).url);
    expect(answer.status, answer.body.slice(0, 300)).to.equal(200);
    return answer;
  }

  /** signs in on a login page with the right password; the page that follows */
  async function signIn(agent: FuzzAgent, page: Answer, email: string) {
    const form = formEndingWith(page.body, '/login')!;
    const fields = { ...Object.fromEntries(form.fields), login: email, password: PASSWORD };
    return agent.go('POST', new URL(form.action, page.url).href, encodeForm(Object.entries(fields), 'form'));
  }

  it('fuzz the authorization endpoint: random parameter sets, GET, and the pages it leads to', async () => {
    const mark = idp.logs.length;
    const challenge = crypto.createHash('sha256').update('v'.repeat(43)).digest('base64url');
    const input = paramSet({
      client_id: ['fuzz-web', 'fuzz-pub', 'fuzz-mfa'], response_type: ['code', 'code', 'code', 'token', 'code id_token'], redirect_uri: [REDIRECT], scope: ['openid', 'openid email profile phone', 'openid offline_access', 'openid roles'],
      state: ['s1', 'x'.repeat(200)], code_challenge: [challenge], code_challenge_method: ['S256'],
    }, {
      nonce: ['n1'], prompt: ['none', 'login', 'consent', 'select_account', 'none login'], max_age: ['0', '1', '99999999999'],
      response_mode: ['query', 'fragment', 'form_post', 'jwt'], ui_locales: ['en', 'se', 'fr-CA de'], claims_locales: ['en', 'se'],
      login_hint: [USERS.login, 'someone@corp.fuzz.test', ''], id_token_hint: [real.idToken, 'a.b.c'],
      acr_values: ['urn:idp:acr:pwd', 'urn:idp:acr:mfa', 'urn:idp:acr:pwd urn:idp:acr:mfa'],
      claims: ['{"id_token":{"acr":{"essential":true,"values":["urn:idp:acr:mfa"]}}}', '{"userinfo":{"name":null}}', '{', '[]'],
      idp_hint: ['corp', 'nope'], resource: [API, 'https://unknown.fuzz.test', 'not a url'], request: ['eyJhbGciOiJub25lIn0.e30.'],
      request_uri: ['urn:ietf:params:oauth:request_uri:abc'], display: ['page', 'popup', 'touch'],
    });
    await fuzzTarget('authorization endpoint', runs(120), input, async (pairs, tally) => {
      const { agent, done } = agentFor(tally);
      await agent.go('GET', `/auth?${new URLSearchParams(pairs)}`);
      done();
    });
    expect(errorLogs(mark)).to.deep.equal([]);
  });

  /** the client authentication shapes of a token-endpoint-like request */
  const clientAuth = fc.record({ kind: fc.constantFrom('basic', 'basic-wrong', 'basic-garbage', 'basic-hostile', 'post', 'post-hostile', 'public', 'none', 'both', 'svc'), hostile: nasty });
  function withAuth(auth: { kind: string; hostile: string }, form: Array<[string, string]>, headers: Record<string, string>) {
    switch (auth.kind) {
      case 'basic-hostile': headers.authorization = basic(auth.hostile); break;
      case 'post-hostile': form.push(['client_id', auth.hostile], ['client_secret', SECRET]); break;
      case 'basic': headers.authorization = basic('fuzz-web'); break;
      case 'basic-wrong': headers.authorization = basic('fuzz-web', 'wrong'); break;
      case 'basic-garbage': headers.authorization = 'Basic %%%not-base64'; break;
      case 'post': form.push(['client_id', 'fuzz-post'], ['client_secret', SECRET]); break;
      case 'public': form.push(['client_id', 'fuzz-pub']); break;
      case 'both': headers.authorization = basic('fuzz-web'); form.push(['client_id', 'fuzz-web'], ['client_secret', SECRET]); break;
      case 'svc': headers.authorization = basic('fuzz-svc'); break;
      default:
    }
  }

  /** a POST of form pairs to an API endpoint, with a body encoding drawn by fast-check */
  const apiEncoding = fc.oneof({ weight: 12, arbitrary: fc.constant<Mutation['encoding']>('form') }, { weight: 1, arbitrary: fc.constantFrom<Mutation['encoding']>('json', 'text', 'broken', 'gzip-garbage', 'unknown-encoding') });
  const apiAccept = fc.constantFrom('application/json', '*/*', 'text/html', '');

  async function apiPost(agent: FuzzAgent, url: string, auth: { kind: string; hostile: string }, pairs: Array<[string, string]>, encoding: Mutation['encoding'], accept: string) {
    const headers: Record<string, string> = { accept };
    const form = [...pairs];
    withAuth(auth, form, headers);
    const enc = encodeForm(form, encoding);
    return agent.send('POST', url, { body: enc.body, headers: { ...enc.headers, ...headers } });
  }

  it('fuzz the token endpoint: every grant type, real and hostile codes and tokens, every client authentication', async () => {
    const mark = idp.logs.length;
    const input = fc.record({
      auth: clientAuth, encoding: apiEncoding, accept: apiAccept,
      pairs: paramSet({ grant_type: ['authorization_code', 'refresh_token', 'client_credentials'] }, {
        code: [real.code, 'abc'], refresh_token: [real.refreshToken], redirect_uri: [REDIRECT], code_verifier: [real.verifier],
        scope: ['openid', 'api:read', 'openid offline_access'], resource: [API, 'https://unknown.fuzz.test'],
        grant_type: ['password', 'urn:ietf:params:oauth:grant-type:device_code', 'implicit'],
      }),
    });
    await fuzzTarget('token endpoint', runs(120), input, async (i, tally) => {
      const { agent, done } = agentFor(tally);
      const a = await apiPost(agent, '/token', i.auth, i.pairs, i.encoding, i.accept);
      // JSON for an API client; a browser (Accept: text/html) gets oidc-provider's error page
      if (i.accept !== 'text/html') expect(String(a.headers['content-type']), 'the token endpoint answers JSON').to.match(/json/);
      done();
    });
    expect(errorLogs(mark)).to.deep.equal([]);
  });

  for (const [name, endpoint] of [['introspection', '/token/introspection'], ['revocation', '/token/revocation']] as const) {
    it(`fuzz the ${name} endpoint: real and hostile tokens and hints, every client authentication`, async () => {
      const mark = idp.logs.length;
      const input = fc.record({
        auth: clientAuth, encoding: apiEncoding, accept: apiAccept,
        pairs: paramSet({ token: [real.accessToken, real.refreshToken, real.idToken, real.code] }, { token_type_hint: ['access_token', 'refresh_token', 'id_token'] }),
      });
      await fuzzTarget(`${name} endpoint`, runs(60), input, async (i, tally) => {
        const { agent, done } = agentFor(tally);
        const a = await apiPost(agent, endpoint, i.auth, i.pairs, i.encoding, i.accept);
        if (a.body !== '' && i.accept !== 'text/html') expect(String(a.headers['content-type'])).to.match(/json/);
        done();
      });
      expect(errorLogs(mark)).to.deep.equal([]);
    });
  }

  it('fuzz the userinfo endpoint: GET and POST, the token in the header, the body or the query, in every shape', async () => {
    const mark = idp.logs.length;
    const input = fc.record({
      method: fc.constantFrom('GET', 'POST'), accept: apiAccept,
      header: fc.option(fc.oneof(
        oneOf(`Bearer ${real.accessToken}`, 'Bearer', 'bearer x', `DPoP ${real.accessToken}`, 'Basic eDp5'),
        nasty.map((s) => `Bearer ${s}`),
      )),
      body: fc.option(oneOf(real.accessToken, '')), query: fc.option(oneOf(real.accessToken)),
    });
    await fuzzTarget('userinfo endpoint', runs(60), input, async (i, tally) => {
      const { agent, done } = agentFor(tally);
      const headers: Record<string, string> = { accept: i.accept };
      // fast-check may draw a header value node:http refuses to send (control characters): those never reach a server
      if (i.header !== null && !/[^\t\x20-\x7e\x80-\xff]/.test(i.header)) headers.authorization = i.header;
      const url = i.query !== null ? `/me?${new URLSearchParams({ access_token: i.query })}` : '/me';
      if (i.method === 'POST' && i.body !== null) {
        await agent.send('POST', url, { ...encodeForm([['access_token', i.body]], 'form'), headers: { ...headers, 'content-type': 'application/x-www-form-urlencoded' } });
      } else {
        await agent.send(i.method, url, { headers });
      }
      done();
    });
    expect(errorLogs(mark)).to.deep.equal([]);
  });

  it('fuzz end-session: GET and POST /session/end with real and hostile hints, and the confirmation form', async () => {
    const mark = idp.logs.length;
    // a browser with a session (signed in once; a run that logs it out leaves the next ones without)
    const template = agentFor({ target: '', runs: 0, requests: 0 });
    await signIn(template.agent, await loginPage(template.agent), USERS.logout);
    const input = fc.record({
      method: fc.constantFrom('GET', 'POST'),
      params: paramSet({ id_token_hint: [real.idToken], post_logout_redirect_uri: [POST_LOGOUT], state: ['s1'] }, {
        client_id: ['fuzz-web'], ui_locales: ['en', 'se'], logout_hint: [USERS.logout],
      }),
      confirm: fc.option(fc.record({ m: mutation, pick: fc.nat() })),
    });
    await fuzzTarget('end-session endpoint', runs(60), input, async (i, tally) => {
      const { agent, done } = agentFor(tally, template.agent);
      const pairs = i.params;
      const r = i.method === 'GET'
        ? await agent.go('GET', `/session/end?${new URLSearchParams(pairs)}`)
        : await agent.go('POST', '/session/end', encodeForm(pairs, 'form'));
      const form = pageForms(r.answer.body).find((f) => f.id === 'op.logoutForm');
      if (form && i.confirm) {
        const pairs2 = mutateForm(form, i.confirm.m, (n) => (n === 'logout' ? 'yes' : undefined));
        if (i.confirm.pick % 3 === 0) pairs2.push(['logout', 'yes']);
        await agent.go('POST', new URL(form.action, r.answer.url).href, encodeForm(pairs2, i.confirm.m.encoding));
      }
      done();
    });
    expect(errorLogs(mark)).to.deep.equal([]);
  });

  it('fuzz pushed authorization requests (/request)', async () => {
    const mark = idp.logs.length;
    const input = fc.record({
      auth: clientAuth, encoding: apiEncoding, accept: apiAccept,
      params: paramSet({
        response_type: ['code'], redirect_uri: [REDIRECT], scope: ['openid', 'openid offline_access'],
        code_challenge: ['E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM'], code_challenge_method: ['S256'], state: ['s1'],
      }, { request_uri: ['urn:ietf:params:oauth:request_uri:abc'], prompt: ['login', 'none'], resource: [API] }),
    });
    await fuzzTarget('pushed authorization request endpoint', runs(40), input, async (i, tally) => {
      const { agent, done } = agentFor(tally);
      await apiPost(agent, '/request', i.auth, i.params, i.encoding, i.accept);
      done();
    });
    expect(errorLogs(mark)).to.deep.equal([]);
  });

  it('fuzz the login form (and the links and forms it leads to)', async () => {
    const mark = idp.logs.length;
    await fuzzTarget('login form', runs(60), fc.record({ steps: walkSteps, user: fc.constantFrom(USERS.login, 'nobody@fuzz.test', 'someone@corp.fuzz.test') }), async (i, tally) => {
      const { agent, done } = agentFor(tally);
      await walk(agent, await loginPage(agent), i.steps, i.user);
      done();
    });
    expect(errorLogs(mark)).to.deep.equal([]);
  });

  it('fuzz the consent form', async () => {
    const mark = idp.logs.length;
    const template = agentFor({ target: '', runs: 0, requests: 0 });
    const first = await signIn(template.agent, await loginPage(template.agent, 'fuzz-web', { prompt: 'consent', scope: 'openid email' }), USERS.consent);
    expect(formEndingWith(first.answer.body, '/consent'), 'the consent page').to.not.equal(undefined);
    const input = fc.record({ steps: walkSteps, scope: fc.constantFrom('openid email', 'openid email profile phone offline_access', 'openid api:read') });
    await fuzzTarget('consent form', runs(40), input, async (i, tally) => {
      const { agent, done } = agentFor(tally, template.agent);
      let { answer } = await agent.go('GET', (await authorize('fuzz-web', { prompt: 'consent', scope: i.scope, ...(i.scope.includes('api') ? { resource: API } : {}) })).url);
      // an earlier run ended the session ("Not you?", or a sign-out): sign in again, for this run and the next ones
      if (formEndingWith(answer.body, '/login')) {
        answer = (await signIn(agent, answer, USERS.consent)).answer;
        for (const [k, v] of agent.jar) template.agent.jar.set(k, v);
      }
      expect(formEndingWith(answer.body, '/consent'), 'the consent page').to.not.equal(undefined);
      await walk(agent, answer, i.steps, USERS.consent);
      done();
    });
    expect(errorLogs(mark)).to.deep.equal([]);
  });

  it('fuzz the MFA forms: enrolment (authenticator app, e-mail or SMS code) and code entry (TOTP, recovery code)', async () => {
    const mark = idp.logs.length;
    await fuzzTarget('MFA forms', runs(40), fc.record({ steps: walkSteps, user: fc.constantFrom(USERS.mfa, USERS.totp) }), async (i, tally) => {
      const { agent, done } = agentFor(tally);
      const r = await signIn(agent, await loginPage(agent, 'fuzz-mfa'), i.user);
      expect(r.answer.url, 'the MFA step').to.match(/\/mfa/);
      await walk(agent, r.answer, i.steps, i.user);
      done();
    });
    expect(errorLogs(mark)).to.deep.equal([]);
  });

  it('fuzz the lockout self-service pages: unlock, reset, change, and the forced change', async () => {
    const mark = idp.logs.length;
    const input = fc.record({ steps: walkSteps, page: fc.constantFrom('unlock', 'reset', 'change', 'password', 'unlock/verify', 'reset/verify'), m: mutation });
    await fuzzTarget('lockout self-service pages', runs(40), input, async (i, tally) => {
      const { agent, done } = agentFor(tally);
      const login = await loginPage(agent);
      const base = login.url.replace(/\/?$/, '');
      if (i.page.includes('/') || i.page === 'password') {
        // routes reached only by a form post: straight there with a mutated form of the login page (its CSRF token)
        const form = formEndingWith(login.body, '/login')!;
        await agent.go('POST', `${base}/${i.page}`, encodeForm(mutateForm(form, i.m, plausibleFor(USERS.login, () => login.body)), i.m.encoding));
      } else {
        const { answer } = await agent.go('GET', `${base}/${i.page}`);
        await walk(agent, answer, i.steps, USERS.login);
      }
      done();
    });
    expect(errorLogs(mark)).to.deep.equal([]);
  });

  it('fuzz the federation link step (prove the local account: password, or an e-mailed code)', async () => {
    const mark = idp.logs.length;
    await fuzzTarget('federation link step', runs(25), fc.record({ steps: walkSteps }), async (i, tally) => {
      const { agent, done } = agentFor(tally);
      // a run that proved the account linked it: unlinked again, so that every run meets the link step
      await idp.cli('connections', 'unlink', '--sub', subs.linker, '--connection', 'corp').catch(() => undefined);
      const login = await loginPage(agent);
      const form = formEndingWith(login.body, '/login')!;
      const toUpstream = await agent.go('POST', new URL(form.action, login.url).href, encodeForm([['csrf', Object.fromEntries(form.fields).csrf], ['method', 'federation'], ['connection', 'corp']], 'form'));
      expect(toUpstream.offsite, 'sent to the upstream IdP').to.be.a('string');
      const up = new UserAgent(corp.origin);
      const first = await up.navigate(toUpstream.offsite!);
      const upForm = pageForms(await first.res.text())[0];
      const back = await up.navigate(upForm.action, { form: { ...Object.fromEntries(upForm.fields), login: USERS.linker } });
      const { answer } = await agent.go('GET', back.offsite!);
      expect(answer.body, 'the link step').to.match(/federation\/link/);
      await walk(agent, answer, i.steps, USERS.linker);
      done();
    });
    expect(errorLogs(mark)).to.deep.equal([]);
  });

  it('fuzz the federation callback (with this browser\'s state and without) and the upstream logout return', async () => {
    const mark = idp.logs.length;
    const input = fc.record({
      connection: oneOf('corp', 'nope'), withState: fc.boolean(), started: fc.boolean(), ref: fc.option(nasty),
      params: fc.record({ code: nasty, state: nasty, iss: oneOf(corp.issuer, 'https://evil.example'), error: oneOf('access_denied', 'login_required'), error_description: nasty, session_state: nasty }, { requiredKeys: [] }),
      logout: fc.option(fc.record({ state: nasty })),
    });
    await fuzzTarget('federation callback and logout', runs(40), input, async (i, tally) => {
      const { agent, done } = agentFor(tally);
      const q = new URLSearchParams(Object.entries(i.params) as Array<[string, string]>);
      if (i.started) {
        // the flow started in this browser: its state cookie is set, and the real state may be sent back
        const login = await loginPage(agent);
        const form = formEndingWith(login.body, '/login')!;
        const r = await agent.go('POST', new URL(form.action, login.url).href, encodeForm([['csrf', Object.fromEntries(form.fields).csrf], ['method', 'federation'], ['connection', 'corp']], 'form'));
        if (i.withState && r.offsite) q.set('state', new URL(r.offsite).searchParams.get('state')!);
        // and the way back under the interaction, with a reference that was never handed out
        if (i.ref !== null) await agent.go('GET', `${login.url}/federation/continue?${new URLSearchParams({ ref: i.ref })}`);
      }
      await agent.go('GET', `/federation/${encodeURIComponent(wellFormed(i.connection))}/callback?${q}`);
      if (i.logout) await agent.go('GET', `/federation/logout?${new URLSearchParams(i.logout)}`);
      done();
    });
    expect(errorLogs(mark)).to.deep.equal([]);
  });

  it('fuzz the account pages: their forms and links signed in, and their entry points signed out', async () => {
    const mark = idp.logs.length;
    // signed in to the account page once, through its own login; again whenever a run signed it out
    const template = agentFor({ target: '', runs: 0, requests: 0 });
    const ensureSignedIn = async () => {
      // with a session this comes straight back to /account; without, it shows the login page
      const start = await template.agent.go('GET', '/account/login');
      let back = start.answer;
      if (formEndingWith(start.answer.body, '/login')) {
        // a run may have set up an authenticator app (its secret was on the page): start that user afresh
        await idp.mfa.service.reset(subs.account, 'admin');
        back = (await signIn(template.agent, start.answer, USERS.account)).answer;
      }
      expect(back.url, 'back on the account page').to.match(/\/account$/);
    };
    await ensureSignedIn();
    const input = fc.record({
      signedIn: fc.oneof({ weight: 4, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
      steps: walkSteps,
      post: fc.option(fc.record({
        route: fc.constantFrom('/account/devices/revoke', '/account/links/remove', '/account/apps/remove', '/account/recovery', '/account/totp'),
        fields: fc.array(fc.tuple(fc.constantFrom('id', 'all', 'link', 'client', 'client_id', 'app', 'otp'), oneOf('1', 'all', 'corp', 'fuzz-web', '000000')), { maxLength: 3 }),
        m: mutation,
      }), { freq: 3 }),
      entry: fc.oneof(
        fc.constant('/account'), fc.constant('/account/totp'),
        fc.record({ done: nasty }).map((q) => `/account?${new URLSearchParams(q)}`),
        fc.record({ next: oneOf('/account', '/account/totp', '//evil.example/'), reauth: oneOf('1', '0') }, { requiredKeys: [] }).map((q) => `/account/login?${new URLSearchParams(q)}`),
        fc.record({ state: nasty, code: nasty, error: oneOf('access_denied') }, { requiredKeys: [] }).map((q) => `/account/callback?${new URLSearchParams(q)}`),
      ),
    });
    await fuzzTarget('account pages', runs(40), input, async (i, tally) => {
      if (i.signedIn) await ensureSignedIn();
      const { agent, done } = agentFor(tally, i.signedIn ? template.agent : undefined);
      if (i.post) {
        // the account forms a page shows only in some states (remembered devices, links, apps): posted directly,
        // with the account's CSRF token from the authenticator-app page's form
        const totp = await agent.go('GET', '/account/totp');
        const csrf = pageForms(totp.answer.body).flatMap((f) => f.fields).find(([k]) => k === 'csrf')?.[1];
        const form = { method: 'POST' as const, action: i.post.route, fields: [...(csrf ? [['csrf', csrf] as [string, string]] : []), ...i.post.fields], buttons: [] };
        await agent.go('POST', i.post.route, encodeForm(mutateForm(form, i.post.m, () => undefined), i.post.m.encoding));
      } else {
        const r = await agent.go('GET', i.entry);
        if (!r.offsite) await walk(agent, r.answer, i.steps, USERS.account);
      }
      done();
    });
    expect(errorLogs(mark)).to.deep.equal([]);
  });

  it('fuzz identifiers at and past the storage key limits, on every endpoint that looks one up', async () => {
    const mark = idp.logs.length;
    const long = fc.tuple(fc.integer({ min: 900, max: 3200 }), fc.constantFrom('a', 'é', 'Z9', '-_~', '𝕏')).map(([n, c]) => c.repeat(Math.ceil(n / c.length)));
    const where = fc.constantFrom(
      'auth client_id', 'token client_id (post)', 'token client_id (basic)', 'token code', 'token refresh_token', 'token resource',
      'introspection token', 'revocation token', 'userinfo bearer', 'end-session id_token_hint', 'end-session client_id', 'par client_id', 'interaction uid', 'federation connection',
    );
    await fuzzTarget('identifiers past the key limits', runs(60), fc.record({ where, long }), async ({ where: w, long: v }, tally) => {
      const { agent, done } = agentFor(tally);
      const web = { kind: 'basic', hostile: '' };
      const q = (o: Record<string, string>) => new URLSearchParams(o).toString();
      switch (w) {
        case 'auth client_id': await agent.go('GET', `/auth?${q({ client_id: v, response_type: 'code', scope: 'openid', redirect_uri: REDIRECT })}`); break;
        case 'token client_id (post)': await apiPost(agent, '/token', { kind: 'post-hostile', hostile: v }, [['grant_type', 'client_credentials']], 'form', 'application/json'); break;
        case 'token client_id (basic)': await apiPost(agent, '/token', { kind: 'basic-hostile', hostile: v }, [['grant_type', 'client_credentials']], 'form', 'application/json'); break;
        case 'token code': await apiPost(agent, '/token', web, [['grant_type', 'authorization_code'], ['code', v], ['redirect_uri', REDIRECT], ['code_verifier', real.verifier]], 'form', 'application/json'); break;
        case 'token refresh_token': await apiPost(agent, '/token', web, [['grant_type', 'refresh_token'], ['refresh_token', v]], 'form', 'application/json'); break;
        case 'token resource': await apiPost(agent, '/token', { kind: 'svc', hostile: '' }, [['grant_type', 'client_credentials'], ['resource', `https://${v}`]], 'form', 'application/json'); break;
        case 'introspection token': await apiPost(agent, '/token/introspection', web, [['token', v]], 'form', 'application/json'); break;
        case 'revocation token': await apiPost(agent, '/token/revocation', web, [['token', v]], 'form', 'application/json'); break;
        case 'userinfo bearer': await agent.send('GET', '/me', { headers: { authorization: `Bearer ${wellFormed(v).replace(/[^\x21-\x7e]/g, 'x')}` } }); break;
        case 'end-session id_token_hint': await agent.go('GET', `/session/end?${q({ id_token_hint: v })}`); break;
        case 'end-session client_id': await agent.go('GET', `/session/end?${q({ client_id: v })}`); break;
        case 'par client_id': await apiPost(agent, '/request', { kind: 'post-hostile', hostile: v }, [['response_type', 'code'], ['redirect_uri', REDIRECT], ['scope', 'openid']], 'form', 'application/json'); break;
        case 'interaction uid': await agent.go('GET', `/interaction/${encodeURIComponent(wellFormed(v))}`); break;
        default: await agent.go('GET', `/federation/${encodeURIComponent(wellFormed(v))}/callback?state=x&code=y`);
      }
      done();
    });
    expect(errorLogs(mark)).to.deep.equal([]);
  });

  it('fuzz any method on any path we serve, with any body', async () => {
    const mark = idp.logs.length;
    const paths = [
      '/auth', '/auth/abc', '/token', '/me', '/jwks', '/.well-known/openid-configuration', '/session/end', '/session/end/confirm', '/session/end/success',
      '/token/introspection', '/token/revocation', '/request', '/interaction/abc', '/interaction/abc/login', '/interaction/abc/consent', '/interaction/abc/abort',
      '/interaction/abc/mfa', '/interaction/abc/reset', '/interaction/abc/federation/link', '/account', '/account/totp', '/account/devices/revoke',
      '/account/links/remove', '/federation/corp/callback', '/federation/logout', '/healthz', '/readyz', '/assets/idp.css',
    ];
    const methods = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'TRACE', 'PROPFIND'];
    const input = fc.record({
      method: fc.constantFrom(...methods), path: fc.constantFrom(...paths), segment: fc.option(nasty), encoding: apiEncoding,
      pairs: fc.array(fc.tuple(nasty, nasty), { maxLength: 3 }), accept: apiAccept,
      origin: fc.option(oneOf('https://rp.fuzz.test', 'null')),
    });
    await fuzzTarget('any method, any path', runs(80), input, async (i, tally) => {
      const { agent, done } = agentFor(tally);
      const p = i.segment === null ? i.path : i.path.replace('abc', encodeURIComponent(wellFormed(i.segment)) || 'abc');
      const enc = encodeForm(i.pairs, i.encoding);
      const withBody = !['GET', 'HEAD', 'TRACE'].includes(i.method);
      const origin: Record<string, string> = i.origin !== null && !/[^\t\x20-\x7e\x80-\xff]/.test(i.origin) ? { origin: i.origin, 'access-control-request-method': 'POST' } : {};
      const a = await agent.send(i.method, p, withBody ? { body: enc.body, headers: { ...enc.headers, accept: i.accept, ...origin } } : { headers: { accept: i.accept, ...origin } });
      expect(a.status).to.be.a('number');
      done();
    });
    expect(errorLogs(mark)).to.deep.equal([]);
  });

  // last: what every target above made the IdP log
  it('logged nothing secret or personal while fuzzing: no password, client secret, token, TOTP secret or e-mail address', () => {
    const logs = idp.logs.join('\n');
    expect(logs.length, 'the logs were captured').to.be.greaterThan(1000);
    const secrets: Record<string, string> = {
      'the password': PASSWORD, 'the new password': 'another rather long passphrase 8', 'the client secret': SECRET, 'the TOTP secret': totpSecret,
      'the code': real.code, 'the access token': real.accessToken, 'the refresh token': real.refreshToken, 'the ID token': real.idToken,
      ...Object.fromEntries(Object.values(USERS).map((e) => [e, e])),
    };
    for (const [what, value] of Object.entries(secrets)) expect(logs.includes(value), `${what} in the logs`).to.equal(false);
  });
});
