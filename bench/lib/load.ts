// autocannon, from the bench process, against one server; plus the request
// shapes of the scenarios.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

export interface AcRequest {
  method?: string;
  path?: string;
  headers?: Record<string, string>;
  body?: string;
  setupRequest?: (req: AcRequest, context: Record<string, unknown>) => AcRequest;
  onResponse?: (status: number, body: string, context: Record<string, unknown>) => void;
}

export interface AcOptions {
  url: string;
  connections: number;
  /** seconds */
  duration: number;
  method?: string;
  headers?: Record<string, string>;
  body?: string;
  requests?: AcRequest[];
}

export interface AcResult {
  duration: number;
  errors: number;
  timeouts: number;
  non2xx: number;
  '2xx': number;
  latency: { p50: number; p99: number; average: number };
  requests: { total: number; average: number };
}

type Autocannon = (opts: object, cb: (err: Error | null, res: AcResult) => void) => unknown;
const autocannon = require('autocannon') as Autocannon;

export function cannon(opts: AcOptions): Promise<AcResult> {
  return new Promise((resolve, reject) => {
    autocannon({ ...opts, timeout: 20 }, (err, res) => (err ? reject(err) : resolve(res)));
  });
}

export const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;

export const form = (fields: Record<string, string>) => new URLSearchParams(fields).toString();

export const FORM = 'application/x-www-form-urlencoded';
