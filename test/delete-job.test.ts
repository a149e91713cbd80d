/**
 * Deleting jobs as an admin and an operator meet it (real master, CLI and Node volunteer): `tabreduce
 * delete` and `DELETE /api/jobs/:id` free the job's blobs on disk, measured by walking
 * `DATA/blobs/`; a queued or running job is refused with the advice to cancel it; `serve --retain`
 * deletes finished jobs by age, at start and while it runs; what a job stores is shown by
 * `status`, the status page, the API and `/metrics`. Screenshots:
 * SCREENSHOT_DIR/status-{list,job}-stored.png.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import {
  EXAMPLES,
  adminCli,
  apiGet,
  corpusFiles,
  dirBytes,
  removeTempDirs,
  startMaster,
  startVolunteer,
  until,
  type CliResult,
  type MasterProc,
} from './helpers/cluster.js';
import { launchBrowser, screenshotPath } from './helpers/browser.js';
import type { DeletedJob, JobView } from '../shared/api.js';
import { formatBytes } from '../shared/units.js';

const WORD_COUNT = join(EXAMPLES, 'word-count.js');

let master: MasterProc;
let run: (args: string[], timeoutMs?: number) => Promise<CliResult>;

before(async () => {
  master = await startMaster();
  run = adminCli(master);
});

after(async () => {
  await master?.stop();
  removeTempDirs();
});

const blobsOf = (m: MasterProc, id?: string) => join(m.data, 'blobs', 'jobs', ...(id ? [id] : []));

function assertCleanError(r: CliResult, code: number, pattern: RegExp): void {
  assert.equal(r.code, code, `exit code; stderr: ${r.stderr}`);
  assert.match(r.stderr, pattern);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
}

async function submit(m: MasterProc, inputs: string[], extra: string[] = []): Promise<string> {
  const r = await adminCli(m)(['submit', WORD_COUNT, ...inputs, ...extra]);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.trim();
}

function httpDelete(m: MasterProc, id: string): Promise<Response> {
  return fetch(`${m.url}/api/jobs/${id}`, { method: 'DELETE', headers: { authorization: `Bearer ${m.token}` } });
}

test('a queued job is refused (409, exit 2, "cancel it first"); once cancelled it is deleted with its blobs', async (t) => {
  const inputs = corpusFiles();
  const inputBytes = inputs.reduce((n, f) => n + statSync(f).size, 0);
  const id = await submit(master, inputs);
  // No volunteer: the job stays queued, its inputs on disk.
  const job = await apiGet<JobView>(master, `/api/jobs/${id}`);
  assert.equal(job.state, 'queued');
  assert.equal(job.storedBytes, inputBytes);
  assert.equal(dirBytes(blobsOf(master, id)), inputBytes);

  const refused = await run(['delete', id]);
  assertCleanError(
    refused,
    2,
    new RegExp(`^tabreduce: job ${id} is queued; cancel it first \\(tabreduce cancel ${id}\\)\\n$`),
  );
  const res = await httpDelete(master, id);
  assert.equal(res.status, 409);
  assert.deepEqual(await res.json(), { error: `job ${id} is queued; cancel it first (tabreduce cancel ${id})` });
  assert.equal(dirBytes(blobsOf(master, id)), inputBytes, 'nothing was deleted');

  assert.equal((await run(['cancel', id])).code, 0);
  // A cancelled job keeps no inputs: they go once the cancel is durable.
  await until('the inputs to go', () => dirBytes(blobsOf(master, id)) === 0, 10_000);
  const afterCancel = existsSync(blobsOf(master, id));
  const del = await run(['delete', id]);
  assert.equal(del.code, 0, del.stderr);
  assert.equal(del.stderr, `deleted job ${id} (freed 0 B)\n`);
  assert.equal(existsSync(blobsOf(master, id)), false, 'the job has no directory left');
  assert.equal((await httpDelete(master, id)).status, 404);
  assertCleanError(await run(['delete', id]), 2, /no job "\w+" on http.*`tabreduce status` lists its jobs/);
  assertCleanError(await run(['status', id]), 2, /no job/);
  assert.match(master.output(), new RegExp(`deleted job ${id} \\(word-count\\) by an admin; freed 0 B`));
  t.diagnostic(
    `queued job ${id}: blobs ${inputBytes} B; after cancel ${dirBytes(blobsOf(master, id))} B (dir kept: ${afterCancel}); after delete: none`,
  );
});

test('usage: delete needs a job id', async () => {
  assertCleanError(await run(['delete']), 2, /usage: tabreduce delete JOB/);
});

test('a succeeded job: status, the API and /metrics show what it stores; delete frees its output on disk', async (t) => {
  const volunteer = startVolunteer(master.url, 2);
  try {
    const inputs = corpusFiles();
    // One partition: the whole word count's output in one blob, larger than what travels inline.
    const id = await submit(master, inputs, ['--reduces', '1', '--wait']);
    const result = await run(['result', id]);
    assert.equal(result.code, 0, result.stderr);
    const outputBytes = Buffer.byteLength(result.stdout);
    // Inputs and map outputs go once the job has succeeded; the output stays.
    await until('the inputs and map outputs to go', () =>
      ['input', 'map'].every((k) => !existsSync(join(blobsOf(master, id), k))),
    );
    const job = await apiGet<JobView>(master, `/api/jobs/${id}`);
    assert.equal(job.state, 'succeeded');
    assert.equal(job.storedBytes, outputBytes);
    const onDisk = dirBytes(blobsOf(master, id));
    assert.equal(onDisk, outputBytes, 'the output partition is one blob of the output');
    const status = await run(['status', id]);
    assert.match(
      status.stdout,
      new RegExp(`\\nstored +\\d+(\\.\\d)? KiB \\(output; \`tabreduce delete ${id}\` frees it\\)\\n`),
    );
    const metrics = await (await fetch(`${master.url}/metrics`)).text();
    assert.match(metrics, /^# TYPE tabreduce_stored_bytes gauge$/m);
    assert.equal(Number(/^tabreduce_stored_bytes (\d+)$/m.exec(metrics)![1]), outputBytes, 'the only job kept');

    const del = await run(['delete', id, '--json']);
    assert.equal(del.code, 0, del.stderr);
    assert.deepEqual(JSON.parse(del.stdout) as DeletedJob, { id, freedBytes: outputBytes });
    assert.equal(existsSync(blobsOf(master, id)), false);
    assert.equal(dirBytes(blobsOf(master)), 0, 'no job has blobs left');
    assertCleanError(await run(['result', id]), 2, /no job/);
    const after = await (await fetch(`${master.url}/metrics`)).text();
    assert.match(after, /^tabreduce_stored_bytes 0$/m);
    t.diagnostic(`succeeded job ${id}: output ${outputBytes} B, blobs on disk ${onDisk} B before delete, 0 after`);
  } finally {
    await volunteer.kill();
  }
});

test('serve --retain deletes finished jobs by age, at start and while it runs; unfinished ones stay', async (t) => {
  // Without --retain, a finished job stays however old.
  const first = await startMaster();
  const old = await submit(first, [corpusFiles()[0]!]);
  assert.equal((await adminCli(first)(['cancel', old])).code, 0);
  const running = await submit(first, [corpusFiles()[1]!]);
  await new Promise((r) => setTimeout(r, 1_500));
  assert.equal((await apiGet<JobView>(first, `/api/jobs/${old}`)).state, 'cancelled');
  assert.match(first.output(), /finished jobs: kept until `tabreduce delete JOB`/);
  await first.stop();

  // A restart with --retain 1s: the job that finished more than a second ago goes at start.
  const m = await startMaster({ data: first.data, args: ['--retain', '1s'] });
  try {
    assert.match(m.output(), /finished jobs: deleted 1\.0s after they finish \(--retain\)/);
    await until('the old job to go at start', async () => !(await exists(m, old)), 5_000);
    // The log line follows the blobs, a moment after the rows.
    const line = new RegExp(`deleted job ${old} \\(word-count\\) by --retain 1\\.0s; freed 0 B`);
    await until('the log line', () => line.test(m.output()), 5_000);
    assert.equal(existsSync(blobsOf(m, old)), false);
    // While it runs: a job cancelled now goes about a second later, checked every second.
    const fresh = await submit(m, [corpusFiles()[2]!]);
    const cancel = await fetch(`${m.url}/api/jobs/${fresh}/cancel`, {
      method: 'POST',
      headers: { authorization: `Bearer ${m.token}` },
    });
    // The master and this test read the same system clock.
    const { finishedAt } = (await cancel.json()) as JobView;
    await until('the cancelled job to go', async () => !(await exists(m, fresh)), 10_000);
    const took = Date.now() - finishedAt!;
    assert.ok(took >= 1_000, `deleted ${took}ms after it finished, not before the retention`);
    assert.ok(took < 4_000, `deleted ${took}ms after it finished: the retention runs every second here`);
    assert.equal((await apiGet<JobView>(m, `/api/jobs/${running}`)).state, 'queued', 'a queued job is never due');
    assert.ok(dirBytes(blobsOf(m, running)) > 0, 'and keeps its inputs');
    t.diagnostic(`--retain 1s: a cancelled job was gone ${took} ms after it finished`);
  } finally {
    await m.stop();
  }
});

test('the status page shows what a job stores, and drops a deleted job from its list as it happens', async () => {
  const browser = await launchBrowser();
  try {
    const inputs = corpusFiles().slice(0, 2);
    const inputBytes = inputs.reduce((n, f) => n + statSync(f).size, 0);
    const id = await submit(master, inputs);
    const context = await browser.newContext();
    await context.addInitScript((token) => localStorage.setItem('tabreduce.adminToken', token), master.token);
    const page = await context.newPage();
    await page.goto(`${master.url}/status`);
    await page.locator('.conn.live').waitFor({ timeout: 10_000 });
    const row = page.locator(`tr.job[data-job="${id}"]`);
    await row.waitFor();
    const shown = formatBytes(inputBytes);
    assert.ok((await row.innerText()).includes(shown), `the list shows ${shown} stored`);
    await page.screenshot({ path: screenshotPath('status-list-stored.png') });
    const detail = await context.newPage();
    await detail.goto(`${master.url}/status#/jobs/${id}`);
    await detail.locator(`section.summary[data-job="${id}"]`).waitFor({ timeout: 10_000 });
    const summary = await detail.locator('section.summary dl').innerText();
    assert.ok(summary.includes(`Stored\n${shown} inputs and map outputs`), summary);
    await detail.screenshot({ path: screenshotPath('status-job-stored.png') });

    assert.equal((await run(['cancel', id])).code, 0);
    assert.equal((await run(['delete', id])).code, 0);
    // The event stream says so; no reload.
    await row.waitFor({ state: 'detached', timeout: 5_000 });
    await detail.getByText(`no job "${id}"`).waitFor({ timeout: 5_000 });
    await context.close();
  } finally {
    await browser.close();
  }
});

async function exists(m: MasterProc, id: string): Promise<boolean> {
  const res = await fetch(`${m.url}/api/jobs/${id}`, { headers: { authorization: `Bearer ${m.token}` } });
  if (res.status !== 200 && res.status !== 404) throw new Error(`GET /api/jobs/${id}: ${res.status}`);
  return res.status === 200;
}
