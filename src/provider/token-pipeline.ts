// Fewer DynamoDB round trips for the requests that look up or redeem a token:
// the refresh_token and authorization_code grants, and introspection.
//
// oidc-provider runs the two grants as a chain of awaited storage calls:
//
//   find the code / refresh token → Grant.find → findAccount → consume
//   → save the new refresh token → save the access token → response
//
// and introspection as "find the token → Grant.find". Each step waits for the
// previous one, so every call is a round trip of its own (8 for a refresh, 2
// to introspect a user's token). Inside these requests, and nowhere else, this
// module changes WHEN the calls are made, not which are made or what they
// check:
//
//  1. Prefetch. New refresh tokens, codes and opaque access tokens carry
//     their grant id (and refresh tokens their account id) after the random
//     part of the value (token-kinds.ts), so the token, its Grant (and its
//     account) are read together, in one round trip. Grant.find and
//     findAccount, asked a moment later for exactly those ids (the ones the
//     STORED item names), take the prefetched answers, each once; a hint that
//     does not match the item is simply never taken, and a hinted account is
//     not even opened (its data key) unless the item names it. A value
//     without hints has its Grant and account read as soon as the item is.
//     These are the same consistent reads, made during the same request, a
//     few microseconds earlier.
//
//  2. Write-behind (the two grants only). consume() and the saves of the new
//     tokens are started without waiting for each other, so they travel
//     together. Before the handler returns, so before any response exists,
//     it waits for every one of them: if any failed (a lost consume race, a
//     storage error) the request fails exactly as it would have at that step
//     — the error first in program order is the one answered — and the
//     tokens it wrote are destroyed (their values never left the process).
//     A lost consume still revokes the grant (the adapter does that), so of
//     concurrent redemptions exactly one gets tokens and the others
//     invalid_grant, as before.
//
//  3. In the code exchange, oidc-provider consumes the code BEFORE it asks
//     for the account, so the account check can travel with the writes too:
//     findAccount answers at once with an account whose claims wait for the
//     prefetched read, and the check (missing or disabled → invalid_grant,
//     as findAccount's undefined would give) is one of the deferred results
//     settled before the response. The refresh grant asks for the account
//     before it consumes, so there the account is read with the token (its
//     value names it) and checked before anything is written.
//
// Round trips: refresh and code exchange 2 each (token ∥ grant ∥ account;
// consume ∥ new tokens), introspection 1; one more for values issued without
// hints.
//
// The grant handlers are wrapped through oidc-provider's internal grant-type
// table (the only way to run code after a grant handler and before its
// response), and the hints are added by the models' generateTokenId; if
// either is not where this version keeps it, that part is left out and the
// calls stay sequential (installTokenPipeline says what it installed, the
// server logs a warning, and the round-trip test fails).
import type { Adapter, AdapterPayload } from 'oidc-provider';
import type Provider from 'oidc-provider';
import internals from 'oidc-provider/lib/helpers/weak_cache.js';
import { HINTED, hintsOf, mayBelongTo, withHints } from './token-kinds.ts';
import { currentScope, withScope } from './request-scope.ts';
import { Prefetches } from './prefetch.ts';

type AdapterClass = new (name: string) => Adapter;
type GrantHandler = (ctx: unknown) => Promise<void>;

/** the grant types whose handlers run in a scope, and the model each redeems */
const GRANTS: Record<string, string> = { refresh_token: 'RefreshToken', authorization_code: 'AuthorizationCode' };
/** what introspection looks up by value and then checks the grant of */
const LOOKED_UP = ['AccessToken', 'RefreshToken'];
/** Models whose writes the grant handlers defer: what they consume and what they issue. */
const DEFERRABLE = new Set(['AccessToken', 'RefreshToken', 'AuthorizationCode']);

