// Structured JSON logs (pino). Secrets never reach a log line: request logs
// carry the path without its query string, and redaction covers the fields
// that could hold credentials.
//
// Lines go to stdout through an asynchronous buffer (pino's recommended
// production set-up): written when 4 KiB have gathered or every 250 ms,
// whichever comes first, and flushed synchronously when the process exits
// (pino registers that itself). One write per request was about a tenth of
// the CPU of a JWKS request on this machine, where every syscall is dear.
// What a SIGKILL can lose: the last 250 ms of lines.
import pino, { type Logger } from 'pino';
import type { LogLevel } from '../config/index.ts';

export type { Logger } from 'pino';

export function createLogger(level: LogLevel, destination?: pino.DestinationStream): Logger {
  const dest = destination ?? (level === 'silent' ? undefined : pino.destination({ dest: 1, sync: false, minLength: 4096, periodicFlush: 250 }));
  return pino({
    level,
    base: { service: 'idp' },
    redact: {
      paths: ['password', '*.password', 'client_secret', '*.client_secret', 'secret', '*.secret', 'authorization', '*.authorization', 'cookie', '*.cookie'],
      censor: '[redacted]',
    },
    timestamp: pino.stdTimeFunctions.isoTime,
  }, dest);
}
