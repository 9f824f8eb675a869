// Opaque tokens whose length tells their kind, so a lookup by value reads
// one DynamoDB item instead of three.
//
// Introspection and revocation get a bare token value and oidc-provider looks
// it up as an AccessToken, a ClientCredentials token and a RefreshToken at
// once (lib/helpers/token_find.js): three GetItems, of which at most one can
// hit. We issue each of those kinds with its own amount of randomness, hence
// its own length (oidc-provider's `formats.bitsOfOpaqueRandomness`; nanoid
// spends 6 bits a character), and the adapter skips the models a value cannot
// belong to:
//
//   AccessToken        264 bits → 44 characters
//   ClientCredentials  270 bits → 45 characters
//   RefreshToken       276 bits → 46 characters
//   anything else      256 bits → 43 characters (oidc-provider's default)
//
// Tokens issued before this existed are 43 characters whatever their kind, so
// a 43-character value is still looked up as every kind; any other length
// that is not the model's own is answered "not found" without a read. The
// extra randomness only makes the values harder to guess.
//
// Refresh tokens, authorization codes and opaque access tokens of a grant
// also name, after their random part, the grant they belong to (and refresh
// tokens the account), so that the token endpoint and introspection read
// token, grant (and account) in one round trip (token-pipeline.ts):
//
//   refresh token       <46 random>~<grantId>~<base64url(accountId)>
//   authorization code  <43 random>~<grantId>
//   access token        <44 random>~<grantId>
//
// These are hints, never trusted: the item is found by the whole value, and
// the prefetched grant and account are used only when the stored item names
// exactly them. Codes travel through the browser and access tokens to
// resource servers, so they carry no account id; the refresh token goes only
// to the client, which has the `sub` already. The random part is what it
// was: the values are only longer. A value without hints (issued before, or
// by a provider where the pipeline is not installed) is looked up as before.
import type { Adapter, AdapterPayload, KoaContextWithOIDC } from 'oidc-provider';

const BITS: Record<string, number> = { AccessToken: 264, ClientCredentials: 270, RefreshToken: 276 };
const DEFAULT_BITS = 256;
const length = (bits: number) => Math.ceil(bits / 6);
const OWN_LENGTH = new Map(Object.entries(BITS).map(([kind, bits]) => [kind, length(bits)]));
const LEGACY_LENGTH = length(DEFAULT_BITS);

/** oidc-provider's formats.bitsOfOpaqueRandomness */
export function bitsOfOpaqueRandomness(_ctx: KoaContextWithOIDC | undefined, token: { kind?: string }): number {
  return BITS[token.kind ?? ''] ?? DEFAULT_BITS;
}

/** separates the random part of a value from its hints: not in nanoid's alphabet, unreserved in URLs */
export const HINT_SEPARATOR = '~';
/** the models whose values carry hints, and whether they name the account too */
export const HINTED: Record<string, { account: boolean }> = {
  RefreshToken: { account: true }, AuthorizationCode: { account: false }, AccessToken: { account: false },
};
const ID_CHARS = /^[A-Za-z0-9_-]{1,128}$/;

/** true when a value of this shape may be a token of `model` */
export function mayBelongTo(model: string, id: string): boolean {
  const own = OWN_LENGTH.get(model);
  if (own === undefined) return true;
  const cut = id.indexOf(HINT_SEPARATOR);
  if (cut >= 0) return model in HINTED && cut === own;
  return id.length === own || id.length === LEGACY_LENGTH;
}

/** a new value of `model`: its random part, then the grant (and account) it belongs to */
export function withHints(model: string, random: string, grantId: unknown, accountId: unknown): string {
  const kind = HINTED[model];
  if (!kind || typeof grantId !== 'string' || !ID_CHARS.test(grantId)) return random;
  const parts = [random, grantId];
  if (kind.account && typeof accountId === 'string' && accountId) parts.push(Buffer.from(accountId, 'utf8').toString('base64url'));
  return parts.join(HINT_SEPARATOR);
}

/** what a value says it belongs to (unverified), or {} */
export function hintsOf(model: string, id: string): { grantId?: string; accountId?: string } {
  const kind = HINTED[model];
  if (!kind || typeof id !== 'string') return {};
  const [, grantId, account, ...rest] = id.split(HINT_SEPARATOR);
  if (!grantId || rest.length || !ID_CHARS.test(grantId)) return {};
  if (!kind.account || !account || account.length > 344 || !/^[A-Za-z0-9_-]+$/.test(account)) return { grantId };
  return { grantId, accountId: Buffer.from(account, 'base64url').toString('utf8') };
}

type AdapterClass = new (name: string) => Adapter;

/** Wraps an adapter class so that find() of AccessToken, ClientCredentials and RefreshToken skips values of another kind's length. */
export function withTokenKindLookup(Base: AdapterClass): AdapterClass {
  return class TokenKindAdapter extends Base {
    private readonly model: string;

    constructor(name: string) {
      super(name);
      this.model = name;
    }

    override async find(id: string): Promise<AdapterPayload | undefined> {
      if (typeof id === 'string' && !mayBelongTo(this.model, id)) return undefined;
      return (await super.find(id)) ?? undefined;
    }
  };
}
