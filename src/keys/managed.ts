// The keyring every mode shares: records in the `keys` table, the rotation
// schedule, loading into memory, and change detection. What differs per mode
// is behind two small seams:
//   SecretWrapper  — how secrets are sealed (local master key, KMS envelope)
//   SigningBackend — where a signing key's private half lives (a wrapped
//                    private JWK, or an asymmetric KMS key)
// Opened secrets are cached by record, so a reload after a rotation opens (or
// asks KMS about) only the new keys; nothing calls KMS per token except
// kms-sign's Sign.
import crypto from 'node:crypto';
import type { JWK } from 'jose';
import type { Logger } from '../logging/index.ts';
import { isConditionFailed } from '../storage/errors.ts';
import { KeyStore, type KeyKind, type StoredCookieKey, type StoredSigningKey } from './store.ts';
import { plan, type Snapshot, type Step } from './schedule.ts';
import { generateCookieKey } from './generate.ts';
import { KeyIntegrityError } from './types.ts';
import type {
  DataKey, KeyAction, KeyInfo, Keyring, KeyState, ProviderSigningKey, RotateOptions, SigningAlg,
} from './types.ts';

export interface SecretWrapper {
  wrap(plaintext: Buffer, context: string): Promise<string>;
  unwrap(wrapped: string, context: string): Promise<Buffer>;
  newDataKey(context: string): Promise<DataKey>;
  openDataKey(wrapped: string, context: string): Promise<Buffer>;
}

export interface CreatedSigningKey {
  kid: string;
  publicJwk: JWK;
  wrapped?: string;
  kmsKeyId?: string;
}

export interface SigningBackend {
  readonly external: boolean;
  readonly algs: readonly SigningAlg[];
  /** make the key material; resolves only once it exists completely (the record is written after) */
  create(alg: SigningAlg, opts: { kmsKeyId?: string }): Promise<CreatedSigningKey>;
  /** open a stored key: check it against its kid, return what oidc-provider signs with and the public JWK */
  open(rec: StoredSigningKey): Promise<{ providerKey: ProviderSigningKey; publicJwk: JWK }>;
}

export interface KeyPolicy {
  prepublishSeconds: number;
  /** 0: no automatic `next` keys */
  maxAgeSeconds: number;
  refreshSeconds: number;
  removeGraceSeconds: number;
  /** the longest lifetime of a token a signing key signs (access tokens, ID tokens, resource-server TTLs) */
  tokenLifetimeSeconds: () => Promise<number>;
  /** the longest a signed cookie may come back (session, interaction) */
  cookieLifetimeSeconds: number;
}

export interface ManagedKeyringOptions {
  mode: string;
  store: KeyStore;
  wrapper: SecretWrapper;
  backend: SigningBackend;
  policy: KeyPolicy;
  log: Logger;
  /** release resources (a KMS client) on close */
  onClose?: () => void;
  /** a cheap call to the key service (KMS modes), for /readyz */
  ping?: (signal: AbortSignal) => Promise<void>;
}

interface LoadedSigning {
  rec: StoredSigningKey;
  providerKey: ProviderSigningKey;
  publicJwk: JWK;
}

interface LoadedCookie {
  rec: StoredCookieKey;
  value: string;
}

const LOCK = 'keys';
const STATE_ORDER: Record<KeyState, number> = { active: 0, next: 1, retired: 2 };
const iso = (ms: number) => new Date(ms).toISOString();
const sha = (s: string) => crypto.createHash('sha256').update(s).digest('base64url');

/** active first (newest activation first), then next, then retired (most recently retired first) */
function ordered<T extends { state?: KeyState; createdAt: string; activatedAt?: string; retiredAt?: string }>(recs: T[]): T[] {
  const when = (r: T) => r.retiredAt ?? r.activatedAt ?? r.createdAt;
  return [...recs].sort((a, b) => STATE_ORDER[a.state ?? 'active'] - STATE_ORDER[b.state ?? 'active'] || when(b).localeCompare(when(a)));
}

/** steps that give a group its first active key (first start): done before anything is served */
function isBootstrap(s: Step): boolean {
  return (s.step === 'create' && (s.kind === 'secret' || s.state === 'active')) || (s.step === 'promote' && s.retire.length === 0);
}

