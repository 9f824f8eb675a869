// A lean client for DynamoDB's JSON protocol (awsJson1_0), for the item
// operations every request makes. The AWS SDK spends most of its time per
// call in its generic machinery (middleware stack, endpoint rules, schema
// serde, retry strategy objects): about 0.5 ms of CPU per GetItem here, against
// about 0.2 ms for the same call made this way (bench/README.md, "Profile
// notes"). What stays the SDK's: the credentials, from the DynamoDBClient's
// resolved credential provider, so they come from the same default chain
// (environment, profile, SSO, IMDS, container role) and refresh the same way.
// The request is signed here with SigV4 (AWS4-HMAC-SHA256 over host,
// content-length, content-type, x-amz-content-sha256, x-amz-date,
// x-amz-security-token when there is one, and x-amz-target: the headers the
// SDK's SignatureV4 signs for it) with node:crypto directly: the
// SDK's SignatureV4 spent about a tenth of a refresh's CPU on the same
// signature through its generic hashing and header machinery. The signing key
// is derived once per day, region and secret. An endpoint with a path other
// than "/" is signed by the SDK's SignatureV4, as before; the tests check every
// signature against the SDK's (test/storage-wire.test.ts).
//
// Semantics kept from the SDK client it replaces (src/storage/index.ts
// makeClient): at most `maxAttempts` attempts, retrying only what the SDK's
// standard strategy retries (throttling, 5xx, connection reset/refused,
// timeouts) after a jittered back-off; a connection timeout and a request
// timeout that fail the attempt; errors named as DynamoDB names them
// (`err.name === 'ConditionalCheckFailedException'`), with `$fault`,
// `$metadata.httpStatusCode` and the returned `Item` when the request asked
// for it. DYNAMODB_CLIENT=sdk turns it off (README, "Configuration").
import crypto from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import { SignatureV4 } from '@smithy/signature-v4';
import type { AwsCredentialIdentity, AwsCredentialIdentityProvider, ChecksumConstructor, HashConstructor } from '@smithy/types';

export interface WireOptions {
  endpoint: string;
  region: string;
  credentials: AwsCredentialIdentity | AwsCredentialIdentityProvider;
  sha256: ChecksumConstructor | HashConstructor;
  maxAttempts: number;
  connectionTimeoutMs: number;
  requestTimeoutMs: number;
  /** after each call (retries included): the operation, its duration and the error's name when it failed (metrics) */
  onCall?: (operation: string, seconds: number, error?: string) => void;
}

/** An error DynamoDB answered with, or a failure to reach it. */
export class DynamoWireError extends Error {
  $fault: 'client' | 'server';
  $metadata: { httpStatusCode?: number; attempts: number };
  /** the item, when a failed condition was asked to return it */
  Item?: Record<string, unknown>;
  constructor(name: string, message: string, fault: 'client' | 'server', status: number | undefined, options?: ErrorOptions) {
    super(message, options);
    this.name = name;
    this.$fault = fault;
    this.$metadata = { httpStatusCode: status, attempts: 1 };
  }
}

/** as the SDK's standard retry strategy (@smithy/service-error-classification) */
const THROTTLING = new Set([
  'ThrottlingException', 'ProvisionedThroughputExceededException', 'RequestLimitExceeded', 'RequestThrottled',
  'RequestThrottledException', 'TooManyRequestsException', 'Throttling', 'SlowDown', 'TransactionInProgressException',
]);
const TRANSIENT_NETWORK = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'TimeoutError']);

const retryable = (err: DynamoWireError): boolean =>
  THROTTLING.has(err.name) || TRANSIENT_NETWORK.has(err.name) || (err.$metadata.httpStatusCode ?? 0) >= 500;

export class DynamoWire {
  readonly #url: URL;
  readonly #signer: SignatureV4;
  /** the last derived signing key: `${secret}\0${day}` and the key */
  #signingKey: { id: string; key: Buffer } | undefined;
  readonly #agent: http.Agent;
  readonly #request: typeof http.request;
  readonly #opts: WireOptions;

  constructor(opts: WireOptions) {
    this.#opts = opts;
    this.#url = new URL(opts.endpoint);
    const tls = this.#url.protocol === 'https:';
    this.#agent = tls ? new https.Agent({ keepAlive: true, maxSockets: 128 }) : new http.Agent({ keepAlive: true, maxSockets: 128 });
    this.#request = tls ? https.request : http.request;
    this.#signer = new SignatureV4({ service: 'dynamodb', region: opts.region, credentials: opts.credentials, sha256: opts.sha256 });
  }

  /** Calls one DynamoDB operation (`GetItem`, `PutItem`, …) with a JSON body in DynamoDB's attribute-value form. */
  async call<T>(operation: string, input: object, signal?: AbortSignal): Promise<T> {
    const onCall = this.#opts.onCall;
    if (!onCall) return this.#call<T>(operation, input, signal);
    const started = process.hrtime.bigint();
    try {
      const out = await this.#call<T>(operation, input, signal);
      onCall(operation, Number(process.hrtime.bigint() - started) / 1e9);
      return out;
    } catch (err) {
      onCall(operation, Number(process.hrtime.bigint() - started) / 1e9, (err as Error)?.name ?? 'Error');
      throw err;
    }
  }

