// oidc-provider configuration: which features are on, and the hooks through
// which the provider reaches our capabilities (accounts, keys, resource
// servers, views). Nothing here talks to DynamoDB directly.
import type { Configuration, KoaContextWithOIDC, ClientMetadata } from 'oidc-provider';
import { errors } from 'oidc-provider';
import type { Config } from '../config/index.ts';
import type { Account, AccountStore } from '../accounts/types.ts';
import { standardClaims } from '../accounts/types.ts';
import type { Keyring } from '../keys/types.ts';
import type { Registry, ResourceServer } from './registry.ts';
import { ServiceUnavailable } from './errors.ts';
import { StorageUnavailable } from '../storage/errors.ts';
import type { Views } from '../http/views.ts';
import { LOCALES } from '../http/i18n.ts';
import { GUIDE_PATH } from '../http/site.ts';
import { TtlCache } from './client-cache.ts';
import { bitsOfOpaqueRandomness } from './token-kinds.ts';
import { accountCheckDeferrable, deferAccountCheck, takePrefetchedAccount } from './token-pipeline.ts';
import { acrValues, mfaInteractionPolicy, validateMfaPolicyMetadata, type MfaProviderHooks } from '../mfa/policy.ts';
import { accountClientMetadata } from '../mfa/account.ts';
import type { ConsentProviderHooks } from '../consent/grants.ts';
import { ROLE_CLAIMS, ROLES_SCOPE } from '../consent/roles.ts';
import { ADMIN_SCOPES_METADATA, ADMIN_SCOPE_VALUES } from '../config/admin.ts';

export const SCOPES = ['openid', 'offline_access', 'email', 'profile', 'phone', ROLES_SCOPE];

export const CLAIMS = {
  openid: ['sub'],
  email: ['email', 'email_verified'],
  phone: ['phone_number', 'phone_number_verified'],
  profile: ['name', 'given_name', 'family_name', 'updated_at'],
  [ROLES_SCOPE]: [...ROLE_CLAIMS],
};

export interface ConfigurationDeps {
  config: Config;
  adapter: Configuration['adapter'];
  accounts: AccountStore;
  keyring: Keyring;
  registry: Registry;
  views: Views;
  /** MFA (src/mfa/policy.ts): the `mfa_required` login check, and the account page's client */
  mfa?: MfaProviderHooks;
  /** consent (src/consent/grants.ts): remembered and admin consent, optional scopes, the roles claims */
  consent?: ConsentProviderHooks;
  /** more built-in clients of our own pages (src/edge: the forward-auth sign-in) */
  clients?: ClientMetadata[];
}

/**
 * Resource-server lookups are cached briefly: they sit on every token request.
 * Bounded, because the indicators (unknown ones included) come from requests.
 */
function resourceCache(registry: Registry, ttlMs = 30_000) {
  const cache = new TtlCache<ResourceServer | undefined>({ ttlMs, maxEntries: 1000 });
  return async (id: string) => {
    const hit = cache.get(id);
    if (hit) return hit.value;
    const value = await registry.findResource(id);
    cache.set(id, value);
    return value;
  };
}

function isFirstParty(client: { metadata(): ClientMetadata }): boolean {
  return client.metadata().first_party === true;
}

/**
 * oidc-provider's outbound fetch (lib/helpers/fetch_request.js) goes through
 * a dispatcher that refuses special-use addresses (SSRF). With
 * OUTBOUND_ALLOW_LOOPBACK (development, tests), requests to a loopback host
 * go out without it; every other address keeps the guard.
 */
function loopbackAllowingFetch(url: URL | string, options: RequestInit & { dispatcher?: unknown }): Promise<Response> {
  const host = new URL(url).hostname;
  const loopback = host === 'localhost' || host === '[::1]' || /^127(\.\d{1,3}){3}$/.test(host);
  if (loopback) {
    const { dispatcher: _guard, ...rest } = options;
    return fetch(url, rest);
  }
  return fetch(url, options);
}

