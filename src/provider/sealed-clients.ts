// Client secrets are stored wrapped by the keyring, never in plaintext:
// the Client model's payload holds `client_secret_sealed` instead of
// `client_secret`, bound to the client id (AAD). oidc-provider still sees a
// plain `client_secret` (and compares it in constant time, no hash). Other
// models pass through untouched.
import type { Adapter, AdapterPayload } from 'oidc-provider';
import { errors } from 'oidc-provider';
import { KeyIntegrityError, type Keyring } from '../keys/types.ts';

type AdapterClass = new (name: string) => Adapter;

const context = (clientId: string) => `client-secret:${clientId}`;

export async function sealClient(keyring: Keyring, id: string, payload: AdapterPayload): Promise<AdapterPayload> {
  const { client_secret: secret, ...rest } = payload as AdapterPayload & { client_secret?: string };
  if (typeof secret !== 'string') return payload;
  return { ...rest, client_secret_sealed: await keyring.wrap(Buffer.from(secret), context(id)) } as AdapterPayload;
}

// unwrapping can be a KMS call (kms-envelope): remember what was opened
const opened = new Map<string, string>();
const MAX_OPENED = 1000;

export async function openClient(keyring: Keyring, id: string, payload: AdapterPayload): Promise<AdapterPayload> {
  const { client_secret_sealed: sealed, ...rest } = payload as AdapterPayload & { client_secret_sealed?: string };
  if (typeof sealed !== 'string') return payload;
  const memoKey = `${id}\u0000${sealed}`;
  let secret = opened.get(memoKey);
  if (secret === undefined) {
    secret = (await keyring.unwrap(sealed, context(id))).toString();
    if (opened.size >= MAX_OPENED) opened.delete(opened.keys().next().value!);
    opened.set(memoKey, secret);
  }
  return { ...rest, client_secret: secret } as AdapterPayload;
}

/**
 * A sealed secret that fails its integrity check (tampered, or moved from
 * another client) makes the client unusable: invalid_client, never a 500.
 * KMS outages stay what they are (503 temporarily_unavailable).
 */
export function withSealedClientSecrets(Base: AdapterClass, keyring: () => Keyring, onIntegrityError: (clientId: string, err: Error) => void = () => {}): AdapterClass {
  return class SealedClients extends (Base as new (name: string) => Adapter & object) {
    readonly #model: string;
    constructor(name: string) {
      super(name);
      this.#model = name;
    }

    override async upsert(id: string, payload: AdapterPayload, expiresIn: number): Promise<void> {
      return super.upsert(id, this.#model === 'Client' ? await sealClient(keyring(), id, payload) : payload, expiresIn);
    }

    override async find(id: string): Promise<AdapterPayload | undefined> {
      const found = (await super.find(id)) as AdapterPayload | undefined;
      if (!found || this.#model !== 'Client') return found;
      try {
        return await openClient(keyring(), id, found);
      } catch (err) {
        if (!(err instanceof KeyIntegrityError)) throw err;
        onIntegrityError(id, err);
        throw new errors.InvalidClientAuth('sealed client secret failed its integrity check');
      }
    }
  } as AdapterClass;
}
