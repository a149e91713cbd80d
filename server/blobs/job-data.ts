/**
 * Reading a job's data where it lives, for dispatch (small pieces, at once), the data routes and the
 * output route (streams): a map task's input split, a reduce task's input (its partition of every
 * map output, in map-task order, as byte ranges), and the output partitions. Never more than one
 * chunk or one page of rows at a time is held.
 */
import type { BlobStore } from './blob-store.js';
import type { OutputStore } from '../sql/output-store.js';
import type { InputSource } from '../sql/task-store.js';
import { spanOf } from '../output-check.js';

/** Map outputs read per query while walking a job's (up to 200,000) map outputs. */
const PAGE = 1_000;

export interface Span {
  mapIdx: number;
  blob: string | null;
  start: number;
  end: number;
  /** The span's bytes, when they came with it (a small output kept in its row). */
  piece?: Buffer;
}

/** Partition `part`'s byte range in every map output that has one, in map-task order, a page at a time. */
function* spanPages(outputs: OutputStore, jobId: string, part: number): Generator<Span[]> {
  for (let after = -1; ;) {
    const page = outputs.spans(jobId, part, after, PAGE);
    const spans: Span[] = [];
    for (const row of page) {
      const { start, end } = spanOf(row.pair);
      if (end <= start) continue;
      const span: Span = { mapIdx: row.map_idx, blob: row.blob, start, end };
      if (row.data !== null) span.piece = row.data.subarray(start, end);
      spans.push(span);
    }
    yield spans;
    if (page.length < PAGE) return;
    after = page[page.length - 1]!.map_idx;
  }
}

/** Partition `part`'s byte range in every map output that has one, in map-task order. */
export function* reduceSpans(outputs: OutputStore, jobId: string, part: number): Generator<Span> {
  for (const page of spanPages(outputs, jobId, part)) yield* page;
}

/** The size of every reduce partition, summed over all map outputs: one pass when the maps are done. */
export function partitionBytes(outputs: OutputStore, jobId: string, nReduce: number): number[] {
  const sizes = new Array<number>(nReduce).fill(0);
  for (let after = -1; ;) {
    const page = outputs.offsets(jobId, after, PAGE);
    for (const row of page) {
      for (let r = 0; r < nReduce; r++)
        sizes[r]! += row.offsets.readDoubleLE(r * 8 + 8) - row.offsets.readDoubleLE(r * 8);
    }
    if (page.length < PAGE) return sizes;
    after = page[page.length - 1]!.map_idx;
  }
}

/** A span kept in a row: the bytes that came with it, or read now. */
function rowPiece(outputs: OutputStore, jobId: string, s: Span): Buffer {
  return s.piece ?? outputs.mapSlice(jobId, s.mapIdx, s.start, s.end - s.start);
}

function readSpanSync(outputs: OutputStore, blobs: BlobStore, jobId: string, s: Span): Buffer {
  if (s.blob === null) return rowPiece(outputs, jobId, s);
  if (!blobs.readSync) throw new Error('this blob store cannot read synchronously');
  return blobs.readSync(s.blob, s.start, s.end);
}

/** A small reduce input, read at once to travel inside its assignment. */
export function reduceInputSync(outputs: OutputStore, blobs: BlobStore, jobId: string, part: number): Buffer {
  const pieces: Buffer[] = [];
  for (const s of reduceSpans(outputs, jobId, part)) pieces.push(readSpanSync(outputs, blobs, jobId, s));
  return Buffer.concat(pieces);
}

/**
 * Pieces read at once (kept in rows, or small spans of blobs) are sent in chunks of about this many bytes: a job of many small map tasks
 * has a piece of a few dozen bytes per map task in each reduce input, and a chunk each cost a trip
 * through the response's streams (20,000 of them per reduce task under `npm run bench -- load`).
 */
const ROW_CHUNK_BYTES = 256 * 1024;

/**
 * A span of a map output in the blob store up to this size is read whole and joined with its
 * neighbours into one chunk, rather than sent as it streams: a reduce reads its span of every map
 * output, and a write to the socket each for 3,000 small spans (300 map tasks, 10 reduces) showed in
 * the master's profile. It is read asynchronously all the same: a synchronous read of data no longer
 * in the page cache held the master for hundreds of milliseconds under `npm run bench -- big`.
 */
const SMALL_SPAN_BYTES = 64 * 1024;

async function readWhole(blobs: BlobStore, s: Span & { blob: string }): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of blobs.read(s.blob, s)) chunks.push(chunk as Buffer);
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
}

/**
 * A reduce input of any size, as a stream of chunks. The event loop gets a turn after each page of
 * map outputs: ten reduce inputs of 20,000 tiny pieces each, read back to back at the barrier, had
 * held the master for 900 ms (`/healthz` under `npm run bench -- load`).
 */
export async function* reduceInputStream(
  outputs: OutputStore,
  blobs: BlobStore,
  jobId: string,
  part: number,
): AsyncGenerator<Buffer> {
  let held: Buffer[] = [];
  let heldBytes = 0;
  for (const page of spanPages(outputs, jobId, part)) {
    for (const s of page) {
      const piece =
        s.blob === null
          ? rowPiece(outputs, jobId, s)
          : s.end - s.start <= SMALL_SPAN_BYTES
            ? await readWhole(blobs, { ...s, blob: s.blob })
            : null;
      if (piece) {
        held.push(piece);
        heldBytes += piece.length;
        if (heldBytes < ROW_CHUNK_BYTES) continue;
      }
      if (held.length > 0) yield Buffer.concat(held, heldBytes);
      held = [];
      heldBytes = 0;
      if (s.blob !== null && !piece) for await (const chunk of blobs.read(s.blob, s)) yield chunk as Buffer;
    }
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  if (held.length > 0) yield Buffer.concat(held, heldBytes);
}

export function inputBytes(src: InputSource): number {
  return 'inline' in src ? src.inline.length : src.end - src.start;
}

/** A small map input, read at once to travel inside its assignment. */
export function mapInputSync(blobs: BlobStore, src: InputSource): Buffer {
  if ('inline' in src) return src.inline;
  if (!blobs.readSync) throw new Error('this blob store cannot read synchronously');
  return blobs.readSync(src.blob, src.start, src.end);
}

export async function* mapInputStream(blobs: BlobStore, src: InputSource): AsyncGenerator<Buffer> {
  if ('inline' in src) {
    yield src.inline;
    return;
  }
  for await (const chunk of blobs.read(src.blob, src)) yield chunk as Buffer;
}

/** Output partitions (all of them in order, or one), as a stream of chunks. */
export async function* outputStream(
  outputs: OutputStore,
  blobs: BlobStore,
  jobId: string,
  part?: number,
): AsyncGenerator<Buffer> {
  const rows = part === undefined ? outputs.parts(jobId) : [outputs.part(jobId, part)].filter((r) => r !== undefined);
  for (const row of rows) {
    if (row.bytes === 0) continue;
    if (row.blob === null) yield outputs.partData(jobId, row.part);
    else for await (const chunk of blobs.read(row.blob)) yield chunk as Buffer;
  }
}