/** resource servers by audience (their `audience`, else their id), read at most every 30 s: introspection's policy asks on every call */
function audienceIndex(registry: Registry, ttlMs = 30_000) {
  let cached: { at: number; map: Promise<Map<string, ResourceServer>> } | undefined;
  return () => {
    if (!cached || Date.now() - cached.at > ttlMs) {
      const map = registry.listResources().then((list) => new Map(list.map((rs) => [rs.audience ?? rs.id, rs])));
      map.catch(() => { cached = undefined; });
      cached = { at: Date.now(), map };
    }
    return cached.map;
  };
}

export function buildConfiguration(deps: ConfigurationDeps): Configuration {
  const { config, accounts, keyring, registry, views } = deps;
  const findResource = resourceCache(registry);
  const resourcesByAudience = audienceIndex(registry);
  const cookie = { httpOnly: true, secure: config.secureCookies, sameSite: 'lax' as const, signed: true };
  // the session cookie goes to every host under SESSION_COOKIE_DOMAIN (sites behind forward-auth read it)
  const long = config.sessionCookieDomain ? { ...cookie, domain: config.sessionCookieDomain } : cookie;
  const clients = [...(deps.mfa ? [accountClientMetadata(config.issuer)] : []), ...(deps.clients ?? [])];

  return {
    adapter: deps.adapter,
    ...(config.outboundAllowLoopback ? { fetch: loopbackAllowingFetch as never } : {}),
    jwks: { keys: keyring.signingJwks() as never },
    cookies: {
      keys: keyring.cookieKeys(),
      long,
      short: cookie,
      names: { session: 'idp.session', interaction: 'idp.interaction', resume: 'idp.resume' },
    },
    scopes: SCOPES,
    // the pages' languages (ui_locales, README "Pages") and the integrator guide
    discovery: { claim_types_supported: ['normal'], ui_locales_supported: [...LOCALES], service_documentation: config.ui.docsUrl ?? `${config.issuer}${GUIDE_PATH}` },
    // acr and amr ride with `openid`: every ID token says how THIS authentication was made (docs/mfa.md);
    // so do roles and permissions, which claims() gives only when the roles scope was granted (with
    // conformIdTokenClaims the ID token of the code flow is masked to `openid`)
    claims: { ...CLAIMS, openid: [...CLAIMS.openid, 'acr', 'amr', ...ROLE_CLAIMS] },
    // urn:idp:acr:pwd and urn:idp:acr:mfa (docs/mfa.md)
    acrValues: acrValues(),
    ...(clients.length ? { clients } : {}),
    conformIdTokenClaims: true,
    responseTypes: ['code'],
    // idp_hint names a connection (src/federation): the login page goes straight to that upstream IdP
    extraParams: ['idp_hint'],
    pkce: { required: () => true },
    rotateRefreshToken: true,
    // each kind of opaque token has its own length: lookups by value read one item (token-kinds.ts)
    formats: { bitsOfOpaqueRandomness },
    clientDefaults: {
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
      id_token_signed_response_alg: 'RS256',
    },
    extraClientMetadata: {
      properties: ['first_party', 'mfa_policy', ADMIN_SCOPES_METADATA, ...(deps.consent?.properties ?? [])],
      validator(_ctx, key, value) {
        // the admin API scopes this client may use (src/admin/scopes.ts): space-separated admin:* values
        if (key === ADMIN_SCOPES_METADATA && value !== undefined && value !== null) {
          if (typeof value !== 'string' || !value.split(' ').every((v) => ADMIN_SCOPE_VALUES.includes(v))) {
            throw new errors.InvalidClientMetadata(`admin_scopes must be space-separated values of ${ADMIN_SCOPE_VALUES.join(', ')}`);
          }
        }
        validateMfaPolicyMetadata(key, value);
        try {
          deps.consent?.validateMetadata(key, value);
        } catch (err) {
          throw new errors.InvalidClientMetadata((err as Error).message);
        }
        if (key === 'first_party' && value !== undefined && typeof value !== 'boolean') {
          throw new errors.InvalidClientMetadata('first_party must be a boolean');
        }
      },
    },
    ttl: {
      AccessToken: config.ttl.accessToken,
      AuthorizationCode: 60,
      ClientCredentials: config.ttl.accessToken,
      IdToken: config.ttl.idToken,
      RefreshToken: config.ttl.refreshToken,
      Session: config.ttl.session,
      Interaction: config.ttl.interaction,
      Grant: config.ttl.grant,
    },
    features: {
      devInteractions: { enabled: false },
      // kms-sign: the signing keys are ExternalSigningKey instances (private half in KMS)
      ...(keyring.external ? { externalSigningSupport: { enabled: true, ack: 'experimental-01' } } : {}),
      // A client may introspect its own tokens; an API (a confidential client
      // named as an introspection client of a resource server) may introspect
      // the access tokens issued for that resource server's audience. Any other
      // asks get {"active": false}.
      introspection: {
        enabled: true,
        allowedPolicy: async (_ctx, client, token) => {
          if (token.clientId === client.clientId) return true;
          if (client.clientAuthMethod === 'none') return false;
          const aud = (token as { aud?: string | string[] }).aud;
          const auds = Array.isArray(aud) ? aud : aud ? [aud] : [];
          if (auds.length === 0) return false;
          const byAudience = await resourcesByAudience();
          return auds.some((a) => byAudience.get(a)?.introspectionClients?.includes(client.clientId) === true);
        },
      },
      revocation: {
        enabled: true,
        allowedPolicy: async (_ctx, client, token) => token.clientId === client.clientId,
      },
      userinfo: { enabled: true },
      clientCredentials: { enabled: true },
      backchannelLogout: { enabled: true },
      rpInitiatedLogout: {
        enabled: true,
        logoutSource: async (ctx, form) => {
          ctx.body = await views.page('logout', { title: 'Sign out', form, clientName: ctx.oidc.client?.clientName });
        },
        postLogoutSuccessSource: async (ctx) => {
          ctx.body = await views.page('message', { title: 'Signed out', heading: 'You are signed out', text: 'You can close this window.' });
        },
      },
      resourceIndicators: {
        enabled: true,
        defaultResource: async () => undefined,
        useGrantedResource: async () => true,
        getResourceServerInfo: async (_ctx, indicator) => {
          let rs: ResourceServer | undefined;
          try {
            rs = await findResource(indicator);
          } catch (err) {
            throw err instanceof StorageUnavailable ? new ServiceUnavailable(undefined, { cause: err }) : err;
          }
          if (!rs) throw new errors.InvalidTarget();
          // kms-sign has no EdDSA key: refuse clearly rather than fail inside the signer
          if (rs.accessTokenFormat === 'jwt' && !keyring.algs.includes(rs.jwtAlg ?? 'ES256')) {
            throw new errors.InvalidTarget(`this resource server's tokens are signed with ${rs.jwtAlg}, which KEYS_MODE=${keyring.mode} does not offer`);
          }
          return {
            scope: rs.scope,
            audience: rs.audience ?? rs.id,
            accessTokenTTL: rs.accessTokenTTL ?? config.ttl.accessToken,
            accessTokenFormat: rs.accessTokenFormat,
            ...(rs.accessTokenFormat === 'jwt' ? { jwt: { sign: { alg: rs.jwtAlg ?? 'ES256' } } } : {}),
          };
        },
      },
    },
    interactions: {
      ...(deps.mfa ? { policy: mfaInteractionPolicy(deps.mfa) } : {}),
      url: (_ctx, interaction) => `/interaction/${interaction.uid}`,
    },
    // The session's grant (with the client's admin consent added); first-party clients skip
    // consent: their grant covers what they ask for; otherwise a grant from what the user
    // allowed before and what an admin allowed everyone (src/consent/grants.ts).
    loadExistingGrant: async (ctx: KoaContextWithOIDC) => {
      const { client, session, provider } = ctx.oidc;
      const grantId = ctx.oidc.result?.consent?.grantId || session!.grantIdFor(client!.clientId);
      const existing = grantId ? await provider.Grant.find(grantId) : undefined;
      if (existing) return deps.consent ? deps.consent.withAdminConsent(ctx, existing) : existing;
      if (grantId && !deps.consent) return undefined;
      if (!client || !isFirstParty(client)) return deps.consent?.remembered(ctx);
      const grant = new provider.Grant({ clientId: client.clientId, accountId: session!.accountId });
      grant.addOIDCScope(String(ctx.oidc.params?.scope ?? 'openid'));
      const claims = ctx.oidc.params?.claims;
      if (typeof claims === 'string') {
        try {
          const parsed = JSON.parse(claims) as { id_token?: object; userinfo?: object };
          grant.addOIDCClaims([...Object.keys(parsed.id_token ?? {}), ...Object.keys(parsed.userinfo ?? {})]);
        } catch { /* oidc-provider has already rejected malformed claims */ }
      }
      for (const [indicator, rs] of Object.entries(ctx.oidc.resourceServers ?? {})) {
        grant.addResourceScope(indicator, (rs as { scope: string }).scope);
      }
      await grant.save();
      return grant;
    },
    // roles and permissions in access tokens whose scope carries `roles` (src/consent/roles.ts)
    ...(deps.consent ? { extraTokenClaims: (ctx, token) => deps.consent!.extraTokenClaims(ctx, token as never) } : {}),
    findAccount: async (ctx, sub) => {
      // what the user allowed this client, read beside the account (an authorization without a grant)
      deps.consent?.prefetch(ctx, sub);
      const roleClaims = (use: string, scope: string) => deps.consent?.accountClaims(sub, use, scope) ?? {};
      const unavailable = (err: unknown) => (err instanceof StorageUnavailable ? new ServiceUnavailable(undefined, { cause: err }) : err);
      // a refresh or code exchange read it already, beside the token (token-pipeline.ts)
      const prefetched = takePrefetchedAccount<Account | undefined>(sub);
      if (prefetched && accountCheckDeferrable()) {
        // the code exchange (the code is consumed already): the check travels with the
        // writes and is settled before the response, with findAccount's answer for a
        // missing or disabled account (invalid_grant)
        const refuse = () => new errors.InvalidGrant('authorization code invalid (referenced account not found)');
        const usable = prefetched.then((a) => (a && a.status !== 'disabled' ? a : undefined), (err: unknown) => { throw unavailable(err); });
        deferAccountCheck(usable.then((a) => { if (!a) throw refuse(); }));
        return {
          accountId: sub,
          claims: async (use, scope) => {
            const [a, roles] = await Promise.all([usable, roleClaims(use, scope)]);
            if (!a) throw refuse();
            return { ...standardClaims(a), ...roles } as { sub: string };
          },
        };
      }
      let account: Account | undefined;
      try {
        account = await (prefetched ?? accounts.findBySub(sub));
      } catch (err) {
        throw unavailable(err);
      }
      if (!account || account.status === 'disabled') return undefined;
      const found = account;
      return {
        accountId: found.sub,
        claims: async (use, scope) => ({ ...standardClaims(found), ...(await roleClaims(use, scope)) }) as { sub: string },
      };
    },
    renderError: async (ctx, out, error) => {
      const status = (error as { statusCode?: number }).statusCode ?? 500;
      ctx.type = 'html';
      ctx.body = await views.page('error', {
        title: status === 503 ? 'Temporarily unavailable' : 'Error',
        error: out.error,
        description: out.error_description,
        requestId: ctx.state?.requestId,
        status,
      });
    },
  };
}
