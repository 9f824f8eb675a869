// Table names, derived from TABLE_PREFIX. Every table has a string partition
// key `pk` and a string sort key `sk`; `expiresAt` (epoch seconds) is the TTL
// attribute wherever items expire.
export interface TableNames {
  oidc: string;
  accounts: string;
  /** the accounts' wrapped data keys, apart from the records (crypto-shredding: docs/accounts.md) */
  datakeys: string;
  keys: string;
  meta: string;
  /** recorded events: the outbox and the audit log (src/events/store.ts) */
  events: string;
}

export function tableNames(prefix: string): TableNames {
  return {
    oidc: `${prefix}oidc`,
    accounts: `${prefix}accounts`,
    datakeys: `${prefix}datakeys`,
    keys: `${prefix}keys`,
    meta: `${prefix}meta`,
    events: `${prefix}events`,
  };
}