export interface TokenPipelineOptions {
  /** the account for findAccount, as configuration.findAccount reads it; opened only if `onlyIf` resolves true */
  loadAccount(sub: string, onlyIf?: Promise<boolean>): Promise<unknown>;
  /** the key that seals and opens the hints in token values (token-kinds.ts hintKey) */
  hintKey: Buffer;
  /** REFRESH_REUSE_GRACE_SECONDS: see TokenPipelineAdapter.find */
  refreshReuseGraceSeconds?: number;
  /** told when a reuse within the grace was answered */
  onGrace?(clientId: string, grantId: unknown): void;
}

/** one request that looks up (introspection) or redeems (a grant) a token */
export class TokenRequestScope {
  /** the models whose find by value starts the prefetch */
  private readonly sources: Set<string>;
  /** the grants: accounts are prefetched and writes deferred */
  readonly redeeming: boolean;
  private readonly loadAccount?: TokenPipelineOptions['loadAccount'];
  /** every read started early, to wait for before the request ends */
  private readonly early = new Prefetches();
  /** deferred writes and checks, in the order the handler asked for them */
  private readonly deferred: Array<Promise<{ ok: true } | { ok: false; err: unknown }>> = [];
  /** tokens saved in this request, destroyed if the request fails */
  private readonly issued: Array<() => Promise<void>> = [];
  private sourceSeen = false;

  private readonly hintKey: Buffer;
  /** a redemption: the authenticated client, and the reuse grace (TokenPipelineAdapter.find) */
  readonly client?: { id: string; graceSeconds: number; onGrace?: TokenPipelineOptions['onGrace'] };

  constructor(sources: string[], hintKey: Buffer, redeem?: TokenPipelineOptions['loadAccount'], client?: TokenRequestScope['client']) {
    this.sources = new Set(sources);
    this.hintKey = hintKey;
    this.redeeming = redeem !== undefined;
    this.loadAccount = redeem;
    this.client = client;
  }

  isSource(model: string): boolean {
    return this.sources.has(model);
  }

  /** starts `load` now; the first take(key) gets its answer */
  private prefetch(key: string, load: () => Promise<unknown>): void {
    this.early.start(key, load);
  }

  /** the prefetched answer for `key`, once */
  take<T>(key: string): Promise<T> | undefined {
    return this.early.take<T>(key);
  }

  /**
   * An item of a source model is about to be read by value: read what the
   * value names beside it. Returns what to call with the item once read
   * (undefined: not found). A hinted account is read at once but opened
   * only once the item confirms it names that account, so a made-up value
   * costs reads, never a key unwrap.
   */
  sourceFind(model: string, id: string, grants: Adapter): (payload: AdapterPayload | undefined) => void {
    if (!this.sources.has(model) || this.sourceSeen || !mayBelongTo(model, id)) return () => {};
    const hints = hintsOf(model, id, this.hintKey);
    let confirm: (yes: boolean) => void = () => {};
    const confirmed = new Promise<boolean>((resolve) => { confirm = resolve; });
    if (hints.grantId) this.prefetch(`Grant#${hints.grantId}`, () => grants.find(hints.grantId!));
    const load = this.loadAccount;
    if (hints.accountId && load) this.prefetch(`account#${hints.accountId}`, () => load(hints.accountId!, confirmed));
    return (payload) => {
      confirm(!!payload && (payload as { accountId?: unknown }).accountId === hints.accountId);
      if (!payload) return;
      this.sourceSeen = true;
      // what the item really names (normally the keys of the hints: nothing more to read)
      const { grantId, accountId } = payload as { grantId?: unknown; accountId?: unknown };
      if (typeof grantId === 'string' && grantId) this.prefetch(`Grant#${grantId}`, () => grants.find(grantId));
      if (typeof accountId === 'string' && accountId && load) this.prefetch(`account#${accountId}`, () => load(accountId));
    };
  }

  /** the code exchange: the account may be checked with the writes (header, 3.) */
  get accountCheckDeferrable(): boolean {
    return this.redeeming && this.sources.has('AuthorizationCode');
  }

