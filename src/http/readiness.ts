// /readyz: each dependency by name with its state. Checks are cheap (one
// DescribeTable, one KMS DescribeKey, one SQS GetQueueAttributes), each with a
// short timeout, and an answer is reused for a moment (READY_CACHE_MS), with
// concurrent callers sharing the checks in flight: however often /readyz is
// called, each dependency is asked at most once per READY_CACHE_MS.
// A required dependency that is down makes the answer 503; an optional one
// (the event sink: events wait in the backlog meanwhile) is reported only.
// The answer names error classes only (TimeoutError, ResourceNotFoundException),
// never a message, an endpoint or an ARN: /readyz is public. Changes of state
// are logged, with the detail.
import type { Logger } from '../logging/index.ts';

export interface DependencyCheck {
  /** a 503 when this one is down */
  required: boolean;
  /** resolves (with fields to show, e.g. { sink: 'sqs' }) when the dependency answers; rejects otherwise */
  run(signal: AbortSignal): Promise<Record<string, unknown> | void>;
}

export interface CheckResult {
  state: 'up' | 'down';
  required: boolean;
  latencyMs: number;
  /** down: the error's class */
  error?: string;
  [field: string]: unknown;
}

export interface Readiness {
  status: 'ready' | 'unavailable';
  checks: Record<string, CheckResult>;
  /** unavailable: the required dependencies that are down */
  reason?: string;
}

export function readiness(checks: Record<string, DependencyCheck>, opts: { timeoutMs: number; cacheMs: number; log?: Logger }): () => Promise<Readiness> {
  let cached: { at: number; value: Promise<Readiness> } | undefined;
  const last = new Map<string, string>();

  async function one(name: string, check: DependencyCheck): Promise<CheckResult> {
    const started = performance.now();
    const controller = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const err = new Error(`no answer within ${opts.timeoutMs} ms`);
        err.name = 'TimeoutError';
        controller.abort(err);
        reject(err);
      }, opts.timeoutMs);
    });
    let result: CheckResult;
    try {
      const extra = await Promise.race([check.run(controller.signal), timeout]);
      result = { ...extra, state: 'up', required: check.required, latencyMs: Math.round(performance.now() - started) };
    } catch (err) {
      const e = err as Error | undefined;
      const error = controller.signal.aborted ? 'TimeoutError' : e?.name && e.name !== 'Error' ? e.name : 'Error';
      result = { state: 'down', required: check.required, latencyMs: Math.round(performance.now() - started), error };
      if (last.get(name) !== 'down') opts.log?.warn({ event: 'readiness.down', dependency: name, required: check.required, error, detail: e?.message }, 'dependency down');
    } finally {
      clearTimeout(timer);
    }
    if (result.state === 'up' && last.get(name) === 'down') opts.log?.info({ event: 'readiness.up', dependency: name }, 'dependency up again');
    last.set(name, result.state);
    return result;
  }

  async function probe(): Promise<Readiness> {
    const names = Object.keys(checks);
    const results = await Promise.all(names.map((n) => one(n, checks[n])));
    const out: Record<string, CheckResult> = {};
    names.forEach((n, i) => { out[n] = results[i]; });
    const down = names.filter((n) => out[n].required && out[n].state === 'down');
    return down.length ? { status: 'unavailable', reason: `down: ${down.join(', ')}`, checks: out } : { status: 'ready', checks: out };
  }

  return () => {
    const now = Date.now();
    if (!cached || now - cached.at >= opts.cacheMs) {
      const value = probe();
      cached = { at: now, value };
      // the next caller after a probe in flight finishes waits for its own only once the cache time has passed
      value.finally(() => { if (cached?.value === value) cached.at = Date.now(); }).catch(() => undefined);
    }
    return cached.value;
  };
}
