/**
 * UTF-8 `TextEncoder` and `TextDecoder` in plain JavaScript, for the Node volunteer's job sandbox:
 * a bare V8 isolate has neither, yet both are portable globals (shared/portable-globals.d.ts) that
 * the engine's partition hash and job code may use. The decoder follows the WHATWG Encoding
 * Standard's UTF-8 decoder (replacement per maximal subpart, `fatal`, `ignoreBOM`, `stream`);
 * test/text-codec.test.ts checks both against Node's own on random input.
 */

export class TextEncoder {
  readonly encoding = 'utf-8';

  encode(input: string = ''): Uint8Array {
    const s = String(input);
    const out = new Uint8Array(s.length * 3);
    let n = 0;
    for (let i = 0; i < s.length; i++) {
      let c = s.charCodeAt(i);
      if (c < 0x80) {
        out[n++] = c;
        continue;
      }
      if (c < 0x800) {
        out[n++] = 0xc0 | (c >> 6);
        out[n++] = 0x80 | (c & 0x3f);
        continue;
      }
      if (c >= 0xd800 && c < 0xdc00 && i + 1 < s.length) {
        const d = s.charCodeAt(i + 1);
        if (d >= 0xdc00 && d < 0xe000) {
          i++;
          const cp = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
          out[n++] = 0xf0 | (cp >> 18);
          out[n++] = 0x80 | ((cp >> 12) & 0x3f);
          out[n++] = 0x80 | ((cp >> 6) & 0x3f);
          out[n++] = 0x80 | (cp & 0x3f);
          continue;
        }
      }
      if (c >= 0xd800 && c < 0xe000) c = 0xfffd; // a lone surrogate
      out[n++] = 0xe0 | (c >> 12);
      out[n++] = 0x80 | ((c >> 6) & 0x3f);
      out[n++] = 0x80 | (c & 0x3f);
    }
    return out.slice(0, n);
  }
}

const UTF8_LABELS = new Set([
  'utf-8',
  'utf8',
  'unicode-1-1-utf-8',
  'unicode11utf8',
  'unicode20utf8',
  'x-unicode20utf8',
]);

function bytesOf(input: unknown): Uint8Array {
  if (input === undefined) return new Uint8Array(0);
  if (input instanceof ArrayBuffer) return new Uint8Array(input);
  if (ArrayBuffer.isView(input)) return new Uint8Array(input.buffer, input.byteOffset, input.byteLength);
  throw new TypeError('TextDecoder.decode: input must be an ArrayBuffer or an ArrayBuffer view');
}

export class TextDecoder {
  readonly encoding = 'utf-8';
  readonly fatal: boolean;
  readonly ignoreBOM: boolean;
  private needed = 0;
  private seen = 0;
  private codePoint = 0;
  private lower = 0x80;
  private upper = 0xbf;
  /** Whether the stream's first code point has been written (a BOM is dropped only there). */
  private started = false;

  constructor(label = 'utf-8', options: { fatal?: boolean; ignoreBOM?: boolean } = {}) {
    if (!UTF8_LABELS.has(String(label).trim().toLowerCase())) {
      throw new RangeError(`TextDecoder: only UTF-8 is available here, not "${String(label)}"`);
    }
    this.fatal = Boolean(options.fatal);
    this.ignoreBOM = Boolean(options.ignoreBOM);
  }

  decode(input?: unknown, options: { stream?: boolean } = {}): string {
    const bytes = bytesOf(input);
    const units: number[] = [];
    const parts: string[] = [];
    const write = (cp: number) => {
      if (!this.started) {
        this.started = true;
        if (cp === 0xfeff && !this.ignoreBOM) return;
      }
      if (cp > 0xffff) {
        cp -= 0x10000;
        units.push(0xd800 + (cp >> 10), 0xdc00 + (cp & 0x3ff));
      } else {
        units.push(cp);
      }
      // Strings from chunks of code units: fromCharCode takes them as arguments.
      if (units.length >= 8192) parts.push(String.fromCharCode(...units.splice(0)));
    };
    const fail = () => {
      this.needed = this.seen = this.codePoint = 0;
      this.lower = 0x80;
      this.upper = 0xbf;
      if (this.fatal) {
        this.started = false;
        throw new TypeError('TextDecoder: the data is not valid UTF-8');
      }
      write(0xfffd);
    };
    for (let i = 0; i < bytes.length; i++) {
      const b = bytes[i]!;
      if (this.needed === 0) {
        if (b <= 0x7f) write(b);
        else if (b >= 0xc2 && b <= 0xdf) {
          this.needed = 1;
          this.codePoint = b & 0x1f;
        } else if (b >= 0xe0 && b <= 0xef) {
          if (b === 0xe0) this.lower = 0xa0;
          if (b === 0xed) this.upper = 0x9f;
          this.needed = 2;
          this.codePoint = b & 0xf;
        } else if (b >= 0xf0 && b <= 0xf4) {
          if (b === 0xf0) this.lower = 0x90;
          if (b === 0xf4) this.upper = 0x8f;
          this.needed = 3;
          this.codePoint = b & 0x7;
        } else fail();
        continue;
      }
      if (b < this.lower || b > this.upper) {
        fail();
        i--; // the byte starts over as the first of a sequence
        continue;
      }
      this.lower = 0x80;
      this.upper = 0xbf;
      this.codePoint = (this.codePoint << 6) | (b & 0x3f);
      if (++this.seen === this.needed) {
        const cp = this.codePoint;
        this.needed = this.seen = this.codePoint = 0;
        write(cp);
      }
    }
    if (!options.stream) {
      if (this.needed !== 0) fail();
      this.started = false;
    }
    parts.push(String.fromCharCode(...units));
    return parts.join('');
  }
}