  /** runs a write (or a check) without waiting for it; settle() waits. `undo` destroys what it wrote */
  defer(write: Promise<unknown>, undo?: () => Promise<void>): void {
    this.deferred.push(write.then(() => ({ ok: true as const }), (err: unknown) => ({ ok: false as const, err })));
    if (undo) this.issued.push(undo);
  }

  /**
   * Waits for every deferred write and early read. Returns the error of the
   * first deferred write or check that failed (program order), if any.
   */
  async settle(): Promise<{ err: unknown } | undefined> {
    const results = await Promise.all(this.deferred);
    await this.early.settled();
    const failed = results.find((r) => !r.ok);
    return failed && !failed.ok ? { err: failed.err } : undefined;
  }

  /** destroys what this request saved: called when it fails, before it answers */
  async discard(): Promise<void> {
    await Promise.allSettled(this.issued.map((undo) => undo()));
  }
}

const scopeNow = () => currentScope(TokenRequestScope);

/** the prefetched account for `sub` in this request (findAccount), once */
export function takePrefetchedAccount<T>(sub: string): Promise<T> | undefined {
  return scopeNow()?.take<T>(`account#${sub}`);
}

/** true in the code exchange, where findAccount may hand its check to deferAccountCheck (header, 3.) */
export function accountCheckDeferrable(): boolean {
  return scopeNow()?.accountCheckDeferrable === true;
}

/** registers `check` (rejects when the account may not have tokens) to be settled before the response */
export function deferAccountCheck(check: Promise<unknown>): void {
  const scope = scopeNow();
  if (!scope?.accountCheckDeferrable) throw new Error('deferAccountCheck outside a code exchange');
  scope.defer(check);
}

/**
 * Runs `fn` (the provider handling POST /token/introspection, `ctx` its Koa
 * context) in a prefetch-only scope: the token's Grant is read beside the token.
 */
export function introspectionScope<T>(ctx: object, fn: () => Promise<T>, hintKey: Buffer): Promise<T> {
  return withScope(ctx, new TokenRequestScope(LOOKED_UP, hintKey), fn);
}

/**
 * Wraps an adapter class: inside a scope, Grant.find takes the prefetched
 * grant and a source model's find by value starts the prefetch; inside a
 * redeeming grant, consume/upsert of tokens are deferred until the handler
 * settles. Outside a scope (and for every other model) it is the adapter
 * underneath.
 */
export function withTokenPipeline(Base: AdapterClass): AdapterClass {
  return class TokenPipelineAdapter extends Base {
    private readonly model: string;

    constructor(name: string) {
      super(name);
      this.model = name;
    }

    override async find(id: string): Promise<AdapterPayload | undefined> {
      const scope = scopeNow();
      if (!scope) return (await super.find(id)) ?? undefined;
      if (this.model === 'Grant') {
        const p = scope.take<AdapterPayload | undefined>(`Grant#${id}`);
        if (p) return p;
      }
      if (!scope.isSource(this.model)) return (await super.find(id)) ?? undefined;
      const read = scope.sourceFind(this.model, id, new Base('Grant'));
      let payload: AdapterPayload | undefined;
      try {
        payload = (await super.find(id)) ?? undefined;
      } finally {
        read(payload);
      }
      return this.model === 'RefreshToken' && payload ? this.withinGrace(scope, id, payload) : payload;
    }

    /**
     * The reuse grace: a rotated refresh token presented again by its own
     * client within REFRESH_REUSE_GRACE_SECONDS of its rotation (the client
     * never got the answer: a crash, a lost connection) is un-consumed once,
     * so this redemption gives a fresh pair of the same family instead of
     * revoking it. Another client, a second retry, or a later one: the
     * consumed token goes on to oidc-provider, which revokes the family.
     */
    private async withinGrace(scope: TokenRequestScope, id: string, payload: AdapterPayload): Promise<AdapterPayload> {
      const consumed = payload.consumed;
      const client = scope.client;
      if (typeof consumed !== 'number' || !client || client.graceSeconds <= 0 || payload.clientId !== client.id) return payload;
      if (Math.floor(Date.now() / 1000) - consumed > client.graceSeconds) return payload;
      const revive = (this as unknown as { revive?: (id: string, at: number) => Promise<boolean> }).revive;
      if (typeof revive !== 'function' || !(await revive.call(this, id, consumed))) return payload;
      client.onGrace?.(client.id, payload.grantId);
      const { consumed: _retried, ...rest } = payload;
      return rest as AdapterPayload;
    }

    override async upsert(id: string, payload: AdapterPayload, expiresIn: number): Promise<void> {
      const scope = scopeNow();
      if (!scope?.redeeming || !DEFERRABLE.has(this.model)) return super.upsert(id, payload, expiresIn);
      scope.defer(super.upsert(id, payload, expiresIn), () => super.destroy(id));
    }

    override async consume(id: string): Promise<void> {
      const scope = scopeNow();
      if (!scope?.redeeming || !DEFERRABLE.has(this.model)) return super.consume(id);
      scope.defer(super.consume(id));
    }
  };
}

