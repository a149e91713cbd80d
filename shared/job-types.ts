/** Types for job authors. A job module exports `map` and `reduce`, and may export `combine` and `partition`. */
export type Emit = (key: string, value: string) => void;
export type MapFn = (key: string, value: string, emit: Emit) => void | Promise<void>;
export type ReduceFn = (key: string, values: string[]) => string | Promise<string>;
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
