// Federation, assembled for the composition root (src/server.ts): the
// connection store, the upstream client, the strategy and page extension it
// adds to the login flow, its link step, its routers (callback, continue,
// link proof, account page's linked sign-ins, upstream logout return), the
// middleware that adds upstream logout around oidc-provider, and the account
// page section. README and openid-configuration.md tell operators and
// integrators how to set it up.
import type Router from '@koa/router';
import type { Middleware } from 'koa';
import type { Config } from '../config/index.ts';
import type { Logger } from '../logging/index.ts';
import type { Storage } from '../storage/index.ts';
import type { Keyring } from '../keys/types.ts';
import type { Views } from '../http/views.ts';
import type { Account, FederationAccounts } from '../accounts/types.ts';
import type { LoginFlow, LoginPageExtension, LoginStep } from '../interactions/flow.ts';
import type { LoginStrategy } from '../interactions/strategies/types.ts';
import type { AccountPageSection } from '../interactions/account-page.ts';
import { ConnectionStore } from './connections.ts';
import type { Connection } from './types.ts';
import { identityOf, upstreamClient } from './upstream.ts';
import { federationLogin, type EventsLike } from './login.ts';
import { linkStep } from './link-step.ts';
import { accountLinks } from './account-links.ts';
import { upstreamLogout } from './logout.ts';

export interface FederationParts {
  config: Config;
  storage: Storage;
  keyring: Keyring;
  accounts: FederationAccounts & { findByLogin(login: string): Promise<Account | undefined>; findBySub(sub: string): Promise<Account | undefined> };
  flow: LoginFlow;
  views: Views;
  events: EventsLike;
  messages: { send(m: { channel: 'email'; to: string; template: string; vars: Record<string, string>; sub?: string }): Promise<unknown> };
  log: Logger;
  /** an upstream identity signed in to (or was linked to) an account: e.g. set the roles its claims give */
  onSignedIn?(sub: string, c: Connection, claims: Record<string, unknown>): Promise<void>;
}

export interface Federation {
  connections: ConnectionStore;
  strategy: LoginStrategy;
  extension: LoginPageExtension;
  linkStep: LoginStep;
  routers: Router[];
  /** around oidc-provider: upstream logout after ours */
  middleware: Middleware;
  accountSection: AccountPageSection;
  /** extra CSP form-action sources: plain-http (loopback) upstreams the sign-in buttons lead to */
  formActionSources(): string[];
}

export function createFederation(p: FederationParts): Federation {
  const connections = new ConnectionStore(p.storage, p.keyring);
  const client = upstreamClient();
  const logout = upstreamLogout({
    connections, endSessionUrl: (c, o) => client.endSessionUrl(c, o), views: p.views, log: p.log,
    issuer: p.config.issuer, secureCookies: p.config.secureCookies, sessionSeconds: p.config.ttl.session,
  });
  const login = federationLogin({
    flow: p.flow, accounts: p.accounts, connections,
    upstream: { authorizationUrl: (c, o) => client.authorizationUrl(c, o), callback: (c, u, k) => client.callback(c, u, k), identityOf },
    onUpstreamAnswer: logout.remember, onSignedIn: p.onSignedIn,
    storage: p.storage, events: p.events, log: p.log, issuer: p.config.issuer, secureCookies: p.config.secureCookies,
  });
  const link = linkStep({
    flow: p.flow, views: p.views, accounts: p.accounts, storage: p.storage, codeKey: () => p.keyring.blindIndexKey(),
    messages: p.messages, events: p.events, log: p.log, secureCookies: p.config.secureCookies,
    connections, onSignedIn: p.onSignedIn,
  });
  const links = accountLinks({ provider: p.flow.provider, accounts: p.accounts, connections, events: p.events });
  return {
    connections,
    strategy: login.strategy,
    extension: login.extension,
    linkStep: link.step,
    routers: [...login.routers, link.router, links.router, logout.router],
    middleware: logout.middleware,
    accountSection: links.section,
    formActionSources: login.formActionSources,
  };
}
