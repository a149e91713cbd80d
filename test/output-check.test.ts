/** Outputs checked as they stream in (server/output-check.ts) and the local blob store under them. */
import { createHash } from 'node:crypto';
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { MapOutputCheck, OutputError, ReduceOutputCheck, packOffsets, spanOf } from '../server/output-check.js';
import { LocalBlobStore } from '../server/blobs/local-blob-store.js';
import { decodeRecords, encodeMapOutput } from '../shared/records.js';
import type { Partition } from '../shared/engine.js';
import { removeTempDirs, tempDir } from './helpers/cluster.js';

after(removeTempDirs);

function chunks(buf: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < buf.length; i += size) out.push(buf.subarray(i, i + size));
  return out;
}

function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

test('a map output streamed in any chunks is checked and its partitions located', () => {
  const parts: Partition[] = [
    [
      ['a', ['1', '2']],
      ['é', ['x\ty']],
    ],
    [],
    [['z', ['"q"']]],
    [],
  ];
  const bytes = Buffer.from(encodeMapOutput(parts));
  for (const size of [1, 2, 3, 7, 64, bytes.length]) {
    const check = new MapOutputCheck(4);
    for (const c of chunks(bytes, size)) check.push(c);
    const s = check.end();
    assert.equal(s.bytes, bytes.length);
    assert.equal(s.records, 3);
    assert.equal(s.offsets.length, 5);
    // The hash is of the bytes, however they were cut.
    assert.equal(s.hash, sha256(bytes));
    const packed = packOffsets(s.offsets);
    parts.forEach((p, r) => {
      const { start, end } = spanOf(packed.subarray(r * 8, r * 8 + 16));
      assert.deepEqual(
        decodeRecords(bytes.subarray(start, end).toString('utf8')),
        p,
        `partition ${r}, chunks of ${size}`,
      );
    });
  }
  const empty = new MapOutputCheck(2).end();
  assert.deepEqual(empty, { bytes: 0, records: 0, offsets: [0, 0, 0], hash: sha256(Buffer.alloc(0)) });
});

test('a malformed map output is refused, wherever the chunks fall', () => {
  const cases: [string, RegExp][] = [
    ['[0,"b",["1"]]\n[0,"a",["1"]]\n', /ascending/],
    ['[1,"a",["1"]]\n[0,"b",["1"]]\n', /partition order/],
    ['[2,"a",["1"]]\n', /from 0 to 1/],
    ['[0,"a",["1"]]', /end with a newline/],
    ['{"x":1}\n', /\[partition, key, \[values\]\]/],
    ['[0,"a",["1"]\n', /not JSON/],
  ];
  for (const [text, why] of cases) {
    for (const size of [1, 5, 100]) {
      const check = new MapOutputCheck(2);
      assert.throws(
        () => {
          for (const c of chunks(Buffer.from(text), size)) check.push(c);
          check.end();
        },
        (e: unknown) => e instanceof OutputError && why.test(e.message),
        `${JSON.stringify(text)} in chunks of ${size}`,
      );
    }
  }
  const bad = new MapOutputCheck(1);
  assert.throws(() => bad.push(Buffer.from([0x5b, 0xff, 0x0a])), /not valid UTF-8/);
});

test('a reduce output is UTF-8 lines ending in a newline, its records counted', () => {
  const check = new ReduceOutputCheck();
  for (const c of chunks(Buffer.from('a\t1\né\t2\n'), 3)) check.push(c);
  assert.deepEqual(check.end(), { bytes: 9, records: 2, hash: sha256(Buffer.from('a\t1\né\t2\n')) });
  const open = new ReduceOutputCheck();
  open.push(Buffer.from('a\t1'));
  assert.throws(() => open.end(), /newline/);
  assert.deepEqual(new ReduceOutputCheck().end(), { bytes: 0, records: 0, hash: sha256(Buffer.alloc(0)) });
});

test('a blob is invisible until committed, gone when aborted, and read by range', async () => {
  const root = join(tempDir(), 'blobs');
  const blobs = new LocalBlobStore(root);
  const w = await blobs.create('job1/map/3-abc');
  await w.write(Buffer.from('hello '));
  await w.write(Buffer.from('world'));
  assert.equal(await blobs.size('job1/map/3-abc'), null, 'not visible before commit');
  assert.equal(await w.commit(), 11);
  assert.equal(await blobs.size('job1/map/3-abc'), 11);
  let text = '';
  for await (const c of blobs.read('job1/map/3-abc', { start: 6, end: 11 })) text += String(c);
  assert.equal(text, 'world');
  assert.equal(blobs.readSync('job1/map/3-abc', 0, 5).toString(), 'hello');

  const dropped = await blobs.create('job1/map/4-abc');
  await dropped.write(Buffer.from('x'));
  await dropped.abort();
  assert.equal(await blobs.size('job1/map/4-abc'), null);
  assert.deepEqual(readdirSync(join(root, 'tmp')), [], 'nothing left in tmp');

  const unfinished = await blobs.create('job1/out/0-abc');
  await unfinished.write(Buffer.from('half'));
  await blobs.clearUnfinished();
  assert.deepEqual(readdirSync(join(root, 'tmp')), [], 'a restart removes unfinished writes');

  const names: string[] = [];
  for await (const b of blobs.list('job1/')) names.push(`${b.name}:${b.bytes}`);
  assert.deepEqual(names, ['job1/map/3-abc:11']);
  assert.deepEqual(await blobs.jobs(), ['job1']);
  await blobs.deletePrefix('job1/');
  assert.equal(existsSync(join(root, 'jobs', 'job1')), false);
  assert.throws(() => blobs.read('../etc/passwd'), /invalid blob name/);
  await assert.rejects(blobs.deletePrefix('../'), /invalid blob prefix/);
});
