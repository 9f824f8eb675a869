// Opening the keyring when the server starts. If KMS cannot be reached:
//   KMS_STARTUP=fail (default) — one clear error; the process exits non-zero.
//   KMS_STARTUP=wait           — the port answers /healthz 200, /readyz 503 and
//                                 everything else 503 temporarily_unavailable,
//                                 while the keyring is retried (backing off up to
//                                 KEYS_REFRESH_SECONDS); then start-up goes on.
// A tampered key (KeyIntegrityError) always stops start-up: waiting would not help.
import http from 'node:http';
import type { Config } from '../config/index.ts';
import type { Logger } from '../logging/index.ts';
import type { Metrics } from '../logging/metrics.ts';
import type { Storage } from '../storage/index.ts';
import { createKeyring } from './index.ts';
import { KmsUnavailable } from './kms.ts';
import type { Keyring } from './types.ts';

function notReadyServer(config: Config, reason: () => string): Promise<http.Server | undefined> {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const send = (status: number, body: object) => {
      // connection: close, so that no client keeps a pooled connection to this interim listener
      res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', connection: 'close', ...(status === 503 ? { 'retry-after': '5' } : {}) });
      res.end(JSON.stringify(body));
    };
    if (path === '/healthz') send(200, { status: 'ok' });
    else if (path === '/readyz') send(503, { status: 'unavailable', reason: reason(), checks: { kms: { state: 'down', required: true } } });
    else send(503, { error: 'temporarily_unavailable', error_description: 'the service is starting, try again shortly' });
  });
  return new Promise((resolve) => {
    server.once('error', () => resolve(undefined));
    server.listen(config.port, config.host, () => resolve(server));
  });
}

export async function startKeyring(config: Config, storage: Storage, log: Logger, metrics?: Metrics): Promise<Keyring> {
  const keyring = createKeyring(config, storage, { log, metrics });
  const where = `KEYS_MODE=${config.keys.mode}, KMS_KEY_ID=${config.keys.kmsKeyId ?? '-'}${config.keys.kmsEndpoint ? `, KMS_ENDPOINT=${config.keys.kmsEndpoint}` : ''}`;
  let last: KmsUnavailable;
  try {
    return await keyring.init();
  } catch (err) {
    if (!(err instanceof KmsUnavailable)) {
      keyring.close();
      throw err;
    }
    last = err;
    log.error({ event: 'keys.kms_unavailable_at_start', mode: config.keys.mode, kmsError: err.kmsError, detail: err.detail, startup: config.keys.kmsStartup }, 'KMS unreachable at start');
    if (config.keys.kmsStartup === 'fail') {
      keyring.close();
      throw new Error(`KMS is unreachable, the keys cannot be opened (${where}): ${err.detail}. Set KMS_STARTUP=wait to start not-ready and retry instead.`);
    }
  }

  const interim = await notReadyServer(config, () => `keys unavailable: ${last.detail}`);
  const cap = Math.min(config.keys.refreshSeconds * 1000, 30_000);
  let delay = Math.min(500, cap);
  try {
    for (;;) {
      await new Promise((r) => setTimeout(r, delay));
      try {
        await keyring.init();
        log.info({ event: 'keys.kms_available', mode: config.keys.mode }, 'KMS reachable again; keys loaded, starting');
        return keyring;
      } catch (err) {
        if (!(err instanceof KmsUnavailable)) {
          keyring.close();
          throw err;
        }
        last = err;
        delay = Math.min(delay * 2, cap);
        log.warn({ event: 'keys.kms_unavailable', kmsError: err.kmsError, detail: err.detail, retryInMs: delay }, 'KMS still unreachable; not ready');
      }
    }
  } finally {
    if (interim) {
      interim.closeAllConnections();
      await new Promise<void>((r) => interim.close(() => r()));
    }
  }
}
