import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SplitFinder, splitRanges, decodeUtf8 } from '../shared/split.js';
import { Utf8Check } from '../server/utf8-check.js';

/** A deterministic generator, so a failure can be replayed. */
function rng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function chunked(bytes: Uint8Array, rand: () => number, max: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; i < bytes.length;) {
    const n = 1 + Math.floor(rand() * max);
    out.push(bytes.subarray(i, i + n));
    i += n;
  }
  return out;
}

test('SplitFinder cuts streamed bytes exactly where splitRanges cuts them whole', () => {
  const rand = rng(7);
  for (let round = 0; round < 400; round++) {
    const len = Math.floor(rand() * 300);
    const newlineRate = [0, 0.02, 0.1, 0.5][round % 4]!;
    const bytes = new Uint8Array(len).map(() => (rand() < newlineRate ? 0x0a : 0x61));
    const splitSize = 1 + Math.floor(rand() * 40);
    const finder = new SplitFinder(splitSize);
    const got = chunked(bytes, rand, 1 + Math.floor(rand() * 50)).flatMap((c) => finder.push(c));
    got.push(...finder.end());
    assert.deepEqual(got, splitRanges(bytes, splitSize), `round ${round}: ${len} bytes, split ${splitSize}`);
  }
});

test('Utf8Check accepts UTF-8 cut anywhere and finds a bad byte at its offset in the stream', () => {
  const text = 'héllo wörld — 日本語 🎉 ok\n'.repeat(50);
  const good = Buffer.from(text);
  const rand = rng(11);
  for (let round = 0; round < 100; round++) {
    const check = new Utf8Check('input a.txt');
    for (const c of chunked(good, rand, 1 + Math.floor(rand() * 20))) check.push(c);
    check.end();
  }
  for (let round = 0; round < 100; round++) {
    const bad = Buffer.from(good);
    const at = Math.floor(rand() * bad.length);
    bad[at] = 0xff;
    let expected = '';
    try {
      decodeUtf8(bad, 'input a.txt');
    } catch (e) {
      expected = (e as Error).message;
    }
    const check = new Utf8Check('input a.txt');
    assert.throws(
      () => {
        for (const c of chunked(bad, rand, 1 + Math.floor(rand() * 64))) check.push(c);
        check.end();
      },
      (e: Error) => e.message === expected,
      `round ${round}: bad byte at ${at}`,
    );
  }
});

test('Utf8Check refuses a stream that ends inside a character', () => {
  const check = new Utf8Check('input b.txt');
  check.push(Buffer.from('ab'));
  check.push(Buffer.from([0xe6, 0x97]));
  assert.throws(() => check.end(), /input b.txt is not valid UTF-8 \(bad byte near offset 3\)/);
});
