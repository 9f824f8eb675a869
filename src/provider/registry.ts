// Clients and resource servers, stored through the same DynamoDB adapter as
// oidc-provider's own models (model names "Client" and "ResourceServer").
// Listing is a filtered Scan (scanModel in adapters/dynamodb.ts), used by the CLI.
import type { Adapter, AdapterPayload } from 'oidc-provider';
import type { Storage } from '../storage/index.ts';
import { createDynamoAdapter, scanModel, type DynamoAdapterOptions } from '../../adapters/dynamodb.ts';
import { withClientCache, type ClientCache } from './client-cache.ts';
import { withSealedClientSecrets } from './sealed-clients.ts';
import type { Keyring, SigningAlg } from '../keys/types.ts';

export interface ResourceServer {
  /** the resource indicator (an absolute URI) */
  id: string;
  /** space-separated scopes the resource server accepts */
  scope: string;
  /** 'jwt' (RFC 9068) or 'opaque' */
  accessTokenFormat: 'jwt' | 'opaque';
  /** signing alg of JWT access tokens */
  jwtAlg?: SigningAlg;
  accessTokenTTL?: number;
  audience?: string;
  /** confidential clients (the API's own) that may introspect access tokens issued for this resource server */
  introspectionClients?: string[];
}

export class Registry {
  readonly clients: Adapter;
  readonly resources: Adapter;
  private readonly table: DynamoAdapterOptions;

  /**
   * With `keyring`, client secrets are sealed on write and opened on read
   * (src/provider/sealed-clients.ts); the server, the CLI and the seed file
   * always pass it. With `clientCache` (the server's), client
   * writes here invalidate it at once.
   */
  constructor(storage: Storage, opts: { clientCache?: ClientCache; keyring?: Keyring } = {}) {
    this.table = { doc: storage.doc, table: storage.tables.oidc };
    const Plain = createDynamoAdapter(this.table);
    const keyring = opts.keyring;
    const Sealed = keyring ? withSealedClientSecrets(Plain, () => keyring) : Plain;
    const AdapterClass = opts.clientCache ? withClientCache(Sealed, opts.clientCache) : Sealed;
    this.clients = new AdapterClass('Client');
    this.resources = new AdapterClass('ResourceServer');
  }

  async putClient(metadata: AdapterPayload & { client_id: string }): Promise<void> {
    await this.clients.upsert(metadata.client_id, metadata, 0);
  }

  /** client metadata as stored: secrets stay sealed (`client_secret_sealed`) */
  async listClients(): Promise<AdapterPayload[]> {
    return (await scanModel(this.table, 'Client')).sort((a, b) => String(a.client_id).localeCompare(String(b.client_id)));
  }

  /** every client with its secret opened (needs the keyring) */
  async listClientsOpened(): Promise<AdapterPayload[]> {
    const ids = (await this.listClients()).map((c) => String(c.client_id));
    return (await Promise.all(ids.map((id) => this.clients.find(id)))).filter((c): c is AdapterPayload => c !== undefined);
  }

  async removeClient(id: string): Promise<boolean> {
    const existed = await this.clients.find(id);
    await this.clients.destroy(id);
    return existed !== undefined;
  }

  async putResource(rs: ResourceServer): Promise<void> {
    await this.resources.upsert(rs.id, rs as unknown as AdapterPayload, 0);
  }

  async findResource(id: string): Promise<ResourceServer | undefined> {
    return (await this.resources.find(id)) as unknown as ResourceServer | undefined;
  }

  async listResources(): Promise<ResourceServer[]> {
    return (await scanModel(this.table, 'ResourceServer')) as unknown as ResourceServer[];
  }

  async removeResource(id: string): Promise<boolean> {
    const existed = await this.resources.find(id);
    await this.resources.destroy(id);
    return existed !== undefined;
  }
}
