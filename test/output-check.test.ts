/** Outputs checked as they stream in (server/output-check.ts) and the local blob store under them. */
import { createHash } from 'node:crypto';
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { MapOutputCheck, OutputError, ReduceOutputCheck, packOffsets, spanOf } from '../server/output-check.js';
import { LocalBlobStore } from '../server/blobs/local-blob-store.js';
import fc from 'fast-check';
import { checkOrder, checkRecord, decodeRecords, encodeMapOutput, scanRecord } from '../shared/records.js';
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

/** A line's partition and key as JSON.parse and checkRecord read it, or null when they refuse it. */
function parsedRecord(line: string, nReduce: number): { part: number; key: string } | null {
  let rec: unknown;
  try {
    rec = JSON.parse(line);
  } catch {
    return null;
  }
  if (checkRecord(rec, nReduce, null) !== null) return null;
  const [part, key] = rec as [number, string];
  return { part, key };
}

test("the record scanner reads only lines JSON.parse reads the same, and reads the engine's own", () => {
  const record = fc
    .tuple(
      fc.nat(30),
      fc.string({ unit: 'binary' }),
      fc.array(fc.string({ unit: 'binary' }), { minLength: 1, maxLength: 3 }),
    )
    .map((r) => JSON.stringify(r));
  // Edits that make near-records: brackets, quotes, escapes, digits, spaces, control characters.
  const edit = fc.tuple(
    fc.nat(),
    fc.nat(3),
    fc.constantFrom('[', ']', '"', ',', '\\', '0', '7', ' ', '\u0001', 'e', '-', '.'),
  );
  fc.assert(
    fc.property(record, fc.array(edit, { maxLength: 3 }), (line, edits) => {
      let text = line;
      for (const [at, op, c] of edits) {
        const i = at % (text.length + 1);
        text =
          op === 0
            ? text.slice(0, i) + c + text.slice(i)
            : op === 1
              ? text.slice(0, i) + text.slice(i + 1)
              : text.slice(0, i) + c + text.slice(i + 1);
      }
      // Somewhere inside other text, as the check sees it.
      const fast = scanRecord(`xx${text}yy`, 2, 2 + text.length);
      const slow = parsedRecord(text, 31);
      if (fast !== null) {
        const checked = checkOrder(fast.part, fast.key, 31, null) === null ? fast : null;
        assert.deepEqual(checked, slow, `scanned ${JSON.stringify(text)}`);
      }
      if (edits.length === 0 && !/[\\\u0000-\u001f]/.test(line)) assert.notEqual(fast, null, `the engine's ${line}`);
    }),
    { numRuns: 20_000 },
  );
  // Shapes it leaves to JSON.parse, which reads some of them as records.
  for (const line of [
    '[1.0,"a",["1"]]',
    '[1e0,"a",["1"]]',
    '[ 1,"a",["1"]]',
    '[1,"\\u0061",["1"]]',
    '[01,"a",["1"]]',
  ]) {
    assert.equal(scanRecord(line, 0, line.length), null, line);
  }
  assert.deepEqual(parsedRecord('[1.0,"a",["1"]]', 2), { part: 1, key: 'a' });
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

test('readSync keeps a few descriptors open, and deleting a blob closes its own', async () => {
  const blobs = new LocalBlobStore(join(tempDir(), 'blobs'));
  const openFds = () => readdirSync('/proc/self/fd').length;
  const names = Array.from({ length: 20 }, (_, i) => `job2/input/${i}`);
  for (const name of names) {
    const w = await blobs.create(name);
    await w.write(Buffer.from(`blob ${name}`));
    await w.commit();
  }
  const before = openFds();
  for (let round = 0; round < 3; round++) {
    for (const name of names) assert.equal(blobs.readSync(name, 5, 5 + name.length).toString(), name);
  }
  const kept = openFds() - before;
  assert.ok(kept > 0 && kept <= 8, `${kept} descriptors kept open`);
  await blobs.delete(names.at(-1)!);
  assert.equal(openFds() - before, kept - 1, 'deleting a blob closed its descriptor');
  await blobs.deletePrefix('job2/input/');
  assert.equal(openFds(), before, 'deleting the prefix closed the rest');
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
  assert.equal(blobs.readSync('job1/map/3-abc', 6, 11).toString(), 'world', 'read again through the kept descriptor');

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
  // The descriptor kept for readSync went with the blob: nothing is read from a deleted blob.
  assert.throws(() => blobs.readSync('job1/map/3-abc', 0, 5), /ENOENT/);
  assert.throws(() => blobs.read('../etc/passwd'), /invalid blob name/);
  await assert.rejects(blobs.deletePrefix('../'), /invalid blob prefix/);
});

test('a blob commits into a directory the store removed, or one removed behind its back', async () => {
  const root = join(tempDir(), 'blobs');
  const blobs = new LocalBlobStore(root);
  const put = async (name: string, text: string) => {
    const w = await blobs.create(name);
    await w.write(Buffer.from(text));
    return w.commit();
  };
  await put('job3/map/0-abc', 'one');
  await blobs.deletePrefix('job3/');
  assert.equal(await put('job3/map/1-abc', 'two'), 3, 'after deletePrefix');
  rmSync(join(root, 'jobs', 'job3'), { recursive: true });
  assert.equal(await put('job3/map/2-abc', 'three'), 5, 'after the directory vanished');
  rmSync(join(root, 'tmp'), { recursive: true });
  assert.equal(await put('job3/map/3-abc', 'four'), 4, 'after tmp vanished');
  assert.equal(blobs.readSync('job3/map/2-abc', 0, 5).toString(), 'three');
});

test('small reads in order are served from a window read ahead, exactly, up to the blob end', async () => {
  const blobs = new LocalBlobStore(join(tempDir(), 'blobs'));
  const bytes = Buffer.from(Array.from({ length: 700_000 }, (_, i) => 97 + ((i * 7) % 26)));
  const w = await blobs.create('job4/input/0');
  await w.write(bytes);
  await w.commit();
  // Splits of 1 to 60 KB read one after the other, as a job of small splits is dispatched.
  let at = 0;
  for (let i = 0; at < bytes.length; i++) {
    const end = Math.min(bytes.length, at + 1 + ((i * 7919) % 60_000));
    assert.ok(blobs.readSync('job4/input/0', at, end).equals(bytes.subarray(at, end)), `bytes ${at}-${end}`);
    at = end;
  }
  // Out of order, and a range past the end.
  assert.ok(blobs.readSync('job4/input/0', 10, 20).equals(bytes.subarray(10, 20)));
  assert.ok(blobs.readSync('job4/input/0', 20, 30).equals(bytes.subarray(20, 30)));
  assert.throws(() => blobs.readSync('job4/input/0', 699_990, 700_010), /shorter than 700010 bytes/);
});
