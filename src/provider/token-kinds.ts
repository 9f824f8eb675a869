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

/** true when a value of this length may be a token of `model` */
export function mayBelongTo(model: string, id: string): boolean {
  const own = OWN_LENGTH.get(model);
  return own === undefined || id.length === own || id.length === LEGACY_LENGTH;
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
