// `idp users unlock (--sub SUB | --email EMAIL)`: clears every lockout counter
// of an account (temporary and permanent locks, per-IP and per-device
// counters), recording account.unlocked (reason "admin", actor "cli"). The
// command runs through the admin service (src/cli/main.ts, src/admin); its
// usage line and "no such account" error live here.

export const LOCKOUT_USAGE: Record<string, string> = {
  'users unlock': 'idp users unlock (--sub SUB | --email EMAIL) [--json]',
};

export class NoSuchAccount extends Error {
  override name = 'NoSuchAccount';
}
