// The OpenID Foundation conformance suite's OP test plans that concern this
// OP, module by module, as the suite defines them
// (openid-certification/conformance-suite,
// src/main/java/net/openid/conformance/openid/OIDCC*TestPlan.java, each
// module's @PublishTestModule testName), and which of them do not apply to
// our configuration, with the reason. Each test in test/conformance/ is
// titled with the module it mirrors; the tests record themselves here, and
// after the run the closing line counts the modules covered (their test
// passed) against each plan's total, e.g.
//   conformance: 35 of 38 Basic OP modules, 1 of 1 Config OP, ...
// A test titled with a module that is in no plan, or with one marked not
// applicable, fails: the count cannot drift from the plans.
import { expect } from 'chai';

export interface Plan { name: string; profile: string; modules: string[] }

export const PLANS: Plan[] = [
  {
    name: 'oidcc-basic-certification-test-plan', profile: 'Basic OP',
    modules: [
      'oidcc-server', 'oidcc-response-type-missing', 'oidcc-idtoken-signature', 'oidcc-idtoken-unsigned',
      'oidcc-userinfo-get', 'oidcc-userinfo-post-header', 'oidcc-userinfo-post-body',
      'oidcc-ensure-request-without-nonce-succeeds-for-code-flow',
      'oidcc-scope-profile', 'oidcc-scope-email', 'oidcc-scope-address', 'oidcc-scope-phone', 'oidcc-scope-all',
      'oidcc-alternate-happy-flow', 'oidcc-display-page', 'oidcc-display-popup',
      'oidcc-prompt-login', 'oidcc-prompt-none-not-logged-in', 'oidcc-prompt-none-logged-in',
      'oidcc-max-age-1', 'oidcc-max-age-10000', 'oidcc-ensure-request-with-unknown-parameter-succeeds',
      'oidcc-id-token-hint', 'oidcc-login-hint', 'oidcc-ui-locales', 'oidcc-claims-locales',
      'oidcc-ensure-request-with-acr-values-succeeds', 'oidcc-codereuse', 'oidcc-codereuse-30seconds',
      'oidcc-ensure-registered-redirect-uri', 'oidcc-ensure-post-request-succeeds',
      'oidcc-server-client-secret-post',
      'oidcc-request-uri-unsigned-supported-correctly-or-rejected-as-unsupported',
      'oidcc-unsigned-request-object-supported-correctly-or-rejected-as-unsupported',
      'oidcc-claims-essential', 'oidcc-ensure-request-object-with-redirect-uri', 'oidcc-refresh-token',
      'oidcc-ensure-request-with-valid-pkce-succeeds',
    ],
  },
  { name: 'oidcc-config-certification-test-plan', profile: 'Config OP', modules: ['oidcc-discovery-endpoint-verification'] },
  {
    name: 'oidcc-rp-initiated-logout-certification-test-plan', profile: 'RP-Initiated OP',
    modules: [
      'oidcc-rp-initiated-logout-discovery-endpoint-verification', 'oidcc-rp-initiated-logout',
      'oidcc-rp-initiated-logout-bad-post-logout-redirect-uri', 'oidcc-rp-initiated-logout-modified-id-token-hint',
      'oidcc-rp-initiated-logout-no-id-token-hint', 'oidcc-rp-initiated-logout-no-params',
      'oidcc-rp-initiated-logout-no-post-logout-redirect-uri', 'oidcc-rp-initiated-logout-no-state',
      'oidcc-rp-initiated-logout-only-state', 'oidcc-rp-initiated-logout-query-added-to-post-logout-redirect-uri',
      'oidcc-rp-initiated-logout-bad-id-token-hint',
    ],
  },
  {
    name: 'oidcc-backchannel-rp-initiated-logout-certification-test-plan', profile: 'Back-Channel OP',
    modules: ['oidcc-backchannel-logout-discovery-endpoint-verification', 'oidcc-backchannel-rp-initiated-logout'],
  },
  {
    name: 'oidcc-session-management-certification-test-plan', profile: 'Session OP',
    modules: ['oidcc-session-management-discovery-endpoint-verification', 'oidcc-session-management-rp-initiated-logout'],
  },
  {
    name: 'oidcc-frontchannel-rp-initiated-logout-certification-test-plan', profile: 'Front-Channel OP',
    modules: ['oidcc-frontchannel-logout-discovery-endpoint-verification', 'oidcc-frontchannel-rp-initiated-logout'],
  },
];

