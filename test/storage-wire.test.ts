// The lean DynamoDB wire client (src/storage/wire.ts) against a small HTTP
// server that answers as DynamoDB does, to drive what a real backend will not
// do on demand: 5xx, throttling, silence, a refused connection. The server
// also checks each request's SigV4 signature over what arrived on the wire.
import { expect } from 'chai';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { SignatureV4 } from '@smithy/signature-v4';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoWire, DynamoWireError } from '../src/storage/wire.ts';

const CREDS = { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY', sessionToken: 'session-token-1' };

type Reply = { status: number; body: string } | 'silence';

interface FakeDynamo {
  endpoint: string;
  /** what the next requests get, in order; then 200 {} */
  replies: Reply[];
  requests: Array<{ target: string; body: string; signatureOk: boolean; headers: http.IncomingHttpHeaders }>;
  close(): Promise<void>;
}

async function fakeDynamo(): Promise<FakeDynamo> {
  const sha256 = new DynamoDBClient({ region: 'eu-west-1', credentials: CREDS }).config.sha256;
  const verifier = new SignatureV4({ service: 'dynamodb', region: 'eu-west-1', credentials: CREDS, sha256 });
  const state: FakeDynamo = { endpoint: '', replies: [], requests: [], close: async () => {} };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      void (async () => {
        const body = Buffer.concat(chunks).toString('utf8');
        // re-sign what arrived, with the signed headers and the date it carries
        const auth = String(req.headers.authorization ?? '');
        const signedHeaders = /SignedHeaders=([^,]+)/.exec(auth)?.[1].split(';') ?? [];
        const headers: Record<string, string> = {};
        for (const h of signedHeaders) headers[h] = String(req.headers[h] ?? '');
        const amzDate = String(req.headers['x-amz-date'] ?? '');
        const date = new Date(`${amzDate.slice(0, 4)}-${amzDate.slice(4, 6)}-${amzDate.slice(6, 8)}T${amzDate.slice(9, 11)}:${amzDate.slice(11, 13)}:${amzDate.slice(13, 15)}Z`);
        const expected = await verifier.sign({
          method: req.method!, protocol: 'http:', hostname: '127.0.0.1', path: req.url!, query: {}, headers, body,
        }, { signingDate: date });
        state.requests.push({
          target: String(req.headers['x-amz-target']), body, headers: req.headers,
          signatureOk: auth.length > 0 && expected.headers.authorization === auth,
        });
        const reply = state.replies.shift() ?? { status: 200, body: '{}' };
        if (reply === 'silence') return;
        res.writeHead(reply.status, { 'content-type': 'application/x-amz-json-1.0' });
        res.end(reply.body);
      })();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  state.endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  state.close = () => new Promise<void>((r) => {
    server.closeAllConnections();
    server.close(() => r());
  });
  return state;
}

const wireTo = (endpoint: string, opts: Partial<{ requestTimeoutMs: number; maxAttempts: number }> = {}) => new DynamoWire({
  endpoint, region: 'eu-west-1', credentials: CREDS,
  sha256: new DynamoDBClient({ region: 'eu-west-1', credentials: CREDS }).config.sha256,
  maxAttempts: opts.maxAttempts ?? 2, connectionTimeoutMs: 1000, requestTimeoutMs: opts.requestTimeoutMs ?? 5000,
});

const failure = async (p: Promise<unknown>): Promise<DynamoWireError> => {
  try {
    await p;
  } catch (err) {
    return err as DynamoWireError;
  }
  throw new Error('expected the call to fail');
};

describe('lean DynamoDB wire client', function () {
  this.timeout(20_000);
  let fake: FakeDynamo;
  let wire: DynamoWire;
  beforeEach(async () => {
    fake = await fakeDynamo();
    wire = wireTo(fake.endpoint);
  });
  afterEach(async () => {
    wire.destroy();
    await fake.close();
  });

  it('sends the operation as X-Amz-Target with the JSON body, signed with SigV4 (session token included) over what arrives', async () => {
    fake.replies.push({ status: 200, body: '{"Item":{"pk":{"S":"a"}}}' });
    const out = await wire.call<{ Item: unknown }>('GetItem', { TableName: 'idp_oidc', Key: { pk: { S: 'a' } } });
    expect(out).to.deep.equal({ Item: { pk: { S: 'a' } } });
    const [r] = fake.requests;
    expect(r.target).to.equal('DynamoDB_20120810.GetItem');
    expect(JSON.parse(r.body)).to.deep.equal({ TableName: 'idp_oidc', Key: { pk: { S: 'a' } } });
    expect(r.headers['content-type']).to.equal('application/x-amz-json-1.0');
    expect(r.headers['x-amz-security-token']).to.equal('session-token-1');
    expect(String(r.headers.authorization)).to.match(/^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE\/\d{8}\/eu-west-1\/dynamodb\/aws4_request, SignedHeaders=[^,]*x-amz-target[^,]*, Signature=[0-9a-f]{64}$/);
    expect(r.signatureOk, 'the signature matches the request as received').to.equal(true);
  });

  it('a DynamoDB error keeps its name, message, fault and status; a client error is not retried', async () => {
    fake.replies.push({ status: 400, body: '{"__type":"com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException","message":"The conditional request failed"}' });
    const err = await failure(wire.call('UpdateItem', {}));
    expect(err).to.be.instanceOf(DynamoWireError);
    expect(err.name).to.equal('ConditionalCheckFailedException');
    expect(err.message).to.equal('The conditional request failed');
    expect(err.$fault).to.equal('client');
    expect(err.$metadata).to.deep.equal({ httpStatusCode: 400, attempts: 1 });
    expect(fake.requests).to.have.length(1);
  });

  it('a 5xx is retried once, and the retry can succeed', async () => {
    fake.replies.push({ status: 500, body: '{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"oops"}' });
    fake.replies.push({ status: 200, body: '{"ok":1}' });
    expect(await wire.call('PutItem', {})).to.deep.equal({ ok: 1 });
    expect(fake.requests).to.have.length(2);
    expect(fake.requests.every((r) => r.signatureOk)).to.equal(true);
  });

  it('throttling is retried; after maxAttempts it fails with the throttling error and the attempts made', async () => {
    const throttled = { status: 400, body: '{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"slow down"}' };
    fake.replies.push(throttled, throttled, throttled);
    const err = await failure(wire.call('PutItem', {}));
    expect(err.name).to.equal('ProvisionedThroughputExceededException');
    expect(err.$metadata.attempts).to.equal(2);
    expect(fake.requests).to.have.length(2);
  });

  it('a body that is not JSON from a 502 is a server error (retried), not a crash', async () => {
    fake.replies.push({ status: 502, body: '<html>bad gateway</html>' }, { status: 502, body: '<html>bad gateway</html>' });
    const err = await failure(wire.call('GetItem', {}));
    expect(err.name).to.equal('InternalServerError');
    expect(err.$fault).to.equal('server');
    expect(fake.requests).to.have.length(2);
  });

  it('silence: the request timeout fails the attempt (TimeoutError), each attempt on its own timer', async () => {
    wire.destroy();
    wire = wireTo(fake.endpoint, { requestTimeoutMs: 300 });
    fake.replies.push('silence', 'silence');
    const started = Date.now();
    const err = await failure(wire.call('GetItem', {}));
    const took = Date.now() - started;
    expect(err.name).to.equal('TimeoutError');
    expect(err.$metadata.attempts).to.equal(2);
    expect(took).to.be.within(550, 3000);
  });

  it('a refused connection fails with ECONNREFUSED after the retry', async () => {
    await fake.close();
    const err = await failure(wire.call('GetItem', {}));
    expect(err.name).to.equal('ECONNREFUSED');
    expect(err.$metadata.attempts).to.equal(2);
  });

  it('an abort signal ends the call at once and is not retried', async () => {
    fake.replies.push('silence', 'silence');
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 100);
    const err = await failure(wire.call('GetItem', {}, ac.signal));
    expect(err.name).to.equal('AbortError');
    expect(fake.requests).to.have.length(1);
  });
});
