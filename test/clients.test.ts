// Client secrets at rest: sealed by the keyring, never stored in plaintext,
// still compared by oidc-provider in constant time; a tampered sealed secret
// makes the client unusable (invalid_client), never a 500.
import { expect } from 'chai';
import { ScanCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import * as oidc from 'openid-client';
import { startTestIdp, type TestIdp } from './support/idp.ts';

describe('client secrets at rest', function () {
  this.timeout(60_000);
  let idp: TestIdp;
  const SECRET = 'sealed-client-secret-0123456789abcdef';

  before(async () => {
    idp = await startTestIdp();
    await idp.cli('clients', 'add', '--id', 'svc', '--secret', SECRET, '--grant-types', 'client_credentials');
  });
  after(async () => {
    await idp?.close();
  });

  const token = (secret: string) => fetch(`${idp.url}/token`, {
    method: 'POST',
    headers: { authorization: `Basic ${Buffer.from(`svc:${secret}`).toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded' },
    body: 'grant_type=client_credentials',
  });

  it('stores no plaintext secret, and the secret still authenticates', async () => {
    const scan = await idp.storage.doc.send(new ScanCommand({ TableName: idp.storage.tables.oidc }));
    const dump = JSON.stringify(scan.Items);
    expect(dump).to.contain('client_secret_sealed');
    expect(dump).to.not.contain(SECRET);
    expect(dump).to.not.contain(Buffer.from(SECRET).toString('base64'));

    const svc = await oidc.discovery(new URL(idp.issuer), 'svc', SECRET, undefined, { execute: [oidc.allowInsecureRequests] });
    expect((await oidc.clientCredentialsGrant(svc)).access_token).to.be.a('string');
    expect((await token('wrong-secret')).status).to.equal(401);

    const listed = await idp.cli('clients', 'list') as Array<Record<string, unknown>>;
    // (the admin console's own client, public, is listed too: src/admin/setup.ts)
    expect(listed.find((c) => c.client_id === 'svc')?.has_secret).to.equal(true);
    expect(JSON.stringify(listed)).to.not.contain('sealed');
  });

  it('refuses a client whose sealed secret was tampered with, with invalid_client and a log line', async () => {
    const { Item } = await idp.storage.doc.send(new ScanCommand({ TableName: idp.storage.tables.oidc, FilterExpression: 'pk = :pk', ExpressionAttributeValues: { ':pk': 'Client#svc' } })).then((r) => ({ Item: r.Items![0] }));
    const payload = JSON.parse(Item.payload as string);
    const parts = String(payload.client_secret_sealed).split('.');
    parts[2] = parts[2].slice(0, -2) + (parts[2].endsWith('AA') ? 'BB' : 'AA');
    payload.client_secret_sealed = parts.join('.');
    await idp.storage.doc.send(new UpdateCommand({ TableName: idp.storage.tables.oidc, Key: { pk: 'Client#svc', sk: '_' }, UpdateExpression: 'SET payload = :p', ExpressionAttributeValues: { ':p': JSON.stringify(payload) } }));
    // let the 5 s client cache pass
    await new Promise((r) => setTimeout(r, 5200));
    const r = await token(SECRET);
    expect(r.status).to.equal(401);
    expect((await r.json() as { error: string }).error).to.equal('invalid_client');
    expect(idp.logs.join('')).to.contain('client.secret.integrity');
  });
});
