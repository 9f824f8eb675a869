// Federation connections: the store (validation, conditional writes, sealed
// secrets, the in-process cache, home-realm lookup) on dynalite with a real
// local keyring, and `idp connections ...` in-process against a running IdP
// and as a process (exit codes).
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import net from 'node:net';
import { spawn } from 'node:child_process';
import { GetCommand } from '@aws-sdk/lib-dynamodb';
import { loadConfig } from '../src/config/index.ts';
import { openKeyring, type Keyring } from '../src/keys/index.ts';
import { ConnectionStore, redirectUriFor, defaultDiscoveryUrl } from '../src/federation/connections.ts';
import { ConnectionConflict, ConnectionExists, ConnectionInvalid, ConnectionNotFound, type ConnectionInput } from '../src/federation/types.ts';
import { startBackend, openTestStorage, uniquePrefix, type TestBackend, type TestStorage } from './support/dynamo.ts';
import { startTestIdp, tempDir, type TestIdp } from './support/idp.ts';
import { run as runCli } from '../src/cli/main.ts';
import { startUpstream, type Upstream } from './support/upstream.ts';

const TENANT = '11111111-2222-4333-8444-555555555555';

describe('federation connections', function () {
  this.timeout(60_000);

  describe('store', () => {
    let backend: TestBackend;
    let storage: TestStorage;
    let keyring: Keyring;
    let store: ConnectionStore;
    const base: ConnectionInput = { id: 'corp', name: 'Corp', issuer: 'https://login.corp.example', clientId: 'idp-client', clientSecret: 's3cret-value' };

    before(async () => {
      backend = await startBackend();
      storage = await openTestStorage(backend, { prefix: uniquePrefix('fc') });
      const config = loadConfig({ DYNAMODB_ENDPOINT: backend.endpoint, AWS_REGION: backend.region, TABLE_PREFIX: storage.prefix, DATA_DIR: tempDir('idp-fed-'), LOG_LEVEL: 'silent' });
      keyring = await openKeyring(config, storage);
      store = new ConnectionStore(storage, keyring);
    });
    after(async () => {
      keyring.close();
      await storage.close();
      await backend.close();
    });

    it('adds a connection with defaults, stores its secret sealed and reads it back opened', async () => {
      const c = await store.add({ ...base, domains: ['Corp.Example', 'corp.test'] });
      expect(c).to.include({
        id: 'corp', kind: 'oidc', clientAuth: 'client_secret_basic', linking: 'prove', allowSignup: false,
        trustUpstreamMfa: false, hidden: false, version: 1, clientSecret: 's3cret-value',
        discoveryUrl: 'https://login.corp.example/.well-known/openid-configuration',
      });
      expect(c.scopes).to.deep.equal(['openid', 'email', 'profile']);
      expect(c.domains).to.deep.equal(['corp.example', 'corp.test']);
      expect(c.claimMapping).to.include({ email: 'email', name: 'name' });
      const raw = (await storage.doc.send(new GetCommand({ TableName: storage.tables.meta, Key: { pk: 'connections', sk: 'corp' } }))).Item!;
      expect(JSON.stringify(raw)).to.not.include('s3cret-value');
      expect(raw.clientSecretSealed).to.be.a('string');
      // sealed for this connection only: another context does not open it
      let refused: unknown;
      await keyring.unwrap(raw.clientSecretSealed as string, 'connection-secret:other').catch((e: unknown) => { refused = e; });
      expect(refused).to.be.instanceOf(Error);
      expect((await store.get('corp'))?.clientSecret).to.equal('s3cret-value');
      expect((await store.byDomain('CORP.test'))?.id).to.equal('corp');
      expect((await store.byEmail('someone@corp.example'))?.id).to.equal('corp');
      expect(await store.byDomain('other.example')).to.equal(undefined);
      expect(redirectUriFor('https://idp.example', 'corp')).to.equal('https://idp.example/federation/corp/callback');
    });

    it('refuses an id that exists, and a domain another connection serves', async () => {
      let err: unknown;
      await store.add({ ...base }).catch((e: unknown) => { err = e; });
      expect(err).to.be.instanceOf(ConnectionExists);
      err = undefined;
      await store.add({ ...base, id: 'corp2', domains: ['corp.test'] }).catch((e: unknown) => { err = e; });
      expect(err).to.be.instanceOf(ConnectionInvalid);
      expect((err as Error).message).to.equal('domain corp.test is already served by connection corp');
    });

    it('refuses invalid connections with one clear line each', async () => {
      const cases: Array<[Partial<ConnectionInput>, RegExp]> = [
        [{ id: 'Bad_Id' }, /^id must be 1-40 lower-case letters/],
        [{ id: 'x'.repeat(41) }, /^id must be/],
        [{ issuer: 'http://login.corp.example' }, /^issuer must use https \(http only for 127.0.0.1, localhost or \[::1\]\)/],
        [{ issuer: 'https://login.corp.example?x=1' }, /^issuer must have no query/],
        [{ issuer: 'not a url' }, /^issuer must be an absolute https URL/],
        [{ discoveryUrl: 'http://10.0.0.1/.well-known/openid-configuration' }, /^discovery URL must use https/],
        [{ discoveryUrl: 'https://login.corp.example/metadata' }, /^discovery URL must be the document's own URL \(with \/\.well-known\/\)/],
        [{ issuer: 'https://login.example/{tenantid}/v2.0' }, /^a \{tenantid\} issuer is only for kind entra/],
        [{ kind: 'entra', issuer: 'https://login.example/{tenantid}/v2.0' }, /^an Entra issuer with \{tenantid\} needs a list of allowed tenants/],
        [{ kind: 'entra', issuer: 'https://login.example/{tenantid}/v2.0', tenants: ['contoso'] }, /^tenant "contoso" is not a tenant id/],
        [{ scopes: ['email', 'profile'] }, /^scopes must include openid/],
        [{ domains: ['not a domain'] }, /^domain "not a domain" is not a domain name/],
        [{ domains: ['corp..example'] }, /is not a domain name/],
        [{ claimMapping: { email: 'a.__proto__' } }, /^claim mapping email: "a.__proto__" is not a claim name or dotted path/],
        [{ claimMapping: { email: 'x[0]' } }, /is not a claim name or dotted path/],
        [{ claimMapping: { password: 'pwd' } }, /^claim mapping: unknown attribute "password"/],
        [{ clientSecret: undefined }, /^client_secret_basic needs a client secret/],
        [{ hostedDomain: 'corp.example' }, /^hosted domain is only for kind google/],
        [{ tenants: [TENANT] }, /^tenants are only for kind entra/],
        [{ linking: 'always' as never }, /^linking must be one of off, prove, verified-email/],
        [{ name: '' }, /^name must not be empty/],
      ];
      for (const [change, message] of cases) {
        let err: unknown;
        await store.add({ ...base, id: 'bad', ...change }).catch((e: unknown) => { err = e; });
        expect(err, JSON.stringify(change)).to.be.instanceOf(ConnectionInvalid);
        expect((err as Error).message, JSON.stringify(change)).to.match(message);
        expect((err as Error).message).to.not.include('\n');
      }
      expect((await store.list()).map((c) => c.id)).to.deep.equal(['corp']);
    });

    it('allows http for loopback hosts, and Entra templates with tenants', async () => {
      const local = await store.add({ ...base, id: 'local', issuer: 'http://127.0.0.2:4000', domains: [] });
      expect(local.discoveryUrl).to.equal('http://127.0.0.2:4000/.well-known/openid-configuration');
      const entra = await store.add({ ...base, id: 'entra', kind: 'entra', issuer: 'https://login.microsoftonline.com/{tenantid}/v2.0', tenants: [TENANT.toUpperCase()] });
      expect(entra.discoveryUrl).to.equal('https://login.microsoftonline.com/organizations/v2.0/.well-known/openid-configuration');
      expect(entra.tenants).to.deep.equal([TENANT]);
      expect(defaultDiscoveryUrl('google', 'https://accounts.google.com')).to.equal('https://accounts.google.com/.well-known/openid-configuration');
      const google = await store.add({ ...base, id: 'google', kind: 'google', issuer: undefined, hostedDomain: 'Corp.Example' });
      expect(google).to.include({ issuer: 'https://accounts.google.com', hostedDomain: 'corp.example' });
      await store.remove('local');
      await store.remove('entra');
      await store.remove('google');
    });

    it('updates only what is given, conditional on the version, and removes', async () => {
      const before = (await store.get('corp'))!;
      const after = await store.update('corp', { name: 'Corp Inc', allowSignup: true, claimMapping: { name: 'profile.name', locale: '' } }, before.version);
      expect(after).to.include({ name: 'Corp Inc', allowSignup: true, version: before.version + 1, clientSecret: 's3cret-value', issuer: before.issuer });
      expect(after.claimMapping.name).to.equal('profile.name');
      expect(after.claimMapping).to.not.have.property('locale');
      expect(after.domains).to.deep.equal(before.domains);
      // a writer holding the old version loses
      let err: unknown;
      await store.update('corp', { name: 'Stale' }, before.version).catch((e: unknown) => { err = e; });
      expect(err).to.be.instanceOf(ConnectionConflict);
      await store.remove('corp', before.version).catch((e: unknown) => { err = e; });
      expect(err).to.be.instanceOf(ConnectionConflict);
      // a new secret is sealed again; the old one is gone
      const rotated = await store.update('corp', { clientSecret: 'another-secret' });
      expect(rotated.clientSecret).to.equal('another-secret');
      err = undefined;
      await store.update('corp', { scopes: ['email'] }).catch((e: unknown) => { err = e; });
      expect((err as Error).message).to.equal('scopes must include openid');
      err = undefined;
      await store.update('nope', { name: 'x' }).catch((e: unknown) => { err = e; });
      expect(err).to.be.instanceOf(ConnectionNotFound);
      expect((err as Error).message).to.equal('no connection nope');
    });

    it('serves the list from a short cache that its own writes invalidate, and other processes\' writes after the cache time', async () => {
      const other = new ConnectionStore(storage, keyring, { cacheMs: 200 });
      expect((await other.get('corp'))?.name).to.equal('Corp Inc');
      await store.update('corp', { name: 'Corp Renamed' });
      expect((await store.get('corp'))?.name, 'own write seen at once').to.equal('Corp Renamed');
      expect((await other.get('corp'))?.name, 'another process: cached').to.equal('Corp Inc');
      await new Promise((r) => setTimeout(r, 250));
      expect((await other.get('corp'))?.name, 'after its cache time').to.equal('Corp Renamed');
    });

    it('private_key_jwt: a dedicated signing key, sealed, its public half to register upstream', async () => {
      const c = await store.add({ ...base, id: 'pkjwt', clientAuth: 'private_key_jwt', clientSecret: undefined });
      expect(c.clientSecret).to.equal(undefined);
      expect(c.signingKey?.publicJwk).to.include({ kty: 'RSA', alg: 'RS256', use: 'sig', kid: c.signingKey?.kid });
      expect(c.signingKey?.publicJwk).to.not.have.property('d');
      expect(c.signingKey?.privateJwk).to.have.property('d');
      const raw = (await storage.doc.send(new GetCommand({ TableName: storage.tables.meta, Key: { pk: 'connections', sk: 'pkjwt' } }))).Item!;
      expect(JSON.stringify(raw)).to.not.include(String(c.signingKey?.privateJwk?.d));
      // the key stays across updates
      const u = await store.update('pkjwt', { name: 'Renamed' });
      expect(u.signingKey?.kid).to.equal(c.signingKey?.kid);
      await store.remove('pkjwt');
      let err: unknown;
      await store.remove('pkjwt').catch((e: unknown) => { err = e; });
      expect(err).to.be.instanceOf(ConnectionNotFound);
    });
  });
  describe('idp connections (in-process, beside a running IdP)', () => {
    let idp: TestIdp;
    let up: Upstream;
    let entra: Upstream;
    const cliError = async (p: Promise<unknown>): Promise<Error> => {
      let err: unknown;
      await p.catch((e: unknown) => { err = e; });
      expect(err, 'the command fails').to.be.instanceOf(Error);
      return err as Error;
    };

    before(async () => {
      idp = await startTestIdp({ LOG_LEVEL: 'silent' });
      up = await startUpstream({ kind: 'oidc', clients: [{ client_id: 'our-idp', client_secret: 'S3cret!', redirect_uris: [`${idp.issuer}/federation/corp/callback`] }] });
      entra = await startUpstream({ kind: 'entra' });
    });
    after(async () => {
      await up.close();
      await entra.close();
      await idp.close();
    });

    it('adds a connection after checking its discovery document, and gives the redirect URI to register', async () => {
      const added = await idp.cli('connections', 'add', '--id', 'corp', '--name', 'Corp', '--issuer', up.issuer, '--client-id', 'our-idp',
        '--client-secret', 'S3cret!', '--domains', 'corp.example,corp.test', '--linking', 'prove', '--allow-signup') as Record<string, unknown>;
      expect(added).to.include({ id: 'corp', name: 'Corp', kind: 'oidc', issuer: up.issuer, linking: 'prove', allowSignup: true, hasClientSecret: true, redirectUri: `${idp.issuer}/federation/corp/callback` });
      expect(added.domains).to.deep.equal(['corp.example', 'corp.test']);
      expect(JSON.stringify(added)).to.not.include('S3cret!');
      expect(up.hits.get('/.well-known/openid-configuration')).to.be.at.least(1);
    });

    it('lists and shows connections without their secrets', async () => {
      const list = await idp.cli('connections', 'list') as Array<Record<string, unknown>>;
      expect(list.map((c) => c.id)).to.deep.equal(['corp']);
      const shown = await idp.cli('connections', 'show', '--id', 'corp') as Record<string, unknown>;
      expect(shown).to.include({ id: 'corp', hasClientSecret: true });
      expect(JSON.stringify([list, shown])).to.not.include('S3cret!');
      expect(shown).to.not.have.property('clientSecret');
      // for people: a table, and the fields one a line
      const table = (await runCli(['connections', 'list'], idp.env)).lines;
      expect(table[0]).to.match(/^ID\s+NAME\s+KIND\s+ISSUER\s+DOMAINS\s+LINKING\s+SIGNUP\s+HIDDEN$/);
      expect(table[1]).to.match(/^corp\s+Corp\s+oidc\s+http:\/\/127\.0\.0\.2:\d+\s+corp\.example,corp\.test\s+prove\s+true\s+false$/);
      const lines = (await runCli(['connections', 'show', '--id', 'corp'], idp.env)).lines.join('\n');
      expect(lines).to.match(/^client secret:\s+set$/m).and.match(/^linking:\s+prove$/m).and.not.include('S3cret!');
    });

    it('updates only the flags given, turns switches off with --no-..., and keeps the secret', async () => {
      const u = await idp.cli('connections', 'update', '--id', 'corp', '--name', 'Corp Inc', '--no-allow-signup', '--hidden', '--claim', 'name=profile.name', '--claim', 'locale=') as Record<string, unknown>;
      expect(u).to.include({ name: 'Corp Inc', allowSignup: false, hidden: true, linking: 'prove', hasClientSecret: true, version: 2 });
      expect(u.claimMapping).to.include({ name: 'profile.name', email: 'email' });
      expect(u.claimMapping).to.not.have.property('locale');
      expect(u.domains).to.deep.equal(['corp.example', 'corp.test']);
    });

    it('refuses with one clear line: unknown ids, bad values, a discovery document of another issuer', async () => {
      expect((await cliError(idp.cli('connections', 'show', '--id', 'nope'))).message).to.equal('no connection nope');
      expect((await cliError(idp.cli('connections', 'update', '--id', 'nope', '--name', 'x'))).message).to.equal('no connection nope');
      expect((await cliError(idp.cli('connections', 'remove', '--id', 'nope'))).message).to.equal('no connection nope');
      expect((await cliError(idp.cli('connections', 'add', '--id', 'corp', '--name', 'Again', '--issuer', up.issuer, '--client-id', 'x', '--client-secret', 'y'))).message).to.equal('connection corp already exists');
      expect((await cliError(idp.cli('connections', 'add', '--id', 'other', '--name', 'Other', '--issuer', up.issuer, '--client-id', 'x', '--client-secret', 'y', '--domains', 'corp.test'))).message).to.equal('domain corp.test is already served by connection corp');
      expect((await cliError(idp.cli('connections', 'add', '--id', 'other', '--name', 'Other', '--issuer', up.issuer, '--client-id', 'x', '--client-secret', 'y', '--linking', 'always'))).message).to.match(/^--linking must be one of off, prove, verified-email, got "always"\nusage: idp connections add/);
      expect((await cliError(idp.cli('connections', 'add', '--id', 'other', '--name', 'Other', '--issuer', 'https://elsewhere.example', '--discovery-url', up.discoveryUrl, '--client-id', 'x', '--client-secret', 'y'))).message)
        .to.match(/^discovery check failed: discovery document at .* names issuer "http:\/\/127\.0\.0\.2:\d+", expected "https:\/\/elsewhere\.example"$/);
      expect((await cliError(idp.cli('connections', 'add', '--id', 'other', '--name', 'Other', '--issuer', up.issuer, '--client-id', 'x'))).message).to.equal('client_secret_basic needs a client secret');
      expect((await cliError(idp.cli('connections', 'add', '--id', 'other', '--name', 'Other', '--issuer', up.issuer, '--client-id', 'x', '--client-secret', 'y', '--client-auth', 'private_key_jwt'))).message).to.match(/^private_key_jwt takes no client secret/);
      const list = await idp.cli('connections', 'list') as unknown[];
      expect(list).to.have.length(1);
    });

    it('adds an Entra multi-tenant connection (template issuer, tenants), a secret from a file, private_key_jwt', async () => {
      const file = path.join(tempDir('idp-secret-'), 'secret');
      fs.writeFileSync(file, 'from-a-file\n');
      const e = await idp.cli('connections', 'add', '--id', 'entra', '--name', 'Entra', '--kind', 'entra', '--issuer', entra.issuer, '--discovery-url', entra.discoveryUrl,
        '--client-id', 'our-idp', '--client-secret-file', file, '--tenants', `${TENANT},22222222-2222-4333-8444-555555555555`, '--trust-email-verified', '--linking', 'verified-email') as Record<string, unknown>;
      expect(e).to.include({ kind: 'entra', issuer: 'https://login.example/{tenantid}/v2.0', linking: 'verified-email', trustEmailVerified: true, hasClientSecret: true });
      expect(e.tenants).to.deep.equal([TENANT, '22222222-2222-4333-8444-555555555555']);
      const err = await cliError(idp.cli('connections', 'update', '--id', 'entra', '--tenants', ''));
      expect(err.message).to.equal('an Entra issuer with {tenantid} needs a list of allowed tenants');
      const pk = await idp.cli('connections', 'add', '--id', 'pk', '--name', 'PK', '--issuer', up.issuer, '--client-id', 'our-idp', '--client-auth', 'private_key_jwt') as Record<string, unknown>;
      expect(pk).to.include({ clientAuth: 'private_key_jwt', hasClientSecret: false });
      expect((pk.signingKey as { publicJwk: Record<string, unknown> }).publicJwk).to.include({ kty: 'RSA', alg: 'RS256' }).and.not.have.property('d');
      await idp.cli('connections', 'remove', '--id', 'pk');
      await idp.cli('connections', 'remove', '--id', 'entra');
    });

    it('the running server\'s store sees what the CLI wrote', async () => {
      const store = new ConnectionStore(idp.storage, idp.keyring);
      expect((await store.byDomain('corp.example'))?.clientSecret).to.equal('S3cret!');
      await idp.cli('connections', 'remove', '--id', 'corp');
      expect(await new ConnectionStore(idp.storage, idp.keyring).get('corp')).to.equal(undefined);
    });

    it('each change is an event with the connection id and the names of the fields changed, never a secret; a refused change none', async () => {
      await idp.events.settled();
      const evs = (await idp.events.query({ type: 'connection.' })).items.reverse().filter((e) => e.data.connection === 'corp');
      expect(evs.map((e) => [e.type, e.data.actor])).to.deep.equal([['connection.created', 'cli'], ['connection.updated', 'cli'], ['connection.deleted', 'cli']]);
      expect(evs[1].data.fields).to.deep.equal(['allowSignup', 'claimMapping', 'hidden', 'name']);
      expect(JSON.stringify(evs)).to.not.include('S3cret!');
      // the refused add of "other" (and the refused update of "entra") recorded nothing
      const all = (await idp.events.query({ type: 'connection.' })).items;
      expect(all.filter((e) => e.data.connection === 'other')).to.deep.equal([]);
      expect(all.filter((e) => e.data.connection === 'entra').map((e) => e.type).sort()).to.deep.equal(['connection.created', 'connection.deleted']);
    });
  });

  describe('idp connections as a process', () => {
    let up: Upstream;
    const dataDir = tempDir('idp-conn-cli-');
    const env = { ...process.env, DATA_DIR: dataDir, LOG_LEVEL: 'silent', ISSUER: 'https://idp.example.test' };
    // asynchronous: the test upstream answers from this process's event loop
    const idp = (...args: string[]) => new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn('bin/idp', args, { env });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d) => { stdout += String(d); });
      child.stderr.on('data', (d) => { stderr += String(d); });
      child.on('close', (status) => resolve({ status, stdout, stderr }));
    });
    const closedPort = () => new Promise<number>((resolve) => {
      const s = net.createServer().listen(0, '127.0.0.1', () => {
        const { port } = s.address() as net.AddressInfo;
        s.close(() => resolve(port));
      });
    });

    before(async () => {
      up = await startUpstream({ kind: 'oidc' });
    });
    after(() => up.close());

    it('exit 0 with the redirect URI; 2 for bad arguments or unknown ids; 1 for an unreachable issuer', async () => {
      const ok = await idp('connections', 'add', '--id', 'corp', '--name', 'Corp', '--issuer', up.issuer, '--client-id', 'our-idp', '--client-secret', 'Pr0cess-Secret', '--domains', 'corp.example');
      expect(ok.status, ok.stderr).to.equal(0);
      expect(ok.stdout).to.equal('connection corp saved\nredirect URI to register at the upstream: https://idp.example.test/federation/corp/callback\n');
      const shown = await idp('connections', 'show', '--id', 'corp');
      expect(shown.status).to.equal(0);
      expect(shown.stdout).to.match(/^client secret:\s+set$/m).and.match(/^redirect URI:\s+https:\/\/idp\.example\.test\/federation\/corp\/callback$/m).and.not.include('Pr0cess-Secret');

      const port = await closedPort();
      const t0 = Date.now();
      const down = await idp('connections', 'add', '--id', 'down', '--name', 'Down', '--issuer', `http://127.0.0.1:${port}`, '--client-id', 'x', '--client-secret', 'y');
      expect(down.status).to.equal(1);
      expect(down.stderr).to.match(new RegExp(`^idp: cannot reach the discovery document at http://127\\.0\\.0\\.1:${port}/\\.well-known/openid-configuration: .*\\n$`));
      expect(Date.now() - t0).to.be.below(15_000);

      const cases: Array<[string[], RegExp]> = [
        [['connections', 'add', '--id', 'Bad_Id', '--name', 'x', '--issuer', up.issuer, '--client-id', 'x', '--client-secret', 'y'], /^idp: id must be 1-40 lower-case letters/],
        [['connections', 'add', '--id', 'x', '--name', 'x', '--client-id', 'x', '--client-secret', 'y'], /^idp: missing --issuer\nusage: idp connections add/],
        [['connections', 'add', '--id', 'x', '--bogus'], /Unknown option '--bogus'[\s\S]*usage: idp connections add/],
        [['connections', 'show', '--id', 'nope'], /^idp: no connection nope\n$/],
      ];
      for (const [args, message] of cases) {
        const r = await idp(...args);
        expect(r.status, args.join(' ')).to.equal(2);
        expect(r.stderr, args.join(' ')).to.match(message);
        expect(r.stderr).to.not.match(/\n\s+at /);
      }
      expect((await idp('connections', 'remove', '--id', 'corp')).stdout).to.equal('connection corp removed\n');
    });
  });
});