/**
 * Runs the refresh_token and authorization_code handlers of `provider` in a
 * redeeming scope, settled before they return, and gives refresh tokens,
 * codes and opaque access tokens their hints. Says what it could install
 * (nothing changes where it could not).
 */
export function installTokenPipeline(provider: Provider, opts: TokenPipelineOptions): { handlers: boolean; hints: boolean } {
  const handlers = (internals(provider) as { grantTypeHandlers?: unknown } | undefined)?.grantTypeHandlers;
  if (!(handlers instanceof Map)) return { handlers: false, hints: false };
  const table = handlers as Map<string, GrantHandler>;
  const grants = Object.entries(GRANTS).filter(([grantType]) => typeof table.get(grantType) === 'function');
  if (grants.length !== Object.keys(GRANTS).length) return { handlers: false, hints: false };
  for (const [grantType, source] of grants) {
    const original = table.get(grantType)!;
    table.set(grantType, (ctx) => {
      const clientId = (ctx as { oidc?: { client?: { clientId?: string } } }).oidc?.client?.clientId;
      const client = clientId ? { id: clientId, graceSeconds: opts.refreshReuseGraceSeconds ?? 0, onGrace: opts.onGrace } : undefined;
      const scope = new TokenRequestScope([source], opts.hintKey, opts.loadAccount, client);
      return withScope(ctx as object, scope, () => runSettled(original, ctx, scope));
    });
  }
  // hints: after the random part, what the token belongs to (token-kinds.ts)
  let hinted = 0;
  for (const model of Object.keys(HINTED)) {
    const proto = (provider as unknown as Record<string, { prototype?: { generateTokenId?: unknown } } | undefined>)[model]?.prototype;
    const random = proto?.generateTokenId;
    if (!proto || typeof random !== 'function') continue;
    proto.generateTokenId = function generateHintedTokenId(this: { grantId?: unknown; accountId?: unknown; format?: unknown }) {
      const value = (random as () => string).call(this);
      // a JWT access token's id is its jti claim: left alone
      return this.format === 'jwt' ? value : withHints(model, value, this.grantId, this.accountId, opts.hintKey);
    };
    hinted++;
  }
  return { handlers: true, hints: hinted === Object.keys(HINTED).length };
}

async function runSettled(handler: GrantHandler, ctx: unknown, scope: TokenRequestScope): Promise<void> {
  let failure: { err: unknown } | undefined;
  try {
    await handler(ctx);
  } catch (err) {
    failure = { err };
  }
  // a deferred write that failed came first in program order: it decides
  const writes = await scope.settle();
  const decided = writes ?? failure;
  if (decided) {
    await scope.discard();
    throw decided.err;
  }
}
