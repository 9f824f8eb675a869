// `idp users import` at scale: one import process over a generated file
// (bench/lib/import-file.ts) against embedded dynalite served by its own
// process, with its resident set size read from /proc as it goes. The file's
// read position (/proc/<pid>/fdinfo) tells how far the import has got: the RSS
// is noted when it passes given lines (100k, 300k, …; the reader is at most
// about 1 200 lines ahead of the rows in flight), so a run shows whether
// memory grows with the file. The bench runs it (importAtScale) on a shorter
// file; standalone it is the full run:
//
//   node bench/import-scale.ts [--rows 1000000] [--at 100000,300000,600000,1000000] [--concurrency 8]
//
// Standalone, it starts its own dynalite owner in a temporary DATA_DIR,
// migrates, imports, prints the result and writes bench/results/import-scale.json.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fork, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { writeImportFile, type ImportFileInfo } from './lib/import-file.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export interface ImportScaleResult {
  rows: number;
  fileBytes: number;
  concurrency: number;
  /** the import's resident set when its read position passed each line (the file is read ahead by at most 64 KiB) */
  checkpoints: Array<{ line: number; rssMiB: number; peakRssMiB: number; atS: number; rowsPerSecondSoFar: number }>;
  /** VmHWM at the end: the peak of the whole run */
  peakRssMiB: number;
  wallS: number;
  /** rows written (created + merged + updated + unchanged) per second of the whole process, start-up included */
  rowsPerSecond: number;
  summary: { read: number; created: number; merged: number; updated: number; unchanged: number; rejected: number };
  exitCode: number | null;
}

function status(pid: number): { rss: number; hwm: number } | undefined {
  try {
    const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+) kB`).exec(s)?.[1] ?? NaN);
    return { rss: kb('VmRSS') / 1024, hwm: kb('VmHWM') / 1024 };
  } catch {
    return undefined;
  }
}

/** the read position of `file` in process `pid`, if it has it open */
function readPosition(pid: number, file: string, fdHint: { fd?: string; done?: boolean }): number | undefined {
  if (fdHint.done) return Infinity;
  try {
    // the descriptor may have been closed and its number given to something else
    if (fdHint.fd && fs.readlinkSync(`/proc/${pid}/fd/${fdHint.fd}`) !== file) throw new Error('closed');
    if (!fdHint.fd) {
      for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
        try {
          if (fs.readlinkSync(`/proc/${pid}/fd/${fd}`) === file) fdHint.fd = fd;
        } catch { /* closed meanwhile */ }
      }
    }
    if (!fdHint.fd) return undefined;
    const m = /^pos:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/fdinfo/${fdHint.fd}`, 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    // the file was open and is closed now: read to its end
    if (fdHint.fd) fdHint.done = true;
    fdHint.fd = undefined;
    return undefined;
  }
}

/**
 * Writes a file of `rows` lines, runs `idp users import FILE --json` as a
 * process of its own with `env` (pointing at a storage already migrated),
 * and notes its RSS as it passes the lines in `at`.
 */
