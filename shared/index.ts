/** What the `tabreduce` package exports for job authors and tools. */
export type { Emit, JobContext, MapFn, ReduceFn, CombineFn, PartitionFn, JobModule, RecordsMode } from './job-types.js';
export { defaultPartition, fnv1a32 } from './partition.js';
export { runMap, runReduce, type Group, type Partition } from './engine.js';
