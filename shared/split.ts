/** Splitting of input files into map tasks at line boundaries. Pure: works on bytes. */
const NEWLINE = 0x0a;

export interface SplitRange {
  start: number;
  end: number;
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
