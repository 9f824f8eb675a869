// Fewer DynamoDB round trips in the browser steps of an authorization: the
// resumes (GET /auth/:uid), the interaction page (GET /interaction/:uid) and
// the consent POST. oidc-provider and our interaction routes make their calls
// one after the other:
//
//   resume        Session → Interaction → delete it → account → Grant → save
//                 the code → (save the next Interaction) → delete the old
//                 Session → save the Session under its new id
//   consent page  Interaction → Session (a check) → account (for the page)
//   consent POST  Interaction → Session (a check) → save the Grant → save the
//                 Interaction's result
//
// Inside these requests, and nowhere else, this module changes WHEN calls are
// made, not which are made or what they check (the token requests have
// token-pipeline.ts):
//
//  1. Write-behind. Writes (upsert, destroy) of the Interaction, Session,
//     Grant and AuthorizationCode models are held and sent together once the
//     request's handler is done, BEFORE its response leaves: the middleware
//     awaits them between the handler and Koa's respond. If any fails, the
//     response becomes a 503 without its redirect and cookies (a write that
//     failed failed its request, as before). A handler that failed still has
//     the writes it made sent (as before, when they were made at once). Writes
//     of one item keep their effect: two saves send the last payload, a
//     destroy then a save go one after the other; a read of an item with a
//     held write answers from it, and any other call of these models
//     (findByUid, consume, revokeByGrantId, ...) sends the held writes first.
//     So the stored state after the request is the same; what changes is that
//     other requests see these items change at the end of this request rather
//     during it — and every id involved reaches the browser only in this
//     request's response (a redirect, a cookie), except the session the
//     browser already holds, which is last-writer-wins as before. Events
//     oidc-provider emits inside the handler (authorization.success) come
//     before the writes are sent. (Not in the login POST and the other
//     interaction POSTs: their last writes go out beside other work already,
//     routes.ts.)
//  2. Prefetch. The resume reads the Interaction its path names beside the
//     Session its cookie names; an Interaction read in a resume starts the
//     reads of the account and the Grant its result names (on the consent
//     page: the account of its session), and findAccount, the consent page
//     and loadExistingGrant take them for exactly those ids, once. The ids
//     come from stored items, never from the request.
//
// Round trips of a whole login: 29 → 18-20 with the login POST's own (routes.ts).
import type { Middleware } from 'koa';
import type { Adapter, AdapterPayload } from 'oidc-provider';
import type { AccountStore } from '../accounts/types.ts';
import { currentScope, withScope } from './request-scope.ts';
import { Prefetches } from './prefetch.ts';

type AdapterClass = new (name: string) => Adapter;

/** the models whose writes are held (write-behind) */
const HELD = new Set(['Interaction', 'Session', 'Grant', 'AuthorizationCode']);

/** a resume (GET /auth/:uid): its path names the Interaction; the interaction page; the consent POST */
const RESUME = /^\/auth\/([\w-]{1,64})$/;
const INTERACTION_PAGE = /^\/interaction\/[\w-]{1,64}$/;
const CONSENT_POST = /^\/interaction\/[\w-]{1,64}\/consent$/;

type Kind = 'resume' | 'page' | 'consent';

/** the writes held for one item: a destroy first (then a save), or a save (its payload as JSON, taken when it was saved) */
interface Held {
  destroy: boolean;
  upsert?: { json: string; expiresIn: number };
  run(h: Held): Promise<void>;
}

export class InteractionScope {
  readonly kind: Kind;
  private readonly held = new Map<string, Held>();
  private readonly early = new Prefetches();
  private readonly loadAccount: (sub: string) => Promise<unknown>;
  /** the flush under way: a later one waits for it, so writes of one item never overtake each other */
  private flushing: Promise<void> = Promise.resolve();

  constructor(kind: Kind, loadAccount: (sub: string) => Promise<unknown>) {
    this.kind = kind;
    this.loadAccount = loadAccount;
  }

  prefetch(key: string, load: () => Promise<unknown>): void {
    this.early.start(key, load);
  }

  take<T>(key: string): Promise<T> | undefined {
    return this.early.take<T>(key);
  }

  /** an Interaction was read: read what the next steps of this request will ask for (header, 2.) */
  interactionRead(payload: AdapterPayload, grants: () => Adapter): void {
    const p = payload as { result?: { login?: { accountId?: unknown }; consent?: { grantId?: unknown } }; session?: { accountId?: unknown }; prompt?: { name?: unknown } };
    const account = this.kind === 'resume' ? (p.result?.login?.accountId ?? (p.result ? p.session?.accountId : undefined))
      : this.kind === 'page' && p.prompt?.name === 'consent' ? p.session?.accountId : undefined;
    if (typeof account === 'string' && account) this.prefetch(`account#${account}`, () => this.loadAccount(account));
    const grantId = this.kind === 'resume' ? p.result?.consent?.grantId : undefined;
    if (typeof grantId === 'string' && grantId) this.prefetch(`Grant#${grantId}`, () => grants().find(grantId));
  }

  /** what a read of `key` sees while a write of it is held: undefined when none is */
  heldState(key: string): { payload?: AdapterPayload } | undefined {
    const h = this.held.get(key);
    if (!h) return undefined;
    // what the adapter would give back (it stores JSON text)
    return { payload: h.upsert ? JSON.parse(h.upsert.json) as AdapterPayload : undefined };
  }

  holdUpsert(key: string, payload: AdapterPayload, expiresIn: number, run: Held['run']): void {
    const h = this.held.get(key) ?? { destroy: false, run };
    h.upsert = { json: JSON.stringify(payload), expiresIn };
    h.run = run;
    this.held.set(key, h);
  }

