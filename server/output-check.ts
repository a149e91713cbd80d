/**
 * Checks a task's output as it streams in, chunk by chunk, as a hostile volunteer could send it,
 * without holding more than one record line: a map output must be records (shared/records.ts) for
 * exactly the job's partitions, in order; a reduce output UTF-8 lines ending in a newline. Both are
 * stored as received once checked, so what a reduce task or an admin later reads is what was checked.
 * Both hash what they checked, so that two volunteers' results can be compared without either
 * output being read again (README "Verification").
 */
import { createHash, type Hash } from 'node:crypto';
import { checkRecord } from '../shared/records.js';
import { Utf8Check } from './utf8-check.js';

/** The output is malformed: the volunteer broke the protocol (an honest engine never sends this). */
export class OutputError extends Error {
  override name = 'OutputError';
}

/** Longest record line taken: one key's values in one map task, after its combiner. */
export const MAX_RECORD_BYTES = 64 * 1024 * 1024;

const NEWLINE = 0x0a;

export interface MapOutputSummary {
  bytes: number;
  records: number;
  /** Where each partition starts, and the end: n_reduce + 1 offsets. */
  offsets: number[];
  /** SHA-256 of the bytes, hex. */
  hash: string;
}

export class MapOutputCheck {
  private readonly utf8 = new Utf8Check('map output');
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private pos = 0;
  /** Where the line being assembled starts. */
  private lineStart = 0;
  private prev: { part: number; key: string } | null = null;
  private readonly offsets: number[] = [];
  private records = 0;
  private readonly sha = createHash('sha256');

  constructor(private readonly nReduce: number) {}

  push(chunk: Buffer): void {
    try {
      this.utf8.push(chunk);
    } catch (e) {
      throw new OutputError((e as Error).message);
    }
    this.sha.update(chunk);
    let from = 0;
    for (let nl = chunk.indexOf(NEWLINE); nl !== -1; nl = chunk.indexOf(NEWLINE, from)) {
      const piece = chunk.subarray(from, nl);
      const line = this.pending.length === 0 ? piece : Buffer.concat([...this.pending, piece]);
      this.pending = [];
      this.pendingBytes = 0;
      this.line(line);
      this.lineStart = this.pos + nl + 1;
      from = nl + 1;
    }
    if (from < chunk.length) {
      this.pendingBytes += chunk.length - from;
      if (this.pendingBytes > MAX_RECORD_BYTES) {
        throw new OutputError(`a record is longer than ${MAX_RECORD_BYTES} bytes`);
      }
      this.pending.push(chunk.subarray(from));
    }
    this.pos += chunk.length;
  }

  private line(bytes: Buffer): void {
    if (bytes.length > MAX_RECORD_BYTES) throw new OutputError(`a record is longer than ${MAX_RECORD_BYTES} bytes`);
    let rec: unknown;
    try {
      rec = JSON.parse(bytes.toString('utf8'));
    } catch {
      throw new OutputError(`record ${this.records + 1} is not JSON`);
    }
    const error = checkRecord(rec, this.nReduce, this.prev);
    if (error) throw new OutputError(error);
    const [part, key] = rec as [number, string];
    while (this.offsets.length <= part) this.offsets.push(this.lineStart);
    this.prev = { part, key };
    this.records++;
  }

  end(): MapOutputSummary {
    if (this.pendingBytes > 0) throw new OutputError('map output must end with a newline');
    try {
      this.utf8.end();
    } catch (e) {
      throw new OutputError((e as Error).message);
    }
    while (this.offsets.length <= this.nReduce) this.offsets.push(this.pos);
    return { bytes: this.pos, records: this.records, offsets: this.offsets, hash: this.sha.digest('hex') };
  }
}

export class ReduceOutputCheck {
  private readonly utf8 = new Utf8Check('reduce output');
  private pos = 0;
  private lines = 0;
  private last = NEWLINE;
  private readonly sha: Hash = createHash('sha256');

  push(chunk: Buffer): void {
    try {
      this.utf8.push(chunk);
    } catch (e) {
      throw new OutputError((e as Error).message);
    }
    this.sha.update(chunk);
    for (let i = chunk.indexOf(NEWLINE); i !== -1; i = chunk.indexOf(NEWLINE, i + 1)) this.lines++;
    if (chunk.length > 0) this.last = chunk[chunk.length - 1]!;
    this.pos += chunk.length;
  }

  end(): { bytes: number; records: number; hash: string } {
    if (this.last !== NEWLINE) throw new OutputError('reduce output must end with a newline');
    try {
      this.utf8.end();
    } catch (e) {
      throw new OutputError((e as Error).message);
    }
    return { bytes: this.pos, records: this.lines, hash: this.sha.digest('hex') };
  }
}

/** Offsets as stored: little-endian float64s (exact up to 2^53 bytes). */
export function packOffsets(offsets: readonly number[]): Buffer {
  const buf = Buffer.alloc(offsets.length * 8);
  offsets.forEach((o, i) => buf.writeDoubleLE(o, i * 8));
  return buf;
}

/** One partition's byte range from its two stored offsets (a 16-byte slice of the offsets). */
export function spanOf(pair: Buffer): { start: number; end: number } {
  return { start: pair.readDoubleLE(0), end: pair.readDoubleLE(8) };
}
