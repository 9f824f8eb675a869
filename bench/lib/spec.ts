// What the bench hands the baseline process (bench/baseline.ts), as JSON.
export interface BenchResourceServer {
  id: string;
  scope: string;
  accessTokenFormat: 'jwt' | 'opaque';
  jwtAlg?: 'RS256' | 'PS256' | 'ES256' | 'EdDSA';
}

export interface BaselineSpec {
  issuer: string;
  port: number;
  /** the private signing JWKs of our IdP's keyring (same keys, same algorithms) */
  jwks: object[];
  cookieKeys: string[];
  /** client metadata, as `idp clients add` stored it */
  clients: object[];
  resourceServers: BenchResourceServer[];
  account: { sub: string; email: string; name: string; passwordHash: string };
  /** imported legacy users: bcrypt hash (one for all), upgraded to argon2id on first login */
  legacy: { emails: string[]; bcryptHash: string; argon2: { memoryKiB: number; timeCost: number; parallelism: number } };
  /** GET /forward-auth: a bare version (verify the bearer JWT or load the session, sign an ES256 internal JWT; no cache, no routes) */
  forwardAuth: { audience: string };
  /** the second baseline: oidc-provider's state on DynamoDB through the community adapter (absent: its memory adapter) */
  storage?: { endpoint: string; region: string; table: string };
  ttl: { accessToken: number; idToken: number; refreshToken: number; session: number; interaction: number; grant: number };
}
