// The embedded event sink: one JSON line per event appended to
// DATA_DIR/events.jsonl (mode 0600). Appends are queued, so events keep order.
import fs from 'node:fs';
import path from 'node:path';
import type { CloudEvent, EventSink } from './types.ts';

export class FileEventSink implements EventSink {
  readonly kind = 'file';
  readonly file: string;
  private chain: Promise<unknown> = Promise.resolve();

  constructor(dataDir: string, fileName = 'events.jsonl') {
    fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    this.file = path.join(dataDir, fileName);
  }

  deliver(events: CloudEvent[]): Promise<string[]> {
    const lines = events.map((e) => `${JSON.stringify(e)}\n`).join('');
    const p = this.chain.then(() => fs.promises.appendFile(this.file, lines, { mode: 0o600 })).then(() => [] as string[]);
    this.chain = p.catch(() => undefined);
    return p;
  }

  /** the directory can be written */
  async ping(): Promise<void> {
    await fs.promises.access(path.dirname(this.file), fs.constants.W_OK);
  }

  async close(): Promise<void> {
    await this.chain;
  }
}
