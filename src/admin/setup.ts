// What the console and the API need registered, made at start-up (not a
// migration: the console's redirect URI follows ISSUER, which a migration
// does not know), idempotently: written only when missing or different.
//   - the client `admin-console`: public, code + PKCE (S256), first-party,
//     mfa_policy required, redirect URI <issuer>/admin/callback;
//   - the resource server <issuer>/admin/api/v1 with every admin scope
//     (JWT access tokens, verified locally by api.ts);
//   - the role `admin` (users get it with `idp users roles add --role admin`).
import type { AdapterPayload } from 'oidc-provider';
import type { Registry, ResourceServer } from '../provider/registry.ts';
import type { RoleStore } from '../consent/roles.ts';
import type { SigningAlg } from '../keys/types.ts';
import { ADMIN_API_PATH, ADMIN_CONSOLE_CLIENT, ADMIN_ROLE, ADMIN_SCOPE_VALUES } from '../config/admin.ts';

export const consoleRedirectUri = (issuer: string) => `${issuer}/admin/callback`;

export function consoleClient(issuer: string): AdapterPayload & { client_id: string } {
  return {
    client_id: ADMIN_CONSOLE_CLIENT, client_name: 'Admin console', token_endpoint_auth_method: 'none',
    redirect_uris: [consoleRedirectUri(issuer)], grant_types: ['authorization_code'], response_types: ['code'],
    first_party: true, mfa_policy: 'required',
  };
}

const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

export async function ensureAdminSetup(p: { issuer: string; registry: Registry; roles: RoleStore; algs: readonly SigningAlg[]; accessTokenTTL?: number }): Promise<void> {
  const wanted = consoleClient(p.issuer);
  const current = await p.registry.clients.find(ADMIN_CONSOLE_CLIENT);
  if (!current || Object.entries(wanted).some(([k, v]) => !same(current[k], v))) await p.registry.putClient(wanted);

  const id = `${p.issuer}${ADMIN_API_PATH}`;
  const rs: ResourceServer = {
    id, scope: ADMIN_SCOPE_VALUES.join(' '), accessTokenFormat: 'jwt', jwtAlg: p.algs.includes('ES256') ? 'ES256' : p.algs[0],
    accessTokenTTL: Math.min(p.accessTokenTTL ?? 600, 3600),
  };
  const had = await p.registry.findResource(id);
  if (!had || had.scope !== rs.scope || had.accessTokenFormat !== 'jwt') await p.registry.putResource({ ...had, ...rs });

  if (!(await p.roles.get(ADMIN_ROLE))) await p.roles.add(ADMIN_ROLE, { description: 'Administrators of this IdP: the admin console' });
}
