/**
 * The engine: runs one map task or one reduce task of a job module. Pure TypeScript with no DOM or
 * Node APIs, so the browser Web Worker, the Node volunteer and `tabreduce local` run this same code.
 */
import type { JobContext, JobModule, RecordsMode } from './job-types.js';
import { defaultPartition } from './partition.js';
import { serializeError, type SerializedError } from './errors.js';

/** One key and all its values, as a map task emitted them (in emit order) or a combiner folded them. */
export type Group = [key: string, values: string[]];
/** A map task's output for one reduce partition: groups with unique keys in ascending order. */
export type Partition = Group[];

export interface MapResult {
  partitions: Partition[];
  /** Records emitted by `map` (before the combiner). */
  recordsOut: number;
  /** Lines skipped under `skipBadRecords`, in order. */
  skipped: SkippedRecord[];
  /** What `ctx.count` added up to, names ascending (a skipped line's counts dropped with its emits). */
  counters: Counters;
}

export interface ReduceResult {
  /** `key<TAB>value\n` records, keys ascending. */
  text: string;
  /** Keys reduced = records written. */
  records: number;
  /** Values read across all keys. */
  recordsIn: number;
  counters: Counters;
}

/** A task's or a job's counters: name → sum, names ascending. */
export type Counters = Record<string, number>;

/** Bounds on counters, so no job's code can grow a result or overflow a job's sums. */
export const COUNTER_LIMITS = Object.freeze({
  /** Distinct names per task (and per job, as the master keeps them). */
  names: 100,
  nameChars: 100,
  /**
   * Largest magnitude of one task's counter: 2^35. Summed over a job's at most 210,000 tasks it
   * stays below 2^53, so a job's counters are exact.
   */
  perTask: 2 ** 35,
});

/**
 * `ctx.count` for one task. While a line may yet be skipped, its counts wait with its emits
 * (`hold`, then `keep` or `drop`).
 */
export class CounterSet implements JobContext {
  private readonly values = new Map<string, number>();
  private held: [string, number][] | null = null;

  count = (name: unknown, by: unknown = 1): void => {
    if (typeof name !== 'string' || name.length === 0 || name.length > COUNTER_LIMITS.nameChars) {
      throw new JobCodeError(
        `ctx.count: a counter's name must be a string of 1 to ${COUNTER_LIMITS.nameChars} characters, got ${describeValue(name)}`,
      );
    }
    if (typeof by !== 'number' || !Number.isSafeInteger(by)) {
      throw new JobCodeError(`ctx.count(${JSON.stringify(name)}, by): by must be a whole number, got ${String(by)}`);
    }
    if (!this.values.has(name) && this.values.size >= COUNTER_LIMITS.names) {
      throw new JobCodeError(
        `ctx.count(${JSON.stringify(name)}): a job may have at most ${COUNTER_LIMITS.names} counters`,
      );
    }
    if (this.held) this.held.push([name, by]);
    else this.add(name, by);
  };

  private add(name: string, by: number): void {
    const sum = (this.values.get(name) ?? 0) + by;
    if (Math.abs(sum) > COUNTER_LIMITS.perTask) {
      throw new JobCodeError(`counter ${JSON.stringify(name)} passed ±2^35 in one task`);
    }
    this.values.set(name, sum);
  }

  hold(): void {
    this.held = [];
  }

  keep(): void {
    const held = this.held ?? [];
    this.held = null;
    for (const [name, by] of held) this.add(name, by);
  }

  drop(): void {
    this.held = null;
  }

  /** The sums, names ascending. */
  toJSON(): Counters {
    const out: Counters = {};
    for (const name of [...this.values.keys()].sort(compareKeys)) out[name] = this.values.get(name)!;
    return out;
  }
}

/** Adds `b` into `a` (or takes it away, sign -1); names that reach zero stay. */
export function addCounters(a: Counters, b: Counters, sign: 1 | -1 = 1): Counters {
  const out: Counters = { ...a };
  for (const [name, v] of Object.entries(b)) out[name] = (out[name] ?? 0) + sign * v;
  const sorted: Counters = {};
  for (const name of Object.keys(out).sort(compareKeys)) sorted[name] = out[name]!;
  return sorted;
}

export class JobCodeError extends Error {
  override name = 'JobCodeError';
}

