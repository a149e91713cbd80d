/**
 * A job's maps run while its upload is still arriving (server/scheduler/upload.ts), on a real master
 * and a real volunteer, with the upload held part way by the test: the first input's maps commit
 * before the rest arrives, the reduces wait for the upload's end, and the output is exact. An upload
 * that fails part way takes its job with it; a job that fails while its upload arrives stays failed
 * and the submit says why; a master killed mid-upload comes back with no job and no bytes of it.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import { join } from 'node:path';
import {
  adminCli,
  apiGet,
  cli,
  corpusFiles,
  dirBytes,
  EXAMPLES,
  removeTempDirs,
  startMaster,
  startVolunteer,
  tempDir,
  TEST_JOBS,
  until,
  type MasterProc,
} from './helpers/cluster.js';
import { multipartBody, type Part } from '../server/client/multipart.js';
import type { JobView, TaskView } from '../shared/api.js';

after(removeTempDirs);

const WORD_COUNT = join(EXAMPLES, 'word-count.js');
const [FIRST, SECOND] = corpusFiles() as [string, string];
const SPLIT = '65536';

/** A stream of `bytes` that sends its first half, then waits for `release()` before the rest. */
function heldStream(bytes: Buffer) {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const half = Math.floor(bytes.length / 2);
  async function* parts() {
    yield bytes.subarray(0, half);
    await gate;
    yield bytes.subarray(half);
  }
  return { stream: Readable.from(parts()), release };
}

/**
 * POSTs a job of `module` on the first corpus file and then `second` (held part way), as the CLI
 * sends it: fields, module, inputs. Resolves with the master's answer once the upload ends.
 */
function submitHeld(m: MasterProc, module: string, second: Buffer, fields: Record<string, string> = {}) {
  const held = heldStream(second);
  const parts: Part[] = [
    ...Object.entries({ reduces: '2', splitSize: SPLIT, verify: 'off', ...fields }).map(
      ([name, value]) => ({ kind: 'field', name, value }) as Part,
    ),
    { kind: 'file', name: 'module', filename: 'job.js', type: 'text/javascript', data: readFileSync(module, 'utf8') },
    { kind: 'file', name: 'input', filename: 'first.txt', type: 'text/plain', data: { path: FIRST } },
    { kind: 'file', name: 'input', filename: 'second.txt', type: 'text/plain', data: held.stream },
  ];
  const { body, contentType } = multipartBody(parts);
  const answer = fetch(`${m.url}/api/jobs`, {
    method: 'POST',
    headers: { authorization: `Bearer ${m.token}`, 'content-type': contentType },
    body,
    duplex: 'half',
  } as RequestInit).then(async (r) => ({
    status: r.status,
    body: (await r.json()) as { id?: string; error?: string },
  }));
  return { answer, release: held.release };
}

async function onlyJob(m: MasterProc): Promise<JobView | undefined> {
  return (await apiGet<JobView[]>(m, '/api/jobs'))[0];
}

