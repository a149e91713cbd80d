/**
 * The visitor's controls and a tab's life: pause stops the tab taking tasks, a reload rejoins as the
 * same volunteer, the threads control reaches the master, a restarted master gets its tabs back, and
 * a duplicated tab does not fight its original for one identity.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { TEST_JOBS, apiGet, corpusFiles, localOutput, sleep, until, type MasterProc } from './helpers/cluster.js';
import {
  apiText,
  browserSuite,
  openTab,
  readState,
  submitJob,
  tasksOf,
  waitConnected,
  waitJob,
} from './helpers/browser.js';
import type { WorkerView } from '../shared/api.js';

const { newContext, master } = browserSuite();

type WorkerRow = WorkerView & { state: string };
const workers = (m: MasterProc) => apiGet<WorkerRow[]>(m, '/api/workers');

describe('volunteer controls and tab life', () => {
  it('pause stops the tab taking tasks; resume and a reload bring it back as the same volunteer', async () => {
    const m = await master();
    const context = await newContext();
    const a = await openTab(context, m);
    const b = await openTab(context, m);

    await a.page.getByTestId('pause').click();
    await until('the master to see the pause', async () =>
      (await workers(m)).some((w) => w.id === a.id && w.state === 'paused'),
    );
    assert.equal((await a.state()).paused, true);
    assert.match(await a.page.getByTestId('activity').innerText(), /Paused/);
    assert.match(await a.page.getByTestId('connection').innerText(), /Connected/);

    const job = join(TEST_JOBS, 'slow-map.js');
    // Five maps: b alone runs two while a is paused; the three left would take b alone over 5 s, longer
    // than the reload and resume take, so a gets some of them.
    const files = corpusFiles().slice(0, 5);
    const id = await submitJob(m, [job, ...files, '--reduces', '1']);
    const reference = localOutput(job, files, ['--reduces', '1']);
    // Two maps' worth of time: b works, a stays idle.
    await until(
      'two maps to finish',
      async () => (await tasksOf(m, id)).filter((t) => t.state === 'succeeded').length >= 2,
    );
    const sofar = (await tasksOf(m, id)).flatMap((t) => t.attempts);
    assert.ok(sofar.length >= 2);
    for (const att of sofar) assert.equal(att.worker, b.id, 'a paused tab took a task');
    assert.equal((await a.state()).inHand, 0);

    // A reload keeps the pause and the identity.
    await a.page.reload();
    assert.equal(await waitConnected(a.page), a.id, 'the reloaded tab joined as a new volunteer');
    assert.equal((await a.state()).paused, true, 'the pause survived the reload');

    const resumedAt = Date.now();
    await a.page.getByTestId('pause').click();
    assert.equal((await a.state()).paused, false);
    assert.equal((await waitJob(m, id)).state, 'succeeded');
    assert.equal(await apiText(m, `/api/jobs/${id}/output`), await reference);
    const all = (await tasksOf(m, id)).flatMap((t) => t.attempts);
    assert.ok(
      all.some((att) => att.worker === a.id && att.startedAt >= resumedAt),
      'the resumed tab took tasks again',
    );
    await context.close();
  });

  it('a tab reloaded mid-task rejoins at once, and its task is handed out again without the 10 s wait', async () => {
    const m = await master();
    const context = await newContext();
    const a = await openTab(context, m);
    const job = join(TEST_JOBS, 'slow-map.js');
    const files = corpusFiles().slice(0, 1);
    const id = await submitJob(m, [job, ...files, '--reduces', '1', '--task-timeout', '60s']);
    await until('the tab to hold the map', async () => (await a.state()).inHand === 1);
    const reloadedAt = Date.now();
    await a.page.reload();
    assert.equal(await waitConnected(a.page), a.id);
    assert.equal((await waitJob(m, id)).state, 'succeeded');
    assert.equal(await apiText(m, `/api/jobs/${id}/output`), await localOutput(job, files, ['--reduces', '1']));
    const [first, second] = (await tasksOf(m, id)).find((t) => t.phase === 'map')!.attempts;
    assert.equal(first!.outcome, 'lost');
    assert.equal(second!.worker, a.id);
    assert.ok(second!.startedAt - reloadedAt < 5000, `restarted ${second!.startedAt - reloadedAt} ms after the reload`);
    assert.equal((await workers(m)).filter((w) => w.state !== 'disconnected').length, 1, 'one volunteer, not two');
    await context.close();
  });

  it('the threads control and ?threads=N reach the master', async () => {
    const m = await master();
    const context = await newContext();
    const tab = await openTab(context, m, 'threads=3');
    assert.equal((await tab.state()).threads, 3);
    await until('the master to see 3 threads', async () =>
      (await workers(m)).some((w) => w.id === tab.id && w.threads === 3),
    );
    await tab.page.getByTestId('threads-down').click();
    await tab.page.getByTestId('threads-down').click();
    assert.equal(await tab.page.getByTestId('threads').innerText(), '1');
    await until('the master to see 1 thread', async () =>
      (await workers(m)).some((w) => w.id === tab.id && w.threads === 1),
    );
    assert.equal(new URL(tab.page.url()).searchParams.get('threads'), '1', 'the choice is kept in the address');
    assert.equal(await tab.page.getByTestId('threads-down').isDisabled(), true, 'no fewer than one thread');

    // Without ?threads: half the cores the browser reports, at least 1.
    const plain = await context.newPage();
    await plain.goto(m.url);
    await waitConnected(plain);
    const cores = await plain.evaluate(() => navigator.hardwareConcurrency);
    assert.equal((await readState(plain)).threads, Math.max(1, Math.floor(cores / 2)));
    await context.close();
  });

  it('tabs reconnect by themselves to a restarted master, keep their identity and finish the job', async () => {
    const first = await master();
    const context = await newContext();
    const tab = await openTab(context, first);
    const job = join(TEST_JOBS, 'slow-map.js');
    const files = corpusFiles().slice(0, 2);
    const id = await submitJob(first, [job, ...files, '--reduces', '2']);
    await until('the tab to hold a map', async () => (await tab.state()).inHand === 1);

    await first.kill();
    await until('the page to say it is reconnecting', async () => (await tab.state()).state === 'reconnecting');
    assert.match(await tab.page.getByTestId('connection').innerText(), /Reconnecting/);
    await sleep(1500);
    const again = await master({ data: first.data, port: first.port });
    assert.equal(await waitConnected(tab.page, 30_000), tab.id, 'the tab came back as the same volunteer');
    assert.equal((await waitJob(again, id)).state, 'succeeded');
    assert.equal(await apiText(again, `/api/jobs/${id}/output`), await localOutput(job, files, ['--reduces', '2']));
    // Back within the master's 10 s window, the tab kept the map it held: nothing ran twice.
    for (const t of await tasksOf(again, id)) {
      assert.deepEqual(
        t.attempts.map((a) => [a.worker, a.outcome]),
        [[tab.id, 'succeeded']],
        `${t.phase} ${t.index}`,
      );
    }
    await context.close();
  });

  it('a duplicated tab gets an identity of its own', async () => {
    const m = await master();
    const context = await newContext();
    const original = await openTab(context, m);
    const stored = await original.page.evaluate(() => sessionStorage.getItem('tabreduce.identity'));
    assert.ok(stored, 'the identity is kept in sessionStorage');
    // What "Duplicate tab" does: a new tab starting with a copy of the original's sessionStorage.
    const copy = await context.newPage();
    await copy.addInitScript((value) => sessionStorage.setItem('tabreduce.identity', value), stored);
    await copy.goto(`${m.url}/?threads=1`);
    const copyId = await waitConnected(copy);
    assert.notEqual(copyId, original.id);
    // Neither takes the other's connection: both stay connected.
    await sleep(3000);
    const rows = await workers(m);
    for (const vid of [original.id, copyId]) assert.equal(rows.find((w) => w.id === vid)?.state, 'connected', vid);
    assert.equal((await original.state()).state, 'connected');
    assert.equal((await readState(copy)).state, 'connected');
    await context.close();
  });
});
