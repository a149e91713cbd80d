/**
 * Checks that a stream of bytes is UTF-8 without decoding it into strings: each chunk with
 * `isUtf8` (node:buffer, no allocation), a character cut by a chunk's edge carried over to the next.
 * A bad byte is located within its chunk only, so a bad byte at 600 MiB costs one chunk's search,
 * not a decode of everything before it.
 */
import { isUtf8 } from 'node:buffer';
import { decodeUtf8 } from '../shared/split.js';

/** The bytes a UTF-8 sequence with this lead byte has, or 0 for a byte that cannot lead one. */
function sequenceLength(lead: number): number {
  if (lead < 0x80) return 1;
  if (lead >= 0xc2 && lead <= 0xdf) return 2;
  if (lead >= 0xe0 && lead <= 0xef) return 3;
  if (lead >= 0xf0 && lead <= 0xf4) return 4;
  return 0;
}

export class Utf8Check {
  /** The start of a character the last chunk cut off. */
  private carry: Uint8Array = new Uint8Array(0);
  /** Where `carry` starts in the stream. */
  private offset = 0;

  constructor(private readonly what: string) {}

  /** Throws `Error("<what> is not valid UTF-8 (bad byte near offset N)")` at the first bad byte. */
  push(chunk: Uint8Array): void {
    const bytes = this.carry.length > 0 ? Buffer.concat([this.carry, chunk]) : chunk;
    // Find a character the chunk's end cuts: its lead byte is within the last 3 bytes.
    let keep = bytes.length;
    for (let i = bytes.length - 1; i >= Math.max(0, bytes.length - 3); i--) {
      const b = bytes[i]!;
      if ((b & 0xc0) === 0x80) continue;
      const n = sequenceLength(b);
      if (n > 1 && i + n > bytes.length) keep = i;
      break;
    }
    const whole = bytes.subarray(0, keep);
    if (!isUtf8(whole)) decodeUtf8(whole, this.what, this.offset); // throws, naming the offset
    this.offset += keep;
    this.carry = bytes.slice(keep);
  }

  /** The stream ended: a character it cut off is an error. */
  end(): void {
    if (this.carry.length > 0) decodeUtf8(this.carry, this.what, this.offset);
  }
}