test("a job's maps run while its upload arrives; its reduces wait for the upload's end; the output is exact", async () => {
  const m = await startMaster();
  const vol = startVolunteer(m.url, 1);
  try {
    const { answer, release } = submitHeld(m, WORD_COUNT, readFileSync(SECOND));
    let settled = false;
    void answer.then(() => (settled = true));
    const firstMaps = Math.ceil(readFileSync(FIRST).length / Number(SPLIT));
    const job = await until(
      "the first input's maps to commit while the upload waits",
      async () => {
        const j = await onlyJob(m);
        return j && j.maps.done >= firstMaps ? j : undefined;
      },
      60_000,
    );
    assert.equal(settled, false, 'the submit has not been answered: its upload is still arriving');
    assert.equal(job.state, 'mapping', 'the barrier waits for the upload');
    assert.equal(job.uploading, true);
    const status = await adminCli(m)(['status', job.id]);
    assert.match(status.stdout, /maps +\d+\/\d+ so far \(its input is still uploading/);
    assert.equal(job.reduces.done, 0);
    const tasks = await apiGet<TaskView[]>(m, `/api/jobs/${job.id}/tasks`);
    assert.equal(tasks.filter((t) => t.phase === 'reduce').length, 0, 'no reduce task before the upload ends');

    release();
    const r = await answer;
    assert.equal(r.status, 201, JSON.stringify(r.body));
    assert.equal(r.body.id, job.id);
    const w = await adminCli(m)(['wait', job.id], 120_000);
    assert.equal(w.code, 0, w.stderr);
    const done = (await onlyJob(m))!;
    assert.equal(done.uploading, false);
    assert.equal(done.maps.total, firstMaps + Math.ceil(readFileSync(SECOND).length / Number(SPLIT)));
    const out = await adminCli(m)(['result', job.id]);
    const local = await cli(['local', WORD_COUNT, FIRST, SECOND, '--split-size', SPLIT, '--reduces', '2']);
    assert.equal(local.code, 0, local.stderr);
    // Same keys (the inputs' base names differ: first.txt, second.txt), so compare the counts.
    assert.equal(out.stdout, local.stdout);
  } finally {
    await vol.kill();
    await m.stop();
  }
});

test('an upload that fails part way after its maps ran takes its job and its data with it', async () => {
  const data = tempDir();
  const m = await startMaster({ data });
  const vol = startVolunteer(m.url, 1);
  try {
    const bad = Buffer.concat([readFileSync(SECOND), Buffer.from([0xff, 0x0a])]);
    const { answer, release } = submitHeld(m, WORD_COUNT, bad);
    await until('a map of the uploading job to commit', async () => ((await onlyJob(m))?.maps.done ?? 0) > 0, 60_000);
    release();
    const r = await answer;
    assert.equal(r.status, 400, JSON.stringify(r.body));
    assert.match(r.body.error ?? '', /second\.txt/);
    assert.deepEqual(await apiGet<JobView[]>(m, '/api/jobs'), [], 'the job is gone');
    await until('its data to be deleted', () => dirBytes(join(data, 'blobs', 'jobs')) === 0, 10_000);
    // The volunteer is still there and takes the next job.
    const next = await adminCli(m)(['submit', WORD_COUNT, FIRST, '--wait', '--verify', 'off'], 120_000);
    assert.equal(next.code, 0, next.stderr);
  } finally {
    await vol.kill();
    await m.stop();
  }
});

test('a job that fails while its upload arrives stays failed, and the submit says why (409)', async () => {
  const m = await startMaster();
  const vol = startVolunteer(m.url, 1);
  try {
    const { answer, release } = submitHeld(m, join(TEST_JOBS, 'throws.js'), readFileSync(SECOND), {
      maxAttempts: '1',
    });
    const failed = await until('the job to fail', async () => {
      const j = await onlyJob(m);
      return j?.state === 'failed' ? j : undefined;
    });
    release();
    const r = await answer;
    assert.equal(r.status, 409, JSON.stringify(r.body));
    assert.equal(r.body.id, failed.id);
    assert.match(r.body.error ?? '', /failed while its input was uploading: .*cannot parse record/);
    assert.match(r.body.error ?? '', new RegExp(`tabreduce status ${failed.id}`));
    assert.equal((await onlyJob(m))?.state, 'failed', 'the failed job stays, with its reason');
  } finally {
    await vol.kill();
    await m.stop();
  }
});

test('a master killed while a job uploads and runs its maps comes back with no job and no bytes of it', async () => {
  const data = tempDir();
  let m = await startMaster({ data });
  const vol = startVolunteer(m.url, 1);
  const { answer } = submitHeld(m, WORD_COUNT, readFileSync(SECOND));
  // The master dies under the upload: the request fails.
  const failed = answer.then(
    () => false,
    () => true,
  );
  try {
    await until('a map of the uploading job to commit', async () => ((await onlyJob(m))?.maps.done ?? 0) > 0, 60_000);
    await m.kill();
    assert.equal(await failed, true, 'the interrupted submit fails');
    m = await startMaster({ data, port: m.port });
    assert.deepEqual(await apiGet<JobView[]>(m, '/api/jobs'), []);
    assert.equal(dirBytes(join(data, 'blobs')), 0, 'no bytes of the job are left');
    assert.match(m.output(), /removed job \w+: the master stopped while its input was uploading/);
  } finally {
    await vol.kill();
    await m.stop();
  }
});