  holdDestroy(key: string, run: Held['run']): void {
    this.held.set(key, { destroy: true, run });
  }

  /** sends every held write at once; the first failure (in the order they were held) is thrown after all settled */
  flush(): Promise<void> {
    const before = this.flushing;
    const run = (async () => {
      await before.catch(() => {});
      const all = [...this.held.values()];
      this.held.clear();
      const results = await Promise.allSettled(all.map((h) => h.run(h)));
      const failed = results.find((r) => r.status === 'rejected');
      if (failed) throw (failed as PromiseRejectedResult).reason;
    })();
    this.flushing = run;
    return run;
  }

  /** the early reads nobody took: waited for, so none outlives its request */
  async settle(): Promise<void> {
    await this.early.settled();
  }
}

const scopeNow = () => currentScope(InteractionScope);

export interface InteractionPipeline {
  /** the adapter class for the provider: Base, holding and prefetching inside a scope */
  Adapter: AdapterClass;
  /** Koa middleware: runs the resume, the interaction page and the consent POST in a scope, and sends the held writes before the response */
  middleware: Middleware;
  /** `accounts` whose findBySub takes this request's prefetched account */
  accounts<T extends AccountStore>(accounts: T): T;
}

export function interactionPipeline(Base: AdapterClass, opts: { loadAccount(sub: string): Promise<unknown> }): InteractionPipeline {
  let grantAdapter: Adapter | undefined;
  let interactionAdapter: Adapter | undefined;
  const grants = () => (grantAdapter ??= new Base('Grant'));
  const interactions = () => (interactionAdapter ??= new Base('Interaction'));

  class InteractionPipelineAdapter extends (Base as new (name: string) => Adapter & object) {
    private readonly model: string;

    constructor(name: string) {
      super(name);
      this.model = name;
    }

    private held(scope: InteractionScope | undefined): scope is InteractionScope {
      return scope !== undefined && HELD.has(this.model);
    }

    /** held writes go first: called before any call that a held write could change */
    private async before(): Promise<void> {
      const scope = scopeNow();
      if (this.held(scope)) await scope.flush();
    }

    override async find(id: string): Promise<AdapterPayload | undefined> {
      const scope = scopeNow();
      if (!scope) return super.find(id) as Promise<AdapterPayload | undefined>;
      const key = `${this.model}#${id}`;
      if (HELD.has(this.model)) {
        const held = scope.heldState(key);
        if (held) return held.payload;
      }
      const payload = (await (scope.take<AdapterPayload | undefined>(key) ?? super.find(id))) ?? undefined;
      if (payload && this.model === 'Interaction') scope.interactionRead(payload, grants);
      return payload;
    }

    override async upsert(id: string, payload: AdapterPayload, expiresIn: number): Promise<void> {
      const scope = scopeNow();
      if (!this.held(scope)) return super.upsert(id, payload, expiresIn);
      const up = (p: AdapterPayload, e: number) => super.upsert(id, p, e);
      const down = () => super.destroy(id);
      scope.holdUpsert(`${this.model}#${id}`, payload, expiresIn, async (h) => {
        if (h.destroy) await down();
        if (h.upsert) await up(JSON.parse(h.upsert.json) as AdapterPayload, h.upsert.expiresIn);
      });
    }

    override async destroy(id: string): Promise<void> {
      const scope = scopeNow();
      if (!this.held(scope)) return super.destroy(id);
      const down = () => super.destroy(id);
      scope.holdDestroy(`${this.model}#${id}`, () => down());
    }

    override async findByUid(uid: string): Promise<AdapterPayload | undefined> {
      await this.before();
      return super.findByUid(uid) as Promise<AdapterPayload | undefined>;
    }

    override async findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
      await this.before();
      return super.findByUserCode(userCode) as Promise<AdapterPayload | undefined>;
    }

    override async consume(id: string): Promise<void> {
      await this.before();
      return super.consume(id);
    }

    override async revokeByGrantId(grantId: string): Promise<void> {
      await this.before();
      return super.revokeByGrantId(grantId);
    }
  }

  const middleware: Middleware = async (ctx, next) => {
    const resume = ctx.method === 'GET' ? RESUME.exec(ctx.path) : null;
    const kind: Kind | undefined = resume ? 'resume'
      : ctx.method === 'GET' && INTERACTION_PAGE.test(ctx.path) ? 'page'
      : ctx.method === 'POST' && CONSENT_POST.test(ctx.path) ? 'consent'
      : undefined;
    if (!kind) return next();
    const scope = new InteractionScope(kind, opts.loadAccount);
    await withScope(ctx, scope, async () => {
      // the resume's Interaction (its id is the uid in the path) beside the Session oidc-provider reads first
      if (resume) scope.prefetch(`Interaction#${resume[1]}`, () => interactions().find(resume[1]));
      let failure: { err: unknown } | undefined;
      try {
        await next();
      } catch (err) {
        failure = { err };
      }
      try {
        await scope.flush();
      } catch (err) {
        // nothing this response says may go out: no redirect, no cookie
        ctx.remove('Location');
        ctx.remove('Set-Cookie');
        failure ??= { err };
      }
      await scope.settle();
      if (failure) throw failure.err;
    });
  };

  return {
    Adapter: InteractionPipelineAdapter as unknown as AdapterClass,
    middleware,
    accounts(store) {
      const findBySub: AccountStore['findBySub'] = (sub, o) => scopeNow()?.take<Awaited<ReturnType<AccountStore['findBySub']>>>(`account#${sub}`) ?? store.findBySub(sub, o);
      return new Proxy(store, {
        get(target, prop) {
          if (prop === 'findBySub') return findBySub;
          const v = Reflect.get(target, prop, target) as unknown;
          return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
        },
      });
    },
  };
}
