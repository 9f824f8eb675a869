// `idp worker` and `idp events status`: the event publisher as a process of
// its own (EVENTS_PUBLISHER=worker leaves the sweep to it), and what waits.
import type { Config } from '../config/index.ts';
import { createLogger } from '../logging/index.ts';
import type { Storage } from '../storage/index.ts';
import { eventsFor } from '../events/index.ts';
import { SHARDS } from '../events/store.ts';
import type { CommandHelp } from './help.ts';

export const EVENTS_USAGE: Record<string, string> = {
  worker: 'idp worker [--once] [--json]',
  'events status': 'idp events status [--json]',
};

export const EVENTS_HELP: Record<string, CommandHelp> = {
  worker: {
    about: 'Publish stored events to EVENTS_SINK until stopped (SIGINT/SIGTERM): settles events a dead process left prepared, retries failed ones with backoff. Several workers and servers may run at once: each event is claimed with a lease.',
    flags: { '--once': 'one pass over the waiting events, then exit' },
  },
  'events status': { about: 'How many events wait for delivery, how old the oldest is, and the ones failing (attempts, last error). Exits 1 when some are failing.' },
};

interface Kit {
  config: Config;
  withStorage<T>(cfg: Config, fn: (s: Storage) => Promise<T>): Promise<T>;
  parse(cmd: string, args: string[], options: Record<string, { type: 'string' | 'boolean' }>): Record<string, unknown>;
  table(rows: Array<Record<string, unknown>>, cols: string[]): string[];
}

export async function runEvents(cmd: string, args: string[], kit: Kit): Promise<{ json: boolean; lines: string[]; data: unknown; status?: number }> {
  const { config } = kit;
  const v = kit.parse(cmd, args, cmd === 'worker' ? { once: { type: 'boolean' } } : {});
  const out = { json: !!v.json, lines: [] as string[], data: undefined as unknown, status: undefined as number | undefined };
  if (cmd === 'worker') {
    const log = createLogger(config.logLevel);
    await kit.withStorage(config, async (s) => {
      const events = eventsFor(config, s, log, v.once ? 'cli' : 'worker');
      try {
        if (!events.publisher) throw new Error('EVENTS_SINK=none: there is nothing to publish to');
        if (v.once) {
          await events.publisher.sweep();
        } else {
          log.info({ sink: config.events.sink, sweepSeconds: config.events.sweepSeconds }, 'event worker started');
          await new Promise<void>((resolve) => {
            process.once('SIGINT', resolve);
            process.once('SIGTERM', resolve);
          });
        }
        out.data = await events.backlog();
      } finally {
        await events.close();
      }
    });
    const b = out.data as { size: number; failing: number };
    out.lines.push(`event worker stopped; ${b.size} waiting, ${b.failing} failing`);
    return out;
  }
  // events status
  const data = await kit.withStorage(config, async (s) => {
    const events = eventsFor(config, s, createLogger('silent'), 'cli');
    try {
      const backlog = await events.backlog();
      const failing: Array<Record<string, unknown>> = [];
      for (let i = 0; i < SHARDS && events.store; i++) {
        const page = await events.store.pending(`P${i}`, 100);
        for (const it of page.items) if (it.st === 'failing') failing.push({ id: it.ev.id, type: it.ev.type, time: it.ev.time, attempts: it.n, error: it.err });
      }
      return { ...backlog, failingEvents: failing };
    } finally {
      await events.close();
    }
  });
  out.data = data;
  out.lines.push(`${data.size} event${data.size === 1 ? '' : 's'} waiting for delivery${data.size ? `, the oldest ${Math.round(data.oldestAgeSeconds)} s old` : ''}; ${data.failing} failing`);
  if (data.failingEvents.length) out.lines.push(...kit.table(data.failingEvents, ['id', 'type', 'time', 'attempts', 'error']));
  if (data.failing > 0) out.status = 1;
  return out;
}
