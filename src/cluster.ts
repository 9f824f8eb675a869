// Cluster mode (WORKERS > 1): the primary prepares what the workers share,
// then forks them; each worker is a whole IdP (src/server.ts) and they share
// nothing but DynamoDB and the keyring stored there. node:cluster hands the
// listening socket's connections to the workers (round-robin on Linux).
//
// The primary, before forking:
//   - opens storage: in embedded mode it starts dynalite on DATA_DIR and
//     advertises its endpoint, which the workers then use (src/storage/embedded.ts);
//     it runs the migrations (embedded) or checks the schema version (external);
//   - opens the keyring once, so the master key file (local mode) and the
//     signing and cookie keys exist before any worker starts and the workers
//     only load them; if KMS cannot be reached it goes on and leaves that to
//     the workers, which each follow KMS_STARTUP (fail or wait).
// A worker that dies is started again (with a growing pause when it keeps
// dying at start-up); SIGTERM/SIGINT stop the workers first, then storage.
// With METRICS_PORT, the primary serves /metrics: the workers' registries,
// gathered over the cluster's IPC and aggregated (docs/metrics.md).
import cluster, { type Worker } from 'node:cluster';
import type { Config } from './config/index.ts';
import type { Logger } from './logging/index.ts';
import { prepareStorage } from './server.ts';
import { openKeyring, KmsUnavailable } from './keys/index.ts';
import { clusterMetrics } from './logging/metrics.ts';
import { startMetricsServer } from './http/metrics.ts';

/** a worker that exits this soon after it was forked counts as failing at start-up */
const STARTUP_WINDOW_MS = 10_000;
/** consecutive start-up failures after which the primary gives up */
const MAX_STARTUP_FAILURES = 5;

export async function runPrimary(config: Config, log: Logger): Promise<void> {
  const storage = await prepareStorage(config, log, 'server');
  try {
    (await openKeyring(config, storage, { log })).close();
  } catch (err) {
    if (err instanceof KmsUnavailable) {
      log.warn({ err: { name: err.name, message: err.message } }, 'KMS unreachable before forking; the workers will follow KMS_STARTUP');
    } else {
      await storage.close();
      throw err;
    }
  }

  // /metrics on METRICS_PORT: every worker's registry, asked at each scrape and aggregated
  const metricsServer = config.metrics.port === undefined ? undefined
    : await startMetricsServer(clusterMetrics(), { port: config.metrics.port, host: config.metrics.host, token: config.metrics.token });

  let stopping = false;
  let failures = 0;
  let listening = 0;
  const started = new Map<Worker, number>();

  const fork = () => {
    const worker = cluster.fork();
    started.set(worker, Date.now());
    worker.once('listening', () => {
      failures = 0;
      if (++listening === config.workers) log.info({ workers: config.workers, pid: process.pid }, 'cluster listening');
    });
  };

  cluster.on('exit', (worker, code, signal) => {
    const at = started.get(worker) ?? 0;
    started.delete(worker);
    if (stopping) return;
    const early = Date.now() - at < STARTUP_WINDOW_MS;
    failures = early ? failures + 1 : 0;
    log.error({ pid: worker.process.pid, code, signal, failures }, 'worker exited');
    if (failures >= MAX_STARTUP_FAILURES) {
      log.fatal({ failures }, 'workers keep failing at start-up; stopping');
      void stop('worker start-up failures', 1);
      return;
    }
    const delay = early ? Math.min(500 * 2 ** (failures - 1), 10_000) : 0;
    setTimeout(() => { if (!stopping) fork(); }, delay);
  });

  const stop = async (reason: string, exitCode = 0) => {
    if (stopping) return;
    stopping = true;
    log.info({ reason }, 'shutting down workers');
    const workers = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined);
    const exited = workers.map((w) => new Promise<void>((resolve) => {
      if (w.isDead()) return resolve();
      w.once('exit', () => resolve());
      w.process.kill('SIGTERM');
    }));
    const force = setTimeout(() => { for (const w of workers) if (!w.isDead()) w.process.kill('SIGKILL'); }, 15_000);
    await Promise.all(exited);
    clearTimeout(force);
    metricsServer?.closeAllConnections();
    metricsServer?.close();
    await storage.close().catch(() => {});
    log.info('stopped');
    process.exit(exitCode);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));

  for (let i = 0; i < config.workers; i++) fork();
}
