// Every capability's erasure hook (src/accounts/erasure.ts), for each place
// that builds a DynamoAccountStore which may erase an account: the server
// and the CLI (`idp users delete --erase`). A capability that starts keeping
// items per account in the accounts table adds its hook here.
import type { ErasureHook } from './accounts/erasure.ts';
import { lockoutErasure } from './lockout/erasure.ts';
import { mfaErasure } from './mfa/erasure.ts';
import { consentErasure } from './consent/erasure.ts';

export function erasureHooks(): ErasureHook[] {
  return [lockoutErasure, mfaErasure, consentErasure];
}
