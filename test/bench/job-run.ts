/**
 * What the benchmarks that run one real job share: an input of a given size made of corpus copies,
 * a phase's span read from the job's attempts, and which Chromium process did the work.
 */
import { copyFileSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { apiGet, corpusFiles, tempDir, type MasterProc } from '../helpers/cluster.js';
import type { TaskView, WorkerView } from '../../shared/api.js';
import { sleep } from './bench-kit.js';

/** Waits, up to 30 s, until `n` volunteers (tabs or processes) are connected to `master`. */
export async function waitVolunteers(master: MasterProc, n: number, what = 'volunteers'): Promise<void> {
  for (const deadline = Date.now() + 30_000; ; await sleep(100)) {
    const ws = await apiGet<WorkerView[]>(master, '/api/workers');
    if (ws.filter((w) => w.state === 'connected').length >= n) return;
    if (Date.now() > deadline) throw new Error(`${n} ${what} did not connect in 30 s`);
  }
}

/** ~`bytes` of input: copies of the corpus files under distinct base names. */
export function repeatedCorpus(bytes: number): { files: string[]; total: number } {
  const dir = tempDir('tabreduce-bench-corpus-');
  const sources = corpusFiles();
  const one = sources.reduce((n, f) => n + statSync(f).size, 0);
  const copies = Math.ceil(bytes / one);
  const files: string[] = [];
  for (let c = 0; c < copies; c++) {
    for (const f of sources) {
      const to = join(dir, `${basename(f, '.txt')}-${String(c).padStart(3, '0')}.txt`);
      copyFileSync(f, to);
      files.push(to);
    }
  }
  return { files, total: one * copies };
}

/** A `--out DIR`'s part files, joined in order: what `GET /api/jobs/:id/output` should equal. */
export function joinedParts(dir: string): string {
  return readdirSync(dir)
    .sort()
    .map((f) => readFileSync(join(dir, f), 'utf8'))
    .join('');
}

/** A phase of a job from its attempts: first assignment, last commit, and the committed attempts' times. */
export function phaseSpan(tasks: TaskView[], phase: 'map' | 'reduce') {
  const attempts = tasks.filter((t) => t.phase === phase).flatMap((t) => t.attempts);
  const won = attempts.filter((a) => a.outcome === 'succeeded' && a.endedAt !== null);
  const start = attempts.length > 0 ? Math.min(...attempts.map((a) => a.startedAt)) : NaN;
  const end = won.length > 0 ? Math.max(...won.map((a) => a.endedAt!)) : NaN;
  const busy = won.reduce((n, a) => n + (a.endedAt! - a.startedAt), 0);
  return { start, end, busy, n: won.length, durations: won.map((a) => a.endedAt! - a.startedAt) };
}

export function procName(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
}

/** `renderer`, `gpu-process`, `utility` (the network service)... or `browser` for the main process. */
export function chromiumType(pid: number): string {
  try {
    const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return /--type=([\w-]+)/.exec(cmd)?.[1] ?? 'browser';
  } catch {
    return 'exited';
  }
}
