/**
 * The records format of a map task's output and a reduce task's input: one line per key,
 * `JSON.stringify([partition, key, values]) + "\n"`, partitions ascending, keys strictly ascending
 * within a partition. JSON never writes a raw newline, so lines can be found in bytes without parsing,
 * and each line is checked on its own: the master checks and stores a map output as it streams in,
 * noting where each partition starts, and streams partition r of every map task to reduce task r as
 * the concatenation of those byte ranges, in map-task order.
 */
import type { Group, Partition } from './engine.js';

/** A map task's partitions as records. */
export function encodeMapOutput(partitions: readonly Partition[]): string {
  return partitions.map((groups, p) => encodePartition(p, groups)).join('');
}

/** One partition's groups as records. */
export function encodePartition(part: number, groups: Partition): string {
  let text = '';
  for (const [key, values] of groups) text += `${JSON.stringify([part, key, values])}\n`;
  return text;
}

/**
 * A reduce task's input (records of several map tasks, one after another) as groups in the order
 * they came; a key appears once per map task that emitted it, which `runReduce` merges.
 */
export function decodeRecords(text: string): Group[] {
  const groups: Group[] = [];
  let start = 0;
  while (start < text.length) {
    let end = text.indexOf('\n', start);
    if (end === -1) end = text.length;
    if (end > start) {
      const rec = JSON.parse(text.slice(start, end)) as [number, string, string[]];
      groups.push([rec[1], rec[2]]);
    }
    start = end + 1;
  }
  return groups;
}

/** Why one record line is malformed, or null; `prev` is the previous line's partition and key. */
export function checkRecord(rec: unknown, nReduce: number, prev: { part: number; key: string } | null): string | null {
  if (!Array.isArray(rec) || rec.length !== 3) return 'each record must be [partition, key, [values]]';
  const [part, key, values] = rec as unknown[];
  if (!Number.isInteger(part) || (part as number) < 0 || (part as number) >= nReduce) {
    return `record partition must be a whole number from 0 to ${nReduce - 1}`;
  }
  if (typeof key !== 'string') return 'record key must be a string';
  if (!Array.isArray(values) || values.length === 0) return `partition ${part}: key without values`;
  for (const v of values) if (typeof v !== 'string') return `partition ${part}: values must be strings`;
  if (prev) {
    if ((part as number) < prev.part) return 'records are not in partition order';
    if (part === prev.part && !(prev.key < key)) return `partition ${part}: keys are not strictly ascending`;
  }
  return null;
}