export const RECORDS_MODES: readonly RecordsMode[] = Object.freeze(['splits', 'lines']);

function describeValue(v: unknown): string {
  return typeof v === 'string' ? JSON.stringify(v.slice(0, 50)) : v === null ? 'null' : typeof v;
}

/** The lines of a split, without their endings; a last line without one is a line, an empty text none. */
export function* splitLines(text: string): Generator<string> {
  let start = 0;
  while (start < text.length) {
    const newline = text.indexOf('\n', start);
    if (newline < 0) {
      yield text.slice(start);
      return;
    }
    yield text.slice(start, newline > start && text.charCodeAt(newline - 1) === 13 ? newline - 1 : newline);
    start = newline + 1;
  }
}

export function compareKeys(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return typeof v === 'object' && v !== null && typeof (v as { then?: unknown }).then === 'function';
}

/** Checks a module namespace's exports and returns it as a JobModule. */
export function asJobModule(ns: Record<string, unknown>): JobModule {
  const missing = ['map', 'reduce'].filter((name) => typeof ns[name] !== 'function');
  if (missing.length > 0) {
    throw new JobCodeError(`job module does not export ${missing.map((n) => `function ${n}`).join(' or ')}`);
  }
  for (const name of ['combine', 'partition']) {
    if (ns[name] !== undefined && typeof ns[name] !== 'function') {
      throw new JobCodeError(`job module exports ${name}, but it is not a function`);
    }
  }
  const records = ns['records'];
  if (records !== undefined && !RECORDS_MODES.includes(records as RecordsMode)) {
    throw new JobCodeError(`job module exports records = ${describeValue(records)}; it must be 'lines' or 'splits'`);
  }
  return ns as unknown as JobModule;
}

function checkString(what: string, v: unknown): string {
  if (typeof v !== 'string') {
    throw new JobCodeError(`${what} must be a string, got ${v === null ? 'null' : typeof v}`);
  }
  return v;
}

/** Runs `combine` (or `reduce` in the reduce phase) over one key's values, awaiting only if async. */
async function fold(
  fn: (k: string, vs: string[], ctx: JobContext) => unknown,
  what: string,
  key: string,
  values: string[],
  ctx: JobContext,
) {
  let out = fn(key, values, ctx);
  if (isThenable(out)) out = await out;
  return checkString(`${what}(${JSON.stringify(key.slice(0, 50))}) result`, out);
}

function sortedGroups(groups: Map<string, string[]>): Partition {
  const keys = [...groups.keys()].sort(compareKeys);
  return keys.map((k) => [k, groups.get(k)!]);
}

/** A line whose `map` threw and that `skipBadRecords` let the task skip. */
export interface SkippedRecord {
  /** 1-based: `firstLine` plus the line's index in the split. */
  line: number;
  /** The line's first characters. */
  text: string;
  error: SerializedError;
}

export interface MapOptions {
  /**
   * With `records = 'lines'`: how many lines whose `map` throws may be skipped (their emits
   * dropped) before the task fails with the next one. Default 0.
   */
  skipBadRecords?: number;
  /** Lines of the job already skipped before this task (a sequential run); they count toward the limit. */
  skippedBefore?: number;
  /** The line number of the split's first line in its file, for SkippedRecord.line. Default 1. */
  firstLine?: number;
}

/** Characters of a skipped line kept to report it. */
const SKIPPED_TEXT_CHARS = 80;

/** The error a task fails with when one bad line more than `--skip-bad-records` allows throws. */
export class BadRecordError extends Error {
  override name = 'BadRecordError';
}

