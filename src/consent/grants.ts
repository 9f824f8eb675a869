// Where consent meets oidc-provider (src/provider/configuration.ts calls
// these): which grant an authorization starts from, and the roles claims.
//
//  - A session with a grant for the client keeps it; an admin consent of the
//    client that covers more is added to it (saved only when it changes).
//  - A session without one (a new browser, a new sign-in) starts a grant from
//    what the user allowed before (their AppConsent: scopes, claims, resource
//    scopes, declined optional scopes) and what an admin allowed everyone.
//    oidc-provider then asks only for what neither covers (incremental
//    consent). The grant joins the AppConsent's grants, so "Remove access"
//    can revoke it and every token under it.
//  - prompt=consent asks again for everything: what the user allowed before
//    is not read.
//
// Round trips: the user's AppConsent is read beside the account (findAccount,
// which oidc-provider runs just before it asks for the grant), admin consents
// come from a short cache, and the grant and the AppConsent are written
// together: a remembered sign-in costs no more trips than it saves (the
// consent page and its POST).
import type { KoaContextWithOIDC } from 'oidc-provider';
import type Provider from 'oidc-provider';
import type { ConsentStore } from './store.ts';
import { type RoleStore, ROLES_SCOPE, claimsBytes, distributedMarker } from './roles.ts';
import { ConsentInvalid, type AppConsent, type ConsentScope, words } from './types.ts';

type Grant = InstanceType<Provider['Grant']>;

/** client metadata: scopes the consent screen offers unticked-able (space-separated or an array) */
export const OPTIONAL_SCOPES = 'optional_scopes';

export function optionalScopes(metadata: Record<string, unknown>): string[] {
  const v = metadata[OPTIONAL_SCOPES];
  return (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : words(typeof v === 'string' ? v : undefined)).filter((s) => s !== 'openid');
}

export function validateConsentMetadata(key: string, value: unknown): void {
  if (key !== OPTIONAL_SCOPES || value === undefined) return;
  const list = Array.isArray(value) ? value : typeof value === 'string' ? value.split(/\s+/).filter(Boolean) : undefined;
  if (!list || !list.every((s) => typeof s === 'string' && /^[\x21-\x7e]+$/.test(s))) throw new ConsentInvalid('optional_scopes must be a space-separated string or an array of scopes');
  if (list.includes('openid')) throw new ConsentInvalid('openid cannot be an optional scope');
}

/** adds what a consent covers to a grant */
export function applyToGrant(grant: Grant, c: ConsentScope): void {
  if (c.scope.length) grant.addOIDCScope(c.scope);
  if (c.claims.length) grant.addOIDCClaims(c.claims);
  for (const [indicator, scopes] of Object.entries(c.resources)) if (scopes.length) grant.addResourceScope(indicator, scopes);
}

const grantShape = (g: Grant) => JSON.stringify([g.openid, g.resources]);

export interface ConsentProviderDeps {
  store: ConsentStore;
  roles: RoleStore;
  issuer: string;
  /** GRANT_TTL: how long a grant lives (its AppConsent entry expires with it) */
  grantTtlSeconds: number;
  rolesClaimsMaxBytes: number;
}

/** what src/provider/configuration.ts plugs into oidc-provider */
export interface ConsentProviderHooks {
  /** extra client metadata this capability reads */
  properties: string[];
  validateMetadata(key: string, value: unknown): void;
  /** findAccount of an authorization: start reading what the user allowed the client, beside the account */
  prefetch(ctx: KoaContextWithOIDC, accountId: string): void;
  /** the session's grant, with the client's admin consent added when it covers more */
  withAdminConsent(ctx: KoaContextWithOIDC, grant: Grant): Promise<Grant>;
  /** no grant in this session: one from the user's earlier consent and the admin consent, or undefined */
  remembered(ctx: KoaContextWithOIDC): Promise<Grant | undefined>;
  /** roles claims for findAccount's claims(): {} unless the roles scope is granted */
  accountClaims(sub: string, use: string, scope: string): Promise<Record<string, unknown>>;
  /** extraTokenClaims: roles claims in access tokens whose scope carries `roles` */
  extraTokenClaims(ctx: KoaContextWithOIDC, token: { accountId?: string; scopes: Set<string>; format?: string; [k: string]: unknown }): Promise<Record<string, unknown> | undefined>;
}

