// The consent screen (views/consent.ejs through src/interactions/routes.ts):
// what is new since the last grant (oidc-provider's prompt details: only
// what neither the user nor an admin allowed yet), what was allowed before,
// optional scopes (client metadata `optional_scopes`) as ticked checkboxes,
// and "Not you?" (POST /interaction/:uid/switch with the page's CSRF token:
// the same authorization request again with prompt=login, so another
// account can sign in and the app still gets its answer).
//
// "Allow" adds what the user allowed to the grant, marks unticked optional
// scopes as declined (oidc-provider does not ask for them again), records the
// consent for the account (store.ts: remembered across sessions, listed
// under connected apps) and emits `consent.granted`.
import Router from '@koa/router';
import { bodyParser } from '@koa/bodyparser';
import type { Context } from 'koa';
import type Provider from 'oidc-provider';
import type { ConsentScreen } from '../interactions/consent.ts';
import { currentInteraction, type Details } from '../interactions/current.ts';
import { verifyCsrf } from '../interactions/csrf.ts';
import { describeScopes } from '../interactions/describe.ts';
import { UnexpectedPrompt } from '../interactions/errors.ts';
import type { ConsentStore } from './store.ts';
import { optionalScopes } from './grants.ts';
import { type ConsentScope, words } from './types.ts';

export type { EventRecorder as EventsLike } from '../events/types.ts';
import type { EventRecorder as EventsLike } from '../events/types.ts';

export interface ConsentScreenDeps {
  provider: () => Provider;
  store: ConsentStore;
  events: EventsLike;
  grantTtlSeconds: number;
}

type Missing = { missingOIDCScope?: string[]; missingOIDCClaims?: string[]; missingResourceScopes?: Record<string, string[]> };

const list = (v: unknown): string[] => (Array.isArray(v) ? v : [v]).filter((x): x is string => typeof x === 'string');

export function consentScreen(deps: ConsentScreenDeps): { screen: ConsentScreen; router: Router } {
  const clientOf = async (details: Details) => {
    const c = await deps.provider().Client.find(String(details.params.client_id));
    if (!c) throw new UnexpectedPrompt('unknown client');
    return c;
  };

  const screen: ConsentScreen = {
    async locals(_ctx, details) {
      const missing = details.prompt.details as Missing;
      const [client, grant] = await Promise.all([clientOf(details), details.grantId ? deps.provider().Grant.find(details.grantId) : undefined]);
      const asked = new Set(missing.missingOIDCScope ?? []);
      return {
        optional: optionalScopes(client.metadata()),
        granted: describeScopes(words(grant?.getOIDCScope()).filter((s) => !asked.has(s))),
        switchAction: `/interaction/${details.uid}/switch`,
      };
    },

    async approve(ctx, details, fields) {
      const provider = deps.provider();
      const missing = details.prompt.details as Missing;
      const sub = details.session!.accountId;
      const clientId = String(details.params.client_id);
      const client = await clientOf(details);
      // declined: optional scopes the page offered whose box was left unticked
      const offered = new Set(list(fields.offered).filter((s) => optionalScopes(client.metadata()).includes(s)));
      const ticked = new Set(list(fields.optional));
      const declined = [...offered].filter((s) => !ticked.has(s));
      const firstTime = !details.grantId;
      const grant = firstTime ? new provider.Grant({ accountId: sub, clientId }) : await provider.Grant.find(details.grantId!);
      if (!grant) throw new Error('grant vanished during consent');
      const allowed: ConsentScope = {
        scope: (missing.missingOIDCScope ?? []).filter((s) => !declined.includes(s)),
        claims: missing.missingOIDCClaims ?? [],
        resources: Object.fromEntries(Object.entries(missing.missingResourceScopes ?? {}).map(([r, s]) => [r, s.filter((x) => !declined.includes(x))])),
      };
      if (allowed.scope.length) grant.addOIDCScope(allowed.scope);
      const oidcDeclined = declined.filter((s) => missing.missingOIDCScope?.includes(s));
      if (oidcDeclined.length) grant.rejectOIDCScope(oidcDeclined);
      if (allowed.claims.length) grant.addOIDCClaims(allowed.claims);
      for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) {
        const yes = allowed.resources[indicator];
        if (yes.length) grant.addResourceScope(indicator, yes);
        const no = scopes.filter((s) => declined.includes(s));
        if (no.length) grant.rejectResourceScope(indicator, no);
      }
      // the grant and the account's consent record together (the grant's id first)
      grant.jti ||= (grant as unknown as { generateTokenId(): string }).generateTokenId();
      const grantId = grant.jti;
      // stored with the consent record (the grant's own write is held by the interaction pipeline)
      await deps.events.commit({
        type: 'consent.granted', sub, clientId, requestId: ctx.state.requestId,
        data: { scopes: allowed.scope, claims: allowed.claims, resources: allowed.resources, declined, grantId },
      }, () => Promise.all([
        grant.save(),
        deps.store.recordConsent(sub, clientId, allowed, declined, { id: grantId, exp: Math.floor(Date.now() / 1000) + deps.grantTtlSeconds }),
      ]));
      return firstTime ? { grantId } : {};
    },
  };

  const router = new Router({ prefix: '/interaction' });
  const body = bodyParser({ enableTypes: ['form'], formLimit: '16kb' });
  // "Not you?": this authorization request again, asking for a sign-in
  router.post('/:uid/switch', body, async (ctx: Context) => {
    ctx.set('Cache-Control', 'no-store');
    const details = await currentInteraction(deps.provider(), ctx, 'consent');
    verifyCsrf(ctx, details.uid, ((ctx.request as unknown as { body?: Record<string, unknown> }).body ?? {}).csrf);
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(details.params)) {
      if (k === 'prompt' || v === undefined || v === null) continue;
      for (const one of Array.isArray(v) ? v : [v]) params.append(k, String(one));
    }
    params.set('prompt', 'login');
    ctx.status = 303;
    ctx.redirect(`/auth?${params}`);
  });
  return { screen, router };
}
