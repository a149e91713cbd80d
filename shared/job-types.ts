/** Types for job authors. A job module exports `map` and `reduce`, and may export `combine` and `partition`. */
export type Emit = (key: string, value: string) => void;

/**
 * The last argument of `map`, `combine` and `reduce`. `count(name, by = 1)` adds to the job's counter
 * `name` (a whole number; at most 100 names of up to 100 characters per job). A job's counters are
 * the sum over the attempts whose output was committed, so a lost, superseded or rejected attempt's
 * counts never show, and they equal `tabreduce local`'s.
 */
export interface JobContext {
  count(name: string, by?: number): void;
}

export type MapFn = (key: string, value: string, emit: Emit, ctx: JobContext) => void | Promise<void>;
export type ReduceFn = (key: string, values: string[], ctx: JobContext) => string | Promise<string>;
export type CombineFn = ReduceFn;
export type PartitionFn = (key: string, nReduce: number) => number;

/**
 * What `map` is called with: `'splits'` (the default) once per split of an input, `'lines'` once per
 * line of it, without its line ending (`\n` or `\r\n`).
 */
export type RecordsMode = 'splits' | 'lines';

export interface JobModule {
  map: MapFn;
  reduce: ReduceFn;
  combine?: CombineFn;
  partition?: PartitionFn;
  records?: RecordsMode;
}
