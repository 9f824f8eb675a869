// Prints the README's "Performance" tables from bench/results/latest.json:
// `node bench/readme-table.ts` (or `npm run bench:table`), then paste the
// output between the README's <!-- bench:start --> and <!-- bench:end -->
// markers; `--write` replaces them in place.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const results = JSON.parse(fs.readFileSync(path.join(here, 'results', 'latest.json'), 'utf8')) as {
  header: { date: string; cpus: number; model: string; memGiB: number; node: string; platform: string; secondsPerScenario: number; warmupSeconds: number; loginWarmupLogins?: number; connections: number; idpLogLevel: string; durationS: number };
  scenarios: Array<{ scenario: string; storage: string; workers: number; keysMode: string; rps: number; baselineRps: number | null; ratio: number | null; cpuRatio: number | null; cpuMsPerReq: number; baselineCpuMsPerReq: number | null; p50ms: number | null; p99ms: number | null }>;
  cluster: Array<{ scenario: string; workers1Rps: number; workers2Rps: number; scaling: number }>;
  roundTrips: Array<{ request: string; roundTrips: number; ddbRequests: number }>;
};

const h = results.header;
const dash = (v: number | null | undefined, digits?: number) => (v === null || v === undefined ? '—' : digits === undefined ? String(v) : v.toFixed(digits));
const out: string[] = [];
out.push(`Measured ${h.date.slice(0, 10)} on ${h.cpus} vCPUs (${h.model}), ${h.memGiB} GiB, Node ${h.node}, ${h.platform}; ${h.secondsPerScenario} s per scenario after ${h.warmupSeconds} s warm-up (the login scenario after ${h.loginWarmupLogins ?? '—'} logins), ${h.connections} connections, our IdP at LOG_LEVEL=${h.idpLogLevel}; whole run ${h.durationS} s. Ratio = our req/s ÷ the bare oidc-provider baseline's, measured right after in the same run; CPU ratio = our CPU time per request ÷ the baseline's (1.00 = the same; lower is better). Absolute numbers on this shared 2-core machine move by up to 2× between runs.`);
out.push('');
out.push('| scenario | storage | keys | ours req/s | baseline req/s | ratio | CPU ms/req ours / baseline | CPU ratio | p50 / p99 ms |');
out.push('| --- | --- | --- | --- | --- | --- | --- | --- | --- |');
for (const s of results.scenarios) {
  out.push(`| ${s.scenario} | ${s.storage}${s.workers > 1 ? ` ×${s.workers}` : ''} | ${s.keysMode} | ${s.rps} | ${dash(s.baselineRps)} | ${dash(s.ratio, 2)} | ${s.cpuMsPerReq.toFixed(2)} / ${dash(s.baselineCpuMsPerReq, 2)} | ${dash(s.cpuRatio, 2)} | ${dash(s.p50ms)} / ${dash(s.p99ms)} |`);
}
out.push('');
out.push('2 workers against 1 on the same 2 cores (the load generator shares them):');
out.push('');
out.push('| scenario | 1 worker req/s | 2 workers req/s | scaling |');
out.push('| --- | --- | --- | --- |');
for (const c of results.cluster ?? []) out.push(`| ${c.scenario} | ${c.workers1Rps} | ${c.workers2Rps} | ${c.scaling.toFixed(2)}× |`);
out.push('');
out.push('DynamoDB round trips per request (sequential calls; counted in-process):');
out.push('');
out.push('| request | round trips | DynamoDB requests |');
out.push('| --- | --- | --- |');
for (const r of results.roundTrips ?? []) out.push(`| ${r.request} | ${r.roundTrips} | ${r.ddbRequests} |`);
const text = out.join('\n');

if (process.argv.includes('--write')) {
  const readme = path.join(here, '..', 'README.md');
  const s = fs.readFileSync(readme, 'utf8');
  const a = s.indexOf('<!-- bench:start -->');
  const b = s.indexOf('<!-- bench:end -->');
  if (a < 0 || b < a) throw new Error('README.md has no <!-- bench:start --> … <!-- bench:end --> markers');
  fs.writeFileSync(readme, `${s.slice(0, a)}<!-- bench:start -->\n${text}\n${s.slice(b)}`);
  process.stdout.write('README.md updated\n');
} else {
  process.stdout.write(`${text}\n`);
}
