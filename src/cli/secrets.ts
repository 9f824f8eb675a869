// Secrets for the CLI (passwords, client secrets) come from stdin
// (--password-stdin, --secret-stdin, --client-secret-stdin: one line, its
// newline dropped) or from a prompt that does not echo, when stdin is a
// terminal. They are never needed on the command line, where shells keep
// them in their history and `npm run` echoes them. The argv flags of before
// (--password, --secret, --client-secret) still work.
import readline from 'node:readline';
import { Writable } from 'node:stream';

export interface CliIo {
  /** where --*-stdin reads from: a stream (default process.stdin) or, in tests, the text itself */
  stdin?: NodeJS.ReadableStream | string;
  /** may the CLI prompt? (default: stdin and stderr are terminals) */
  interactive?: boolean;
}

const MAX_SECRET = 4096;

/** stdin as one secret: its first line without the newline; more than one line, or nothing, is refused */
export async function readStdinSecret(io: CliIo | undefined, flag: string, usage: (m: string) => Error): Promise<string> {
  const src = io?.stdin ?? process.stdin;
  let text = '';
  if (typeof src === 'string') text = src;
  else {
    for await (const chunk of src) {
      text += String(chunk);
      if (text.length > MAX_SECRET + 2) break;
    }
  }
  const secret = text.replace(/\r?\n$/, '');
  if (secret === '') throw usage(`${flag}: stdin is empty`);
  if (/[\r\n]/.test(secret)) throw usage(`${flag}: stdin must hold one line (the secret), got several`);
  if (secret.length > MAX_SECRET) throw usage(`${flag}: the secret is longer than ${MAX_SECRET} characters`);
  return secret;
}

export function canPrompt(io: CliIo | undefined): boolean {
  return io?.interactive ?? (typeof io?.stdin !== 'string' && !!process.stdin.isTTY && !!process.stderr.isTTY);
}

/** asks each question on stderr without echoing what is typed (one interface for all: a closed stdin ends it) */
export async function promptHidden(questions: string[]): Promise<string[] | undefined> {
  const muted = new Writable({ write: (_c, _e, cb) => cb() });
  const rl = readline.createInterface({ input: process.stdin, output: muted, terminal: true });
  const answers: string[] = [];
  try {
    return await new Promise<string[] | undefined>((resolve) => {
      rl.once('close', () => resolve(undefined));
      const ask = () => {
        process.stderr.write(questions[answers.length]);
        rl.question('', (a) => {
          process.stderr.write('\n');
          answers.push(a);
          if (answers.length === questions.length) resolve(answers);
          else ask();
        });
      };
      ask();
    });
  } finally {
    rl.close();
  }
}

/**
 * The secret a command was given: the argv flag, then stdin, then a prompt
 * (twice when `confirm`). Undefined when none was given and none may be
 * asked for: the caller decides whether that is fine (a generated secret) or
 * a usage error.
 */
export async function secretFrom(opts: {
  argv: unknown; stdin: boolean; io?: CliIo; argvFlag: string; stdinFlag: string;
  prompt?: string; confirm?: boolean; usage: (m: string) => Error;
}): Promise<string | undefined> {
  if (opts.argv !== undefined && opts.stdin) throw opts.usage(`${opts.argvFlag} and ${opts.stdinFlag} exclude each other`);
  if (typeof opts.argv === 'string') {
    if (opts.argv === '') throw opts.usage(`${opts.argvFlag} is empty`);
    return opts.argv;
  }
  if (opts.stdin) return readStdinSecret(opts.io, opts.stdinFlag, opts.usage);
  if (!opts.prompt || !canPrompt(opts.io)) return undefined;
  const typed = await promptHidden([`${opts.prompt}: `, ...(opts.confirm ? [`${opts.prompt} again: `] : [])]);
  if (!typed || typed[0] === '') throw opts.usage('nothing was typed');
  if (typed.some((t) => t !== typed[0])) throw opts.usage('the two entries differ');
  return typed[0];
}