  async #call<T>(operation: string, input: object, signal?: AbortSignal): Promise<T> {
    const body = JSON.stringify(input);
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.#attempt<T>(operation, body, signal);
      } catch (err) {
        if (!(err instanceof DynamoWireError)) throw err;
        err.$metadata.attempts = attempt;
        if (attempt >= this.#opts.maxAttempts || !retryable(err) || signal?.aborted) throw err;
        const base = THROTTLING.has(err.name) ? 500 : 100;
        await new Promise((r) => setTimeout(r, Math.random() * base * 2 ** (attempt - 1)));
      }
    }
  }

  destroy(): void {
    this.#agent.destroy();
  }

  /** SigV4 (AWS4-HMAC-SHA256) headers for a POST of `body` to the endpoint's root (see the header) */
  async #sign(headers: Record<string, string>, body: string): Promise<Record<string, string>> {
    const c = this.#opts.credentials;
    const creds = typeof c === 'function' ? await c() : c;
    const amzDate = new Date().toISOString().replace(/[-:]|\.\d{3}/g, '');
    const day = amzDate.slice(0, 8);
    const payloadHash = crypto.createHash('sha256').update(body).digest('hex');
    // the headers the SDK's SignatureV4 signs for the same request
    const all: Record<string, string> = { ...headers, 'x-amz-date': amzDate, 'x-amz-content-sha256': payloadHash };
    if (creds.sessionToken) all['x-amz-security-token'] = creds.sessionToken;
    const names = Object.keys(all).sort();
    const signedHeaders = names.join(';');
    const canonical = `POST\n/\n\n${names.map((n) => `${n}:${all[n].trim()}\n`).join('')}\n${signedHeaders}\n${payloadHash}`;
    const scope = `${day}/${this.#opts.region}/dynamodb/aws4_request`;
    const toSign = `AWS4-HMAC-SHA256\n${amzDate}\n${scope}\n${crypto.createHash('sha256').update(canonical).digest('hex')}`;
    const id = `${creds.secretAccessKey}\0${day}`;
    if (this.#signingKey?.id !== id) {
      const hmac = (key: string | Buffer, data: string) => crypto.createHmac('sha256', key).update(data).digest();
      this.#signingKey = { id, key: hmac(hmac(hmac(hmac(`AWS4${creds.secretAccessKey}`, day), this.#opts.region), 'dynamodb'), 'aws4_request') };
    }
    const signature = crypto.createHmac('sha256', this.#signingKey.key).update(toSign).digest('hex');
    return { ...all, authorization: `AWS4-HMAC-SHA256 Credential=${creds.accessKeyId}/${scope}, SignedHeaders=${signedHeaders}, Signature=${signature}` };
  }

  async #attempt<T>(operation: string, body: string, signal?: AbortSignal): Promise<T> {
    const u = this.#url;
    const unsigned = {
      host: u.host,
      'content-type': 'application/x-amz-json-1.0',
      'x-amz-target': `DynamoDB_20120810.${operation}`,
      'content-length': String(Buffer.byteLength(body)),
    };
    const signed = !u.pathname || u.pathname === '/' ? { headers: await this.#sign(unsigned, body) } : await this.#signer.sign({
      method: 'POST', protocol: u.protocol, hostname: u.hostname, port: u.port ? Number(u.port) : undefined,
      path: u.pathname, query: {}, headers: unsigned, body,
    });
    return await new Promise<T>((resolve, reject) => {
      let settled = false;
      const fail = (err: DynamoWireError) => {
        if (settled) return;
        settled = true;
        clearTimeout(requestTimer);
        req.destroy();
        reject(err);
      };
      const req = this.#request({
        agent: this.#agent, method: 'POST', protocol: u.protocol, hostname: u.hostname, port: u.port,
        path: u.pathname || '/', headers: signed.headers,
      }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', (e) => fail(networkError(e)));
        res.on('end', () => {
          if (settled) return;
          settled = true;
          clearTimeout(requestTimer);
          const status = res.statusCode ?? 0;
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: Record<string, unknown> = {};
          try {
            parsed = text ? JSON.parse(text) as Record<string, unknown> : {};
          } catch {
            reject(new DynamoWireError(status >= 500 ? 'InternalServerError' : 'SerializationException',
              `DynamoDB answered ${status} with a body that is not JSON`, status >= 500 ? 'server' : 'client', status));
            return;
          }
          if (status === 200) resolve(parsed as T);
          else reject(serviceError(parsed, status));
        });
      });
      const requestTimer = setTimeout(() => fail(new DynamoWireError('TimeoutError',
        `DynamoDB did not answer within ${this.#opts.requestTimeoutMs} ms`, 'client', undefined)), this.#opts.requestTimeoutMs);
      req.on('socket', (socket) => {
        if (!socket.connecting) return;
        const connectTimer = setTimeout(() => fail(new DynamoWireError('TimeoutError',
          `could not connect to DynamoDB within ${this.#opts.connectionTimeoutMs} ms`, 'client', undefined)), this.#opts.connectionTimeoutMs);
        socket.once('connect', () => clearTimeout(connectTimer));
        socket.once('close', () => clearTimeout(connectTimer));
      });
      req.on('error', (e) => fail(networkError(e)));
      if (signal) {
        const onAbort = () => fail(new DynamoWireError('AbortError', 'request aborted', 'client', undefined));
        if (signal.aborted) onAbort();
        signal.addEventListener('abort', onAbort, { once: true });
        req.once('close', () => signal.removeEventListener('abort', onAbort));
      }
      req.end(body);
    });
  }
}

function networkError(e: Error & { code?: string }): DynamoWireError {
  return new DynamoWireError(e.code ?? e.name, e.message, 'client', undefined, { cause: e });
}

function serviceError(body: Record<string, unknown>, status: number): DynamoWireError {
  const type = typeof body.__type === 'string' ? body.__type : '';
  const name = type.slice(type.lastIndexOf('#') + 1) || (status >= 500 ? 'InternalServerError' : 'UnknownError');
  const message = String(body.message ?? body.Message ?? name);
  const err = new DynamoWireError(name, message, status >= 500 ? 'server' : 'client', status);
  if (body.Item && typeof body.Item === 'object') err.Item = body.Item as Record<string, unknown>;
  return err;
}
