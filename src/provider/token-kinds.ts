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
// also carry, after their random part, the grant they belong to (and refresh
// tokens the account), ENCRYPTED, so that the token endpoint and
// introspection read token, grant (and account) in one round trip
// (token-pipeline.ts) while a token handed out reveals no internal id:
//
//   refresh token       <46 random>~<sealed(grantId, accountId)>
//   authorization code  <43 random>~<sealed(grantId)>
//   access token        <44 random>~<sealed(grantId)>
//
//   sealed = base64url(nonce(12) ‖ AES-256-GCM ciphertext ‖ tag(16)), under a
//   key derived (HKDF-SHA256, "idp token hints v1") from the keyring's
//   blind-index key, so every instance opens what any other sealed. A random
//   96-bit nonce per token keeps this key safe for 2^32 tokens (years at
//   millions a day); a new blind-index key starts a new count.
//
// These are hints, never trusted: the item is found by the whole value, and
// the prefetched grant and account are used only when the stored item names
// exactly them; a hint that does not open (tampered, another key, or an old
// plaintext hint) is no hint. The random part is what it was: the values are
// only longer. A value without hints (issued before, or by a provider where
// the pipeline is not installed) is looked up as before.
import crypto from 'node:crypto';
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

/** the key that seals hints: from the keyring's blind-index key, for this use only */
export function hintKey(blindIndexKey: Buffer): Buffer {
  return Buffer.from(crypto.hkdfSync('sha256', blindIndexKey, Buffer.alloc(0), 'idp token hints v1', 32));
}

/** a new value of `model`: its random part, then the grant (and account) it belongs to, sealed under `key` */
export function withHints(model: string, random: string, grantId: unknown, accountId: unknown, key: Buffer): string {
  const kind = HINTED[model];
  if (!kind || typeof grantId !== 'string' || !ID_CHARS.test(grantId)) return random;
  const plain = kind.account && typeof accountId === 'string' && accountId ? `${grantId}\0${accountId}` : grantId;
  const nonce = crypto.randomBytes(12);
  const cipher = crypto.createCipheriv('aes-256-gcm', key, nonce);
  const sealed = Buffer.concat([nonce, cipher.update(plain, 'utf8'), cipher.final(), cipher.getAuthTag()]);
  return `${random}${HINT_SEPARATOR}${sealed.toString('base64url')}`;
}

/** what a value says it belongs to (unverified), or {} when it has no hint that opens under `key` */
export function hintsOf(model: string, id: string, key: Buffer): { grantId?: string; accountId?: string } {
  const kind = HINTED[model];
  if (!kind || typeof id !== 'string') return {};
  const [, sealed, ...rest] = id.split(HINT_SEPARATOR);
  if (!sealed || rest.length || sealed.length > 700 || !/^[A-Za-z0-9_-]+$/.test(sealed)) return {};
  const raw = Buffer.from(sealed, 'base64url');
  if (raw.length < 12 + 16 + 1) return {};
  let plain: string;
  try {
    const decipher = crypto.createDecipheriv('aes-256-gcm', key, raw.subarray(0, 12));
    decipher.setAuthTag(raw.subarray(raw.length - 16));
    plain = Buffer.concat([decipher.update(raw.subarray(12, raw.length - 16)), decipher.final()]).toString('utf8');
  } catch {
    return {};
  }
  const [grantId, accountId, ...more] = plain.split('\0');
  if (!grantId || more.length || !ID_CHARS.test(grantId)) return {};
  return kind.account && accountId ? { grantId, accountId } : { grantId };
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
