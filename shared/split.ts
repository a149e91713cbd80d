/** Splitting of input files into map tasks at line boundaries. Pure: works on bytes. */
const NEWLINE = 0x0a;

export interface SplitRange {
  start: number;
  end: number;
  /** The line number of its first line in its file (1 for the first split), when it was counted. */
  firstLine?: number;
}

/** Newlines in `bytes` from `start` to `end`. */
export function countNewlines(bytes: Uint8Array, start = 0, end = bytes.length): number {
  let n = 0;
  for (let i = bytes.indexOf(NEWLINE, start); i !== -1 && i < end; i = bytes.indexOf(NEWLINE, i + 1)) n++;
  return n;
}

/**
 * Numbers the splits of one file, in order, from chunks of it: each split's `firstLine` is one more
 * than the newlines before it. Splits end after a newline, so lines never straddle two.
 */
export class LineNumberer {
  private pos = 0;
  private lines = 1;
  private next = 0;

  constructor(private readonly splits: SplitRange[]) {}

  push(chunk: Uint8Array): void {
    const end = this.pos + chunk.length;
    let from = 0;
    for (; this.next < this.splits.length; this.next++) {
      const s = this.splits[this.next]!;
      if (s.start >= end) break;
      this.lines += countNewlines(chunk, from, s.start - this.pos);
      from = s.start - this.pos;
      s.firstLine = this.lines;
    }
    this.lines += countNewlines(chunk, from);
    this.pos = end;
  }

  /** Splits that start at the file's very end (an empty file's one split). */
  end(): void {
    for (; this.next < this.splits.length; this.next++) this.splits[this.next]!.firstLine = this.lines;
  }
}

/**
 * Cuts `bytes` into pieces of at most `splitSize` bytes that end after a newline. A line longer than
 * `splitSize` becomes one piece of its own. An empty file is one empty piece, so every input file
 * reaches `map` at least once.
 */
export function splitRanges(bytes: Uint8Array, splitSize: number): SplitRange[] {
  if (bytes.length === 0) return [{ start: 0, end: 0 }];
  const out: SplitRange[] = [];
  let start = 0;
  while (start < bytes.length) {
    let end = start + splitSize;
    if (end >= bytes.length) {
      end = bytes.length;
    } else {
      const nl = bytes.lastIndexOf(NEWLINE, end - 1);
      if (nl >= start) {
        end = nl + 1;
      } else {
        const next = bytes.indexOf(NEWLINE, end);
        end = next === -1 ? bytes.length : next + 1;
      }
    }
    out.push({ start, end });
    start = end;
  }
  return out;
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * Decodes UTF-8, or throws with the offset of the first bad byte's neighbourhood; `start` is where
 * `bytes` begin in their file, so a split's error points into the file the admin can open.
 */
export function decodeUtf8(bytes: Uint8Array, what: string, start = 0): string {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    // Find where it goes wrong so the admin can look at it.
    let lo = 0;
    let hi = bytes.length;
    while (hi - lo > 1) {
      const mid = (lo + hi) >>> 1;
      try {
        new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(0, mid), { stream: true });
        lo = mid;
      } catch {
        hi = mid;
      }
    }
    throw new Error(`${what} is not valid UTF-8 (bad byte near offset ${start + lo})`);
  }
}

/**
 * `splitRanges` for bytes that arrive in chunks, so an input is cut into splits while it streams in
 * and is never held whole: `push` returns the splits its chunk completed, `end` the rest. The cuts are
 * exactly `splitRanges`' (test/split.test.ts checks both on random inputs and chunkings).
 */
export class SplitFinder {
  /** Where the split being scanned starts. */
  private start = 0;
  /** Bytes seen so far. */
  private pos = 0;
  /** The last newline seen (absolute offset), or -1. */
  private lastNl = -1;
  /** The split's first `splitSize` bytes held no newline: it ends at the next one. */
  private waiting = false;

  constructor(private readonly splitSize: number) {}

  push(chunk: Uint8Array): SplitRange[] {
    const out: SplitRange[] = [];
    const base = this.pos;
    this.pos += chunk.length;
    for (;;) {
      const limit = this.start + this.splitSize;
      if (this.waiting) {
        const nl = chunk.indexOf(NEWLINE, Math.max(0, limit - base));
        if (nl === -1) break;
        this.cut(out, base + nl + 1);
        continue;
      }
      // Cut only once a byte past the split's limit exists: a remainder that fits is one split.
      if (this.pos <= limit) break;
      const inChunk = limit - 1 >= base ? chunk.lastIndexOf(NEWLINE, limit - 1 - base) : -1;
      const nl =
        inChunk >= 0 && base + inChunk >= this.start ? base + inChunk : this.lastNl >= this.start ? this.lastNl : -1;
      if (nl >= 0) this.cut(out, nl + 1);
      else this.waiting = true;
    }
    const last = chunk.lastIndexOf(NEWLINE);
    if (last >= 0) this.lastNl = base + last;
    return out;
  }

  private cut(out: SplitRange[], end: number): void {
    out.push({ start: this.start, end });
    this.start = end;
    this.waiting = false;
  }

  /** The last split; an empty input is one empty split, as in `splitRanges`. */
  end(): SplitRange[] {
    if (this.pos === 0) return [{ start: 0, end: 0 }];
    return this.start < this.pos ? [{ start: this.start, end: this.pos }] : [];
  }

  get bytes(): number {
    return this.pos;
  }
}