/**
 * Modules that do not apply to this OP's configuration. Each reason is a
 * fact of the discovery document (checked by the "not applicable" test in
 * op-config.test.ts), and the suite itself skips these modules for it.
 */
export const NOT_APPLICABLE: Record<string, string> = {
  'oidcc-idtoken-unsigned': 'unsigned ID tokens are not offered: id_token_signing_alg_values_supported has no "none"',
  'oidcc-scope-address': 'no address scope or claim: scopes_supported has no "address"',
  'oidcc-scope-all': 'asks for the address scope with the others: scopes_supported has no "address"',
  'oidcc-ensure-request-object-with-redirect-uri': 'request objects are not supported (request_parameter_supported is absent, i.e. false); the suite skips it unless "none" is in request_object_signing_alg_values_supported',
  'oidcc-session-management-discovery-endpoint-verification': 'OpenID Connect Session Management is not offered (no check_session_iframe; oidc-provider 9 has no session management)',
  'oidcc-session-management-rp-initiated-logout': 'OpenID Connect Session Management is not offered (no check_session_iframe)',
  'oidcc-frontchannel-logout-discovery-endpoint-verification': 'front-channel logout is not offered (no frontchannel_logout_supported; oidc-provider 9 has no front-channel logout); back-channel logout is',
  'oidcc-frontchannel-rp-initiated-logout': 'front-channel logout is not offered (no frontchannel_logout_supported)',
};

/**
 * Modules that apply but this OP does not pass yet: their tests are out of
 * the suite (run them with CONFORMANCE_GAPS=1) until the gap is closed.
 */
export const KNOWN_GAPS: Record<string, string> = {
  'oidcc-ensure-post-request-succeeds': 'the authorization endpoint takes GET only: oidc-provider serves POST /auth (and POST /session/end) only with enableHttpPostMethods, which needs SameSite=None session cookies (ours are Lax); POST /auth answers 404',
};

const planOf = new Map(PLANS.flatMap((p) => p.modules.map((m) => [m, p] as const)));
const passed = new Set<string>();
const failed = new Set<string>();

/** the module a test title names (its first word), checked against the plans */
export function moduleOf(title: string): string {
  const name = /^(oidcc-[a-z0-9-]+)/.exec(title)?.[1];
  expect(name && planOf.has(name), `"${title}" does not start with a module of the plans`).to.equal(true);
  expect(NOT_APPLICABLE[name!], `${name} is listed as not applicable`).to.equal(undefined);
  return name!;
}

/** use in the plan's describe(): records each test's outcome for the closing line */
export function recordModules(): void {
  afterEach(function () {
    const test = this.currentTest;
    if (!test) return;
    const name = moduleOf(test.title);
    if (test.state === 'passed') passed.add(name);
    else failed.add(name);
  });
}

export function closingLines(): string[] {
  const out: string[] = [];
  for (const [name, reason] of Object.entries(NOT_APPLICABLE)) out.push(`  not applicable: ${name}: ${reason}`);
  for (const [name, reason] of Object.entries(KNOWN_GAPS)) if (!passed.has(name)) out.push(`  not covered (known gap): ${name}: ${reason}`);
  const counts = PLANS.map((p) => {
    const covered = p.modules.filter((m) => passed.has(m) && !failed.has(m)).length;
    return `${covered} of ${p.modules.length} ${p.profile}${p === PLANS[0] ? ' modules' : ''}`;
  });
  const na = Object.keys(NOT_APPLICABLE).length;
  const total = PLANS.reduce((n, p) => n + p.modules.length, 0);
  const bad = [...failed];
  const gaps = Object.keys(KNOWN_GAPS).filter((m) => !passed.has(m)).length;
  out.push(`conformance: ${counts.join(', ')} (${total} modules in ${PLANS.length} plans: ${na} not applicable, ${gaps} known gap${gaps === 1 ? '' : 's'}${bad.length ? `, failing: ${bad.join(' ')}` : ''})`);
  return out;
}

// a root hook: once, after every test file of the run
after(function () {
  if (passed.size + failed.size === 0) return;
  console.log(`\n${closingLines().join('\n')}`);
});
