/**
 * Checks a task's output as it streams in, chunk by chunk, as a hostile volunteer could send it,
 * without holding more than one record line: a map output must be records (shared/records.ts) for
 * exactly the job's partitions, in order; a reduce output UTF-8 lines ending in a newline. Both are
 * stored as received once checked, so what a reduce task or an admin later reads is what was checked.
 * Both hash what they checked, so that two volunteers' results can be compared without either
 * output being read again (README "Verification").
 */
import { createHash, type Hash } from 'node:crypto';
import { checkOrder, checkRecord, scanRecord } from '../shared/records.js';
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
    const last = chunk.lastIndexOf(NEWLINE);
    const from = last + 1;
    if (last !== -1) {
      // The chunk's whole lines, with the line the last chunk began, decoded to text at once: one
      // string per chunk rather than one per record (a record is ~20 bytes, and decoding was most
      // of the check's cost). A newline is one byte that no multi-byte character contains, so the
      // lines found in the text are the lines in the bytes, and the cut is a character boundary.
      const piece = chunk.subarray(0, from);
      const region = this.pending.length === 0 ? piece : Buffer.concat([...this.pending, piece]);
      this.pending = [];
      this.pendingBytes = 0;
      this.lines(region);
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

  /** Checks whole lines, `region` ending with a newline; `lineStart` is where it starts in the output. */
  private lines(region: Buffer): void {
    const text = region.toString('utf8');
    // Byte offsets are needed only where a partition starts; in ASCII text they are the string's.
    const ascii = text.length === region.length;
    let byte = 0;
    for (let s = 0; s < text.length;) {
      const e = text.indexOf('\n', s);
      const bytes = ascii ? e - s : region.indexOf(NEWLINE, byte) - byte;
      if (bytes > MAX_RECORD_BYTES) throw new OutputError(`a record is longer than ${MAX_RECORD_BYTES} bytes`);
      const { part, key } = scanRecord(text, s, e) ?? this.parseRecord(text.slice(s, e));
      const error = checkOrder(part, key, this.nReduce, this.prev);
      if (error) throw new OutputError(error);
      while (this.offsets.length <= part) this.offsets.push(this.lineStart);
      this.prev = { part, key };
      this.records++;
      this.lineStart += bytes + 1;
      byte += bytes + 1;
      s = e + 1;
    }
  }

  /** A record line of any other shape than the engine's, read by JSON.parse and checked whole. */
  private parseRecord(line: string): { part: number; key: string } {
    let rec: unknown;
    try {
      rec = JSON.parse(line);
    } catch {
      throw new OutputError(`record ${this.records + 1} is not JSON`);
    }
    const error = checkRecord(rec, this.nReduce, null);
    if (error) throw new OutputError(error);
    const [part, key] = rec as [number, string];
    return { part, key };
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
