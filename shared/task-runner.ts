/**
 * What a worker (Web Worker or worker thread) does with one assigned task once it has the job's
 * module and the task's input text: run the engine and hand back the output already as the text the
 * master stores (a map's records, shared/records.ts; a reduce's `key<TAB>value\n` lines), so the
 * thread that owns the socket sends or uploads it as it is instead of re-serialising a large object.
 */
import { asJobModule, runMap, runReduce, type Counters, type SkippedRecord } from './engine.js';
import type { JobModule } from './job-types.js';
import type { TaskAssign, TaskStats } from './protocol.js';
import { decodeRecords, encodeMapOutput } from './records.js';

export type TaskInput =
  | {
      phase: 'map';
      nReduce: number;
      /** The input file's base name and the text of one split of it. */
      input: { key: string; value: string };
      /** `task.assign`'s `skipBadRecords` and `input.firstLine`. */
      skip?: SkipOptions;
    }
  | {
      phase: 'reduce';
      nReduce: number;
      /** Records (shared/records.ts): this partition of every map task's output, in map-task order. */
      input: string;
    };

/** How many bad lines a map task may skip, and the line number its split starts at. */
export interface SkipOptions {
  skipBadRecords: number;
  firstLine: number;
}

/** The skip options of a `task.assign`, or undefined when it skips nothing. */
export function skipOptionsOf(task: TaskAssign): SkipOptions | undefined {
  if (task.phase !== 'map' || !task.skipBadRecords) return undefined;
  return { skipBadRecords: task.skipBadRecords, firstLine: task.input.firstLine ?? 1 };
}

/**
 * A task as the engine takes it, from what crosses into a worker: its phase, key (a map's), input
 * text and skip options.
 */
export function taskInput(
  phase: 'map' | 'reduce',
  nReduce: number,
  key: string,
  text: string,
  skip?: SkipOptions,
): TaskInput {
  return phase === 'map'
    ? { phase, nReduce, input: { key, value: text }, ...(skip ? { skip } : {}) }
    : { phase, nReduce, input: text };
}

/** A task's counters and skipped lines as its stats carry them: absent when there are none. */
function extras(counters: Counters, skipped?: SkippedRecord[]): Pick<TaskStats, 'counters' | 'skipped'> {
  const out: Pick<TaskStats, 'counters' | 'skipped'> = {};
  if (Object.keys(counters).length > 0) out.counters = counters;
  if (skipped && skipped.length > 0) out.skipped = skipped;
  return out;
}

export interface TaskOutput {
  /** Map: its records (shared/records.ts). Reduce: its `key<TAB>value\n` lines. */
  output: string;
  stats: TaskStats;
}

export async function runTask(mod: JobModule, task: TaskInput, now: () => number): Promise<TaskOutput> {
  const started = now();
  if (task.phase === 'map') {
    const { key, value } = task.input;
    const r = await runMap(mod, key, value, task.nReduce, task.skip ?? {});
    return {
      output: encodeMapOutput(r.partitions),
      stats: { ms: now() - started, recordsIn: 1, recordsOut: r.recordsOut, ...extras(r.counters, r.skipped) },
    };
  }
  // One list with a key once per map task that emitted it: runReduce merges them in the order they
  // came, which is map-task order, so each key's values arrive as they did when each map task's
  // partitions were a list of their own.
  const r = await runReduce(mod, [decodeRecords(task.input)]);
  return {
    output: r.text,
    stats: { ms: now() - started, recordsIn: r.recordsIn, recordsOut: r.records, ...extras(r.counters) },
  };
}

/** Waits before each retry of a module load: about 7.5 s in all, well inside a task's hard limit. */
const LOAD_RETRY_MS = [250, 500, 1_000, 2_000, 3_750];

/**
 * Loads a job module, retrying while the failure is the network's (a `TypeError`: the fetch
 * failed, typically while the master restarts) rather than the module's. A job must not fail, and
 * its attempts must not be spent, because the master was unreachable for a few seconds. `load`
 * gets the attempt number, so a browser can ask for a fresh URL: its module map remembers a failed
 * fetch for the URL it used.
 */
export async function loadWithRetries<T>(load: (attempt: number) => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await load(attempt);
    } catch (e) {
      const wait = LOAD_RETRY_MS[attempt];
      if (!(e instanceof TypeError) || wait === undefined) throw e;
      await new Promise<void>((resolve) => setTimeout(() => resolve(), wait));
    }
  }
}

/** Caches job modules per URL, as a worker keeps one module per job for all that job's tasks. */
export function createModuleCache(load: (url: string) => Promise<Record<string, unknown>>) {
  const cache = new Map<string, Promise<JobModule>>();
  return (url: string): Promise<JobModule> => {
    let p = cache.get(url);
    if (!p) {
      p = load(url).then(asJobModule);
      p.catch(() => cache.delete(url));
      cache.set(url, p);
      // A volunteer may serve many jobs over a day; keep the newest few.
      if (cache.size > 16) cache.delete(cache.keys().next().value!);
    }
    return p;
  };
}
