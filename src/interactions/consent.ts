// Consent: the user allowed what the prompt says is missing. Extend the
// existing grant (or start one) with exactly those scopes, claims and
// resource scopes, and hand its id back to oidc-provider. A consent
// capability (src/consent) may take the page over through ConsentScreen:
// what the page shows beyond the basics, and what "Allow" does.
import type { Context } from 'koa';
import type Provider from 'oidc-provider';

type Details = Awaited<ReturnType<Provider['interactionDetails']>>;

/** the consent page's capability (src/consent/screen.ts) */
export interface ConsentScreen {
  /** locals of views/consent.ejs beyond the form basics (action, csrf, abortUrl, client) */
  locals(ctx: Context, details: Details): Promise<Record<string, unknown>>;
  /** "Allow" (CSRF already checked): what goes to oidc-provider as the consent result */
  approve(ctx: Context, details: Details, fields: Record<string, unknown>): Promise<{ grantId?: string }>;
}

export async function approveConsent(provider: Provider, details: Details): Promise<{ grantId?: string }> {
  const { prompt, params, session } = details;
  const missing = prompt.details as { missingOIDCScope?: string[]; missingOIDCClaims?: string[]; missingResourceScopes?: Record<string, string[]> };
  const grant = details.grantId
    ? await provider.Grant.find(details.grantId)
    : new provider.Grant({ accountId: session!.accountId, clientId: String(params.client_id) });
  if (!grant) throw new Error('grant vanished during consent');
  if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
  if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
  for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) {
    grant.addResourceScope(indicator, scopes.join(' '));
  }
  const grantId = await grant.save();
  return details.grantId ? {} : { grantId };
}
