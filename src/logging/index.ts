// Structured JSON logs (pino). Secrets never reach a log line: request logs
// carry the path without its query string, and redaction covers the fields
// that could hold credentials.
import pino, { type Logger } from 'pino';
import type { LogLevel } from '../config/index.ts';

export type { Logger } from 'pino';

export function createLogger(level: LogLevel, destination?: pino.DestinationStream): Logger {
  return pino({
    level,
    base: { service: 'idp' },
    redact: {
      paths: ['password', '*.password', 'client_secret', '*.client_secret', 'secret', '*.secret', 'authorization', '*.authorization', 'cookie', '*.cookie'],
      censor: '[redacted]',
    },
    timestamp: pino.stdTimeFunctions.isoTime,
  }, destination);
}