function signingStamp(r: StoredSigningKey): string {
  return sha(`${r.wrapped ?? ''}|${r.kmsKeyId ?? ''}`);
}

export class ManagedKeyring implements Keyring {
  readonly mode: string;
  readonly external: boolean;
  readonly algs: readonly SigningAlg[];
  protected readonly store: KeyStore;
  protected readonly wrapper: SecretWrapper;
  protected readonly backend: SigningBackend;
  protected readonly policy: KeyPolicy;
  protected readonly log: Logger;
  private readonly onClose: (() => void) | undefined;
  readonly ping: ((signal: AbortSignal) => Promise<void>) | undefined;

  private signing: LoadedSigning[] = [];
  private cookies: LoadedCookie[] = [];
  private indexKey: Buffer | undefined;
  private fingerprint: string | undefined;
  private readonly openedSigning = new Map<string, { stamp: string; providerKey: ProviderSigningKey; publicJwk: JWK }>();
  private readonly openedCookies = new Map<string, { stamp: string; value: string }>();
  private openedIndex: { stamp: string; key: Buffer } | undefined;

  constructor(opts: ManagedKeyringOptions) {
    this.mode = opts.mode;
    this.store = opts.store;
    this.wrapper = opts.wrapper;
    this.backend = opts.backend;
    this.external = opts.backend.external;
    this.algs = opts.backend.algs;
    this.policy = opts.policy;
    this.log = opts.log;
    this.onClose = opts.onClose;
    this.ping = opts.ping;
  }

  // ------------------------------------------------------------ secrets

  wrap(plaintext: Buffer, context: string): Promise<string> {
    return this.wrapper.wrap(plaintext, context);
  }

  unwrap(wrapped: string, context: string): Promise<Buffer> {
    return this.refused(this.wrapper.unwrap(wrapped, context));
  }

  newDataKey(context: string): Promise<DataKey> {
    return this.wrapper.newDataKey(context);
  }

  openDataKey(wrapped: string, context: string): Promise<Buffer> {
    return this.refused(this.wrapper.openDataKey(wrapped, context));
  }

  /** log a refused (tampered) secret as an event, naming its kid/context */
  private async refused<T>(p: Promise<T>): Promise<T> {
    try {
      return await p;
    } catch (err) {
      if (err instanceof KeyIntegrityError) this.log.error({ event: 'keys.integrity', ref: err.ref, err: { message: err.message } }, 'refused a tampered secret');
      throw err;
    }
  }

  blindIndexKey(): Buffer {
    if (!this.indexKey) throw new Error('keyring not initialised');
    return this.indexKey;
  }

  // ------------------------------------------------------------ loaded keys

  signingJwks(): ProviderSigningKey[] {
    return this.signing.map((k) => k.providerKey);
  }

  publicJwks(): JWK[] {
    return this.signing.map((k) => k.publicJwk);
  }

  cookieKeys(): string[] {
    return this.cookies.map((c) => c.value);
  }

  keys(): KeyInfo[] {
    return this.info({ signing: this.signing.map((s) => s.rec), cookies: this.cookies.map((c) => c.rec), blindIndex: undefined });
  }

  close(): void {
    this.onClose?.();
  }

  // ------------------------------------------------------------ reading and loading

  protected async snapshot(): Promise<Snapshot> {
    const [signing, cookies, blindIndex] = await Promise.all([this.store.signingKeys(), this.store.cookieKeys(), this.store.secret('blind-index')]);
    return { signing, cookies, blindIndex };
  }

  private fingerprintOf(snap: Snapshot): string {
    const parts = [
      ...snap.signing.map((k) => `s|${k.kid}|${k.alg}|${k.state}|${signingStamp(k)}`),
      ...snap.cookies.map((c) => `c|${c.id}|${c.state ?? 'active'}|${sha(c.wrapped)}`),
      `b|${snap.blindIndex ? sha(snap.blindIndex) : ''}`,
    ].sort();
    return sha(parts.join('\n'));
  }

  /** open everything in the snapshot (reusing what is already open), then swap it in at once */
  private async load(snap: Snapshot): Promise<void> {
    await this.refused(this.loadUnlogged(snap));
  }

