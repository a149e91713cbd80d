/**
 * Deleting what the master no longer keeps (deletion.ts, server/retention.ts): a finished job's rows
 * and blobs, refused for a running one; what a crash between the two leaves; `--retain` on the
 * scheduler's clock; and the rows of volunteers long gone.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { TaskAssign } from '../../shared/protocol.js';
import type { Scheduler, Volunteer } from '../../server/scheduler/index.js';
import { blobNames } from '../../server/blobs/blob-store.js';
import { sweepBlobs } from '../../server/blobs/sweep.js';
import { MapOutputCheck, ReduceOutputCheck } from '../../server/output-check.js';
import { applyRetention, retentionEveryMs, VOLUNTEER_ROWS_KEPT_MS } from '../../server/retention.js';
import { T, useScheduler, newScheduler, connect, complete, output, submit } from './harness.js';
import { dirBytes } from '../helpers/cluster.js';

useScheduler();

const DAY = 86_400_000;

const jobDir = (id: string) => join(T.blobs.root, 'jobs', id);

/** Rows of a job in every table that holds them. */
function rowsOf(id: string): Record<string, number> {
  const count = (table: string) =>
    (T.db.prepare(`SELECT count(*) AS n FROM ${table} WHERE job_id = ?`).get(id) as { n: number }).n;
  return {
    job: (T.db.prepare('SELECT count(*) AS n FROM job WHERE id = ?').get(id) as { n: number }).n,
    task: count('task'),
    attempt: count('attempt'),
    map_data: count('map_data'),
    output_data: count('output_data'),
  };
}

/** `v` uploads the right output for `task` to the blob store, as `PUT /data/LEASE/output` does, then reports it. */
async function completeByUpload(s: Scheduler, v: Volunteer, task: TaskAssign): Promise<void> {
  const bytes = Buffer.from(await output(task));
  const name =
    task.phase === 'map'
      ? blobNames.mapOutput(task.jobId, task.index, task.lease)
      : blobNames.output(task.jobId, task.index, task.lease);
  const writer = await T.blobs.create(name);
  await writer.write(bytes);
  await writer.commit();
  const check = task.phase === 'map' ? new MapOutputCheck(task.nReduce) : new ReduceOutputCheck();
  check.push(bytes);
  const sum = check.end();
  const offsets = 'offsets' in sum ? (sum.offsets as number[]) : null;
  assert.ok(s.uploaded(task.lease, { blob: name, bytes: sum.bytes, records: sum.records, offsets, hash: sum.hash }));
  s.handle(v, {
    type: 'task.result',
    lease: task.lease,
    uploaded: true,
    stats: { ms: 1, recordsIn: 1, recordsOut: 1 },
  });
}

