// Configuration vocabulary of two-step verification (docs/mfa.md): the
// policies and second factors an operator can choose with MFA_POLICY and
// MFA_METHODS, and the shape of the validated MFA_* settings. It lives in
// config so that loadConfig does not import the mfa capability;
// src/mfa/types.ts re-exports it for the rest of the code.

export type MfaPolicy = 'off' | 'optional' | 'required' | 'new_device';
export const MFA_POLICIES: readonly MfaPolicy[] = ['off', 'optional', 'required', 'new_device'];

/** Second factors an operator can offer (MFA_METHODS); recovery codes come with TOTP. */
export type OfferedMethod = 'totp' | 'email' | 'sms';
export const OFFERED_METHODS: readonly OfferedMethod[] = ['totp', 'email', 'sms'];

export interface MfaConfig {
  /** MFA_POLICY: the policy of clients without `mfa_policy` metadata */
  policy: MfaPolicy;
  /** MFA_REMEMBER_DAYS: how long a remembered device skips MFA under new_device (0: never remember) */
  rememberDays: number;
  /** MFA_METHODS: the second factors offered */
  methods: OfferedMethod[];
  /** MFA_TOTP_ISSUER: the name authenticator apps show (default: the issuer's host) */
  totpIssuer: string;
  /** MFA_CODE_TTL_SECONDS: life of an e-mail / SMS code */
  codeTtlSeconds: number;
  /** MFA_REAUTH_SECONDS: how recent the sign-in must be for factor changes on the account page */
  reauthSeconds: number;
}