  private async loadUnlogged(snap: Snapshot): Promise<void> {
    const signing: LoadedSigning[] = [];
    for (const rec of ordered(snap.signing.filter((k) => this.algs.includes(k.alg)))) {
      const stamp = signingStamp(rec);
      let opened = this.openedSigning.get(rec.kid);
      if (!opened || opened.stamp !== stamp) {
        opened = { stamp, ...(await this.backend.open(rec)) };
      }
      signing.push({ rec, providerKey: opened.providerKey, publicJwk: opened.publicJwk });
    }
    const cookies: LoadedCookie[] = [];
    for (const rec of ordered(snap.cookies)) {
      const stamp = sha(rec.wrapped);
      let opened = this.openedCookies.get(rec.id);
      if (!opened || opened.stamp !== stamp) {
        opened = { stamp, value: (await this.wrapper.unwrap(rec.wrapped, `cookie:${rec.id}`)).toString() };
      }
      cookies.push({ rec, value: opened.value });
    }
    let index = this.openedIndex;
    if (snap.blindIndex && (!index || index.stamp !== sha(snap.blindIndex))) {
      index = { stamp: sha(snap.blindIndex), key: await this.wrapper.unwrap(snap.blindIndex, 'secret:blind-index') };
    }
    for (const alg of this.algs) {
      if (!signing.some((k) => k.rec.alg === alg && k.rec.state === 'active')) throw new Error(`the keys table has no active ${alg} signing key`);
    }
    if (!cookies.some((c) => (c.rec.state ?? 'active') === 'active')) throw new Error('the keys table has no active cookie key');
    if (!index) throw new Error('the keys table has no blind-index key');

    // swap in
    this.signing = signing;
    this.cookies = cookies;
    this.indexKey = index.key;
    this.openedIndex = index;
    this.openedSigning.clear();
    for (const k of signing) this.openedSigning.set(k.rec.kid, { stamp: signingStamp(k.rec), providerKey: k.providerKey, publicJwk: k.publicJwk });
    this.openedCookies.clear();
    for (const c of cookies) this.openedCookies.set(c.rec.id, { stamp: sha(c.rec.wrapped), value: c.value });
    this.fingerprint = this.fingerprintOf(snap);
  }

  async init(): Promise<this> {
    const snap = await this.snapshot();
    if (plan(snap, this.algs, Date.now(), this.policy).some(isBootstrap)) {
      // first start (or a group without an active key): create what is missing, once across processes
      await this.store.withLock(LOCK, async () => this.apply(await this.snapshot(), Date.now(), true), 60);
    }
    await this.load(await this.snapshot());
    return this;
  }

  async reload(): Promise<boolean> {
    const snap = await this.snapshot();
    if (this.fingerprint !== undefined && this.fingerprintOf(snap) === this.fingerprint) return false;
    await this.load(snap);
    return true;
  }

  // ------------------------------------------------------------ rotation

  async maintain(now = Date.now()): Promise<KeyAction[]> {
    if (plan(await this.snapshot(), this.algs, now, this.policy).length === 0) return [];
    const r = await this.store.tryLock(LOCK, async () => this.apply(await this.snapshot(), now, false), 60);
    return r.ran ? r.value : [];
  }

  /** carry out the due steps (under the lock); `bootstrapOnly` creates missing keys and nothing else */
  private async apply(snap: Snapshot, now: number, bootstrapOnly: boolean): Promise<KeyAction[]> {
    const actions: KeyAction[] = [];
    let steps = plan(snap, this.algs, now, this.policy);
    if (bootstrapOnly) steps = steps.filter(isBootstrap);
    const needsLifetime = steps.some((s) => s.step === 'promote' && s.retire.length > 0);
    const tokenLifetime = needsLifetime ? await this.tokenLifetime() : 0;
    for (const s of steps) {
      try {
        actions.push(...await this.applyStep(s, now, tokenLifetime));
      } catch (err) {
        this.log.error({ event: 'keys.rotation_failed', step: s, err: { name: (err as Error).name, message: (err as Error).message, detail: (err as { detail?: string }).detail } }, 'key rotation step failed');
        if (bootstrapOnly) throw err;
      }
    }
    for (const a of actions) this.log.info({ event: `keys.${a.action}`, ...a }, `key ${a.action}`);
    return actions;
  }

