/**
 * The engine: runs one map task or one reduce task of a job module. Pure TypeScript with no DOM or
 * Node APIs, so the browser Web Worker, the Node volunteer and `tabreduce local` run this same code.
 */
import type { JobModule, RecordsMode } from './job-types.js';
import { defaultPartition } from './partition.js';

/** One key and all its values, as a map task emitted them (in emit order) or a combiner folded them. */
export type Group = [key: string, values: string[]];
/** A map task's output for one reduce partition: groups with unique keys in ascending order. */
export type Partition = Group[];

export interface MapResult {
  partitions: Partition[];
  /** Records emitted by `map` (before the combiner). */
  recordsOut: number;
}

export interface ReduceResult {
  /** `key<TAB>value\n` records, keys ascending. */
  text: string;
  /** Keys reduced = records written. */
  records: number;
  /** Values read across all keys. */
  recordsIn: number;
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
async function fold(fn: (k: string, vs: string[]) => unknown, what: string, key: string, values: string[]) {
  let out = fn(key, values);
  if (isThenable(out)) out = await out;
  return checkString(`${what}(${JSON.stringify(key.slice(0, 50))}) result`, out);
}

function sortedGroups(groups: Map<string, string[]>): Partition {
  const keys = [...groups.keys()].sort(compareKeys);
  return keys.map((k) => [k, groups.get(k)!]);
}

export async function runMap(mod: JobModule, key: string, value: string, nReduce: number): Promise<MapResult> {
  const buckets: Map<string, string[]>[] = Array.from({ length: nReduce }, () => new Map());
  const partition = mod.partition ?? defaultPartition;
  let recordsOut = 0;
  let closed = false;
  const emit = (k: unknown, v: unknown): void => {
    if (closed) throw new JobCodeError('emit called after map returned');
    const ks = checkString('emit key', k);
    const vs = checkString('emit value', v);
    const p = partition(ks, nReduce);
    if (!Number.isInteger(p) || p < 0 || p >= nReduce) {
      throw new JobCodeError(`partition(${JSON.stringify(ks.slice(0, 50))}, ${nReduce}) returned ${p}`);
    }
    const bucket = buckets[p]!;
    const values = bucket.get(ks);
    if (values) values.push(vs);
    else bucket.set(ks, [vs]);
    recordsOut++;
  };
  if (mod.records === 'lines') {
    for (const line of splitLines(value)) {
      const ret = mod.map(key, line, emit);
      if (isThenable(ret)) await ret;
    }
  } else {
    const ret = mod.map(key, value, emit);
    if (isThenable(ret)) await ret;
  }
  closed = true;
  const partitions: Partition[] = [];
  for (const bucket of buckets) {
    const groups = sortedGroups(bucket);
    if (mod.combine) {
      for (const g of groups) g[1] = [await fold(mod.combine, 'combine', g[0], g[1])];
    }
    partitions.push(groups);
  }
  return { partitions, recordsOut };
}

/**
 * Merges the partitions of every map task (in map-task order, so a key's values arrive in the same
 * order on every run) and reduces each key, keys ascending.
 */
export async function runReduce(mod: JobModule, inputs: Partition[]): Promise<ReduceResult> {
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
    lines.push(`${k}\t${await fold(mod.reduce, 'reduce', k, vs)}\n`);
  }
  return { text: lines.join(''), records: lines.length, recordsIn };
}
