/**
 * Reduce inputs read back from where map outputs live: small and large outputs kept in rows and
 * outputs in the blob store, over more than one page of map outputs, as a stream and at once; and a
 * stream of many tiny pieces gives the event loop turns while it reads them.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { openDatabase } from '../server/db.js';
import { createOutputStore } from '../server/sql/output-store.js';
import { LocalBlobStore } from '../server/blobs/local-blob-store.js';
import { blobNames } from '../server/blobs/blob-store.js';
import { reduceInputStream, reduceInputSync } from '../server/blobs/job-data.js';
import { packOffsets } from '../server/output-check.js';
import { tempDir, removeTempDirs } from './helpers/cluster.js';

after(removeTempDirs);

const N_REDUCE = 3;

type Where = 'row' | 'big-row' | 'blob' | 'huge-blob';
const SIZE: Record<Where, number> = { row: 0, 'big-row': 5_000, blob: 5_000, 'huge-blob': 70_000 };

/** Map task `idx`'s share of partition `p`: empty for some, one line for most, 5 KB or 70 KB for some. */
function piece(idx: number, p: number, where: Where): string {
  if ((idx + p) % 4 === 0) return '';
  const line = `m${idx}\tp${p}\n`;
  return line.repeat(Math.max(1, Math.ceil(SIZE[where] / line.length)));
}

function setUp() {
  const dir = tempDir();
  const db = openDatabase(join(dir, 'db.sqlite'));
  db.pragma('foreign_keys = OFF'); // map rows without the jobs they belong to
  return { db, outputs: createOutputStore(db), blobs: new LocalBlobStore(join(dir, 'blobs')) };
}

/** Stores `maps` map outputs of job `jobId`; `where(idx)` says where each one lives. */
async function storeMaps(
  s: ReturnType<typeof setUp>,
  jobId: string,
  maps: number,
  where: (idx: number) => Where,
): Promise<string[]> {
  const expected = new Array<string>(N_REDUCE).fill('');
  for (let idx = 0; idx < maps; idx++) {
    const kind = where(idx);
    const parts = Array.from({ length: N_REDUCE }, (_, p) => piece(idx, p, kind));
    parts.forEach((text, p) => (expected[p] += text));
    const data = Buffer.from(parts.join(''));
    const offsets = [0];
    for (const text of parts) offsets.push(offsets.at(-1)! + Buffer.byteLength(text));
    let blob: string | null = null;
    if (kind === 'blob' || kind === 'huge-blob') {
      blob = blobNames.mapOutput(jobId, idx, 'a'.repeat(32));
      const w = await s.blobs.create(blob);
      await w.write(data);
      await w.commit();
    }
    s.outputs.putMap({
      job_id: jobId,
      map_idx: idx,
      blob,
      data: blob === null ? data : null,
      bytes: data.length,
      offsets: packOffsets(offsets),
    });
  }
  return expected;
}

async function readStream(s: ReturnType<typeof setUp>, jobId: string, part: number): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of reduceInputStream(s.outputs, s.blobs, jobId, part)) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
}

test('a reduce input joins its partition of small rows, large rows and blobs in map-task order, across pages', async () => {
  const s = setUp();
  // Blob spans up to 64 KiB are read at once, larger ones streamed.
  const expected = await storeMaps(s, 'mixed', 2_500, (idx) =>
    idx % 50 === 7 ? 'blob' : idx % 50 === 13 ? 'big-row' : idx % 500 === 21 ? 'huge-blob' : 'row',
  );
  for (let p = 0; p < N_REDUCE; p++) {
    assert.equal(await readStream(s, 'mixed', p), expected[p], `partition ${p} as a stream`);
    assert.equal(reduceInputSync(s.outputs, s.blobs, 'mixed', p).toString('utf8'), expected[p], `partition ${p}`);
  }
  s.db.close();
});

test('a stream of 5,000 tiny pieces kept in rows lets the event loop turn while it reads them', async () => {
  const s = setUp();
  const expected = await storeMaps(s, 'tiny', 5_000, () => 'row');
  let turns = 0;
  let reading = true;
  const tick = () => {
    turns++;
    if (reading) setImmediate(tick);
  };
  setImmediate(tick);
  const text = await readStream(s, 'tiny', 1);
  reading = false;
  assert.equal(text, expected[1]);
  // One turn at least per page of 1,000 map outputs; read in one go, it was none.
  assert.ok(turns >= 4, `the event loop turned ${turns} times while 5,000 map outputs were read`);
  s.db.close();
});