  private async tokenLifetime(): Promise<number> {
    try {
      return await this.policy.tokenLifetimeSeconds();
    } catch {
      return 86400; // the longest lifetime a resource server may set
    }
  }

  private retention(kind: KeyKind, tokenLifetime: number): number {
    const lifetime = kind === 'signing' ? tokenLifetime : this.policy.cookieLifetimeSeconds;
    // an instance that has not yet seen the retirement may sign for one more refresh period
    return lifetime + this.policy.refreshSeconds + this.policy.removeGraceSeconds;
  }

  private async applyStep(s: Step, now: number, tokenLifetime: number): Promise<KeyAction[]> {
    const at = iso(now);
    switch (s.step) {
      case 'create': {
        if (s.kind === 'secret') {
          await this.store.putSecret(s.name, await this.wrapper.wrap(crypto.randomBytes(32), `secret:${s.name}`));
          return [{ action: 'create', kind: 'secret', kid: s.name, at }];
        }
        const activatesAt = s.state === 'next' ? iso(now + this.policy.prepublishSeconds * 1000) : undefined;
        if (s.kind === 'signing') return [await this.createSigning(s.alg, s.state, now, activatesAt, {})];
        return [await this.createCookie(s.state, now, activatesAt)];
      }
      case 'promote': {
        const out: KeyAction[] = [];
        if (await this.store.transition(s.kind, s.id, 'next', 'active', { activatedAt: at })) {
          out.push({ action: 'promote', kind: s.kind, kid: s.id, alg: s.alg, state: 'active', at });
        } else {
          return out; // another process got there first
        }
        const removesAt = iso(now + this.retention(s.kind, tokenLifetime) * 1000);
        for (const id of s.retire) {
          if (await this.store.transition(s.kind, id, 'active', 'retired', { retiredAt: at, removesAt })) {
            out.push({ action: 'retire', kind: s.kind, kid: id, alg: s.alg, state: 'retired', at: removesAt, note: `published until ${removesAt}` });
          }
        }
        return out;
      }
      case 'remove': {
        if (await this.store.removeRetired(s.kind, s.id)) return [{ action: 'remove', kind: s.kind, kid: s.id, alg: s.alg, at }];
        return [];
      }
    }
  }

  private async createSigning(alg: SigningAlg, state: 'active' | 'next', now: number, activatesAt: string | undefined, opts: { kmsKeyId?: string }): Promise<KeyAction> {
    // the material first (a KMS key and its public key, or a wrapped private JWK): the record,
    // which publishes the key, is written only once the key fully exists
    const made = await this.backend.create(alg, opts);
    const rec: StoredSigningKey = {
      kid: made.kid, alg, state, createdAt: iso(now), publicJwk: made.publicJwk,
      ...(made.wrapped ? { wrapped: made.wrapped } : {}),
      ...(made.kmsKeyId ? { kmsKeyId: made.kmsKeyId } : {}),
      ...(activatesAt ? { activatesAt } : {}),
      ...(state === 'active' ? { activatedAt: iso(now) } : {}),
    };
    try {
      await this.store.putSigningKey(rec);
    } catch (err) {
      // the kid is the key's thumbprint: the same key material is already recorded (e.g. an
      // adopted KMS key that already signs RS256, named again for PS256)
      if (isConditionFailed(err)) {
        throw new Error(`signing key ${made.kid}${made.kmsKeyId ? ` (KMS key ${made.kmsKeyId})` : ''} is already in the keys table: every algorithm needs a key of its own`);
      }
      throw err;
    }
    return { action: 'create', kind: 'signing', kid: made.kid, alg, state, at: activatesAt ?? iso(now), ...(made.kmsKeyId ? { note: `KMS key ${made.kmsKeyId}` } : {}) };
  }

  private async createCookie(state: 'active' | 'next', now: number, activatesAt: string | undefined): Promise<KeyAction> {
    const id = `${iso(now)}~${crypto.randomBytes(4).toString('hex')}`;
    await this.store.putCookieKey({
      id, createdAt: iso(now), state,
      wrapped: await this.wrapper.wrap(Buffer.from(generateCookieKey()), `cookie:${id}`),
      ...(activatesAt ? { activatesAt } : {}),
      ...(state === 'active' ? { activatedAt: iso(now) } : {}),
    });
    return { action: 'create', kind: 'cookie', kid: id, state, at: activatesAt ?? iso(now) };
  }

