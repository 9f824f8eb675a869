// The latency phase's proxy: a process of its own in front of the storage
// process, holding every chunk LATENCY_MS in each direction (in order, since
// every chunk waits the same time), so a DynamoDB request costs about
// 2 × LATENCY_MS more, as a round trip to DynamoDB in the same region does
// (single-digit milliseconds) where loopback costs a fraction of one. Its own
// process, so its timers do not wait behind the emulator's work: requests sent
// together are delayed together, as DynamoDB would answer them.
//
//   fork('bench/latency-proxy.ts', { env: { TARGET: 'http://127.0.0.1:port', LATENCY_MS: '3' } })  →  { type: 'ready', endpoint }
import net from 'node:net';

const target = new URL(process.env.TARGET ?? '');
const ms = Number(process.env.LATENCY_MS ?? 3);
if (!target.port || !(ms > 0)) throw new Error('TARGET (http://host:port) and LATENCY_MS > 0 must be set');

const server = net.createServer((client) => {
  client.setNoDelay(true);
  const upstream = net.connect({ host: target.hostname, port: Number(target.port), noDelay: true });
  const pipe = (from: net.Socket, to: net.Socket) => {
    from.on('data', (chunk) => { setTimeout(() => { if (!to.destroyed) to.write(chunk); }, ms); });
    from.on('end', () => setTimeout(() => to.end(), ms));
    from.on('error', () => to.destroy());
    from.on('close', () => setTimeout(() => to.destroy(), ms + 1));
  };
  pipe(client, upstream);
  pipe(upstream, client);
});
server.listen(0, '127.0.0.1', () => {
  process.send!({ type: 'ready', endpoint: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}` });
});
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('disconnect', () => process.exit(0));
