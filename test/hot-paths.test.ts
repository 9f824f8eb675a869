// The request hot paths: the client metadata cache in front of the Client
// model (TTL, invalidation on writes through the Registry, no caching of a
// read that raced a write), the bounded TTL map, and opaque token lengths by
// kind (one DynamoDB read per lookup by value) — against the real adapter on
// dynalite, with the DynamoDB commands counted.
import { expect } from 'chai';
import type { Adapter, AdapterPayload } from 'oidc-provider';
import { ClientCache, TtlCache, withClientCache } from '../src/provider/client-cache.ts';
import { bitsOfOpaqueRandomness, mayBelongTo, withTokenKindLookup } from '../src/provider/token-kinds.ts';
import { Registry } from '../src/provider/registry.ts';
import { createDynamoAdapter } from '../adapters/dynamodb.ts';
import { startDynalite, openTestStorage, recordCommands, type TestBackend, type TestStorage } from './support/dynamo.ts';

describe('hot paths', function () {
  this.timeout(30_000);

  describe('TtlCache', () => {
    it('expires entries after the TTL, caches undefined, and drops the oldest beyond maxEntries', () => {
      let now = 1000;
      const c = new TtlCache<string | undefined>({ ttlMs: 100, maxEntries: 2, now: () => now });
      c.set('a', 'A');
      c.set('none', undefined);
      expect(c.get('a')).to.deep.equal({ at: 1000, value: 'A' });
      expect(c.get('none')).to.deep.equal({ at: 1000, value: undefined });
      now += 100;
      expect(c.get('a')).to.equal(undefined);
      c.set('a', 'A');
      c.set('b', 'B');
      c.set('c', 'C');
      expect(c.size).to.equal(2);
      expect(c.get('a')).to.equal(undefined);
      expect(c.get('c')?.value).to.equal('C');
    });
  });

  describe('ClientCache', () => {
    it('reads once per TTL, shares concurrent misses, and hands out copies', async () => {
      let now = 0;
      let reads = 0;
      const cache = new ClientCache({ ttlMs: 5000, now: () => now });
      const load = async () => {
        reads++;
        await new Promise((r) => setTimeout(r, 5));
        return { client_id: 'a', redirect_uris: ['https://x.test/cb'] } as AdapterPayload;
      };
      const [one, two] = await Promise.all([cache.find('a', load), cache.find('a', load)]);
      expect(reads).to.equal(1);
      expect(one).to.deep.equal(two);
      expect(one).to.not.equal(two);
      (one!.redirect_uris as string[]).push('https://evil.test/cb');
      expect((await cache.find('a', load))!.redirect_uris).to.deep.equal(['https://x.test/cb']);
      expect(reads).to.equal(1);
      now += 5000;
      await cache.find('a', load);
      expect(reads).to.equal(2);
    });

    it('caches unknown clients too, until invalidated', async () => {
      const cache = new ClientCache();
      let reads = 0;
      const missing = async () => { reads++; return undefined; };
      expect(await cache.find('x', missing)).to.equal(undefined);
      expect(await cache.find('x', missing)).to.equal(undefined);
      expect(reads).to.equal(1);
      cache.invalidate('x');
      await cache.find('x', missing);
      expect(reads).to.equal(2);
    });

    it('does not cache a read that was in flight when the client changed', async () => {
      const cache = new ClientCache();
      let release!: () => void;
      const stale = cache.find('a', () => new Promise((r) => { release = () => r({ client_id: 'a', v: 1 } as AdapterPayload); }));
      cache.invalidate('a');
      release();
      expect(await stale).to.deep.include({ v: 1 });
      expect(await cache.find('a', async () => ({ client_id: 'a', v: 2 } as AdapterPayload))).to.deep.include({ v: 2 });
    });
  });

  describe('on dynalite', () => {
    let backend: TestBackend;
    let storage: TestStorage;
    before(async () => {
      backend = await startDynalite();
      storage = await openTestStorage(backend);
    });
    after(async () => {
      await storage?.close();
      await backend?.close();
    });

    it('serves the Client model from the cache and sees Registry writes at once', async () => {
      const cache = new ClientCache();
      const registry = new Registry(storage, { clientCache: cache });
      const Provider = withClientCache(createDynamoAdapter({ doc: storage.doc, table: storage.tables.oidc }), cache);
      const clients: Adapter = new Provider('Client');
      const log = recordCommands(storage.doc);
      try {
        await registry.putClient({ client_id: 'app', client_secret: 'one' });
        log.reset();
        expect(await clients.find('app')).to.deep.include({ client_secret: 'one' });
        expect(await clients.find('app')).to.deep.include({ client_secret: 'one' });
        expect(log.names).to.deep.equal(['GetCommand']);
        await registry.putClient({ client_id: 'app', client_secret: 'two' });
        expect(await clients.find('app')).to.deep.include({ client_secret: 'two' });
        await registry.removeClient('app');
        expect(await clients.find('app')).to.equal(undefined);
        // other models pass through
        const sessions: Adapter = new Provider('Session');
        log.reset();
        await sessions.find('nope');
        await sessions.find('nope');
        expect(log.names).to.deep.equal(['GetCommand', 'GetCommand']);
      } finally {
        log.restore();
      }
    });

    it('gives AccessToken, ClientCredentials and RefreshToken values lengths of their own, and reads only the model a value can belong to', async () => {
      const lengths = Object.fromEntries(['AccessToken', 'ClientCredentials', 'RefreshToken', 'AuthorizationCode', 'Session']
        .map((kind) => [kind, Math.ceil(bitsOfOpaqueRandomness(undefined, { kind }) / 6)]));
      expect(lengths).to.deep.equal({ AccessToken: 44, ClientCredentials: 45, RefreshToken: 46, AuthorizationCode: 43, Session: 43 });
      expect(mayBelongTo('ClientCredentials', 'x'.repeat(45))).to.equal(true);
      expect(mayBelongTo('ClientCredentials', 'x'.repeat(44))).to.equal(false);
      expect(mayBelongTo('ClientCredentials', 'x'.repeat(43)), 'tokens issued before: every kind').to.equal(true);
      expect(mayBelongTo('Grant', 'x'.repeat(10))).to.equal(true);

      const Cls = withTokenKindLookup(createDynamoAdapter({ doc: storage.doc, table: storage.tables.oidc }));
      const at: Adapter = new Cls('AccessToken');
      const cc: Adapter = new Cls('ClientCredentials');
      const rt: Adapter = new Cls('RefreshToken');
      const ccValue = 'c'.repeat(45);
      const legacy = 'l'.repeat(43);
      await cc.upsert(ccValue, { clientId: 'svc', kind: 'ClientCredentials' } as AdapterPayload, 60);
      await cc.upsert(legacy, { clientId: 'svc', kind: 'ClientCredentials' } as AdapterPayload, 60);
      const log = recordCommands(storage.doc);
      try {
        // what token_find.js does for a value without a hint
        const found = await Promise.all([at.find(ccValue), cc.find(ccValue), rt.find(ccValue)]);
        expect(found.filter(Boolean)).to.have.length(1);
        expect(log.names).to.deep.equal(['GetCommand']);
        log.reset();
        const old = await Promise.all([at.find(legacy), cc.find(legacy), rt.find(legacy)]);
        expect(old[1]).to.deep.include({ clientId: 'svc' });
        expect(log.names).to.have.length(3);
      } finally {
        log.restore();
      }
    });
  });
});
