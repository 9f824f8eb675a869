// Connected apps on the account page (/account): every app the user allowed,
// with its logo, what it can see (the consent screen's words), when it was
// allowed and last signed in to, and "Remove access" (POST
// /account/apps/remove with the page's CSRF token). Removing access forgets
// the consent and revokes every grant issued under it with all their tokens
// (refresh tokens, opaque access tokens and codes are deleted; introspection
// answers active:false at once), so the next sign-in to the app asks for
// consent again. `consent.revoked` is emitted.
import Router from '@koa/router';
import { bodyParser } from '@koa/bodyparser';
import type { Context } from 'koa';
import type Provider from 'oidc-provider';
import { accountSession, verifyAccountCsrf, type AccountPageSection } from '../interactions/account-page.ts';
import { describeClaims, describeScopes } from '../interactions/describe.ts';
import { InteractionError } from '../interactions/errors.ts';
import type { ConsentStore } from './store.ts';
import type { EventsLike } from './screen.ts';
import type { AppConsent } from './types.ts';

export interface ConnectedAppsDeps {
  provider: () => Provider;
  store: ConsentStore;
  events: EventsLike;
}

/** the models oidc-provider ties to a grant (lib/helpers/revoke.js) */
const GRANT_BOUND = ['AccessToken', 'RefreshToken', 'AuthorizationCode', 'DeviceCode', 'BackchannelAuthenticationRequest'] as const;

/** deletes a grant and every token issued under it */
export async function revokeGrant(provider: Provider, grantId: string): Promise<void> {
  const models = provider as unknown as Record<string, { revokeByGrantId?(id: string): Promise<void> } | undefined>;
  await Promise.all([
    ...GRANT_BOUND.map((m) => models[m]?.revokeByGrantId?.(grantId)),
    provider.Grant.adapter.destroy(grantId),
  ]);
}

/** what the app can see, in the consent screen's words */
export function appAccess(app: AppConsent): string[] {
  const scopes = describeScopes(app.scope);
  const seen = new Set(scopes.map((s) => s.description));
  const claims = describeClaims(app.claims).filter((c) => !seen.has(c.description));
  const resources = Object.entries(app.resources).filter(([, s]) => s.length).map(([r, s]) => `Use ${r} for you (${s.join(', ')})`);
  return [...scopes.map((s) => s.description), ...claims.map((c) => c.description), ...resources];
}

export function connectedApps(deps: ConnectedAppsDeps): { section: AccountPageSection; router: Router } {
  const section: AccountPageSection = {
    notices: { 'app-removed': 'The app no longer has access to your account. It will ask again the next time you use it.' },
    async render(_ctx, s) {
      const apps = await deps.store.listApps(s.accountId);
      const clients = await Promise.all(apps.map((a) => deps.provider().Client.find(a.clientId)));
      return {
        id: 'apps', title: 'Connected apps',
        empty: 'None. Apps you allow to use your account show here.',
        items: apps.map((a, i) => {
          const c = clients[i];
          return {
            text: c?.clientName ?? a.clientId,
            ...(c?.logoUri ? { logoUri: c.logoUri } : {}),
            lines: appAccess(a),
            detail: `Allowed ${a.grantedAt.slice(0, 10)}, last signed in ${a.lastUsedAt.slice(0, 10)}`,
            action: { url: '/account/apps/remove', fields: { client: a.clientId }, button: 'Remove access' },
          };
        }),
      };
    },
  };

  const router = new Router({ prefix: '/account' });
  const body = bodyParser({ enableTypes: ['form'], formLimit: '16kb' });
  router.post('/apps/remove', body, async (ctx: Context) => {
    ctx.set('Cache-Control', 'no-store');
    const provider = deps.provider();
    const s = await accountSession(provider, ctx);
    if (!s) {
      ctx.status = 303;
      ctx.redirect('/account/login');
      return;
    }
    const fields = ((ctx.request as unknown as { body?: Record<string, unknown> }).body ?? {});
    verifyAccountCsrf(ctx, s, fields.csrf);
    const clientId = typeof fields.client === 'string' && fields.client.length <= 256 ? fields.client : '';
    const removed = clientId
      ? await deps.events.commit({ type: 'consent.revoked', sub: s.accountId, clientId, requestId: ctx.state.requestId, data: { by: 'user' } },
        () => deps.store.removeApp(s.accountId, clientId), { onlyIfWritten: true })
      : undefined;
    if (!removed) throw new InteractionError(400, 'invalid_request', 'That app is not connected to your account.', [{ href: '/account', text: 'Back to your account' }]);
    const grants = Object.keys(removed.grants);
    await Promise.all(grants.map((g) => deps.events.commit({ type: 'token.revoked', sub: s.accountId, clientId, requestId: ctx.state.requestId, data: { grantId: g, by: 'user', why: 'consent_revoked' } },
      () => revokeGrant(provider, g), { onlyIfWritten: true })));
    ctx.status = 303;
    ctx.redirect('/account?done=app-removed');
  });
  return { section, router };
}
