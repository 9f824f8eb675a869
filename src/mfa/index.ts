// Two-step verification, assembled for the composition root (src/server.ts):
// the service, the hooks oidc-provider's configuration takes (acr check,
// account-page client), the step it adds to the login flow (the last one),
// and the routers (second login step, account page). docs/mfa.md.
import type Router from '@koa/router';
import type { Config } from '../config/index.ts';
import type { Storage } from '../storage/index.ts';
import type { Views } from '../http/views.ts';
import type { DynamoAccountStore } from '../accounts/dynamo-store.ts';
import type { LoginFlow, LoginStep } from '../interactions/flow.ts';
import type { AccountPageSection } from '../interactions/account-page.ts';
import { MfaService, type MfaEvents, type MfaSender } from './service.ts';
import { MfaStore } from './store.ts';
import type { MfaProviderHooks } from './policy.ts';
import { mfaInteractionRouter, mfaLoginStep } from './interaction.ts';
import { accountRouter } from './account.ts';

export interface MfaParts {
  config: Config;
  storage: Storage;
  accounts: DynamoAccountStore;
  events: MfaEvents;
  messages: MfaSender;
  views: Views;
  /** the login flow: MFA is one of its steps, and checks its codes with the flow's guard */
  flow: LoginFlow;
  /** sections other capabilities add to the account page (read when the page renders) */
  accountSections?: AccountPageSection[];
}

export interface Mfa {
  service: MfaService;
  hooks: MfaProviderHooks;
  loginStep: LoginStep;
  routers: Router[];
}

export function createMfa(p: MfaParts): Mfa {
  const service = new MfaService({ store: new MfaStore(p.storage), keys: p.accounts, events: p.events, messages: p.messages, config: p.config.mfa });
  const deps = { flow: p.flow, views: p.views, accounts: p.accounts, mfa: service, events: p.events, secureCookies: p.config.secureCookies };
  return {
    service,
    hooks: {
      policy: p.config.mfa.policy,
      hasTotp: (sub) => service.hasTotp(sub),
      isRemembered: (sub, device) => service.isRemembered(sub, device),
    },
    loginStep: mfaLoginStep(deps),
    routers: [
      mfaInteractionRouter(deps),
      accountRouter({ provider: p.flow.provider, views: p.views, accounts: p.accounts, mfa: service, issuer: p.config.issuer, secureCookies: p.config.secureCookies, sections: p.accountSections }),
    ],
  };
}
