// `idp connections links --sub SUB` and `idp connections unlink --sub SUB
// --connection ID [--subject S]`: an operator's view of the upstream
// identities linked to an account (src/federation), and their removal. The
// upstream subject is shown to the operator (it is what support is asked
// about); events carry only the sub and the connection.
import { parseArgs } from 'node:util';
import { withAccounts, lifecycleEvent, type CliKit, type CliOut } from './users.ts';
import type { CommandHelp } from './help.ts';

export const LINKS_USAGE: Record<string, string> = {
  'connections links': 'idp connections links --sub SUB [--json]',
  'connections unlink': 'idp connections unlink --sub SUB --connection ID [--subject S] [--json]',
};

export const LINKS_HELP: Record<string, CommandHelp> = {
  'connections links': { about: 'The upstream identities linked to an account (connection, issuer, subject, when). An unknown sub exits 2.', flags: { '--sub SUB': 'the account\'s subject' } },
  'connections unlink': {
    about: 'Remove an account\'s links to a connection (event federation.unlinked). No such link exits 2.',
    flags: { '--sub SUB': 'the account\'s subject', '--connection ID': 'the connection', '--subject S': 'only the link with this upstream subject' },
  },
};

export async function runLinks(cmd: string, args: string[], kit: CliKit): Promise<CliOut> {
  const usage = (message: string) => new kit.UsageError(`${message}\nusage: ${LINKS_USAGE[cmd]}`);
  let v: Record<string, string | boolean | undefined>;
  try {
    v = parseArgs({ args, options: { sub: { type: 'string' }, connection: { type: 'string' }, subject: { type: 'string' }, json: { type: 'boolean' } }, strict: true, allowPositionals: false }).values;
  } catch (err) {
    throw usage((err as Error).message);
  }
  const sub = typeof v.sub === 'string' && v.sub ? v.sub : undefined;
  if (!sub) throw usage('missing --sub');
  const out: CliOut = { json: v.json === true, lines: [], data: undefined };
  return withAccounts(kit, async (store) => {
    const account = await store.findBySub(sub);
    if (!account) throw new kit.UsageError(`no account ${sub}`);
    if (cmd === 'connections links') {
      out.data = account.federated;
      out.lines.push(...kit.table(account.federated.map((l) => ({ connection: l.connection, issuer: l.issuer, subject: l.subject, via: l.via, linked: l.linkedAt, lastLogin: l.lastLoginAt ?? '' })),
        ['connection', 'issuer', 'subject', 'via', 'linked', 'lastLogin']));
      return out;
    }
    if (typeof v.connection !== 'string' || !v.connection) throw usage('missing --connection');
    const links = account.federated.filter((l) => l.connection === v.connection && (v.subject === undefined || l.subject === v.subject));
    if (links.length === 0) throw new kit.UsageError(`account ${sub} has no link to connection ${v.connection}${v.subject ? ` with subject ${v.subject}` : ''}`);
    for (const l of links) await store.unlinkFederated(sub, l);
    await lifecycleEvent(kit, 'federation.unlinked', { sub, data: { connection: v.connection, links: links.length, by: 'operator' } });
    out.data = { sub, connection: v.connection, removed: links.length };
    out.lines.push(`removed ${links.length} link${links.length === 1 ? '' : 's'} to ${v.connection} from ${sub}`);
    return out;
  });
}