/** Blobs a commit let go of are deleted once it is durable, by unlinks of their own: waits for them. */
async function blobsSettled(id: string, kinds: string[]): Promise<void> {
  for (let i = 0; i < 200 && kinds.some((k) => existsSync(join(jobDir(id), k))); i++) {
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** The one volunteer of each scheduler that runs the jobs of `succeededJob`, one task at a time. */
const runners = new WeakMap<Scheduler, ReturnType<typeof connect>>();

/** A word count whose map and reduce outputs all went through the blob store, run to success. */
async function succeededJob(s: Scheduler): Promise<string> {
  let runner = runners.get(s);
  if (!runner) runners.set(s, (runner = connect(s, 1)));
  const id = await submit({ a: 'x y x\n', b: 'y z\n' }, { reduces: 1 });
  s.jobAdded(id);
  for (let i = 0; i < 3; i++) await completeByUpload(s, runner.v, runner.conn.assigns().at(-1)!);
  assert.equal(T.stores.jobs.get(id)!.state, 'succeeded');
  await blobsSettled(id, ['input', 'map']);
  return id;
}

test('deleting a finished job removes its rows in one transaction, then its blobs; it frees what it stored', async () => {
  const s = newScheduler();
  const id = await succeededJob(s);
  const stored = T.stores.jobs.get(id)!.stored_bytes;
  // Inputs went at the barrier and map outputs at the end: what is left is the output, on disk.
  assert.deepEqual(readdirSync(jobDir(id), { recursive: true }).map(String).sort(), [
    'out',
    `out/${readdirSync(join(jobDir(id), 'out'))[0]}`,
  ]);
  assert.equal(stored, Buffer.byteLength('x\t2\ny\t2\nz\t1\n'));
  assert.equal(dirBytes(jobDir(id)), stored);
  assert.deepEqual(rowsOf(id), { job: 1, task: 3, attempt: 3, map_data: 0, output_data: 1 });

  const r = await s.deleteJob(id, 'by a test');
  assert.deepEqual(r, { kind: 'deleted', name: 'words', freedBytes: stored });
  assert.deepEqual(rowsOf(id), { job: 0, task: 0, attempt: 0, map_data: 0, output_data: 0 });
  assert.equal(existsSync(jobDir(id)), false, 'the job has no blobs left');
  assert.deepEqual(await s.deleteJob(id, 'by a test'), { kind: 'missing' });
});

test('a queued or running job is not deleted: it must be cancelled first; then it can be', async () => {
  const s = newScheduler();
  const id = await submit({ a: 'a b\n' }, { reduces: 1 });
  s.jobAdded(id);
  const inputs = dirBytes(jobDir(id));
  assert.ok(inputs > 0);
  assert.deepEqual(await s.deleteJob(id, 'by a test'), { kind: 'unfinished', state: 'queued' });
  connect(s, 1);
  assert.deepEqual(await s.deleteJob(id, 'by a test'), { kind: 'unfinished', state: 'mapping' });
  assert.equal(rowsOf(id).job, 1);
  assert.equal(dirBytes(jobDir(id)), inputs, 'nothing of it was deleted');
  assert.equal(T.stores.jobs.get(id)!.stored_bytes, inputs);

  assert.ok(s.cancel(id));
  await blobsSettled(id, ['input']);
  assert.equal(T.stores.jobs.get(id)!.stored_bytes, 0, 'a cancelled job keeps no inputs');
  assert.equal(dirBytes(jobDir(id)), 0);
  assert.deepEqual(await s.deleteJob(id, 'by a test'), { kind: 'deleted', name: 'words', freedBytes: 0 });
  assert.equal(existsSync(jobDir(id)), false);
  assert.deepEqual(await s.deleteJob('nosuchjob', 'by a test'), { kind: 'missing' });
});

test('a stop between the rows and the blobs leaves blobs of no job, which the next start removes', async () => {
  const s = newScheduler();
  const gone = await succeededJob(s);
  const kept = await succeededJob(s);
  // The row deletion became durable; the master died before it deleted the blobs.
  T.stores.transaction(() => T.stores.jobs.remove(gone));
  assert.ok(dirBytes(jobDir(gone)) > 0);
  const lines: string[] = [];
  const swept = await sweepBlobs(T.stores, T.blobs, (l) => lines.push(l));
  assert.equal(existsSync(jobDir(gone)), false);
  assert.ok(swept.deleted >= 1);
  assert.match(lines.join('\n'), /removed \d+ blobs that no job needs/);
  assert.equal(dirBytes(jobDir(kept)), T.stores.jobs.get(kept)!.stored_bytes, "the other job's output stays");
});

test('--retain deletes finished jobs once they are older than the retention, on the scheduler clock', async () => {
  const s = newScheduler();
  const log: string[] = [];
  const opts = { retainMs: 7 * DAY, log: (l: string) => log.push(l) };
  const old = await succeededJob(s);
  T.now += 2 * DAY;
  const newer = await succeededJob(s);
  const running = await submit({ a: 'a\n' });
  s.jobAdded(running);
  T.now += 6 * DAY; // old finished 8 days ago, newer 6
  assert.equal(await applyRetention(s, T.stores.jobs, { ...opts, retainMs: null }), 0, 'without --retain, kept');
  assert.equal(await applyRetention(s, T.stores.jobs, opts), 1);
  assert.equal(T.stores.jobs.get(old), undefined);
  assert.equal(existsSync(jobDir(old)), false);
  assert.ok(T.stores.jobs.get(newer));
  T.now += 30 * DAY;
  assert.equal(await applyRetention(s, T.stores.jobs, opts), 1);
  assert.equal(T.stores.jobs.get(newer), undefined);
  assert.equal(T.stores.jobs.get(running)!.state, 'mapping', 'an unfinished job is never due, however old');
  assert.equal(await applyRetention(s, T.stores.jobs, opts), 0);
});

test('the retention runs every tenth of it, between a second and a minute', () => {
  assert.equal(retentionEveryMs(null), 60_000);
  assert.equal(retentionEveryMs(7 * DAY), 60_000);
  assert.equal(retentionEveryMs(2_000), 1_000);
  assert.equal(retentionEveryMs(30_000), 3_000);
});

test('volunteer rows that hold nothing go after 30 days unseen; attempts keep their volunteer ids', async () => {
  const s = newScheduler();
  const id = await succeededJob(s);
  const worker = T.stores.attempts.forJob(id)[0]!.volunteer_id;
  // A restart: the volunteer is no longer in memory, only its row is.
  const s2 = newScheduler();
  const idle = T.stores.volunteers.get(worker)!;
  const log: string[] = [];
  T.now = idle.last_seen_at + VOLUNTEER_ROWS_KEPT_MS - 1;
  await applyRetention(s2, T.stores.jobs, { retainMs: null, log: (l) => log.push(l) });
  assert.ok(T.stores.volunteers.get(worker), 'kept until 30 days have passed');

  // One that is connected now is kept whatever its row says; so is one that holds a running attempt.
  const live = connect(s2, 1);
  const busy = await submit({ a: 'a\n' }, { reduces: 1 });
  s2.jobAdded(busy);
  assert.equal(live.conn.assigns().length, 1);
  T.db.prepare('UPDATE volunteer SET last_seen_at = 0').run();
  T.now += 2;
  await applyRetention(s2, T.stores.jobs, { retainMs: null, log: (l) => log.push(l) });
  assert.equal(T.stores.volunteers.get(worker), undefined, 'the idle one is forgotten');
  assert.ok(T.stores.volunteers.get(live.v.id), 'the connected one stays');
  assert.match(log.join('\n'), /forgot 1 volunteer unseen for 30d00h that held no task/);
  assert.deepEqual(T.stores.volunteers.idleSince(T.now), [], 'a running attempt keeps its volunteer, even unseen');
  // The job's history still names it.
  assert.equal(T.stores.attempts.forJob(id)[0]!.volunteer_id, worker);
  await complete(s2, live.v, live.conn.assigns()[0]!);
});
