/** Maps that run while their job's upload arrives (upload.ts): the barrier waits for the upload's end. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { T, useScheduler, newScheduler, connect, complete, outputTexts, resultOf, failNextCommit } from './harness.js';
import { stageInputs } from '../../server/receive-job.js';
import { newJobId, type JobSpec, type StagedInput } from '../../server/submit-job.js';

useScheduler();

const WORDS = `
export function map(key, value, emit) { for (const w of value.split(/\\s+/)) if (w) emit(w, '1'); }
export function reduce(key, values) { return String(values.length); }
`;

/** A word-count job with no inputs yet, and its inputs `a` and `b`, stored. */
async function uploadingJob(): Promise<{ spec: JobSpec; a: StagedInput; b: StagedInput }> {
  const id = newJobId();
  const [a, b] = (await stageInputs(
    T.blobs,
    id,
    [
      { name: 'a', bytes: Buffer.from('x y x\n') },
      { name: 'b', bytes: Buffer.from('y z\n') },
    ],
    1024,
  )) as [StagedInput, StagedInput];
  const spec: JobSpec = {
    id,
    moduleName: 'words.js',
    module: WORDS,
    inputs: [],
    reduces: 2,
    splitSize: 1024,
    taskTimeoutMs: 10_000,
    maxAttempts: 4,
    verify: 'off',
  };
  return { spec, a, b };
}

test("an uploading job's maps run as its inputs arrive, and its barrier waits for the upload's end", async () => {
  const s = newScheduler();
  const { conn, v } = connect(s, 1, 5);
  const { spec, a, b } = await uploadingJob();
  s.beginUpload(spec);
  assert.equal(T.stores.jobs.get(spec.id)!.uploading, 1, 'shown, and marked as uploading');
  assert.equal(conn.assigns().length, 0, 'no task before an input is stored');

  spec.inputs.push(a);
  assert.equal(await s.addUploadedInputs(spec, [a], 0), true);
  assert.deepEqual(
    conn.assigns().map((t) => [t.phase, t.index]),
    [['map', 0]],
  );
  await complete(s, v, conn.assigns()[0]!);
  let job = T.stores.jobs.get(spec.id)!;
  assert.equal(job.maps_done, job.maps_total, 'every map so far is done');
  assert.equal(job.state, 'mapping', 'but the barrier waits: more inputs may come');
  assert.equal(conn.assigns().length, 1, 'no reduce');

  spec.inputs.push(b);
  assert.equal(await s.addUploadedInputs(spec, [b], 1), true);
  await complete(s, v, conn.assigns()[1]!);
  assert.equal(T.stores.jobs.get(spec.id)!.state, 'mapping');

  // Every map done when the upload ends: the barrier happens at its end.
  assert.equal(s.endUpload(spec), true);
  job = T.stores.jobs.get(spec.id)!;
  assert.equal(job.state, 'reducing');
  assert.equal(job.uploading, 0);
  assert.equal(job.maps_total, 2);
  const reduces = conn.assigns().slice(2);
  assert.deepEqual(
    reduces.map((t) => t.phase),
    ['reduce', 'reduce'],
  );
  for (const t of reduces) await complete(s, v, t);
  assert.equal(T.stores.jobs.get(spec.id)!.state, 'succeeded');
  assert.equal(outputTexts(spec.id).join('').split('\n').filter(Boolean).sort().join(','), 'x\t2,y\t2,z\t1');
});

test('an uploading job that is cancelled takes no more inputs, and its upload cannot end it', async () => {
  const s = newScheduler();
  connect(s, 1, 5);
  const { spec, a, b } = await uploadingJob();
  s.beginUpload(spec);
  spec.inputs.push(a);
  await s.addUploadedInputs(spec, [a], 0);
  s.cancel(spec.id);
  spec.inputs.push(b);
  assert.equal(await s.addUploadedInputs(spec, [b], 1), false);
  assert.equal(s.endUpload(spec), false);
  assert.equal(T.stores.jobs.get(spec.id)!.maps_total, 1, "the second input's map never went in");
  assert.equal(T.db.prepare('SELECT count(*) FROM task WHERE job_id = ?').pluck().get(spec.id), 1);
  assert.match(
    s.endedDuringUpload(spec.id) ?? '',
    /was cancelled while its input was uploading: cancelled by an admin/,
  );
});

test('a master that stops while a job uploads removes the job at its next start', async () => {
  const s = newScheduler();
  const { spec, a } = await uploadingJob();
  s.beginUpload(spec);
  spec.inputs.push(a);
  await s.addUploadedInputs(spec, [a], 0);
  s.flush();
  newScheduler();
  assert.equal(T.stores.jobs.get(spec.id), undefined);
  assert.deepEqual(T.stores.jobs.ids(), []);
});

test('a failed commit while a job uploads reloads the state and keeps the job, whose upload goes on', async () => {
  const s = newScheduler();
  const { conn, v } = connect(s, 1, 5);
  const { spec, a, b } = await uploadingJob();
  s.beginUpload(spec);
  spec.inputs.push(a);
  await s.addUploadedInputs(spec, [a], 0);
  const t = conn.assigns()[0]!;
  const failed = failNextCommit();
  const r = await resultOf(t);
  s.batched(() => s.handle(v, { type: 'task.result', lease: t.lease, ...r }));
  assert.throws(() => s.flush(), /disk is full/);
  assert.equal(failed(), true, 'a commit failed and the state was reloaded');
  assert.equal(T.stores.jobs.get(spec.id)?.uploading, 1, 'the uploading job is still there');
  spec.inputs.push(b);
  assert.equal(await s.addUploadedInputs(spec, [b], 1), true, 'and takes its next input');
  assert.equal(s.endUpload(spec), true);
});
