/** Types for job authors. A job module exports `map` and `reduce`, and may export `combine` and `partition`. */
export type Emit = (key: string, value: string) => void;
export type MapFn = (key: string, value: string, emit: Emit) => void | Promise<void>;
export type ReduceFn = (key: string, values: string[]) => string | Promise<string>;
export type CombineFn = ReduceFn;
export type PartitionFn = (key: string, nReduce: number) => number;

export interface JobModule {
  map: MapFn;
  reduce: ReduceFn;
  combine?: CombineFn;
  partition?: PartitionFn;
}
