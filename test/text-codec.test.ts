/**
 * The sandbox's own TextEncoder and TextDecoder (server/volunteer/text-codec.ts) against Node's, on
 * random strings (lone surrogates included) and random bytes (valid UTF-8 mixed with every kind of
 * broken sequence), whole and split into streamed chunks, with and without `fatal`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { TextDecoder as SandboxDecoder, TextEncoder as SandboxEncoder } from '../server/volunteer/text-codec.js';

const anyUnit = fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c));
const text = fc.oneof(fc.string({ unit: 'grapheme' }), fc.string({ unit: anyUnit }), fc.string());
/** Bytes that are mostly UTF-8, with broken and overlong sequences, surrogates and BOMs mixed in. */
const bytes = fc
  .array(
    fc.oneof(
      text.map((s) => Array.from(new globalThis.TextEncoder().encode(s))),
      fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 6 }),
      fc.constantFrom([0xef, 0xbb, 0xbf], [0xed, 0xa0, 0x80], [0xc0, 0xaf], [0xf4, 0x90, 0x80, 0x80], [0xe2, 0x82]),
    ),
    { maxLength: 12 },
  )
  .map((parts) => new Uint8Array(parts.flat()));

function decodeAll(
  decoder: { decode(input?: Uint8Array, o?: { stream?: boolean }): string },
  b: Uint8Array,
  cuts: number[],
) {
  const at = [...new Set(cuts.map((c) => c % (b.length + 1)))].sort((x, y) => x - y);
  let out = '';
  let from = 0;
  for (const cut of at) {
    out += decoder.decode(b.subarray(from, cut), { stream: true });
    from = cut;
  }
  return out + decoder.decode(b.subarray(from));
}

function outcome(f: () => string): string {
  try {
    return `ok ${JSON.stringify(f())}`;
  } catch (e) {
    return `threw ${(e as Error).name}`;
  }
}

test('TextEncoder encodes as Node does, lone surrogates as U+FFFD', () => {
  fc.assert(
    fc.property(text, (s) => {
      assert.deepEqual(new SandboxEncoder().encode(s), new globalThis.TextEncoder().encode(s));
    }),
    { numRuns: 2000 },
  );
});

test('TextDecoder decodes as Node does: replacement, fatal, BOM and streamed chunks', () => {
  fc.assert(
    fc.property(
      bytes,
      fc.array(fc.nat(), { maxLength: 5 }),
      fc.boolean(),
      fc.boolean(),
      (b, cuts, fatal, ignoreBOM) => {
        const ours = new SandboxDecoder('utf-8', { fatal, ignoreBOM });
        const node = new globalThis.TextDecoder('utf-8', { fatal, ignoreBOM });
        assert.equal(
          outcome(() => decodeAll(ours, b, cuts)),
          outcome(() => decodeAll(node, b, cuts)),
        );
        // The decoder is reusable after a whole decode, as Node's is.
        assert.equal(ours.decode(b.subarray(0, 0)), '');
      },
    ),
    { numRuns: 3000 },
  );
});

test('TextDecoder takes ArrayBuffers and views, and refuses encodings it does not have', () => {
  const b = new globalThis.TextEncoder().encode('héllo');
  assert.equal(new SandboxDecoder().decode(b.buffer), 'héllo');
  assert.equal(new SandboxDecoder('UTF8').decode(new DataView(b.buffer, 1, 3)), 'él');
  assert.throws(() => new SandboxDecoder('latin1'), RangeError);
  assert.throws(() => new SandboxDecoder().decode('text' as unknown as Uint8Array), TypeError);
});
