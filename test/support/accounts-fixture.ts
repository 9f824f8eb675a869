// A multi-source legacy export for the accounts and import tests: verified
// duplicates (one person in three systems), an unverified duplicate, a unique
// unverified account, a source with a sunset, a scheme that needs a
// configured secret, and bad lines. Hashes are vectors made by independent
// tools (test/fixtures/password-vectors.json).
import fs from 'node:fs';
import path from 'node:path';
import * as oidc from 'openid-client';
import { expect } from 'chai';
import { ScanCommand } from '@aws-sdk/lib-dynamodb';
import type { TestIdp } from './idp.ts';
import { UserAgent, readForm } from './user-agent.ts';

interface Vector { id: string; password: string; credential: Record<string, unknown> }
const fixture = JSON.parse(fs.readFileSync(new URL('../fixtures/password-vectors.json', import.meta.url), 'utf8')) as {
  secrets: Record<string, unknown>; vectors: Vector[];
};

export function vector(id: string): Vector {
  const v = fixture.vectors.find((x) => x.id === id);
  if (!v) throw new Error(`no vector ${id}`);
  return v;
}

export const BCRYPT = vector('bcrypt/php-2y-1');            // Tr0ub4dor&3
export const DRUPAL = vector('drupal7/jtr-1');              // virtualabc
export const SHA512 = vector('sha512-crypt/mkpasswd-2');    // pässwörd€ Ünïcode
export const MD5 = vector('md5-crypt/openssl-3');           // P@$$w0rd!"'\`
export const SHA256 = vector('sha256-crypt/openssl-1');     // Tr0ub4dor&3
export const HMAC = vector('hmac-sha256/hmac-19');          // correct Horse battery staple, key legacy-app
export const BCRYPT_DAN = vector('bcrypt/mkpasswd-2b-1');   // Tr0ub4dor&3

/** every personal value of the file, as written and as normalized */
export const PII = [
  'Ada@Example.com', 'ada@example.com', '+2348030000001', '8030000001', 'Ada Obi', 'Adaeze', 'Obi-Okafor', 'Ada O.',
  'eve.impostor', 'Eve Impostor', 'bob@example.com', 'Bob Bello', 'dan@example.com', 'Dan Dare',
  'erin@example.com', 'Erin Eze', 'gus@example.com', 'Gus Grey', '+447700900123', '7700900123',
  'frank@example.com', 'Frank Fox', '+15550100777',
];

export function legacyLines(): string[] {
  return [
    /* 1 */ JSON.stringify({ source: 'shop-ng', sourceUserId: '1001', email: 'Ada@Example.com', emailVerified: true, phone: '+2348030000001', phoneVerified: true, name: 'Ada Obi', givenName: 'Ada', familyName: 'Obi', status: 'active', password: BCRYPT.credential }),
    /* 2 */ JSON.stringify({ source: 'forum', sourceUserId: 77, email: '  ADA@example.com ', emailVerified: true, name: 'Ada O.', nickname: 'ada', locale: 'en-NG', password: { ...SHA512.credential, scheme: 'sha512-crypt' } }),
    /* 3 */ JSON.stringify({ source: 'crm', sourceUserId: 'c-5', phone: '+234 803 000 0001', phoneVerified: true, givenName: 'Adaeze', familyName: 'Obi-Okafor', password: MD5.credential }),
    /* 4 */ JSON.stringify({ source: 'forum', sourceUserId: '78', email: 'ada@example.com', emailVerified: false, name: 'Eve Impostor', nickname: 'eve.impostor', password: DRUPAL.credential }),
    /* 5 */ JSON.stringify({ source: 'shop-ng', sourceUserId: '1002', email: 'bob@example.com', emailVerified: true, name: 'Bob Bello', password: SHA256.credential }),
    /* 6 */ '{"source":"shop-ng","sourceUserId":"1003","email":"carol@exa',
    /* 7 */ JSON.stringify({ source: 'shop-ng', sourceUserId: '1004', email: 'carol@example.com', password: { scheme: 'rot13', hash: 'nqn' } }),
    /* 8 */ JSON.stringify({ source: 'shop-ng', sourceUserId: '1005', email: 'not-an-e-mail' }),
    /* 9 */ JSON.stringify({ source: 'crm', sourceUserId: 'c-9', phone: '08030000009' }),
    /* 10 */ '',
    /* 11 */ JSON.stringify({ source: 'crm', email: 'dora@example.com' }),
    /* 12 */ JSON.stringify({ source: 'old-forum', sourceUserId: '5', email: 'dan@example.com', emailVerified: true, name: 'Dan Dare', password: BCRYPT_DAN.credential }),
    /* 13 */ JSON.stringify({ source: 'crm', sourceUserId: 'c-7', email: 'gus@example.com', emailVerified: true, phone: '+447700900123', name: 'Gus Grey', password: HMAC.credential }),
    /* 14 */ JSON.stringify({ source: 'crm', sourceUserId: 'c-8', password: { ...HMAC.credential, key: 'not-configured' } }),
    /* 15 */ JSON.stringify({ source: 'forum', sourceUserId: '90', email: 'erin@example.com', emailVerified: false, name: 'Erin Eze', status: 'active', password: MD5.credential }),
  ];
}

