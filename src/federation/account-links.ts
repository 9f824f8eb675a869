// Linked sign-ins on the account page (/account): each upstream identity that
// signs in to this account, with when it was linked and last used, and a
// button that removes it (POST /account/links/remove, with the page's CSRF
// token). The last way into an account without a password cannot be removed:
// the account would be left with no way in. `federation.unlinked` is emitted.
import crypto from 'node:crypto';
import Router from '@koa/router';
import { bodyParser } from '@koa/bodyparser';
import type { Context } from 'koa';
import type Provider from 'oidc-provider';
import type { Account, FederatedKey, FederationAccounts } from '../accounts/types.ts';
import { accountSession, verifyAccountCsrf, type AccountPageSection } from '../interactions/account-page.ts';
import { InteractionError } from '../interactions/errors.ts';
import type { ConnectionStore } from './connections.ts';
import type { EventsLike } from './login.ts';

export interface AccountLinksDeps {
  provider: () => Provider;
  accounts: FederationAccounts & { findBySub(sub: string): Promise<Account | undefined> };
  connections: ConnectionStore;
  events: EventsLike;
}

/** an opaque reference to one link, for the form (no identifiers in the page) */
export const linkRef = (k: FederatedKey) => crypto.createHash('sha256').update(`${k.connection}\0${k.issuer}\0${k.subject}`).digest('base64url').slice(0, 22);

export function accountLinks(deps: AccountLinksDeps): { section: AccountPageSection; router: Router } {
  const section: AccountPageSection = {
    async render(_ctx, s) {
      const [account, connections] = await Promise.all([deps.accounts.findBySub(s.accountId), deps.connections.list()]);
      const names = new Map(connections.map((c) => [c.id, c.name]));
      const links = account?.federated ?? [];
      const lastWay = links.length === 1 && !account?.passwordHash;
      return {
        id: 'links', title: 'Sign-ins from other services',
        empty: 'None. You sign in here with your password.',
        items: links.map((l) => ({
          text: names.get(l.connection) ?? l.connection,
          detail: `Linked ${l.linkedAt.slice(0, 10)}${l.lastLoginAt ? `, last used ${l.lastLoginAt.slice(0, 10)}` : ''}${lastWay ? ' — your only way to sign in' : ''}`,
          ...(lastWay ? {} : { action: { url: '/account/links/remove', fields: { link: linkRef(l) }, button: 'Remove' } }),
        })),
      };
    },
  };

  const router = new Router({ prefix: '/account' });
  const body = bodyParser({ enableTypes: ['form'], formLimit: '16kb' });
  router.post('/links/remove', body, async (ctx: Context) => {
    ctx.set('Cache-Control', 'no-store');
    const s = await accountSession(deps.provider(), ctx);
    if (!s) {
      ctx.status = 303;
      ctx.redirect('/account/login');
      return;
    }
    const fields = ((ctx.request as unknown as { body?: Record<string, unknown> }).body ?? {});
    verifyAccountCsrf(ctx, s, fields.csrf);
    const account = await deps.accounts.findBySub(s.accountId);
    const link = account?.federated.find((l) => linkRef(l) === fields.link);
    if (!account || !link) throw new InteractionError(400, 'invalid_request', 'That sign-in is not linked to your account.', [{ href: '/account', text: 'Back to your account' }]);
    if (account.federated.length === 1 && !account.passwordHash) {
      throw new InteractionError(409, 'invalid_request', 'This is your only way to sign in, so it cannot be removed. Set a password first.', [{ href: '/account', text: 'Back to your account' }]);
    }
    await deps.events.commit({ type: 'federation.unlinked', sub: account.sub, requestId: ctx.state.requestId, data: { connection: link.connection, by: 'user' } },
      () => deps.accounts.unlinkFederated(account.sub, link), { onlyIfWritten: true });
    ctx.status = 303;
    ctx.redirect('/account?done=unlinked');
  });
  return { section, router };
}
