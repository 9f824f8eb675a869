// The guard seam of the login flow: every place that checks a secret
// (password, MFA code, unlock or reset code) asks the guard first and reports
// the outcome, and a first factor proven elsewhere (an upstream IdP) still
// asks whether the account is locked. The lockout capability (src/lockout)
// implements it; `openGuard` lets everything through.
export type AttemptKind = 'password' | 'mfa' | 'unlock' | 'reset';

export interface Attempt {
  kind: AttemptKind;
  /** client IP (from the socket, or X-Forwarded-For behind TRUST_PROXY_HOPS) */
  ip: string;
  /** the identifier as typed (e-mail or phone); counters key on its blind index, never the text */
  login?: string;
  /** the account, once known */
  accountId?: string;
  /**
   * the sub `login` names, when the caller started that lookup already (the
   * login POST does, beside the interaction read); the guard looks it up otherwise
   */
  resolved?: Promise<string | undefined>;
  /** the device token of this browser (src/interactions/device.ts), if any */
  deviceId?: string;
  /** the request's id, carried into the events */
  requestId?: string;
}

export type Decision =
  /**
   * secondFactor: the account is locked by failures from browsers it does not
   * know (strangers, or its owner on a new device). The secret may still be
   * checked, but a right one leads to a second factor, which lifts the lock;
   * a wrong one is refused like any attempt on a locked account.
   */
  | { allowed: true; secondFactor?: { reason: string } }
  | { allowed: false; reason: string; retryAfterSeconds: number };

// Pass the SAME Attempt object to check() and then to failed() or succeeded():
// the guard counts an attempt in check() (before the hash) and remembers what
// it counted on that object (src/lockout/guard.ts). failed() without check()
// counts the failure then.
export interface LoginGuard {
  /** before the secret is checked (and before any hash runs) */
  check(a: Attempt): Promise<Decision>;
  /** after a wrong secret; the returned decision says whether this failure locked */
  failed(a: Attempt): Promise<Decision>;
  /** after a right secret */
  succeeded(a: Attempt): Promise<void>;
  /**
   * whether the account may sign in now, for a first factor that was not a
   * secret of ours (an upstream IdP): nothing is counted
   */
  accountState(sub: string): Promise<Decision>;
  /** a second factor proved the owner of an account locked by strangers' failures: lift the lock */
  clearedBySecondFactor(sub: string, requestId?: string): Promise<void>;
}

/** what a refused attempt is told: the same for a locked account, a throttled IP and an unknown identifier */
export const TRY_LATER = 'Too many attempts. Please wait a while and try again.';

export const openGuard: LoginGuard = {
  check: async () => ({ allowed: true }),
  failed: async () => ({ allowed: true }),
  succeeded: async () => {},
  accountState: async () => ({ allowed: true }),
  clearedBySecondFactor: async () => {},
};
