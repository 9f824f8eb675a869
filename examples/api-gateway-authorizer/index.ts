// Example: an AWS API Gateway (REST API) Lambda authorizer that accepts the
// IdP's JWT access tokens. It verifies the token with `jose` against the
// IdP's JWKS (kept across invocations of a warm Lambda, fetched again on an
// unknown `kid`) — issuer, audience, `typ: at+jwt`, expiry and, optionally, a
// scope — and returns an IAM policy: Allow for the method being called, or
// Deny. A request without a token is answered 401 ("Unauthorized"), as API
// Gateway expects.
//
// Environment: ISSUER, AUDIENCE (the API's resource indicator), SCOPE
// (optional: required scope), JWKS_URI (optional, default ISSUER/jwks).
// Works as a TOKEN authorizer (identity source: the Authorization header) and
// as a REQUEST authorizer. Deploy bundled (esbuild or tsc) for the Node 22
// runtime; with authorizer caching on, API Gateway reuses the policy for the
// same token on every method, so either set the TTL to 0 or make the policy's
// Resource cover what the token may call. Tested by test/examples.test.ts.
import { createRemoteJWKSet, jwtVerify } from 'jose';

export interface AuthorizerEvent {
  type: 'TOKEN' | 'REQUEST';
  methodArn: string;
  /** TOKEN authorizers */
  authorizationToken?: string;
  /** REQUEST authorizers */
  headers?: Record<string, string | undefined>;
}

export interface AuthorizerResult {
  principalId: string;
  policyDocument: { Version: '2012-10-17'; Statement: Array<{ Action: 'execute-api:Invoke'; Effect: 'Allow' | 'Deny'; Resource: string }> };
  /** passed to the backend integration as $context.authorizer.* (strings only) */
  context?: Record<string, string>;
}

export interface AuthorizerOptions {
  issuer: string;
  audience: string;
  scope?: string;
  jwksUri?: string;
}

const policy = (principalId: string, effect: 'Allow' | 'Deny', resource: string, context?: Record<string, string>): AuthorizerResult => ({
  principalId,
  policyDocument: { Version: '2012-10-17', Statement: [{ Action: 'execute-api:Invoke', Effect: effect, Resource: resource }] },
  ...(context ? { context } : {}),
});

export function createAuthorizer(opts: AuthorizerOptions): (event: AuthorizerEvent) => Promise<AuthorizerResult> {
  const jwks = createRemoteJWKSet(new URL(opts.jwksUri ?? `${opts.issuer}/jwks`), { cooldownDuration: 30_000, cacheMaxAge: 10 * 60_000 });
  return async (event) => {
    const header = event.type === 'TOKEN'
      ? event.authorizationToken
      : Object.entries(event.headers ?? {}).find(([k]) => k.toLowerCase() === 'authorization')?.[1];
    const token = /^Bearer\s+(\S+)$/i.exec(header ?? '')?.[1];
    // API Gateway turns exactly this error into a 401
    if (!token) throw new Error('Unauthorized');
    try {
      const { payload } = await jwtVerify(token, jwks, {
        issuer: opts.issuer, audience: opts.audience, typ: 'at+jwt',
        algorithms: ['ES256', 'RS256', 'PS256', 'EdDSA'], requiredClaims: ['exp', 'sub'], clockTolerance: 30,
      });
      const scope = typeof payload.scope === 'string' ? payload.scope : '';
      if (opts.scope && !scope.split(' ').includes(opts.scope)) return policy(payload.sub!, 'Deny', event.methodArn);
      return policy(payload.sub!, 'Allow', event.methodArn, {
        sub: payload.sub!, scope, ...(typeof payload.client_id === 'string' ? { clientId: payload.client_id } : {}),
      });
    } catch {
      return policy('anonymous', 'Deny', event.methodArn);
    }
  };
}

let configured: ((event: AuthorizerEvent) => Promise<AuthorizerResult>) | undefined;

/** the Lambda entry point, configured from the environment on first use */
export async function handler(event: AuthorizerEvent): Promise<AuthorizerResult> {
  if (!configured) {
    const { ISSUER, AUDIENCE, SCOPE, JWKS_URI } = process.env;
    if (!ISSUER || !AUDIENCE) throw new Error('the authorizer needs ISSUER and AUDIENCE');
    configured = createAuthorizer({ issuer: ISSUER, audience: AUDIENCE, scope: SCOPE || undefined, jwksUri: JWKS_URI || undefined });
  }
  return configured(event);
}
