// The embedded storage of a bench run, in a process of its own: it opens
// DATA_DIR's dynalite (src/storage/embedded.ts) and advertises its endpoint,
// exactly as a cluster primary does, so the IdP process under test uses that
// endpoint and its CPU time excludes the emulator's. It counts the DynamoDB
// requests it serves, by operation, and answers { type: 'counts' } over IPC.
//
//   fork('bench/dynalite-owner.ts', { env: { DATA_DIR } })  →  { type: 'ready', endpoint }
import http from 'node:http';
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

const dataDir = process.env.DATA_DIR;
if (!dataDir) throw new Error('DATA_DIR must be set');
const embedded = await startEmbedded(dataDir, 'server');
if (!embedded.owner) throw new Error(`another process already serves ${dataDir}`);

process.on('message', (msg: { type?: string }) => {
  if (msg?.type === 'counts') process.send!({ type: 'counts', counts: { ...counts } });
});
const stop = () => { void embedded.close().then(() => process.exit(0)); };
process.on('SIGTERM', stop);
process.on('disconnect', stop);
process.send!({ type: 'ready', endpoint: embedded.endpoint });
