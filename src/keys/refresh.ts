// Keeps a running instance's keys current without a restart. Every
// KEYS_REFRESH_SECONDS (with a little jitter) it
//   1. runs one step of the rotation schedule (promote due `next` keys, create
//      `next` keys for old ones, remove expired retired keys) — under the keys
//      table's lock, so among many instances one does it and the others skip;
//   2. re-reads the keys table and, when the key set changed, loads it and
//      calls onChange (the server rebuilds the provider and swaps app.keys).
// A failure (KMS or DynamoDB unreachable, a tampered record) is logged as an
// event and the instance keeps serving with the keys it has; the next tick
// tries again.
import type { Logger } from '../logging/index.ts';
import type { Keyring } from './types.ts';

export interface KeyRefresh {
  /** run one refresh now (tests, and the first tick) */
  tick(): Promise<void>;
  stop(): void;
}

function describeError(err: unknown) {
  const e = err as { name?: string; message?: string; detail?: string; ref?: string; kmsError?: string };
  return { name: e?.name, message: e?.detail ?? e?.message, ref: e?.ref, kmsError: e?.kmsError };
}

export function startKeyRefresh(opts: { keyring: Keyring; intervalMs: number; log: Logger; onChange: () => void }): KeyRefresh {
  const { keyring, log } = opts;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let stopped = false;
  let failing = false;
  /** a reload whose onChange threw: call it again next time */
  let pending = false;

  const schedule = () => {
    if (stopped) return;
    const jitter = 1 + (Math.random() - 0.5) * 0.2;
    timer = setTimeout(() => void tick(), Math.max(50, Math.round(opts.intervalMs * jitter)));
    timer.unref();
  };

  async function once(): Promise<void> {
    try {
      await keyring.maintain();
    } catch (err) {
      log.error({ event: 'keys.maintain_failed', err: describeError(err) }, 'key rotation step failed; will retry');
    }
    try {
      if ((await keyring.reload()) || pending) {
        pending = true;
        opts.onChange();
        pending = false;
        log.info({ event: 'keys.reloaded', keys: keyring.keys().map((k) => ({ kind: k.kind, kid: k.kid, alg: k.alg, state: k.state })) }, 'key set changed; provider rebuilt');
      }
      if (failing) log.info({ event: 'keys.refresh_recovered' }, 'keys refresh works again');
      failing = false;
    } catch (err) {
      failing = true;
      log.error({ event: 'keys.refresh_failed', err: describeError(err) }, 'could not reload the keys; still serving with the keys loaded before');
    }
  }

  function tick(): Promise<void> {
    running ??= once().finally(() => {
      running = undefined;
      schedule();
    });
    return running;
  }

  schedule();
  return {
    tick,
    stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
    },
  };
}