export async function importAtScale(opts: { rows: number; at: number[]; env: Record<string, string>; dir: string; concurrency?: number; log?: (m: string) => void }): Promise<ImportScaleResult> {
  const file = path.join(opts.dir, `import-scale-${opts.rows}.jsonl`);
  const info: ImportFileInfo = await writeImportFile(file, { rows: opts.rows, dupEvery: 10, bcryptEvery: 5, offsetsAt: opts.at });
  const concurrency = opts.concurrency ?? 8;
  opts.log?.(`import at scale: ${opts.rows} lines (${(info.bytes / 2 ** 20).toFixed(0)} MiB), concurrency ${concurrency}`);
  const started = performance.now();
  const child = spawn(process.execPath, [path.join(root, 'src', 'cli', 'main.ts'), 'users', 'import', file, '--json', '--concurrency', String(concurrency)], {
    cwd: root, env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (b: Buffer) => { stdout += b.toString(); });
  child.stderr!.on('data', (b: Buffer) => { stderr += b.toString(); });
  const pending = [...opts.at].sort((a, b) => a - b).filter((l) => info.offsets[l] !== undefined);
  const checkpoints: ImportScaleResult['checkpoints'] = [];
  let peak = 0;
  let last: { rss: number; hwm: number; atS: number } | undefined;
  const fdHint: { fd?: string; done?: boolean } = {};
  const note = (line: number, st: { rss: number; hwm: number }, atS: number) => {
    checkpoints.push({ line, rssMiB: Math.round(st.rss * 10) / 10, peakRssMiB: Math.round(st.hwm * 10) / 10, atS: Math.round(atS * 10) / 10, rowsPerSecondSoFar: Math.round(line / atS) });
    opts.log?.(`  line ${line}: RSS ${st.rss.toFixed(1)} MiB (peak ${st.hwm.toFixed(1)}), ${atS.toFixed(0)} s, ${Math.round(line / atS)} lines/s so far`);
  };
  const poll = setInterval(() => {
    const st = status(child.pid!);
    if (!st || !Number.isFinite(st.rss) || !Number.isFinite(st.hwm)) return;
    peak = Math.max(peak, st.hwm);
    const atS = (performance.now() - started) / 1000;
    last = { ...st, atS };
    const pos = readPosition(child.pid!, file, fdHint);
    while (pos !== undefined && pending.length && pos >= info.offsets[pending[0]]) note(pending.shift()!, st, atS);
  }, 50);
  const exitCode = await new Promise<number | null>((resolve) => child.once('close', (c) => resolve(c)));
  clearInterval(poll);
  // lines the reader passed between the last two readings (the last ones of the file): the last reading, within 50 ms of the exit
  if (exitCode === 0 && last) while (pending.length) note(pending.shift()!, last, last.atS);
  const wallS = (performance.now() - started) / 1000;
  fs.rmSync(file, { force: true });
  if (exitCode !== 0) throw new Error(`idp users import exited ${exitCode}: ${stderr.slice(-2000)}`);
  const s = JSON.parse(stdout) as ImportScaleResult['summary'];
  const summary = { read: s.read, created: s.created, merged: s.merged, updated: s.updated, unchanged: s.unchanged, rejected: s.rejected };
  const ok = summary.created + summary.merged + summary.updated + summary.unchanged;
  return {
    rows: opts.rows, fileBytes: info.bytes, concurrency, checkpoints, peakRssMiB: Math.round(peak * 10) / 10,
    wallS: Math.round(wallS * 10) / 10, rowsPerSecond: Math.round((ok / wallS) * 10) / 10, summary, exitCode,
  };
}

/** importAtScale on a fresh embedded storage of its own (a temporary DATA_DIR served by a dynalite owner process) */
export async function importAtScaleOnFreshStorage(opts: { rows: number; at: number[]; concurrency?: number; log?: (m: string) => void }): Promise<ImportScaleResult> {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'idp-import-scale-'));
  const dataDir = path.join(tmp, 'data');
  fs.mkdirSync(dataDir);
  const owner = fork(path.join(root, 'bench', 'dynalite-owner.ts'), [], { env: { ...process.env, DATA_DIR: dataDir }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  try {
    await new Promise<void>((resolve, reject) => {
      owner.once('message', () => resolve());
      owner.once('exit', (code) => reject(new Error(`dynalite owner exited (${code})`)));
    });
    const env = { DATA_DIR: dataDir, LOG_LEVEL: 'silent' };
    const { run } = await import('../src/cli/main.ts');
    await run(['migrate'], env);
    return await importAtScale({ ...opts, env, dir: tmp });
  } finally {
    const exited = new Promise((r) => owner.once('exit', r));
    owner.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

// standalone: the full run
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({ options: { rows: { type: 'string', default: '1000000' }, at: { type: 'string' }, concurrency: { type: 'string', default: '8' } } });
  const rows = Number(values.rows);
  const at = values.at ? values.at.split(',').map(Number) : [100_000, 300_000, 600_000, 1_000_000].filter((l) => l <= rows);
  const log = (m: string) => process.stderr.write(`[import-scale ${new Date().toISOString().slice(11, 19)}] ${m}\n`);
  const result = await importAtScaleOnFreshStorage({ rows, at, concurrency: Number(values.concurrency), log });
  const out = { date: new Date().toISOString(), node: process.version, cpus: os.cpus().length, model: os.cpus()[0]?.model?.trim(), loadAvgAtEnd: os.loadavg().map((l) => Math.round(l * 100) / 100), ...result };
  fs.mkdirSync(path.join(root, 'bench', 'results'), { recursive: true });
  fs.writeFileSync(path.join(root, 'bench', 'results', 'import-scale.json'), `${JSON.stringify(out, null, 2)}\n`);
  process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
  process.exit(0);
}
