/**
 * The classic MapReduce lab's fault scenarios, with browser tabs as the workers: slow workers do not
 * cause duplicate work, `submit --wait` returns only when the output is final, workers that crash or
 * stall (and tabs that close) do not change the output, and a closed tab's task goes to another tab
 * once its volunteer has been gone for `--reassign-after` (10 s by default; the masters of the last two
 * tests set it shorter, so the suite waits less).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import {
  EXAMPLES,
  TEST_JOBS,
  adminCli,
  apiGet,
  corpusFiles,
  independentWordCount,
  localOutput,
  parseOutput,
  sleep,
  until,
} from './helpers/cluster.js';
import { apiText, browserSuite, openTab, openTabs, submitJob, tasksOf, waitJob, type Tab } from './helpers/browser.js';

const { newContext, master } = browserSuite();

function assertWordCount(out: string, files: string[]): void {
  const counts = parseOutput(out);
  const expected = independentWordCount(files);
  assert.equal(counts.size, expected.size, 'number of distinct words');
  for (const [w, n] of expected) assert.equal(counts.get(w), String(n), `count of ${w}`);
}

describe('browser tabs under faults', () => {
  it('with 4 tabs and maps that take 2-5 s, no map runs twice and the output is exact', async () => {
    const m = await master();
    const context = await newContext();
    await openTabs(context, m, 4);
    const files = corpusFiles();
    const id = await submitJob(m, [
      join(TEST_JOBS, 'slow-map.js'),
      ...files,
      '--split-size',
      '512KiB',
      '--reduces',
      '3',
      // It counts one attempt per task.
      '--verify',
      'off',
    ]);
    assert.equal((await waitJob(m, id)).state, 'succeeded');
    assertWordCount(await apiText(m, `/api/jobs/${id}/output`), files);
    const tasks = await tasksOf(m, id);
    assert.ok(tasks.filter((t) => t.phase === 'map').length >= 8, 'enough maps for 4 tabs');
    for (const t of tasks) {
      assert.equal(t.attempts.length, 1, `${t.phase} ${t.index} ran ${t.attempts.length} times`);
      assert.equal(t.attempts[0]!.outcome, 'succeeded');
    }
    assert.equal(new Set(tasks.map((t) => t.attempts[0]!.worker)).size, 4, 'all four tabs took part');
    await context.close();
  });

  it('submit --wait returns only when all output is committed, and the output never changes afterwards', async () => {
    const m = await master();
    const context = await newContext();
    await openTabs(context, m, 3);
    const job = join(TEST_JOBS, 'straggler.js');
    const files = corpusFiles();
    const args = ['--split-size', '512KiB', '--reduces', '3'];
    // The reference, computed while the tabs work.
    const reference = localOutput(job, files, args);
    // Stragglers sleep 4 s; a 2 s task timeout gives each a backup attempt that usually wins.
    // One winner per task: one succeeded attempt each, as before verification.
    const r = await adminCli(m)([
      'submit',
      job,
      ...files,
      ...args,
      '--task-timeout',
      '2s',
      '--verify',
      'off',
      '--wait',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const id = r.stdout.split('\n')[0]!;
    // Read at once: everything must already be there.
    const [jobNow, outNow] = await Promise.all([
      apiGet<{ state: string; maps: { total: number; done: number }; reduces: { total: number; done: number } }>(
        m,
        `/api/jobs/${id}`,
      ),
      apiText(m, `/api/jobs/${id}/output`),
    ]);
    assert.equal(jobNow.state, 'succeeded');
    assert.equal(jobNow.maps.done, jobNow.maps.total);
    assert.equal(jobNow.reduces.done, jobNow.reduces.total);
    const expected = await reference;
    assert.equal(outNow, expected, 'output when --wait returned');

    // Losing attempts still running in tabs end (they are told to stop, or finish late and are
    // refused); none of that may change the committed output.
    await until(
      'no attempt to be running',
      async () => (await tasksOf(m, id)).every((t) => t.attempts.every((a) => a.outcome !== 'running')),
      30_000,
      250,
    );
    await sleep(2000);
    assert.equal(await apiText(m, `/api/jobs/${id}/output`), expected, 'output after the stragglers ended');
    for (let r = 0; r < 3; r++) {
      const part = await apiText(m, `/api/jobs/${id}/output?partition=${r}`);
      assert.ok(expected.includes(part), `partition ${r} is part of the output`);
    }
    const tasks = await tasksOf(m, id);
    const superseded = tasks.flatMap((t) => t.attempts).filter((a) => a.outcome === 'superseded');
    assert.ok(superseded.length > 0, 'some backup attempts raced (otherwise this test proves little)');
    for (const t of tasks) {
      assert.equal(t.attempts.filter((a) => a.outcome === 'succeeded').length, 1, `${t.phase} ${t.index}: one winner`);
    }
    await context.close();
  });

  it('a job module that cannot be fetched for a few seconds (a master restarting) costs no attempts', async () => {
    const m = await master();
    const context = await newContext();
    // The first fetches of the module fail as they would while the master is down. A worker's module
    // map remembers a failed import for its URL, so only a retry with a fresh URL can succeed.
    let refused = 0;
    await context.route('**/module.js*', async (route) => {
      if (refused < 2) {
        refused++;
        await route.abort('connectionrefused');
      } else await route.continue();
    });
    await openTab(context, m);
    const files = corpusFiles().slice(0, 2);
    const id = await submitJob(m, [join(EXAMPLES, 'word-count.js'), ...files, '--reduces', '2']);
    assert.equal((await waitJob(m, id)).state, 'succeeded');
    assert.equal(refused, 2, 'the module fetch was refused twice');
    assertWordCount(await apiText(m, `/api/jobs/${id}/output`), files);
    for (const t of await tasksOf(m, id)) {
      assert.deepEqual(
        t.attempts.map((a) => a.outcome),
        ['succeeded'],
        `${t.phase} ${t.index}`,
      );
    }
    await context.close();
  });

  it('crashing and stalling job code, while tabs close and open, still gives the exact output', async () => {
    // The closed tabs' tasks move on after 3 s, not 10: the same faults, less waiting.
    const m = await master({ args: ['--reassign-after', '3s', '--heartbeat', '1s'] });
    const context = await newContext();
    const tabs: Tab[] = await openTabs(context, m, 4);
    const job = join(TEST_JOBS, 'crash.js');
    const files = corpusFiles();
    // About one map a file, and 4 reduces: each task is run until two results agree.
    const args = ['--split-size', '1MiB', '--reduces', '4'];
    // A third of calls crash: each crash is a failed attempt, so allow plenty of them. A stall past
    // the 4 s task timeout gets a backup attempt; the hard limit (3 x 4 s) is past the longest stall.
    const id = await submitJob(m, [job, ...files, ...args, '--max-attempts', '50', '--task-timeout', '4s']);
    const reference = localOutput(job, files, args);
    let done = false;
    const finished = waitJob(m, id, 240_000).finally(() => (done = true));
    let churned = 0;
    while (!done) {
      await sleep(2000 + Math.random() * 2000);
      if (done) break;
      const victim = tabs.splice(Math.floor(Math.random() * tabs.length), 1)[0]!;
      await victim.close();
      tabs.push(await openTab(context, m));
      churned++;
    }
    const end = await finished;
    assert.equal(end.state, 'succeeded', end.error ?? '');
    assert.equal(await apiText(m, `/api/jobs/${id}/output`), await reference);
    const all = (await tasksOf(m, id)).flatMap((t) => t.attempts);
    const failed = all.filter((a) => a.outcome === 'failed');
    assert.ok(churned >= 2, `closed only ${churned} tabs`);
    assert.ok(
      failed.some((a) => a.error?.name === 'WorkerClosed'),
      `no attempt was reported as a closed worker: ${JSON.stringify(failed.map((a) => a.error))}`,
    );
    await context.close();
  });

  it('a tab closed mid-task: its task starts again on another tab --reassign-after (5 s here) later', async () => {
    // 5 s: past the longest map (the other tab is free again by then), so the wait measured is the rule's.
    const m = await master({ args: ['--reassign-after', '5s'] });
    const context = await newContext();
    const [a, b] = await openTabs(context, m, 2);
    const job = join(TEST_JOBS, 'slow-map.js');
    const files = corpusFiles().slice(0, 2);
    // A long task timeout, so no backup attempt blurs the 5 s reassignment being measured.
    // It counts the attempts of the moved map (and so runs each task once).
    const id = await submitJob(m, [job, ...files, '--reduces', '1', '--task-timeout', '60s', '--verify', 'off']);
    const reference = localOutput(job, files, ['--reduces', '1']);
    await until(
      'both tabs to hold a map',
      async () => (await a!.state()).inHand === 1 && (await b!.state()).inHand === 1,
    );
    const closedAt = Date.now();
    await a!.close();
    assert.equal((await waitJob(m, id)).state, 'succeeded');
    assert.equal(await apiText(m, `/api/jobs/${id}/output`), await reference);

    const maps = (await tasksOf(m, id)).filter((t) => t.phase === 'map');
    const moved = maps.find((t) => t.attempts[0]!.worker === a!.id)!;
    assert.ok(moved, 'the closed tab had a map');
    assert.equal(moved.attempts.length, 2, JSON.stringify(moved.attempts));
    const [lost, again] = moved.attempts;
    assert.equal(lost!.outcome, 'lost');
    assert.equal(again!.worker, b!.id);
    assert.equal(again!.outcome, 'succeeded');
    const gap = again!.startedAt - closedAt;
    assert.ok(gap >= 4_500 && gap <= 11_000, `restarted ${gap} ms after the tab closed (expected about 5 s)`);
    await context.close();
  });
});
