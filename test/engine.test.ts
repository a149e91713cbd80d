/** The shared engine, partition hash, splitting and `tabreduce local`, checked against independent results. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fnv1a32, defaultPartition } from '../shared/partition.js';
import { runMap, runReduce, asJobModule, JobCodeError } from '../shared/engine.js';
import { runTask } from '../shared/task-runner.js';
import { encodeMapOutput } from '../shared/records.js';
import { splitRanges, decodeUtf8 } from '../shared/split.js';
import { UserError } from '../shared/errors.js';
import { stageInputs } from '../server/receive-job.js';
import { LocalBlobStore } from '../server/blobs/local-blob-store.js';
import {
  corpusFiles,
  EXAMPLES,
  independentWordCount,
  localOutput,
  parseOutput,
  cli,
  tempDir,
} from './helpers/cluster.js';

test('FNV-1a 32-bit matches the published test vectors', () => {
  // Vectors from the FNV reference (draft-eastlake-fnv): "", "a", "foobar".
  assert.equal(fnv1a32(''), 0x811c9dc5);
  assert.equal(fnv1a32('a'), 0xe40c292c);
  assert.equal(fnv1a32('foobar'), 0xbf9cf968);
  // Non-ASCII keys hash their UTF-8 bytes: "é" is C3 A9.
  let h = 0x811c9dc5;
  for (const b of [0xc3, 0xa9]) h = Math.imul(h ^ b, 0x01000193) >>> 0;
  assert.equal(fnv1a32('é'), h);
  assert.equal(defaultPartition('foobar', 10), (0xbf9cf968 & 0x7fffffff) % 10);
});

test('map groups per partition with keys ascending and values in emit order; combine folds them', async () => {
  const mod = asJobModule({
    map: (_k: string, v: string, emit: (k: string, v: string) => void) => {
      for (const w of v.split(' ')) emit(w, String(w.length));
    },
    reduce: (_k: string, vs: string[]) => vs.join('+'),
    partition: (k: string) => (k < 'm' ? 0 : 1),
  });
  const r = await runMap(mod, 'f', 'pear apple zoo apple b', 2);
  assert.deepEqual(r.partitions, [
    [
      ['apple', ['5', '5']],
      ['b', ['1']],
    ],
    [
      ['pear', ['4']],
      ['zoo', ['3']],
    ],
  ]);
  assert.equal(r.recordsOut, 5);
  const combined = await runMap({ ...mod, combine: (_k, vs) => String(vs.length) }, 'f', 'a a b', 2);
  assert.deepEqual(combined.partitions[0], [
    ['a', ['2']],
    ['b', ['1']],
  ]);
});

test('reduce merges map outputs in map order, sorts keys by JS string order, awaits async code', async () => {
  const mod = asJobModule({
    map: () => {},
    reduce: async (k: string, vs: string[]) => `${k}:${vs.join(',')}`,
  });
  const r = await runReduce(mod, [
    [
      ['b', ['1']],
      ['é', ['x']],
    ],
    [
      ['B', ['2']],
      ['b', ['3']],
    ],
  ]);
  assert.equal(r.text, 'B\tB:2\nb\tb:1,3\né\té:x\n');
  assert.equal(r.records, 3);
});

test('runTask: a map gives its partitions as records, a reduce of records text gives what the partitions gave', async () => {
  const mod = asJobModule({
    // Each value is the map task's key, so a reduce shows the order its values came in.
    map: (k: string, v: string, emit: (k: string, v: string) => void) => {
      for (const w of v.split(' ')) emit(w, k);
    },
    reduce: (k: string, vs: string[]) => vs.join(','),
    partition: (k: string) => (k < 'm' ? 0 : 1),
  });
  // Map tasks whose keys do not sort in map-task order, and keys JSON must escape.
  const splits: [string, string][] = [
    ['f2', 'b zoo a'],
    ['f0', 'zoo b é\t"x"\n'],
    ['f1', 'b a'],
  ];
  const outputs: string[] = [];
  const maps = [];
  for (const [key, value] of splits) {
    const map = await runMap(mod, key, value, 2);
    const out = await runTask(mod, { phase: 'map', nReduce: 2, input: { key, value } }, () => 0);
    assert.equal(out.output, encodeMapOutput(map.partitions));
    assert.deepEqual(out.stats, { ms: 0, recordsIn: 1, recordsOut: map.recordsOut });
    maps.push(map);
    outputs.push(out.output);
  }
  const reduced: string[] = [];
  for (const r of [0, 1]) {
    // Reduce r's input as the master streams it: partition r's records of each map task, in map-task order.
    const records = outputs
      .flatMap((o) => o.split('\n').filter((line) => line.startsWith(`[${r},`)))
      .map((line) => `${line}\n`)
      .join('');
    const expected = await runReduce(
      mod,
      maps.map((m) => m.partitions[r]!),
    );
    const out = await runTask(mod, { phase: 'reduce', nReduce: 2, input: records }, () => 0);
    assert.equal(out.output, expected.text, `reduce ${r}`);
    assert.deepEqual(out.stats, { ms: 0, recordsIn: expected.recordsIn, recordsOut: expected.records });
    reduced.push(out.output);
  }
  // A key's values come in map-task order, as with `tabreduce local`, not in the order of the tasks' keys.
  assert.equal(reduced[0], 'a\tf2,f1\nb\tf2,f0,f1\n');
  assert.equal(reduced[1], 'zoo\tf2,f0\né\t"x"\n\tf0\n');
  assert.equal((await runTask(mod, { phase: 'reduce', nReduce: 2, input: '' }, () => 0)).output, '');
});

test('bad job code is reported clearly', async () => {
  assert.throws(() => asJobModule({ map: () => {} }), /does not export function reduce/);
  const mod = asJobModule({
    map: (_k: string, _v: string, emit: (k: unknown, v: unknown) => void) => emit('k', 1),
    reduce: () => 'x',
  });
  await assert.rejects(
    runMap(mod, 'k', 'v', 1),
    (e: Error) => e instanceof JobCodeError && /emit value must be a string, got number/.test(e.message),
  );
  const badPart = asJobModule({
    map: (_k: string, _v: string, emit: (k: string, v: string) => void) => emit('k', 'v'),
    reduce: () => 'x',
    partition: () => 7,
  });
  await assert.rejects(runMap(badPart, 'k', 'v', 2), /partition\("k", 2\) returned 7/);
  const badReduce = asJobModule({ map: () => {}, reduce: () => 3 });
  await assert.rejects(runReduce(badReduce, [[['k', ['v']]]]), /reduce\("k"\) result must be a string, got number/);
});

test('splits end at line boundaries, never exceed the split size unless one line does, and cover the file', () => {
  const text = Buffer.from('aa\nbbbb\nc\n\nddddddddddd\ne');
  const ranges = splitRanges(text, 5);
  assert.deepEqual(
    ranges.map((r) => text.subarray(r.start, r.end).toString()),
    ['aa\n', 'bbbb\n', 'c\n\n', 'ddddddddddd\n', 'e'],
  );
  assert.deepEqual(splitRanges(new Uint8Array(0), 5), [{ start: 0, end: 0 }]);
  for (const size of [1, 2, 3, 7, 100]) {
    const rs = splitRanges(text, size);
    assert.equal(rs[0]!.start, 0);
    assert.equal(rs.at(-1)!.end, text.length);
    for (let i = 1; i < rs.length; i++) assert.equal(rs[i]!.start, rs[i - 1]!.end);
  }
  assert.throws(
    () => decodeUtf8(Buffer.from([0x61, 0x62, 0xff, 0x63]), 'input x'),
    /input x is not valid UTF-8 \(bad byte near offset 2\)/,
  );
});

test('inputs are stored and split at line ends, their UTF-8 checked, as local splits them', async () => {
  const blobs = new LocalBlobStore(join(tempDir(), 'blobs'));
  const staged = await stageInputs(
    blobs,
    'job1',
    [
      { name: 'dir/a.txt', bytes: Buffer.from('aa\nbb\n') },
      { name: 'b.txt', bytes: new Uint8Array(0) },
    ],
    3,
  );
  assert.deepEqual(
    staged.map((s) => [s.name, s.bytes, s.splits]),
    [
      [
        'dir/a.txt',
        6,
        [
          { start: 0, end: 3 },
          { start: 3, end: 6 },
        ],
      ],
      ['b.txt', 0, [{ start: 0, end: 0 }]],
    ],
  );
  assert.equal(blobs.readSync(staged[0]!.blob, 3, 6).toString(), 'bb\n');
  const userError = (why: RegExp) => (e: unknown) => e instanceof UserError && why.test(e.message);
  // The bad byte sits in the second split; its offset counts from the start of the file.
  await assert.rejects(
    stageInputs(blobs, 'job2', [{ name: 'c.txt', bytes: Buffer.from([0x61, 0x0a, 0x62, 0xff, 0x0a]) }], 2),
    userError(/^input c\.txt is not valid UTF-8 \(bad byte near offset 3\)$/),
  );
  await assert.rejects(
    stageInputs(
      blobs,
      'job3',
      [
        { name: 'x/a.txt', bytes: new Uint8Array(0) },
        { name: 'y/a.txt', bytes: new Uint8Array(0) },
      ],
      64,
    ),
    userError(/two inputs have the base name "a\.txt" \(x\/a\.txt and y\/a\.txt\)/),
  );
});

test('the engine, through tabreduce local, counts the corpus words exactly', async () => {
  const files = corpusFiles();
  const expected = independentWordCount(files);
  // A small split size makes many map tasks, so splitting and merging are exercised.
  const out = parseOutput(
    await localOutput(join(EXAMPLES, 'word-count.js'), files, ['--reduces', '4', '--split-size', '64KiB']),
  );
  assert.equal(out.size, expected.size);
  for (const [w, n] of expected) assert.equal(out.get(w), String(n), `count of ${w}`);
  // --out writes part-00000..part-00003 whose concatenation is the same output, each sorted.
  const dir = tempDir();
  const r = await cli(['local', join(EXAMPLES, 'word-count.js'), ...files, '--reduces', '4', '--out', dir]);
  assert.equal(r.code, 0, r.stderr);
  let all = 0;
  for (let p = 0; p < 4; p++) {
    const keys = readFileSync(join(dir, `part-0000${p}`), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => l.split('\t')[0]!);
    assert.deepEqual(keys, [...keys].sort(), `part ${p} sorted`);
    for (const k of keys) assert.equal(defaultPartition(k, 4), p, `${k} in its partition`);
    all += keys.length;
  }
  assert.equal(all, expected.size);
});

test('a job module that cannot be fetched for a while is fetched again; an error in the module is not', async () => {
  const { loadWithRetries } = await import('../shared/task-runner.js');
  const attempts: number[] = [];
  const mod = await loadWithRetries(async (attempt) => {
    attempts.push(attempt);
    if (attempt < 2) throw new TypeError('Failed to fetch dynamically imported module');
    return { ok: true };
  });
  assert.deepEqual(mod, { ok: true });
  assert.deepEqual(attempts, [0, 1, 2], 'each retry knows its number, so it can use a fresh URL');

  let calls = 0;
  await assert.rejects(
    loadWithRetries(async () => {
      calls++;
      throw new SyntaxError('Unexpected token');
    }),
    SyntaxError,
  );
  assert.equal(calls, 1, 'a broken module fails at once');
});
