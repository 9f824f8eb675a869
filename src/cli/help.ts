// Help for the `idp` command, made from the usage tables (USAGE in main.ts)
// and the help tables beside them: `idp --help`, `idp -h`, `idp help`,
// `idp help GROUP [COMMAND]`, `idp GROUP --help`, `idp GROUP COMMAND --help`.
// A command's help is its usage line, what it does, and one line per flag:
// every flag its usage line names is listed, described when its help table
// says what it means. A new command gets help by adding its usage line (and,
// for the descriptions, an entry in a help table merged in main.ts).
//
// The one exit-code rule of the CLI lives here too (EXIT_CODES), printed by
// `idp --help` and documented in the README.

export interface CommandHelp {
  /** what the command does, one or two sentences */
  about: string;
  /** flag as written in the usage ("--id ID") -> what it means */
  flags?: Record<string, string>;
}

export const EXIT_CODES = [
  '0  done: everything asked was done',
  '1  failed: the command was right but could not be done (storage, KMS or an upstream unreachable, no store in DATA_DIR, an import with rejected lines, a configuration error)',
  '2  usage: the command cannot be run as given (unknown command or flag, a missing or malformed value, a value the policy or validation refuses, an id that does not exist, or already exists for add)',
];

const GLOBAL_FLAGS: Record<string, string> = {
  '--json': 'print the result as JSON on stdout (errors stay one line on stderr)',
  '--init': 'create a new store in DATA_DIR when there is none (without it the CLI refuses, so that it never writes where the server does not look)',
  '-h, --help': 'show help (also: idp help COMMAND)',
};

/** the flag names a usage line mentions: --[no-]x -> x */
export function flagsOf(usage: string): string[] {
  const names: string[] = [];
  for (const m of usage.matchAll(/--(?:\[no-\])?([a-z][a-z0-9-]*[a-z0-9])(?![\w-])/g)) if (!names.includes(m[1])) names.push(m[1]);
  return names;
}

const nameOf = (spec: string) => /--(?:\[no-\])?([a-z][a-z0-9-]*)/.exec(spec)?.[1];

function columns(rows: Array<[string, string]>, indent = '  '): string[] {
  const width = Math.min(34, Math.max(...rows.map(([a]) => a.length)));
  return rows.map(([a, b]) => (b ? `${indent}${a.padEnd(width)}  ${b}` : `${indent}${a}`).trimEnd());
}

function commandHelp(cmd: string, usage: string, help: CommandHelp | undefined): string[] {
  const described = help?.flags ?? {};
  const rows: Array<[string, string]> = [];
  const seen = new Set<string>();
  for (const [spec, text] of Object.entries(described)) {
    const n = nameOf(spec);
    if (n) seen.add(n);
    rows.push([spec, text]);
  }
  // every flag of the usage line gets a line, described or not
  for (const n of flagsOf(usage)) if (!seen.has(n) && n !== 'json') rows.push([`--${n}`, '']);
  rows.push(['--json', GLOBAL_FLAGS['--json']]);
  return [
    `usage: ${usage}`,
    '',
    help?.about ?? `the "${cmd}" command`,
    '',
    'flags:',
    ...columns(rows),
    '',
    'every command also takes --init (create a new store in DATA_DIR) and -h/--help',
  ];
}

const groupOf = (cmd: string) => cmd.split(' ')[0];

function overview(usage: Record<string, string>, help: Record<string, CommandHelp>): string[] {
  return [
    'idp: operator commands of the identity provider. They work on the store the server uses:',
    'the embedded one in DATA_DIR (through the running server when there is one) or DYNAMODB_ENDPOINT.',
    '',
    'usage: idp COMMAND [flags]        idp help COMMAND        idp COMMAND --help',
    '',
    'commands:',
    ...columns(Object.keys(usage).map((c) => [c, help[c]?.about.split(/(?<=\.)\s/)[0] ?? ''])),
    '',
    'flags of every command:',
    ...columns(Object.entries(GLOBAL_FLAGS)),
    '',
    'secrets (passwords, client secrets) are read from a prompt or from stdin (--password-stdin,',
    '--secret-stdin, --client-secret-stdin), never needed on the command line.',
    '',
    'exit codes:',
    ...EXIT_CODES.map((l) => `  ${l}`),
  ];
}

function groupHelp(group: string, usage: Record<string, string>, help: Record<string, CommandHelp>): string[] {
  const cmds = Object.keys(usage).filter((c) => groupOf(c) === group);
  return [
    `idp ${group}: ${cmds.length} command${cmds.length === 1 ? '' : 's'} (idp ${group} COMMAND --help for its flags)`,
    '',
    ...cmds.flatMap((c) => [`  ${usage[c]}`, ...(help[c] ? [`      ${help[c].about}`] : []), '']),
  ];
}

