// Prints the README's "Performance" tables from bench/results/latest.json:
// `node bench/readme-table.ts` (or `npm run bench:table`), then paste the
// output between the README's <!-- bench:start --> and <!-- bench:end -->
// markers; `--write` replaces them in place.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
interface ImportScale { rows: number; wallS: number; rowsPerSecond: number; peakRssMiB: number; concurrency: number; checkpoints: Array<{ line: number; rssMiB: number; peakRssMiB: number; atS: number }>; date?: string }
const results = JSON.parse(fs.readFileSync(path.join(here, 'results', 'latest.json'), 'utf8')) as {
  header: { date: string; cpus: number; model: string; memGiB: number; node: string; platform: string; secondsPerScenario: number; warmupSeconds: number; loginWarmupLogins?: number; connections: number; idpLogLevel: string; durationS: number; roundTripsPerLogin?: number; latencyMs?: number | null };
  scenarios: Array<{
    scenario: string; storage: string; workers: number; keysMode: string; rps: number; baselineRps: number | null; ratio: number | null; cpuRatio: number | null; cpuMsPerReq: number; baselineCpuMsPerReq: number | null; p50ms: number | null; p99ms: number | null;
    dynamoBaselineRps?: number; dynamoBaselineCpuMsPerReq?: number; dynamoBaselineP50ms?: number; dynamoRatio?: number; dynamoCpuRatio?: number; ddbPerReq?: number; dynamoBaselineDdbPerReq?: number;
    latencyP50ms?: number; dynamoBaselineLatencyP50ms?: number;
  }>;
  latency?: Array<{ scenario: string; latencyMs: number; rps: number; p50ms: number; p99ms: number; cpuMsPerReq: number; dynamoBaselineRps: number; dynamoBaselineP50ms: number; dynamoBaselineP99ms: number; dynamoBaselineCpuMsPerReq: number; dynamoRatio: number }>;
  importScale?: ImportScale;
  cluster: Array<{ scenario: string; workers1Rps: number; workers2Rps: number; scaling: number }>;
  roundTrips: Array<{ request: string; roundTrips: number; ddbRequests: number }>;
};
const fullImport = (() => {
  try {
    return JSON.parse(fs.readFileSync(path.join(here, 'results', 'import-scale.json'), 'utf8')) as ImportScale;
  } catch {
    return undefined;
  }
})();

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
const peer = results.scenarios.filter((s) => s.dynamoBaselineRps !== undefined);
if (peer.length) {
  out.push('');
  out.push('Against the peer, bare oidc-provider on the community DynamoDB adapter (`bench/community-dynamodb-adapter.ts`) on the same storage, measured right after ours (ratio = ours ÷ peer; CPU ratio = our CPU per request ÷ the peer\'s); the last column is the p50 with every DynamoDB request 3 ms away each way (latency phase):');
  out.push('');
  out.push('| scenario | storage | ours req/s | peer req/s | ratio | CPU ms/req ours / peer | CPU ratio | DynamoDB req/req ours / peer | p50 ms ours / peer | p50 ms at +3 ms ours / peer |');
  out.push('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const s of peer) {
    out.push(`| ${s.scenario} | ${s.storage} | ${s.rps} | ${s.dynamoBaselineRps} | ${dash(s.dynamoRatio, 2)} | ${s.cpuMsPerReq.toFixed(2)} / ${dash(s.dynamoBaselineCpuMsPerReq, 2)} | ${dash(s.dynamoCpuRatio, 2)} | ${dash(s.ddbPerReq)} / ${dash(s.dynamoBaselineDdbPerReq)} | ${dash(s.p50ms)} / ${dash(s.dynamoBaselineP50ms)} | ${dash(s.latencyP50ms)} / ${dash(s.dynamoBaselineLatencyP50ms)} |`);
  }
}
if (results.latency?.length) {
  out.push('');
  out.push(`With DynamoDB ${results.latency[0].latencyMs} ms away (each way, a proxy process in front of the storage process), ours and the peer:`);
  out.push('');
  out.push('| scenario | ours req/s | peer req/s | ratio | p50 / p99 ms ours | p50 / p99 ms peer | CPU ms/req ours / peer |');
  out.push('| --- | --- | --- | --- | --- | --- | --- |');
  for (const l of results.latency) out.push(`| ${l.scenario} | ${l.rps} | ${l.dynamoBaselineRps} | ${l.dynamoRatio.toFixed(2)} | ${l.p50ms} / ${l.p99ms} | ${l.dynamoBaselineP50ms} / ${l.dynamoBaselineP99ms} | ${l.cpuMsPerReq.toFixed(2)} / ${l.dynamoBaselineCpuMsPerReq.toFixed(2)} |`);
}
const imp = results.importScale ?? fullImport;
if (imp) {
  out.push('');
  out.push(`\`idp users import\` of ${imp.rows} generated lines${imp === fullImport && imp.date ? ` (run once, ${imp.date.slice(0, 10)}, \`node bench/import-scale.ts\`)` : ''}: ${imp.rowsPerSecond} rows/s, peak RSS ${imp.peakRssMiB} MiB; resident set as the import passed ${imp.checkpoints.map((c) => `line ${c.line}: ${c.rssMiB} MiB`).join(', ')}.`);
}
out.push('');
out.push('2 workers against 1 on the same 2 cores (the load generator shares them):');
out.push('');
out.push('| scenario | 1 worker req/s | 2 workers req/s | scaling |');
out.push('| --- | --- | --- | --- |');
for (const c of results.cluster ?? []) out.push(`| ${c.scenario} | ${c.workers1Rps} | ${c.workers2Rps} | ${c.scaling.toFixed(2)}× |`);
out.push('');
out.push(`DynamoDB round trips per request (sequential calls; counted in-process)${h.roundTripsPerLogin !== undefined ? `; a whole login, authorize to tokens: **${h.roundTripsPerLogin}** (\`roundTripsPerLogin\`)` : ''}:`);
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
