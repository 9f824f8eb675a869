// Multi-factor authentication: the vocabulary shared by the store, the
// interaction routes, the account page, the CLI and the provider policy
// (docs/mfa.md describes the flows).
import { MFA_POLICIES, type MfaPolicy } from '../config/mfa.ts';

/** The configuration vocabulary (MFA_POLICY, MFA_METHODS) is defined in config. */
export { MFA_POLICIES, OFFERED_METHODS, type MfaConfig, type MfaPolicy, type OfferedMethod } from '../config/mfa.ts';

/** Authentication context classes we declare in discovery (acr_values_supported). */
export const ACR_PWD = 'urn:idp:acr:pwd';
export const ACR_MFA = 'urn:idp:acr:mfa';
export const ACR_VALUES = [ACR_PWD, ACR_MFA] as const;
const ACR_LEVEL: Record<string, number> = { [ACR_PWD]: 1, [ACR_MFA]: 2 };

/** How the second factor was proven. */
export type MfaMethod = 'totp' | 'recovery' | 'email' | 'sms';

/**
 * RFC 8176 `amr` of the second factor. `otp` (TOTP app) and `sms` are
 * registered values; `email` and `rc` (recovery code) are private values we
 * document. The full amr of a login is the first factor's (['pwd']), these,
 * and 'mfa' (multiple factors).
 */
export const METHOD_AMR: Record<MfaMethod, string> = { totp: 'otp', recovery: 'rc', email: 'email', sms: 'sms' };

export function mfaAmr(firstFactor: string[], method: MfaMethod): string[] {
  return [...new Set([...firstFactor, METHOD_AMR[method], 'mfa'])];
}

export function acrLevel(acr: unknown): number {
  return typeof acr === 'string' ? (ACR_LEVEL[acr] ?? 0) : 0;
}

export function isMfaPolicy(v: unknown): v is MfaPolicy {
  return typeof v === 'string' && (MFA_POLICIES as readonly string[]).includes(v);
}

/** the client's `mfa_policy` metadata when set, else the global MFA_POLICY */
export function effectivePolicy(clientPolicy: unknown, global: MfaPolicy): MfaPolicy {
  return isMfaPolicy(clientPolicy) ? clientPolicy : global;
}

/**
 * Whether an authorization request asks for MFA: acr_values whose every value
 * we know is at least urn:idp:acr:mfa (values we do not know are ignored; a
 * list naming urn:idp:acr:pwd too accepts a password), or an essential `acr`
 * claim (claims parameter) naming only urn:idp:acr:mfa.
 */
export function requestsMfa(params: Record<string, unknown>): boolean {
  const fromList = (values: string[]) => {
    const known = values.filter((v) => acrLevel(v) > 0);
    return known.length > 0 && known.every((v) => acrLevel(v) >= acrLevel(ACR_MFA));
  };
  if (typeof params.acr_values === 'string' && fromList(params.acr_values.split(' ').filter(Boolean))) return true;
  if (typeof params.claims === 'string') {
    try {
      const acr = (JSON.parse(params.claims) as { id_token?: { acr?: { essential?: boolean; value?: unknown; values?: unknown } } }).id_token?.acr;
      if (acr?.essential) {
        const values = Array.isArray(acr.values) ? acr.values.filter((v): v is string => typeof v === 'string') : typeof acr.value === 'string' ? [acr.value] : [];
        if (fromList(values)) return true;
      }
    } catch { /* oidc-provider rejects malformed claims itself */ }
  }
  return false;
}

/** A wrong, reused, expired or exhausted code: the message says what the user can do. */
export class MfaCodeRejected extends Error {
  override name = 'MfaCodeRejected';
  readonly reason: 'invalid' | 'expired' | 'exhausted' | 'used';
  constructor(reason: MfaCodeRejected['reason'], message: string) {
    super(message);
    this.reason = reason;
  }
}