const isHelpFlag = (a: string) => a === '--help' || a === '-h';

/**
 * The help that argv asks for, or undefined when it asks for none.
 * `unknown` is set when it asks for help on something that does not exist.
 */
export function helpRequest(argv: string[], usage: Record<string, string>, help: Record<string, CommandHelp>): { lines: string[]; unknown?: string } | undefined {
  let topic: string[];
  if (argv[0] === 'help' || (argv.length > 0 && isHelpFlag(argv[0]))) topic = argv.slice(1).filter((a) => !a.startsWith('-'));
  else if (argv.some(isHelpFlag)) topic = argv.slice(0, argv.findIndex((a) => a.startsWith('-')));
  else return undefined;
  if (topic.length === 0) return { lines: overview(usage, help) };
  const two = topic.slice(0, 2).join(' ');
  if (Object.hasOwn(usage, two)) return { lines: commandHelp(two, usage[two], help[two]) };
  if (Object.hasOwn(usage, topic[0])) return { lines: commandHelp(topic[0], usage[topic[0]], help[topic[0]]) };
  if (Object.keys(usage).some((c) => groupOf(c) === topic[0])) return { lines: groupHelp(topic[0], usage, help) };
  return { lines: [], unknown: topic.join(' ') };
}

/** the commands of a group, for `idp GROUP` without a command */
export function groupUsage(group: string, usage: Record<string, string>): string | undefined {
  const cmds = Object.keys(usage).filter((c) => groupOf(c) === group && c !== group);
  return cmds.length ? `usage:\n${cmds.map((c) => `  ${usage[c]}`).join('\n')}` : undefined;
}

/**
 * What every command and flag means. Entries are keyed like USAGE; the
 * capabilities' own CLIs (src/mfa/cli.ts, src/lockout/cli.ts) are described
 * here too, so that they need not know about help.
 */
export const HELP: Record<string, CommandHelp> = {
  migrate: { about: 'Create or upgrade the tables to this build\'s schema version (needed before the first start on DynamoDB, and after each upgrade).' },
  'resources add': {
    about: 'Register an API (a resource indicator, RFC 8707) that clients may ask tokens for.',
    flags: {
      '--id URI': 'the resource indicator: an absolute URI without a fragment',
      '--scope "a b"': 'the scopes it accepts, separated by spaces',
      '--format jwt|opaque': 'access tokens as RFC 9068 JWTs (default) or opaque references',
      '--alg RS256|PS256|ES256|EdDSA': 'signing algorithm of its JWT access tokens (default ES256)',
      '--ttl SECONDS': 'access-token lifetime, 60 to 86400 (default ACCESS_TOKEN_TTL)',
    },
  },
  'resources list': { about: 'List the registered APIs.' },
  'resources remove': { about: 'Remove an API; an unknown id exits 2.', flags: { '--id URI': 'the resource indicator' } },
  'keys list': { about: 'List the signing and cookie keys with their states (next, active, retired) and dates. No secret is opened.' },
  'keys rotate': {
    about: 'Create new keys as `next`: published now, signing once they activate. Running servers pick them up within KEYS_REFRESH_SECONDS.',
    flags: {
      '--alg RS256|PS256|ES256|EdDSA': 'only this algorithm\'s key (default: every signing key)',
      '--cookie': 'the cookie keys too (or only them, with no --alg)',
      '--activate-in SECONDS': 'start signing after this long (default KEY_PREPUBLISH_SECONDS)',
      '--kms-key-id KMS_KEY': 'KEYS_MODE=kms-sign with --alg: use this existing KMS key instead of creating one',
    },
  },
  'users unlock': {
    about: 'Lift a lock: clears every lockout counter of the account (event account.unlocked, reason admin). An unknown account exits 2.',
    flags: { '--sub SUB': 'the account\'s subject', '--email EMAIL': 'or its e-mail address' },
  },
  'users mfa': {
    about: 'Two-step verification of one account: `status` shows its factors, `reset` removes them (and its remembered devices), `recovery-codes` makes new recovery codes (printed once). An unknown account exits 2.',
    flags: { '--sub SUB': 'the account\'s subject' },
  },
  'users devices': {
    about: 'Remembered devices of one account (they skip the second step for a while): `list` them, or `revoke` one or all.',
    flags: { '--sub SUB': 'the account\'s subject', '--device ID': 'revoke: the device id from `list`', '--all': 'revoke: every remembered device' },
  },
};