export function consentProviderHooks(deps: ConsentProviderDeps): ConsentProviderHooks {
  const { store, roles } = deps;
  const pending = new WeakMap<object, Promise<AppConsent | undefined>>();
  const asksAgain = (ctx: KoaContextWithOIDC) => words(String(ctx.oidc.params?.prompt ?? '')).includes('consent');
  const firstParty = (ctx: KoaContextWithOIDC) => ctx.oidc.client?.metadata().first_party === true;

  return {
    properties: [OPTIONAL_SCOPES],
    validateMetadata: validateConsentMetadata,

    prefetch(ctx, accountId) {
      const { route, client } = ctx.oidc;
      if ((route !== 'authorization' && route !== 'resume') || !client || firstParty(ctx) || asksAgain(ctx)) return;
      if (ctx.oidc.result?.consent?.grantId || ctx.oidc.session?.grantIdFor(client.clientId)) return;
      const p = store.findApp(accountId, client.clientId);
      p.catch(() => {}); // taken by remembered(), or dropped with the request
      pending.set(ctx, p);
    },

    async withAdminConsent(ctx, grant) {
      const admin = await store.adminConsentFor(ctx.oidc.client!.clientId);
      if (!admin) return grant;
      const before = grantShape(grant);
      applyToGrant(grant, admin);
      if (grantShape(grant) !== before) await grant.save();
      return grant;
    },

    async remembered(ctx) {
      const { client, session, provider } = ctx.oidc;
      const sub = session!.accountId!;
      const early = pending.get(ctx);
      pending.delete(ctx);
      const [app, admin] = await Promise.all([
        early ?? (asksAgain(ctx) ? undefined : store.findApp(sub, client!.clientId)),
        store.adminConsentFor(client!.clientId),
      ]);
      if (!app && !admin) return undefined;
      const grant = new provider.Grant({ clientId: client!.clientId, accountId: sub });
      if (app) {
        applyToGrant(grant, app);
        const declined = app.declined.filter((s) => !app.scope.includes(s));
        if (declined.length) grant.rejectOIDCScope(declined);
      }
      if (admin) applyToGrant(grant, admin);
      if (!app) {
        await grant.save();
        return grant;
      }
      // the grant's id now, so that the grant and its AppConsent entry are written together
      grant.jti ||= (grant as unknown as { generateTokenId(): string }).generateTokenId();
      const [, joined] = await Promise.all([grant.save(), store.addGrant(app, { id: grant.jti, exp: Math.floor(Date.now() / 1000) + deps.grantTtlSeconds })]);
      if (joined) return grant;
      // the user removed access meanwhile: nothing of it may start a grant
      await grant.destroy();
      return undefined;
    },

    async accountClaims(sub, use, scope) {
      if (!words(scope).includes(ROLES_SCOPE)) return {};
      const c = await roles.claimsFor(sub);
      if (use === 'id_token' && claimsBytes(c) > deps.rolesClaimsMaxBytes) return distributedMarker(`${deps.issuer}/me`);
      return { ...c };
    },

    async extraTokenClaims(ctx, token) {
      const accountId = token.accountId;
      if (!accountId || !token.scopes.has(ROLES_SCOPE)) return undefined;
      const rs = token.resourceServer as { identifier(): string } | undefined;
      const c = await roles.claimsFor(accountId, rs?.identifier());
      if (token.format !== 'jwt' || claimsBytes(c) <= deps.rolesClaimsMaxBytes) return { ...c };
      // Too large for a JWT: the token says where they are. Its twin, an
      // opaque access token of the same grant, audience, scope and lifetime,
      // stores them; the resource server introspects it to get them.
      const twin = new ctx.oidc.provider.AccessToken({
        accountId, clientId: token.clientId as string, grantId: token.grantId as string, scope: token.scope as string,
        gty: token.gty as string, sid: token.sid as string, sessionUid: token.sessionUid as string,
        expiresWithSession: token.expiresWithSession as boolean, expiresIn: token.expiration as number,
        client: token.client as never, resourceServer: Object.create(rs as object, { accessTokenFormat: { value: 'opaque' } }),
      } as never);
      return distributedMarker(`${deps.issuer}/token/introspection`, await twin.save());
    },
  };
}
