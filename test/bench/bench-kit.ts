/**
 * What every benchmark shares: the result table, percentiles and histograms, temp inputs, and the
 * rule that every child process a benchmark starts is killed when it ends, even when it throws.
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CLI, corpusFiles, removeTempDirs, tempDir } from '../helpers/cluster.js';
import { ProcSampler, readTcpCounters } from './proc-stats.js';

export interface Row {
  what: string;
  value: string;
  /** Empty when the figure is context, not a goal. */
  target?: string;
  /** `true`/`false` when there is a target; shown as "yes"/"NO". */
  met?: boolean;
}

export interface BenchReport {
  name: string;
  title: string;
  command: string;
  setup: string[];
  rows: Row[];
  /** Free text after the table: what limits the figure, profile summaries. */
  notes: string[];
}

export interface BenchContext {
  /** Extra flags after the benchmark's name, e.g. `--profile`. */
  flags: Set<string>;
  /** Options with a value, e.g. `--volunteers 2000`. */
  options: Map<string, string>;
  log: (line: string) => void;
}

/** The command that reruns benchmark `name` with the same flags and options. */
export function commandFor(name: string, ctx: BenchContext): string {
  const rest = [...[...ctx.flags].map((f) => `--${f}`), ...[...ctx.options].map(([k, v]) => `--${k} ${v}`)];
  return `npm run bench -- ${[name, ...rest].join(' ')}`;
}

export interface Benchmark {
  name: string;
  summary: string;
  run(ctx: BenchContext): Promise<BenchReport>;
}