export async function runMap(
  mod: JobModule,
  key: string,
  value: string,
  nReduce: number,
  opts: MapOptions = {},
): Promise<MapResult> {
  const buckets: Map<string, string[]>[] = Array.from({ length: nReduce }, () => new Map());
  const partition = mod.partition ?? defaultPartition;
  const skipBadRecords = opts.skipBadRecords ?? 0;
  const skipped: SkippedRecord[] = [];
  const counters = new CounterSet();
  let recordsOut = 0;
  let closed = false;
  // While lines may be skipped, a line's emits wait until its map returns: a skipped line leaves none.
  let pending: [key: string, value: string, partition: number][] | null = null;
  const place = (ks: string, vs: string, p: number) => {
    const bucket = buckets[p]!;
    const values = bucket.get(ks);
    if (values) values.push(vs);
    else bucket.set(ks, [vs]);
    recordsOut++;
  };
  const emit = (k: unknown, v: unknown): void => {
    if (closed) throw new JobCodeError('emit called after map returned');
    const ks = checkString('emit key', k);
    const vs = checkString('emit value', v);
    const p = partition(ks, nReduce);
    if (!Number.isInteger(p) || p < 0 || p >= nReduce) {
      throw new JobCodeError(`partition(${JSON.stringify(ks.slice(0, 50))}, ${nReduce}) returned ${p}`);
    }
    if (pending) pending.push([ks, vs, p]);
    else place(ks, vs, p);
  };
  if (mod.records === 'lines') {
    let line = opts.firstLine ?? 1;
    for (const text of splitLines(value)) {
      if (skipBadRecords > 0) {
        pending = [];
        counters.hold();
      }
      try {
        const ret = mod.map(key, text, emit, counters);
        if (isThenable(ret)) await ret;
        for (const [k, v, p] of pending ?? []) place(k, v, p);
        if (skipBadRecords > 0) counters.keep();
      } catch (e) {
        if (skipBadRecords === 0) throw e;
        counters.drop();
        const record = { line, text: text.slice(0, SKIPPED_TEXT_CHARS), error: skippedError(e) };
        const before = opts.skippedBefore ?? 0;
        if (before + skipped.length >= skipBadRecords) {
          throw tooManyBadRecords(key, record, before + skipped.length + 1, skipBadRecords);
        }
        skipped.push(record);
      }
      line++;
    }
    pending = null;
  } else {
    const ret = mod.map(key, value, emit, counters);
    if (isThenable(ret)) await ret;
  }
  closed = true;
  const partitions: Partition[] = [];
  for (const bucket of buckets) {
    const groups = sortedGroups(bucket);
    if (mod.combine) {
      for (const g of groups) g[1] = [await fold(mod.combine, 'combine', g[0], g[1], counters)];
    }
    partitions.push(groups);
  }
  return { partitions, recordsOut, skipped, counters: counters.toJSON() };
}

/**
 * A skipped line's error, cut to what a report needs (its name, message and first frames), so a
 * task's report of many skipped lines stays well inside a message.
 */
function skippedError(e: unknown): SerializedError {
  const err = serializeError(e);
  const out: SerializedError = { name: err.name.slice(0, 100), message: err.message.slice(0, 200) };
  if (err.stack) {
    const frames = err.stack
      .split('\n')
      .filter((l) => /^\s+at |@/.test(l))
      .slice(0, 3);
    out.stack = [`${out.name}: ${out.message}`, ...frames.map((f) => f.slice(0, 200))].join('\n');
  }
  return out;
}

/** The bad line past the limit: its place and text in the message, its own stack under it. */
function tooManyBadRecords(key: string, r: SkippedRecord, nth: number, limit: number): BadRecordError {
  const err = new BadRecordError(
    `line ${r.line} of ${key} (${JSON.stringify(r.text)}) threw ${r.error.name}: ${r.error.message}; ` +
      `it is bad record ${nth}, and --skip-bad-records allows ${limit}`,
  );
  const frames = (r.error.stack ?? '').split('\n').filter((l) => /^\s+at |@/.test(l));
  err.stack = [`${err.name}: ${err.message}`, ...frames].join('\n');
  return err;
}

/**
 * Merges the partitions of every map task (in map-task order, so a key's values arrive in the same
 * order on every run) and reduces each key, keys ascending.
 */
export async function runReduce(mod: JobModule, inputs: Partition[]): Promise<ReduceResult> {
  const counters = new CounterSet();
  const merged = new Map<string, string[]>();
  let recordsIn = 0;
  for (const part of inputs) {
    for (const [k, vs] of part) {
      recordsIn += vs.length;
      const values = merged.get(k);
      if (values) for (const v of vs) values.push(v);
      else merged.set(k, vs.slice());
    }
  }
  const lines: string[] = [];
  for (const [k, vs] of sortedGroups(merged)) {
    lines.push(`${k}\t${await fold(mod.reduce, 'reduce', k, vs, counters)}\n`);
  }
  return { text: lines.join(''), records: lines.length, recordsIn, counters: counters.toJSON() };
}