export const EXPECTED_ERRORS = [
  { line: 6, reason: /^malformed JSON/ },
  { line: 7, reason: /^password: unknown scheme 'rot13'/ },
  { line: 8, reason: /^email is not a valid e-mail address$/ },
  { line: 9, reason: /^phone is not an E\.164 number/ },
  { line: 11, reason: /^sourceUserId is missing$/ },
  { line: 14, reason: /^password: .*not-configured/ },
];

export function writeLegacyFile(dir: string, lines = legacyLines()): string {
  const file = path.join(dir, 'legacy.jsonl');
  fs.writeFileSync(file, `${lines.join('\n')}\n`);
  return file;
}

export function writeSecretsFile(dir: string): string {
  const file = path.join(dir, 'legacy-secrets.json');
  fs.writeFileSync(file, JSON.stringify(fixture.secrets));
  return file;
}

/** every item of every table, as JSON */
export async function dumpTables(idp: TestIdp): Promise<string> {
  const parts: string[] = [];
  for (const table of Object.values(idp.storage.tables)) {
    let ExclusiveStartKey: Record<string, unknown> | undefined;
    do {
      const r = await idp.storage.doc.send(new ScanCommand({ TableName: table, ExclusiveStartKey }));
      parts.push(JSON.stringify(r.Items ?? []));
      ExclusiveStartKey = r.LastEvaluatedKey;
    } while (ExclusiveStartKey);
  }
  return parts.join('\n');
}

export function expectNoPii(haystack: string, where: string): void {
  const lower = haystack.toLowerCase();
  for (const p of PII) expect(lower.includes(p.toLowerCase()), `${where} contains "${p}"`).to.equal(false);
}

export const REDIRECT = 'https://rp.example.test/cb';
export const RP_SECRET = 'rp-secret-0123456789abcdef0123456789';

export async function firstPartyRp(idp: TestIdp): Promise<oidc.Configuration> {
  await idp.cli('clients', 'add', '--id', 'app', '--secret', RP_SECRET, '--redirect-uri', REDIRECT, '--grant-types', 'authorization_code', '--first-party');
  return oidc.discovery(new URL(idp.issuer), 'app', RP_SECRET, undefined, { execute: [oidc.allowInsecureRequests] });
}

export interface LoginResult {
  ok: boolean;
  /** the error shown on the login page when it failed */
  error?: string;
  sub?: string;
  claims?: Record<string, unknown>;
}

/** a real sign-in: authorization request, the login form, code exchange with openid-client, userinfo */
export async function signIn(idp: TestIdp, rp: oidc.Configuration, login: string, password: string): Promise<LoginResult> {
  const ua = new UserAgent(idp.issuer);
  const verifier = oidc.randomPKCECodeVerifier();
  const state = oidc.randomState();
  const url = oidc.buildAuthorizationUrl(rp, {
    redirect_uri: REDIRECT, scope: 'openid email phone profile', state,
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256',
  });
  let step = await ua.navigate(url.href);
  const form = readForm(await step.res.text());
  step = await ua.navigate(form.action, { form: { ...form.fields, login, password } });
  if (!step.offsite) {
    const html = await step.res.text();
    const error = /id="form-error">\s*([^<]+?)\s*</.exec(html)?.[1];
    return { ok: false, error: error?.replace(/&#39;/g, "'") };
  }
  const tokens = await oidc.authorizationCodeGrant(rp, new URL(step.offsite), { pkceCodeVerifier: verifier, expectedState: state });
  const sub = tokens.claims()!.sub;
  const claims = await oidc.fetchUserInfo(rp, tokens.access_token, sub) as Record<string, unknown>;
  return { ok: true, sub, claims };
}