/** A Markdown table, so a run can be pasted into the README's Performance section as is. */
export function renderReport(r: BenchReport): string {
  const header = ['what', 'value', 'target', 'met'];
  const cells = r.rows.map((row) => [
    row.what,
    row.value,
    row.target ?? '',
    row.met === undefined ? '' : row.met ? 'yes' : 'NO',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: string[]) => `| ${c.map((x, i) => x.padEnd(widths[i]!)).join(' | ')} |`;
  return [
    `## ${r.name}: ${r.title}`,
    '',
    `command: \`${r.command}\``,
    ...r.setup.map((s) => `- ${s}`),
    '',
    line(header),
    `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`,
    ...cells.map(line),
    '',
    ...r.notes,
    '',
  ].join('\n');
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

export function summarize(values: number[]): { n: number; p50: number; p90: number; p99: number; max: number } {
  const s = [...values].sort((a, b) => a - b);
  return { n: s.length, p50: percentile(s, 50), p90: percentile(s, 90), p99: percentile(s, 99), max: s.at(-1) ?? NaN };
}

export function fmtMs(ms: number): string {
  if (!Number.isFinite(ms)) return 'n/a';
  if (ms >= 10_000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms >= 1000) return `${(ms / 1000).toFixed(2)} s`;
  return `${ms < 10 ? ms.toFixed(1) : Math.round(ms)} ms`;
}

export function fmtBytes(b: number): string {
  if (!Number.isFinite(b)) return 'n/a';
  if (b >= 1024 ** 3) return `${(b / 1024 ** 3).toFixed(2)} GiB`;
  if (b >= 1024 ** 2) return `${(b / 1024 ** 2).toFixed(0)} MiB`;
  return `${(b / 1024).toFixed(0)} KiB`;
}

export function fmtInt(n: number): string {
  return Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : 'n/a';
}

/** A text histogram: one line per bucket of `bucketMs`, bar scaled to the fullest bucket. */
export function histogram(values: number[], bucketMs: number, width = 40): string[] {
  if (values.length === 0) return ['(no samples)'];
  const counts = new Map<number, number>();
  for (const v of values) {
    const b = Math.floor(v / bucketMs);
    counts.set(b, (counts.get(b) ?? 0) + 1);
  }
  const lo = Math.min(...counts.keys());
  const hi = Math.max(...counts.keys());
  const most = Math.max(...counts.values());
  const out: string[] = [];
  for (let b = lo; b <= hi; b++) {
    const n = counts.get(b) ?? 0;
    const label = `${((b * bucketMs) / 1000).toFixed(1)}-${(((b + 1) * bucketMs) / 1000).toFixed(1)} s`;
    out.push(`${label.padStart(12)} | ${'#'.repeat(Math.round((n / most) * width)).padEnd(width)} ${n}`);
  }
  return out;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// ------------------------------------------------------------------ child processes

const children = new Set<ChildProcess>();

/**
 * Forks a TypeScript module of this directory as a child with an IPC channel (tsx is inherited via
 * execArgv). Children are tracked so `killChildren()` and process exit end every one of them.
 */
export function forkBench(script: string, args: string[] = []): ChildProcess {
  const child = fork(join(import.meta.dirname, script), args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

export function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

/** SIGKILLs every child still alive and waits for their exits (bounded: a zombie cannot hang the run). */
export async function killChildren(): Promise<void> {
  const alive = [...children].filter((c) => c.exitCode === null && c.signalCode === null);
  await Promise.race([
    Promise.all(
      alive.map(
        (c) =>
          new Promise<void>((ok) => {
            c.once('exit', () => ok());
            c.kill('SIGKILL');
          }),
      ),
    ),
    sleep(5_000),
  ]);
  children.clear();
}

process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL');
});

// ------------------------------------------------------------------ inputs

/**
 * One input file of `lines` lines, each at least `minBytes` long, built from corpus words: with
 * `--split-size minBytes` every line becomes exactly one map task (see shared/split.ts), which is
 * how the load benchmarks make thousands of tiny tasks.
 */
export function tinyTaskInput(lines: number, minBytes = 64): { dir: string; file: string; bytes: number } {
  const words = readFileSync(corpusFiles()[0]!, 'utf8')
    .split(/\s+/)
    .filter((w) => /^[a-zA-Z]+$/.test(w));
  const out: string[] = [];
  let w = 0;
  for (let i = 0; i < lines; i++) {
    let line = '';
    while (line.length < minBytes) line += `${words[w++ % words.length]} `;
    out.push(line.trimEnd());
  }
  const dir = tempDir('tabreduce-bench-input-');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'tiny.txt');
  const text = `${out.join('\n')}\n`;
  writeFileSync(file, text);
  return { dir, file, bytes: Buffer.byteLength(text) };
}

/** A row with the kernel's listen-queue overflows and SYN resends since `before` (system-wide). */
export function tcpRow(before: ReturnType<typeof readTcpCounters>): Row {
  const now = readTcpCounters();
  return {
    what: 'listen queue overflows / SYN resends (kernel, whole box)',
    value: `${fmtInt(now.listenOverflows - before.listenOverflows)} / ${fmtInt(now.synRetrans - before.synRetrans)}`,
  };
}

/** The master's group-commit counters from /metrics: how many COMMITs, and the seconds they took. */
export async function readCommitCounters(url: string): Promise<{ commits: number; seconds: number }> {
  const text = await fetch(`${url}/metrics`).then((r) => r.text());
  const value = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
  return { commits: value('tabreduce_group_commits_total'), seconds: value('tabreduce_group_commit_seconds_total') };
}

/** Runs the CLI and times it; rejects on a non-zero exit or after `timeoutMs`. */
/**
 * `node ARGS...`, or under `taskset -c CPUS` (Linux's util-linux) so it runs on those cores only:
 * benchmarks that stand for several machines on this one pin each side to its own core.
 */
export function nodeCommand(args: string[], cpus?: string): [string, string[]] {
  return cpus ? ['taskset', ['-c', cpus, process.execPath, ...args]] : [process.execPath, args];
}

export function timedCli(
  args: string[],
  env: Record<string, string>,
  timeoutMs: number,
  cpus?: string,
): Promise<{ ms: number; out: string; cpuMs: number; firstOutMs: number | null }> {
  return new Promise((ok, fail) => {
    const t0 = performance.now();
    // When it first wrote to stdout: `submit` writes the job's id once the master has answered
    // the upload (with --wait, long before it exits).
    let firstOutMs: number | null = null;
    const [command, argv] = nodeCommand([CLI, ...args], cpus);
    const proc = track(
      spawn(command, argv, {
        env: { ...process.env, TABREDUCE_TOKEN: '', TABREDUCE_URL: '', ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
      }),
    );
    // CPU time as last seen at most 100 ms before the exit: close enough against tens of seconds.
    const cpu = new ProcSampler(proc.pid!, 100);
    let out = '';
    let err = '';
    proc.stdout!.on('data', (d: Buffer) => {
      firstOutMs ??= performance.now() - t0;
      out += d.toString();
    });
    proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
    proc.once('exit', (code) => {
      clearTimeout(timer);
      cpu.stop();
      const ms = performance.now() - t0;
      const cpuMs = (cpu.samples.at(-1)?.cpuMs ?? NaN) - (cpu.samples[0]?.cpuMs ?? 0);
      if (code === 0) ok({ ms, out, cpuMs, firstOutMs });
      else fail(new Error(`tabreduce ${args[0]} exited with ${code} after ${fmtMs(ms)}: ${err.slice(-2000)}`));
    });
  });
}

/** Whether the module at `url` is the script node was started with (a benchmark run on its own). */
export function isMainModule(url: string): boolean {
  return Boolean(process.argv[1] && url.endsWith(process.argv[1].split('/').pop()!));
}

/** Runs one benchmark as a script (`node --import tsx test/bench/NAME.ts --option value`) and prints its table. */
export function runStandalone(run: (ctx: BenchContext) => Promise<BenchReport>): void {
  const options = new Map<string, string>();
  const argv = process.argv.slice(2);
  for (let i = 0; i + 1 < argv.length; i += 2) options.set(argv[i]!.replace(/^--/, ''), argv[i + 1]!);
  const log = (line: string) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
  run({ flags: new Set(), options, log })
    .then((r) => process.stdout.write(`${renderReport(r)}\n`))
    .catch((e: unknown) => {
      process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
      process.exitCode = 1;
    })
    .finally(() => removeTempDirs());
}
