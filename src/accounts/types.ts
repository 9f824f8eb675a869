// The account store seam. The core issue keeps it minimal; the accounts
// issue replaces the internals (encrypted profile, blind indexes, legacy
// credentials) behind this same interface.
export type AccountStatus = 'active' | 'disabled' | 'locked' | 'pending';

export interface Account {
  sub: string;
  status: AccountStatus;
  email?: string;
  emailVerified: boolean;
  phone?: string;
  phoneVerified: boolean;
  name?: string;
  givenName?: string;
  familyName?: string;
  passwordHash?: string;
  version: number;
  createdAt: string;
  updatedAt: string;
}

export interface NewAccount {
  email: string;
  password?: string;
  name?: string;
  givenName?: string;
  familyName?: string;
  emailVerified?: boolean;
  phone?: string;
  phoneVerified?: boolean;
}

export class AccountExists extends Error {
  override name = 'AccountExists';
}

export interface AccountStore {
  create(input: NewAccount): Promise<Account>;
  findBySub(sub: string): Promise<Account | undefined>;
  /** the identifier typed on the login form: an e-mail address */
  findByLogin(login: string): Promise<Account | undefined>;
  list(opts?: { limit?: number }): Promise<Account[]>;
}

/** OIDC standard claims of an account. */
export function standardClaims(a: Account): Record<string, unknown> {
  return {
    sub: a.sub,
    ...(a.email !== undefined ? { email: a.email, email_verified: a.emailVerified } : {}),
    ...(a.phone !== undefined ? { phone_number: a.phone, phone_number_verified: a.phoneVerified } : {}),
    ...(a.name !== undefined ? { name: a.name } : {}),
    ...(a.givenName !== undefined ? { given_name: a.givenName } : {}),
    ...(a.familyName !== undefined ? { family_name: a.familyName } : {}),
    updated_at: Math.floor(Date.parse(a.updatedAt) / 1000),
  };
}

export function normalizeEmail(email: string): string {
  return email.trim().toLowerCase();
}

const EMAIL = /^[^\s@<>()[\]\\,;:"]+@[^\s@<>()[\]\\,;:"]+\.[^\s@<>()[\]\\,;:"]+$/;
export function isValidEmail(email: string): boolean {
  return email.length <= 254 && EMAIL.test(email.trim());
}
