// The refresh-token reuse grace (REFRESH_REUSE_GRACE_SECONDS): a client that
// lost the answer to a refresh (a crash mid-request) and presents the old
// token again within the grace gets one fresh pair of the same family instead
// of the family's revocation; a second retry, a retry after the grace, or the
// old token from another client still count as reuse.
import { expect } from 'chai';
import * as oidc from 'openid-client';
import { startTestIdp, type TestIdp } from './support/idp.ts';
import { UserAgent, readForm } from './support/user-agent.ts';

const REDIRECT = 'https://rp.example.test/cb';
const SECRET = 'grace-secret-0123456789abcdefghijklm';
const PASSWORD = 'rotating tokens passphrase 5';

describe('refresh token reuse grace', function () {
  this.timeout(60_000);
  let idp: TestIdp;
  let rp: oidc.Configuration;
  let other: oidc.Configuration;

  before(async () => {
    idp = await startTestIdp({ MFA_POLICY: 'off', REFRESH_REUSE_GRACE_SECONDS: '2' });
    for (const id of ['app', 'other-app']) {
      await idp.cli('clients', 'add', '--id', id, '--secret', SECRET, '--first-party', '--redirect-uri', REDIRECT, '--grant-types', 'authorization_code,refresh_token');
    }
    await idp.cli('users', 'add', '--email', 'grace@example.com', '--password', PASSWORD, '--email-verified');
    const opts = { execute: [oidc.allowInsecureRequests] };
    rp = await oidc.discovery(new URL(idp.issuer), 'app', SECRET, undefined, opts);
    other = await oidc.discovery(new URL(idp.issuer), 'other-app', SECRET, undefined, opts);
  });

  after(async () => {
    await idp?.close();
  });

  async function family(): Promise<string> {
    const verifier = oidc.randomPKCECodeVerifier();
    const url = oidc.buildAuthorizationUrl(rp, {
      redirect_uri: REDIRECT, scope: 'openid offline_access', prompt: 'consent',
      code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256',
    });
    const ua = new UserAgent(idp.issuer);
    const form = readForm(await (await ua.navigate(url.href)).res.text());
    const done = await ua.navigate(form.action, { form: { ...form.fields, login: 'grace@example.com', password: PASSWORD } });
    const tokens = await oidc.authorizationCodeGrant(rp, new URL(done.offsite!), { pkceCodeVerifier: verifier });
    return tokens.refresh_token!;
  }

  const refresh = (rt: string, config = rp) => oidc.refreshTokenGrant(config, rt).then((t) => ({ ok: true as const, t }), (err: { error?: string }) => ({ ok: false as const, error: err.error }));
  const active = async (token: string) => (await oidc.tokenIntrospection(rp, token)).active;

  it('a retry of the rotated token within the grace gets one fresh pair of the same family; a second retry revokes the family', async () => {
    const rt0 = await family();
    const first = await refresh(rt0); // the answer the client never received
    expect(first.ok).to.equal(true);
    const retry = await refresh(rt0);
    expect(retry.ok, 'retry within the grace').to.equal(true);
    const rt2 = retry.ok ? retry.t.refresh_token! : '';
    expect(await active(rt2)).to.equal(true);
    expect(idp.logs.some((l) => /"event":"refresh.reuse_grace"/.test(l) && /"clientId":"app"/.test(l))).to.equal(true);
    // the family goes on from the retry's pair
    const next = await refresh(rt2);
    expect(next.ok).to.equal(true);
    // once only: the old token again is reuse, and the whole family goes
    const again = await refresh(rt0);
    expect(again).to.deep.equal({ ok: false, error: 'invalid_grant' });
    expect(await active(next.ok ? next.t.refresh_token! : '')).to.equal(false);
  });

  it('after the grace, a retry is reuse: the family is revoked', async () => {
    const rt0 = await family();
    const first = await refresh(rt0);
    expect(first.ok).to.equal(true);
    await new Promise((r) => setTimeout(r, 3100));
    expect(await refresh(rt0)).to.deep.equal({ ok: false, error: 'invalid_grant' });
    expect(await active(first.ok ? first.t.refresh_token! : '')).to.equal(false);
  });

  it('another client presenting the rotated token gets nothing and does not use up its own client\'s grace', async () => {
    const rt0 = await family();
    expect((await refresh(rt0)).ok).to.equal(true);
    expect(await refresh(rt0, other)).to.deep.equal({ ok: false, error: 'invalid_grant' });
    const retry = await refresh(rt0);
    expect(retry.ok, 'the owner\'s retry still gets its grace').to.equal(true);
  });
});
