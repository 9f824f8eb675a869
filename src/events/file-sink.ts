// The embedded event sink: one JSON line per event appended to
// DATA_DIR/events.jsonl (mode 0600). Writes are queued, so events keep order.
import fs from 'node:fs';
import path from 'node:path';
import type { AuditEvent, EventSink } from './types.ts';

export class FileEventSink implements EventSink {
  readonly kind = 'file';
  readonly file: string;
  private chain: Promise<void> = Promise.resolve();
  private readonly onError: (err: unknown) => void;

  constructor(dataDir: string, onError: (err: unknown) => void = () => {}, fileName = 'events.jsonl') {
    fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    this.file = path.join(dataDir, fileName);
    this.onError = onError;
  }

  publish(event: AuditEvent): void {
    void this.append([event]);
  }

  append(events: AuditEvent[]): Promise<void> {
    const lines = events.map((e) => `${JSON.stringify(e)}\n`).join('');
    this.chain = this.chain.then(() => fs.promises.appendFile(this.file, lines, { mode: 0o600 })).catch(this.onError);
    return this.chain;
  }

  flush(): Promise<void> {
    return this.chain;
  }

  async close(): Promise<void> {
    await this.chain;
  }
}