  async rotate(opts: RotateOptions = {}): Promise<KeyAction[]> {
    if (opts.alg && !this.algs.includes(opts.alg)) {
      throw new Error(`${opts.alg} is not available in KEYS_MODE=${this.mode} (algorithms: ${this.algs.join(', ')})`);
    }
    if (opts.kmsKeyId && (!opts.alg || !this.external)) throw new Error('--kms-key-id needs KEYS_MODE=kms-sign and --alg');
    const algs = opts.alg ? [opts.alg] : [...this.algs];
    const cookie = opts.cookie ?? !opts.alg;
    const delay = (opts.activateInSeconds ?? this.policy.prepublishSeconds) * 1000;
    return this.store.withLock(LOCK, async () => {
      const snap = await this.snapshot();
      const now = Date.now();
      const actions: KeyAction[] = [];
      for (const alg of algs) {
        const waiting = snap.signing.find((k) => k.alg === alg && k.state === 'next');
        if (waiting) {
          actions.push({ action: 'skip', kind: 'signing', kid: waiting.kid, alg, state: 'next', at: waiting.activatesAt, note: `a next ${alg} key already waits` });
          continue;
        }
        actions.push(await this.createSigning(alg, 'next', now, iso(now + delay), { kmsKeyId: opts.kmsKeyId }));
      }
      if (cookie) {
        const waiting = snap.cookies.find((c) => c.state === 'next');
        if (waiting) actions.push({ action: 'skip', kind: 'cookie', kid: waiting.id, state: 'next', at: waiting.activatesAt, note: 'a next cookie key already waits' });
        else actions.push(await this.createCookie('next', now, iso(now + delay)));
      }
      for (const a of actions) this.log.info({ event: `keys.${a.action}`, ...a, by: 'rotate' }, `key ${a.action}`);
      return actions;
    }, 60);
  }

  // ------------------------------------------------------------ listing

  async describe(): Promise<KeyInfo[]> {
    return this.info(await this.snapshot());
  }

  private info(snap: Snapshot): KeyInfo[] {
    const out: KeyInfo[] = [];
    const retiresAt = (state: KeyState, group: Array<{ state?: KeyState; activatesAt?: string }>, activatedAt: string | undefined): string | undefined => {
      if (state !== 'active') return undefined;
      const next = group.filter((g) => g.state === 'next').map((g) => g.activatesAt).filter(Boolean).sort()[0];
      if (next) return next;
      if (this.policy.maxAgeSeconds > 0 && activatedAt) return iso(Date.parse(activatedAt) + this.policy.maxAgeSeconds * 1000);
      return undefined;
    };
    for (const k of ordered(snap.signing).sort((a, b) => a.alg.localeCompare(b.alg))) {
      const group = snap.signing.filter((g) => g.alg === k.alg);
      out.push({
        kind: 'signing', kid: k.kid, alg: k.alg, state: k.state, createdAt: k.createdAt,
        activatesAt: k.state === 'next' ? k.activatesAt : undefined,
        activatedAt: k.activatedAt, retiresAt: retiresAt(k.state, group, k.activatedAt ?? k.createdAt),
        retiredAt: k.retiredAt, removesAt: k.removesAt, kmsKeyId: k.kmsKeyId,
      });
    }
    for (const c of ordered(snap.cookies)) {
      const state = c.state ?? 'active';
      out.push({
        kind: 'cookie', kid: c.id, state, createdAt: c.createdAt,
        activatesAt: state === 'next' ? c.activatesAt : undefined,
        activatedAt: c.activatedAt, retiresAt: retiresAt(state, snap.cookies, c.activatedAt ?? c.createdAt),
        retiredAt: c.retiredAt, removesAt: c.removesAt,
      });
    }
    return out.map((i) => Object.fromEntries(Object.entries(i).filter(([, v]) => v !== undefined)) as unknown as KeyInfo);
  }
}
