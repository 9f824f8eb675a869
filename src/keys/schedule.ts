// The rotation schedule as a pure function: given the stored keys and the
// time, which steps are due. Every key goes next → active → retired → removed:
//  - a `next` key is published (in /jwks, or accepted for cookies) but does
//    not sign until its activatesAt (KEY_PREPUBLISH_SECONDS after creation);
//  - then it is promoted to `active` and the previous active key is retired;
//  - a retired key stays published until removesAt (set when it was retired:
//    every token or cookie it signed has expired by then), then is removed;
//  - KEY_PREPUBLISH_SECONDS before an active key reaches KEY_MAX_AGE_SECONDS,
//    a `next` key is created (0 turns automatic creation off).
// A group (one signing algorithm, or the cookie keys) with no active key gets
// one at once: that is the first start.
import type { KeyState, SigningAlg } from './types.ts';
import type { Lifecycle, StoredCookieKey, StoredSigningKey } from './store.ts';

export interface Snapshot {
  signing: StoredSigningKey[];
  cookies: StoredCookieKey[];
  /** the wrapped blind-index key, when it exists */
  blindIndex: string | undefined;
}

export interface SchedulePolicy {
  prepublishSeconds: number;
  maxAgeSeconds: number;
}

export type Step =
  | { step: 'create'; kind: 'signing'; alg: SigningAlg; state: 'active' | 'next' }
  | { step: 'create'; kind: 'cookie'; state: 'active' | 'next' }
  | { step: 'create'; kind: 'secret'; name: 'blind-index' }
  | { step: 'promote'; kind: 'signing' | 'cookie'; id: string; alg?: SigningAlg; retire: string[] }
  | { step: 'remove'; kind: 'signing' | 'cookie'; id: string; alg?: SigningAlg };

type Rec = Lifecycle & { id: string };

const t = (iso: string | undefined, fallback = 0): number => (iso ? Date.parse(iso) : fallback);

export function byState(recs: Rec[], state: KeyState): Rec[] {
  return recs.filter((r) => r.state === state);
}

function planGroup(recs: Rec[], now: number, policy: SchedulePolicy): Array<{ step: 'create'; state: 'active' | 'next' } | { step: 'promote'; id: string; retire: string[] } | { step: 'remove'; id: string }> {
  const out: ReturnType<typeof planGroup> = [];
  const active = byState(recs, 'active').sort((a, b) => t(b.activatedAt ?? b.createdAt) - t(a.activatedAt ?? a.createdAt));
  const next = byState(recs, 'next').sort((a, b) => t(a.activatesAt ?? a.createdAt) - t(b.activatesAt ?? b.createdAt));
  const due = next.find((n) => t(n.activatesAt ?? n.createdAt) <= now);
  if (active.length === 0) {
    // nothing signs in this group: promote whatever waits, or create a key now
    if (next.length > 0) out.push({ step: 'promote', id: next[0].id, retire: [] });
    else out.push({ step: 'create', state: 'active' });
  } else if (due) {
    out.push({ step: 'promote', id: due.id, retire: active.map((a) => a.id) });
  } else if (policy.maxAgeSeconds > 0 && next.length === 0) {
    const since = t(active[0].activatedAt ?? active[0].createdAt);
    const lead = Math.max(policy.maxAgeSeconds - policy.prepublishSeconds, 0);
    if (now >= since + lead * 1000) out.push({ step: 'create', state: 'next' });
  }
  for (const r of byState(recs, 'retired')) {
    if (r.removesAt && t(r.removesAt) <= now) out.push({ step: 'remove', id: r.id });
  }
  return out;
}

/** the steps due at `now` for the signing algorithms `algs`, the cookie keys and the blind-index key */
export function plan(snap: Snapshot, algs: readonly SigningAlg[], now: number, policy: SchedulePolicy): Step[] {
  const steps: Step[] = [];
  for (const alg of algs) {
    const recs = snap.signing.filter((k) => k.alg === alg).map((k) => ({ ...k, id: k.kid }));
    for (const s of planGroup(recs, now, policy)) {
      if (s.step === 'create') steps.push({ step: 'create', kind: 'signing', alg, state: s.state });
      else steps.push({ ...s, kind: 'signing', alg } as Step);
    }
  }
  // retired keys of an algorithm this mode no longer signs with still leave on time
  for (const k of snap.signing) {
    if (!algs.includes(k.alg) && k.state === 'retired' && k.removesAt && t(k.removesAt) <= now) steps.push({ step: 'remove', kind: 'signing', id: k.kid, alg: k.alg });
  }
  const cookies = snap.cookies.map((c) => ({ ...c, id: c.id, state: c.state ?? 'active' }));
  for (const s of planGroup(cookies, now, policy)) {
    if (s.step === 'create') steps.push({ step: 'create', kind: 'cookie', state: s.state });
    else steps.push({ ...s, kind: 'cookie' } as Step);
  }
  if (snap.blindIndex === undefined) steps.push({ step: 'create', kind: 'secret', name: 'blind-index' });
  return steps;
}
