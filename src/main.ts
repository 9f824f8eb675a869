// `npm start`: read the configuration, start the IdP, stop cleanly on SIGTERM/SIGINT.
import { loadConfig, ConfigError } from './config/index.ts';
import { createLogger } from './logging/index.ts';
import { startServer } from './server.ts';

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
} catch (err) {
  log.fatal({ err: { name: (err as Error).name, message: (err as Error).message } }, 'start-up failed');
  process.stderr.write(`start-up failed: ${(err as Error).message}\n`);
  process.exit(1);
}
