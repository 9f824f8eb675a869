// Consent, assembled for the composition root (src/server.ts): the stores
// (what users and admins allowed, roles), the hooks oidc-provider runs
// (grants.ts, through src/provider/configuration.ts), the consent screen
// (screen.ts, through src/interactions/routes.ts), and the connected apps of
// the account page (account.ts). openid-configuration.md describes the
// consent model and the roles claims; the README the operator's side.
import type Router from '@koa/router';
import type Provider from 'oidc-provider';
import type { Config } from '../config/index.ts';
import type { Storage } from '../storage/index.ts';
import type { AccountPageSection } from '../interactions/account-page.ts';
import type { ConsentScreen } from '../interactions/consent.ts';
import { ConsentStore } from './store.ts';
import { RoleStore } from './roles.ts';
import { consentProviderHooks, type ConsentProviderHooks } from './grants.ts';
import { consentScreen, type EventsLike } from './screen.ts';
import { connectedApps } from './account.ts';

export interface ConsentParts {
  config: Config;
  storage: Pick<Storage, 'doc' | 'tables'>;
  events: EventsLike;
  provider: () => Provider;
}

export interface Consent {
  store: ConsentStore;
  roles: RoleStore;
  providerHooks: ConsentProviderHooks;
  screen: ConsentScreen;
  accountSection: AccountPageSection;
  routers: Router[];
}

export function createConsent(p: ConsentParts): Consent {
  const cacheMs = p.config.consent.cacheSeconds * 1000;
  const store = new ConsentStore(p.storage, { cacheMs });
  const roles = new RoleStore(p.storage, { cacheMs });
  const grantTtlSeconds = p.config.ttl.grant;
  const providerHooks = consentProviderHooks({
    store, roles, issuer: p.config.issuer, grantTtlSeconds, rolesClaimsMaxBytes: p.config.consent.rolesClaimsMaxBytes,
  });
  const page = consentScreen({ provider: p.provider, store, events: p.events, grantTtlSeconds });
  const apps = connectedApps({ provider: p.provider, store, events: p.events });
  return { store, roles, providerHooks, screen: page.screen, accountSection: apps.section, routers: [page.router, apps.router] };
}
