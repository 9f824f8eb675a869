// What a new password must satisfy (NIST SP 800-63B, OWASP ASVS V2.1), for
// every place that sets one: the change and reset pages and the forced change
// of an expired password (src/lockout/self-service.ts), and `idp users add`
// (src/cli/users.ts). No composition rules.
//
//   - length in Unicode code points: at least PASSWORD_MIN_LENGTH (12), at most
//     PASSWORD_MAX_LENGTH (256);
//   - not one of the PASSWORD_COMMON_LIST_SIZE (100 000) most common passwords
//     (offline list, case-insensitive; src/passwords/common-list.ts);
//   - not containing the account's e-mail address, its local part, the parts
//     of it or of the name that are 4+ characters long, or the phone number;
//   - not the current password nor one of the PASSWORD_HISTORY (5) before it
//     (checked against their argon2id hashes).
import { commonPasswords } from './common-list.ts';

export interface PolicyOptions {
  minLength: number;
  maxLength: number;
  commonListSize: number;
  history: number;
}

/** what is known about the person, to keep it out of the password */
export interface PolicyContext {
  email?: string;
  phone?: string;
  name?: string;
  givenName?: string;
  familyName?: string;
  /** the identifier as typed */
  login?: string;
}

export const POLICY_MESSAGES = {
  tooShort: (n: number) => `Use at least ${n} characters.`,
  tooLong: (n: number) => `Use at most ${n} characters.`,
  common: 'This password is too common and easy to guess. Choose another one.',
  personal: 'Do not use your e-mail address, phone number or name in your password.',
  reused: 'You have used this password before. Choose one you have not used.',
  mismatch: 'The two passwords do not match.',
} as const;

const codePoints = (s: string) => [...s].length;

/** lower-cased words of the context that may not appear in the password */
export function contextWords(ctx: PolicyContext): string[] {
  const words = new Set<string>();
  const addParts = (s: string | undefined) => {
    for (const p of (s ?? '').toLowerCase().split(/[^\p{L}\p{N}]+/u)) if (codePoints(p) >= 4) words.add(p);
  };
  for (const e of [ctx.email, ctx.login?.includes('@') ? ctx.login : undefined]) {
    if (!e) continue;
    const email = e.trim().toLowerCase();
    const [local, domain] = email.split('@');
    words.add(email);
    if (local && codePoints(local) >= 3) words.add(local);
    addParts(local);
    addParts(domain?.split('.')[0]);
  }
  for (const n of [ctx.name, ctx.givenName, ctx.familyName]) {
    addParts(n);
    const whole = (n ?? '').toLowerCase().replace(/[^\p{L}\p{N}]+/gu, '');
    if (codePoints(whole) >= 4) words.add(whole);
  }
  for (const ph of [ctx.phone, ctx.login && !ctx.login.includes('@') ? ctx.login : undefined]) {
    const digits = (ph ?? '').replace(/\D/g, '');
    if (digits.length >= 7) words.add(digits.slice(-7));
  }
  return [...words];
}

export class PasswordPolicy {
  readonly opts: PolicyOptions;
  private readonly verify: (hash: string, password: string) => Promise<boolean>;

  constructor(opts: PolicyOptions, verify: (hash: string, password: string) => Promise<boolean>) {
    this.opts = opts;
    this.verify = verify;
  }

  /** load the common list now rather than at the first change */
  async warm(): Promise<void> {
    await commonPasswords(this.opts.commonListSize);
  }

  /** one line for the form, saying what is asked */
  get hint(): string {
    return `At least ${this.opts.minLength} characters. Long passphrases are good; common passwords and your e-mail address or name are refused.`;
  }

  /** the problems of a new password that need no stored secret (empty: none) */
  async problems(password: string, ctx: PolicyContext = {}): Promise<string[]> {
    const out: string[] = [];
    const len = codePoints(password);
    if (len < this.opts.minLength) out.push(POLICY_MESSAGES.tooShort(this.opts.minLength));
    if (len > this.opts.maxLength) out.push(POLICY_MESSAGES.tooLong(this.opts.maxLength));
    const lower = password.toLowerCase();
    if ((await commonPasswords(this.opts.commonListSize)).has(lower)) out.push(POLICY_MESSAGES.common);
    if (contextWords(ctx).some((w) => lower.includes(w))) out.push(POLICY_MESSAGES.personal);
    return out;
  }

  /** true when the password matches the current secret or one of the last `history` ones */
  async reused(password: string, current: string | undefined, history: string[]): Promise<boolean> {
    const hashes = [...(current ? [current] : []), ...history.slice(0, this.opts.history)];
    for (const h of hashes) {
      if (h.startsWith('$argon2') && await this.verify(h, password)) return true;
    }
    return false;
  }
}
