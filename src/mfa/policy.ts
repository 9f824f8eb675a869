// The provider side of MFA: what oidc-provider's configuration needs
// (src/provider/configuration.ts wires these in):
//
//  - acrValues: urn:idp:acr:pwd and urn:idp:acr:mfa, published in discovery;
//  - `mfa_policy` client metadata (off | optional | required | new_device);
//  - an interaction policy whose login prompt has one more check,
//    `mfa_required`, that sends the browser back to the login even inside an
//    existing session:
//      * the request asks for urn:idp:acr:mfa (acr_values, or an essential
//        acr claim): MFA must be proven in THIS authorization (step-up), so
//        the prompt is satisfied only by a login result of this very
//        request that carries acr urn:idp:acr:mfa;
//      * otherwise, when the session's acr is below urn:idp:acr:mfa and the
//        client's policy wants MFA: required always; new_device unless this
//        browser is a remembered device of the account; optional when the
//        account has an authenticator app. When this very authorization's
//        login result (written by our login step, server side) says it was
//        decided under the same policy for the same account moments ago
//        (`mfaChecked`), that decision stands and nothing is read again.
import type { KoaContextWithOIDC } from 'oidc-provider';
import { errors, interactionPolicy } from 'oidc-provider';
import { deviceId } from '../interactions/device.ts';
import { StorageUnavailable } from '../storage/errors.ts';
import { ServiceUnavailable } from '../storage/errors.ts';
import { ACR_MFA, ACR_VALUES, MFA_POLICIES, acrLevel, effectivePolicy, isMfaPolicy, requestsMfa, type MfaPolicy } from './types.ts';

export interface MfaProviderHooks {
  /** MFA_POLICY */
  policy: MfaPolicy;
  hasTotp(sub: string): Promise<boolean>;
  isRemembered(sub: string, deviceId: string | undefined): Promise<boolean>;
}

export const MFA_CLIENT_METADATA = 'mfa_policy';
export const acrValues = (): string[] => [...ACR_VALUES];

/** extraClientMetadata validator for `mfa_policy` */
export function validateMfaPolicyMetadata(key: string, value: unknown): void {
  if (key === MFA_CLIENT_METADATA && value !== undefined && value !== null && !isMfaPolicy(value)) {
    throw new errors.InvalidClientMetadata(`mfa_policy must be one of ${MFA_POLICIES.join(', ')}`);
  }
}

/** does this authorization request need the login prompt for MFA? */
export async function needsMfaPrompt(ctx: KoaContextWithOIDC, hooks: MfaProviderHooks): Promise<boolean> {
  const { oidc } = ctx;
  const sub = oidc.session?.accountId;
  if (!sub) return false; // no_session asks for the login already
  const mfaNow = acrLevel(oidc.session!.acr) >= acrLevel(ACR_MFA);
  if (requestsMfa(oidc.params as Record<string, unknown>)) return !(oidc.result?.login && mfaNow);
  if (mfaNow) return false;
  const policy = effectivePolicy(oidc.client?.metadata()[MFA_CLIENT_METADATA], hooks.policy);
  // the login step of this authorization decided it under this policy (interaction.ts, afterFirstFactor)
  const login = oidc.result?.login as { accountId?: unknown; mfaChecked?: unknown } | undefined;
  if (login?.accountId === sub && login.mfaChecked === policy) return false;
  try {
    switch (policy) {
      case 'required': return true;
      case 'new_device': return !(await hooks.isRemembered(sub, deviceId(ctx as never)));
      case 'optional': return await hooks.hasTotp(sub);
      default: return false;
    }
  } catch (err) {
    throw err instanceof StorageUnavailable ? new ServiceUnavailable(undefined, { cause: err }) : err;
  }
}

/** oidc-provider's default prompts, with `mfa_required` added to the login prompt */
export function mfaInteractionPolicy(hooks: MfaProviderHooks): interactionPolicy.Prompt[] {
  const policy = interactionPolicy.base();
  policy.get('login')!.checks.add(new interactionPolicy.Check(
    'mfa_required',
    'multi-factor authentication is required',
    'login_required',
    (ctx) => needsMfaPrompt(ctx, hooks),
  ));
  return policy;
}
