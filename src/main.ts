// `npm start`: read the configuration, start the IdP, stop cleanly on SIGTERM/SIGINT.
// With WORKERS > 1 this process becomes the cluster primary (src/cluster.ts)
// and each forked worker runs this same file down the single-process path.
import cluster from 'node:cluster';
import { loadConfig, ConfigError } from './config/index.ts';
import { createLogger } from './logging/index.ts';
import { startServer } from './server.ts';
import { runPrimary } from './cluster.ts';
import { recordRunningServer } from './cli/store.ts';

let config;
try {
  config = loadConfig();
} catch (err) {
  if (err instanceof ConfigError) {
    process.stderr.write(`configuration error: ${err.message}\n`);
    process.exit(1);
  }
  throw err;
}

const log = createLogger(config.logLevel);
// the CLI finds this server's store (and says when it works on another one): src/cli/store.ts
if (cluster.isPrimary) recordRunningServer(config);

function startupFailed(err: unknown): never {
  log.fatal({ err: { name: (err as Error).name, message: (err as Error).message } }, 'start-up failed');
  process.stderr.write(`start-up failed: ${(err as Error).message}\n`);
  process.exit(1);
}

if (config.workers > 1 && cluster.isPrimary) {
  await runPrimary(config, log).catch(startupFailed);
} else {
  try {
    const running = await startServer(config, { log });
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      log.info({ signal }, 'shutting down');
      running.close().then(() => {
        log.info('stopped');
        process.exit(0);
      }, (err) => {
        log.error({ err: { message: (err as Error).message } }, 'shutdown failed');
        process.exit(1);
      });
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
    // a worker whose primary is gone stops too
    if (cluster.isWorker) process.on('disconnect', () => stop('primary gone'));
  } catch (err) {
    startupFailed(err);
  }
}
