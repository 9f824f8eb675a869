// An operator's write from the CLI with its event (actor cli), stored with the
// change (src/events: commit), or not at all when the write fails.
import type { Config } from '../config/index.ts';
import type { Storage } from '../storage/index.ts';
import { eventsFor, type EventSpec } from '../events/index.ts';
import { createLogger } from '../logging/index.ts';

export async function recorded<T>(config: Config, s: Storage, spec: EventSpec, write: () => Promise<T>): Promise<T> {
  const events = eventsFor(config, s, createLogger('silent'), 'cli');
  try {
    return await events.commit(spec, write);
  } finally {
    await events.close();
  }
}
