/**
 * A bundled TypeScript job (test/fixtures/ts-job: a relative import and an npm package) in a real
 * Chromium tab: its output equals `tabreduce local`'s, and a failure's stack, which Chromium reports
 * in lines of the bundle, reaches the API in the author's `.ts` files and lines. A `records = 'lines'`
 * job gets one map call per line there too.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, adminCli, corpusFiles, localOutput, tempDir } from './helpers/cluster.js';
import { apiText, browserSuite, openTabs, submitJob, tasksOf, waitJob } from './helpers/browser.js';

const { newContext, master } = browserSuite();
const JOB = join(ROOT, 'test/fixtures/ts-job/job.ts');

describe('a bundled TypeScript job in a browser tab', () => {
  it('runs exactly as in local, and its failures name the .ts lines', async () => {
    const m = await master();
    const context = await newContext();
    const [tab] = await openTabs(context, m, 1);
    const inputs = corpusFiles().slice(0, 3);
    const args = ['--split-size', '256KiB', '--reduces', '2'];
    const r = await adminCli(m)(['submit', JOB, ...inputs, ...args, '--wait']);
    assert.equal(r.code, 0, r.stderr);
    const id = r.stdout.split('\n')[0]!;
    assert.equal(await apiText(m, `/api/jobs/${id}/output`), await localOutput(JOB, inputs, args));
    const workers = new Set((await tasksOf(m, id)).flatMap((t) => t.attempts.map((a) => a.worker)));
    assert.deepEqual(workers, new Set([tab!.id]), 'the tab ran every task');

    const poison = join(tempDir(), 'poison.txt');
    writeFileSync(poison, 'one tabreducepoison word\n');
    const failing = await submitJob(m, [JOB, poison, '--max-attempts', '1']);
    const job = await waitJob(m, failing);
    assert.equal(job.state, 'failed');
    const attempt = (await tasksOf(m, failing)).flatMap((t) => t.attempts).find((a) => a.outcome === 'failed');
    const stack = attempt?.error?.stack ?? '';
    assert.match(stack, /at checkWord \(stem\.ts:14:\d+\)/, stack);
    assert.match(stack, /\(job\.ts:12:\d+\)/, stack);
    assert.doesNotMatch(stack, /module\.js[?:]/, 'no frame left in the bundle');
    assert.match(job.error ?? '', /stem\.ts:14:/);
    await context.close();
  });

  it("runs a records = 'lines' job as local does", async () => {
    const m = await master();
    const context = await newContext();
    await openTabs(context, m, 1);
    const lines = join(ROOT, 'test/fixtures/ts-job/first-words.ts');
    const crlf = join(tempDir(), 'crlf.txt');
    writeFileSync(crlf, 'alpha one\r\nbeta\r\n\r\nalpha two');
    const inputs = [crlf, corpusFiles()[0]!];
    const args = ['--split-size', '64KiB', '--reduces', '2'];
    const r = await adminCli(m)(['submit', lines, ...inputs, ...args, '--wait']);
    assert.equal(r.code, 0, r.stderr);
    const out = await apiText(m, `/api/jobs/${r.stdout.split('\n')[0]!}/output`);
    assert.equal(out, await localOutput(lines, inputs, args));
    assert.match(out, /^alpha\t2$/m);
    await context.close();
  });
});
