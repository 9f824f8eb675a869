// The embedded storage of a bench run, in a process of its own: it opens
// DATA_DIR's dynalite (src/storage/embedded.ts) and advertises its endpoint,
// exactly as a cluster primary does, so the IdP process under test uses that
// endpoint and its CPU time excludes the emulator's. It counts the DynamoDB
// requests it serves, by operation, and answers { type: 'counts' } over IPC.
//
// With LATENCY_MS set it also serves a second endpoint, `delayedEndpoint`: a
// TCP proxy in front of dynalite that holds every chunk LATENCY_MS in each
// direction (in order), so a request costs about 2 × LATENCY_MS more, as a
// round trip to DynamoDB in the same region does (single-digit milliseconds)
// where loopback costs a fraction of one. Its CPU is this process's too.
//
//   fork('bench/dynalite-owner.ts', { env: { DATA_DIR, LATENCY_MS? } })  →  { type: 'ready', endpoint, delayedEndpoint? }
import http from 'node:http';
import net from 'node:net';
import { startEmbedded } from '../src/storage/embedded.ts';

const counts: Record<string, number> = {};
const createServer = http.createServer;
// dynalite builds its server with http.createServer: count what it serves
(http as { createServer: unknown }).createServer = (...args: Parameters<typeof http.createServer>) => {
  const server = createServer(...args);
  server.on('request', (req: http.IncomingMessage) => {
    const target = String(req.headers['x-amz-target'] ?? 'unknown').replace(/^DynamoDB_\d+\./, '');
    counts[target] = (counts[target] ?? 0) + 1;
  });
  return server;
};

/** a proxy to `endpoint` that delays each direction by `ms` (same delay for every chunk, so order is kept) */
async function delayingProxy(endpoint: string, ms: number): Promise<string> {
  const { hostname, port } = new URL(endpoint);
  const server = net.createServer((client) => {
    client.setNoDelay(true);
    const upstream = net.connect({ host: hostname, port: Number(port), noDelay: true });
    const pipe = (from: net.Socket, to: net.Socket) => {
      from.on('data', (chunk) => { setTimeout(() => { if (!to.destroyed) to.write(chunk); }, ms); });
      from.on('end', () => setTimeout(() => to.end(), ms));
      from.on('error', () => to.destroy());
      from.on('close', () => setTimeout(() => to.destroy(), ms + 1));
    };
    pipe(client, upstream);
    pipe(upstream, client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
}

const dataDir = process.env.DATA_DIR;
if (!dataDir) throw new Error('DATA_DIR must be set');
const embedded = await startEmbedded(dataDir, 'server');
if (!embedded.owner) throw new Error(`another process already serves ${dataDir}`);
const latencyMs = Number(process.env.LATENCY_MS ?? 0);
const delayedEndpoint = latencyMs > 0 ? await delayingProxy(embedded.endpoint, latencyMs) : undefined;

process.on('message', (msg: { type?: string }) => {
  if (msg?.type === 'counts') process.send!({ type: 'counts', counts: { ...counts } });
});
const stop = () => { void embedded.close().then(() => process.exit(0)); };
process.on('SIGTERM', stop);
process.on('disconnect', stop);
process.send!({ type: 'ready', endpoint: embedded.endpoint, delayedEndpoint });
