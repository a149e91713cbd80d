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

const OPEN = 0x5b; // [
const CLOSE = 0x5d; // ]
const COMMA = 0x2c;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const ZERO = 0x30;
const NINE = 0x39;

/**
 * The end of a JSON string without escapes or control characters starting at `i` (its opening
 * quote), or -1 when there is none there.
 */
function plainString(text: string, i: number, end: number): number {
  if (text.charCodeAt(i) !== QUOTE) return -1;
  for (let j = i + 1; j < end; j++) {
    const c = text.charCodeAt(j);
    if (c === QUOTE) return j;
    if (c === BACKSLASH || c < 0x20) return -1;
  }
  return -1;
}

/**
 * The partition and key of the record line `text[start, end)` when it has exactly the shape the
 * engine writes, `[P,"key",["v",...]]` with no spaces, no escapes and P written plainly, read without
 * JSON.parse (which builds the values only to drop them). Null when the line has any other shape: it
 * may still be a valid record, and JSON.parse with `checkRecord` decides. Everything it accepts,
 * JSON.parse reads to the same partition and key and `checkRecord` accepts (test/output-check.test.ts).
 */
export function scanRecord(text: string, start: number, end: number): { part: number; key: string } | null {
  if (text.charCodeAt(start) !== OPEN) return null;
  let i = start + 1;
  let part = 0;
  const digits = i;
  for (; i < end && i - digits < 9; i++) {
    const c = text.charCodeAt(i);
    if (c < ZERO || c > NINE) break;
    part = part * 10 + (c - ZERO);
  }
  if (i === digits || (i - digits > 1 && text.charCodeAt(digits) === ZERO)) return null;
  if (text.charCodeAt(i) !== COMMA) return null;
  const keyEnd = plainString(text, i + 1, end);
  if (keyEnd === -1) return null;
  const key = text.slice(i + 2, keyEnd);
  i = keyEnd + 1;
  if (text.charCodeAt(i) !== COMMA || text.charCodeAt(i + 1) !== OPEN) return null;
  i += 2;
  for (;;) {
    const valueEnd = plainString(text, i, end);
    if (valueEnd === -1) return null;
    i = valueEnd + 1;
    const c = text.charCodeAt(i);
    if (c === CLOSE) break;
    if (c !== COMMA) return null;
    i++;
  }
  return i + 2 === end && text.charCodeAt(i + 1) === CLOSE ? { part, key } : null;
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
  return checkOrder(part as number, key, nReduce, prev);
}

/** Why a record's partition or its place after `prev` is wrong, or null. */
export function checkOrder(
  part: number,
  key: string,
  nReduce: number,
  prev: { part: number; key: string } | null,
): string | null {
  if (part >= nReduce) return `record partition must be a whole number from 0 to ${nReduce - 1}`;
  if (prev) {
    if (part < prev.part) return 'records are not in partition order';
    if (part === prev.part && !(prev.key < key)) return `partition ${part}: keys are not strictly ascending`;
  }
  return null;
}
