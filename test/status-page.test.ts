/**
 * The status page in real Chromium against a real master and a real Node volunteer: the token gate,
 * a job seen live from running to succeeded, its timeline (one bar per attempt), a failed job's
 * error and stack, the output download and cancel. Screenshots go to SCREENSHOT_DIR/status-*.png.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import {
  adminCli,
  apiGet,
  corpusFiles,
  removeTempDirs,
  startMaster,
  startVolunteer,
  tempDir,
  until,
  type MasterProc,
  type VolunteerProc,
} from './helpers/cluster.js';
import { launchBrowser, screenshotPath, submitJob, tasksOf, waitJob } from './helpers/browser.js';
import { SseParser } from '../client/status/sse.js';
import { TimelineBuilder } from '../client/status/timeline-model.js';
import { CellBuilder } from '../client/status/task-cells.js';
import { TaskList } from '../client/status/task-list.js';
import { mergeSamples } from '../client/status/samples.js';
import { roomySpan } from '../client/status/scale.js';
import type { JobView, TaskView } from '../shared/api.js';

let master: MasterProc;
let volunteer: VolunteerProc;
let browser: Browser;
let jobs: string;

/** A word count whose maps each wait 400 ms: 7 maps on 2 threads keep the job mapping for 1.6 s. */
const SLOW_MAP = `
export async function map(key, value, emit) {
  await new Promise((r) => setTimeout(r, 400));
  for (const w of value.split(/\\s+/)) if (w) emit(w.toLowerCase(), '1');
}
export function reduce(key, values) {
  return String(values.length);
}
`;

/** Throws on the one split that mentions Rapunzel, every time. */
const THROWS = `
export function map(key, value, emit) {
  if (value.includes('Rapunzel')) throw new TypeError('no maps about Rapunzel, please');
  emit('n', '1');
}
export function reduce(key, values) {
  return String(values.length);
}
`;

/** Never finishes in time for the test: a job to cancel. */
const STUCK = `
export async function map(key, value, emit) {
  await new Promise((r) => setTimeout(r, 60000));
}
export function reduce(key, values) {
  return '';
}
`;

function writeModule(name: string, source: string): string {
  const path = join(jobs, name);
  writeFileSync(path, source);
  return path;
}

/** A tab that already holds the admin token, as after a first sign-in. */
async function signedInPage(context: BrowserContext, hash = ''): Promise<Page> {
  await context.addInitScript((token) => localStorage.setItem('tabreduce.adminToken', token), master.token);
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  // The master serves the page with a strict CSP; anything it blocks shows up here.
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content Security Policy/i.test(m.text())) errors.push(m.text());
  });
  await page.goto(`${master.url}/status${hash}`);
  await page.locator('.conn.live').waitFor({ timeout: 10_000 });
  assert.deepEqual(errors, []);
  return page;
}

const jobRow = (page: Page, id: string) => page.locator(`tr.job[data-job="${id}"]`);

/** Waits for the page to show job `id` in `state`; on timeout says what the page and the master show. */
async function pageShows(page: Page, id: string, state: string, where: 'list' | 'job', timeout = 30_000) {
  const el = where === 'list' ? jobRow(page, id) : page.locator(`section.summary[data-job="${id}"]`);
  try {
    await el.and(page.locator(`[data-state="${state}"]`)).waitFor({ timeout });
  } catch (e) {
    const api = await apiGet<unknown>(master, `/api/jobs/${id}`);
    const shown = (await el.count()) ? await el.getAttribute('data-state') : 'no such element';
    const conn = await page.locator('.conn').innerText();
    throw new Error(
      `page never showed ${id} ${state}: it shows ${shown}, connection ${conn}; master: ${JSON.stringify(api)}; ` +
        `volunteer: ${volunteer.output().slice(-2000)}`,
      { cause: e },
    );
  }
}

before(async () => {
  jobs = tempDir('tabreduce-status-jobs-');
  master = await startMaster();
  volunteer = startVolunteer(master.url, 2);
  browser = await launchBrowser();
  await until('the volunteer to join', async () => (await apiGet<unknown[]>(master, '/api/workers')).length === 1);
});

after(async () => {
  await browser?.close();
  await volunteer?.kill();
  await master?.stop();
  removeTempDirs();
});

describe('status page', () => {
  test('asks for the token, refuses a wrong one, keeps the right one', async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await context.newPage();
    await page.goto(`${master.url}/status`);
    const field = page.locator('input[type=password]');
    await field.fill('not-the-token');
    await page.getByRole('button', { name: 'Open status' }).click();
    await assert.doesNotReject(page.getByRole('alert').filter({ hasText: 'refused this token' }).waitFor());
    assert.equal(await page.locator('.conn').count(), 0, 'a refused token must not open the page');
    // It sends the admin where the master said the token is, not to a made-up DATA/ path.
    const help = await page.locator('form.gate').innerText();
    assert.match(help, /admin token: line the master printed/);
    assert.doesNotMatch(help, /DATA\//);
    assert.equal(await page.evaluate(() => localStorage.getItem('tabreduce.adminToken')), null);
    await page.screenshot({ path: screenshotPath('status-token-refused.png') });

    await field.fill(master.token);
    await page.getByRole('button', { name: 'Open status' }).click();
    await page.locator('.conn.live').waitFor();
    // Kept in the browser: a reload goes straight to the live page.
    await page.reload();
    await page.locator('.conn.live').waitFor();
    assert.equal(await page.locator('input[type=password]').count(), 0);

    // A saved token the master no longer accepts sends the admin back to the gate, saying why.
    await page.evaluate(() => localStorage.setItem('tabreduce.adminToken', 'stale'));
    await page.reload();
    await page.getByRole('alert').filter({ hasText: 'refused the saved token' }).waitFor();
    assert.equal(await page.evaluate(() => localStorage.getItem('tabreduce.adminToken')), null);
    await context.close();
  });

  test('a job goes from running to succeeded live, with one timeline bar per attempt', async () => {
    const context = await browser.newContext({ viewport: { width: 1360, height: 900 }, acceptDownloads: true });
    const page = await signedInPage(context);
    // Every state the page shows for any job, in order, as the DOM changes. The recorder lives in
    // the document, so it also proves that the page never reloaded.
    // (A string, because tsx would wrap named functions in a helper the page does not have.)
    await page.evaluate(`{
      const seen = (window.seen = []);
      const record = () => {
        for (const row of document.querySelectorAll('tr.job')) {
          const entry = row.dataset.job + ' ' + row.dataset.state;
          if (!seen.includes(entry)) seen.push(entry);
        }
      };
      record();
      new MutationObserver(record).observe(document.body, {
        subtree: true,
        childList: true,
        attributes: true,
        attributeFilter: ['data-state'],
      });
    }`);

    const module = writeModule('slow-count.js', SLOW_MAP);
    const files = corpusFiles().slice(0, 2);
    const id = await submitJob(master, [
      module,
      ...files,
      '--split-size',
      '96KiB',
      '--reduces',
      '3',
      '--name',
      'slow-count',
    ]);
    const row = jobRow(page, id);
    await row.and(page.locator('[data-state="mapping"], [data-state="reducing"], [data-state="succeeded"]')).waitFor();
    await page.screenshot({ path: screenshotPath('status-overview-running.png'), fullPage: true });
    await pageShows(page, id, 'succeeded', 'list', 60_000);
    const seen = await page.evaluate(() => (window as unknown as { seen?: string[] }).seen);
    assert.ok(seen, 'the page reloaded');
    const states = seen.filter((e) => e.startsWith(`${id} `)).map((e) => e.slice(id.length + 1));
    assert.ok(states.includes('mapping'), `the page showed the job running; it showed ${states.join(' → ')}`);
    assert.equal(states.at(-1), 'succeeded');
    assert.ok(states.indexOf('mapping') < states.indexOf('succeeded'));
    const job = await apiGet<{ maps: { total: number } }>(master, `/api/jobs/${id}`);
    assert.match(await row.innerText(), new RegExp(`${job.maps.total}\\s*/${job.maps.total}`));

    await row.getByRole('link', { name: 'slow-count' }).click();
    const tasks = await tasksOf(master, id);
    const attempts = tasks.flatMap((t) => t.attempts);
    assert.ok(attempts.length >= tasks.length, 'every task was attempted');
    const bars = page.locator('svg.gantt rect.bar');
    await until('one bar per attempt', async () => (await bars.count()) === attempts.length, 10_000);
    for (const outcome of ['succeeded', 'failed', 'lost', 'superseded', 'running'] as const) {
      assert.equal(
        await page.locator(`svg.gantt rect.bar.${outcome}`).count(),
        attempts.filter((a) => a.outcome === outcome).length,
        `${outcome} bars`,
      );
    }
    assert.equal(await page.locator('.cells .cell.succeeded').count(), tasks.length);
    await page.screenshot({ path: screenshotPath('status-job-succeeded.png'), fullPage: true });

    // The download carries exactly what `tabreduce result` prints.
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('button', { name: 'Download output' }).click(),
    ]);
    const saved = await download.path();
    const expected = await adminCli(master)(['result', id]);
    assert.equal(expected.code, 0);
    assert.equal(readFileSync(saved, 'utf8'), expected.stdout);
    await context.close();
  });

  test('a failed job shows its error, and each failed attempt its stack', async () => {
    const context = await browser.newContext({ viewport: { width: 1360, height: 900 } });
    const page = await signedInPage(context);
    const module = writeModule('throws.js', THROWS);
    const grimm = corpusFiles().find((f) => f.includes('grimm'))!;
    const id = await submitJob(master, [
      module,
      grimm,
      '--split-size',
      '128KiB',
      '--max-attempts',
      '2',
      '--name',
      'throws',
    ]);
    const row = jobRow(page, id);
    await pageShows(page, id, 'failed', 'list');
    const reason = page.locator(`tr.job[data-job="${id}"] + tr.reason`);
    assert.match(await reason.innerText(), /failed 2 times: TypeError: no maps about Rapunzel, please/);
    await page.screenshot({ path: screenshotPath('status-overview-failed.png'), fullPage: true });

    await row.getByRole('link', { name: 'throws' }).click();
    const error = page.locator('.job-error');
    await error.waitFor();
    assert.match(await error.innerText(), /TypeError: no maps about Rapunzel, please\n\s+at /);
    const failures = page.locator('li.failure');
    await until('both failed attempts listed', async () => (await failures.count()) === 2, 10_000);
    await failures.first().locator('summary').click();
    assert.match(await failures.first().locator('pre.stack').innerText(), /at .*map/);
    assert.equal(await page.locator('svg.gantt rect.bar.failed').count(), 2);
    // Choosing the failed task shows its attempts with their errors.
    await failures.first().getByRole('button').click();
    assert.match(await page.locator('section.detail').innerText(), /failed[\s\S]*TypeError: no maps about Rapunzel/);
    await page.screenshot({ path: screenshotPath('status-job-failed.png'), fullPage: true });
    const job = await waitJob(master, id);
    assert.equal(job.state, 'failed');
    await context.close();
  });

  test('cancel from the job page', async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const module = writeModule('stuck.js', STUCK);
    const id = await submitJob(master, [module, corpusFiles()[0]!, '--name', 'stuck', '--task-timeout', '2m']);
    const page = await signedInPage(context, `#/jobs/${id}`);
    await pageShows(page, id, 'mapping', 'job');
    const cancel = page.getByRole('button', { name: 'Cancel job' });
    await cancel.click();
    // The first click only arms the button: a stray click cancels nothing.
    assert.equal((await apiGet<{ state: string }>(master, `/api/jobs/${id}`)).state, 'mapping');
    await page.getByRole('button', { name: 'Click again to cancel' }).click();
    await pageShows(page, id, 'cancelled', 'job');
    assert.equal((await apiGet<{ state: string }>(master, `/api/jobs/${id}`)).state, 'cancelled');
    await context.close();
  });
});

describe('status page, task lists', () => {
  /** The path and query of every task-list request the page makes. */
  function taskRequests(page: Page): string[] {
    const seen: string[] = [];
    page.on('request', (r) => {
      const url = new URL(r.url());
      if (url.pathname.endsWith('/tasks')) seen.push(url.search);
    });
    return seen;
  }

  /** `n` lines of 70 bytes: one map task each at --split-size 64. */
  function lines(n: number): string {
    const path = join(jobs, `lines-${n}.txt`);
    writeFileSync(path, `${'word '.repeat(14)}\n`.repeat(n));
    return path;
  }

  test('the job page reads the tasks once, then only what changed, and shows each change', async () => {
    const context = await browser.newContext({ viewport: { width: 1360, height: 900 } });
    const page = await signedInPage(context);
    const requests = taskRequests(page);
    const module = writeModule('slower-count.js', SLOW_MAP.replace('400', '1500'));
    const id = await submitJob(master, [module, lines(6), '--split-size', '64', '--reduces', '1']);
    await page.evaluate(`location.hash = '#/jobs/${id}'`);
    const cells = page.locator('.cells .cell');
    await until('a running task on the page', async () => (await cells.and(page.locator('.running')).count()) > 0);
    // The page follows the job: a task that succeeded while others still wait or run.
    await until(
      'a task shown succeeded while others are not yet',
      async () =>
        (await cells.and(page.locator('.succeeded')).count()) > 0 &&
        (await cells.and(page.locator('.pending, .running')).count()) > 0,
      30_000,
      50,
    );
    await pageShows(page, id, 'succeeded', 'job');
    await until('every task shown succeeded', async () => (await cells.and(page.locator('.succeeded')).count()) === 7);
    const tasks = await tasksOf(master, id);
    await until(
      'one bar per attempt',
      async () => (await page.locator('svg.gantt rect.bar').count()) === tasks.flatMap((t) => t.attempts).length,
    );
    // Where the time went: both phases committed, their durations, and who did the work.
    const insight = page.locator('[data-insight]');
    await until('the insight of the finished job', async () =>
      /6 \/ 6/.test(await insight.locator('tr[data-phase="map"]').innerText()),
    );
    assert.match(await insight.locator('tr[data-phase="reduce"]').innerText(), /Reduces\s+1 \/ 1\s+[\d.]+\s?m?s/);
    assert.doesNotMatch(await insight.innerText(), /none committed yet|not started/);
    const committed = await insight
      .locator('tr[data-volunteer] td:nth-child(2)')
      .evaluateAll((tds) => tds.map((td) => Number(td.textContent)));
    const winners = tasks.flatMap((t) => t.attempts.filter((a) => a.outcome === 'succeeded'));
    assert.equal(
      committed.reduce((a, b) => a + b, 0),
      winners.length,
      'the volunteers table adds up to the committed attempts',
    );
    assert.equal(requests[0], '?after=0&limit=5000', 'the first read is a page');
    const rest = requests.slice(1);
    assert.ok(rest.length >= 2, `refreshes: ${requests.join(' ')}`);
    for (const q of rest) assert.match(q, /^\?changedSince=\d+$/, `then only changes: ${requests.join(' ')}`);
    await context.close();
  });

  test('a job of more attempts than the timeline draws shows all of them in the whole-job view', async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const module = writeModule('count.js', SLOW_MAP.replace('400', '0'));
    const id = await submitJob(master, [module, lines(1_100), '--split-size', '64', '--reduces', '1']);
    assert.equal((await waitJob(master, id)).state, 'succeeded');
    const attempts = (await tasksOf(master, id)).flatMap((t) => t.attempts);
    assert.ok(attempts.length > 1_000, `${attempts.length} attempts`);
    const page = await signedInPage(context, `#/jobs/${id}`);
    const view = page.locator('[data-activity]');
    await until('the whole-job view', async () => (await view.count()) === 1, 20_000);
    assert.match(
      await view.locator('header').innerText(),
      new RegExp(`all ${attempts.length.toLocaleString('en-US')} attempts`),
    );
    const workers = new Set(attempts.map((a) => a.worker));
    assert.equal(await view.locator('[data-row]').count(), workers.size, 'a row per volunteer');
    // Drawn: the canvas has coloured cells, in the succeeded colour's green mostly.
    const painted = (await view.locator('canvas').evaluate((c: HTMLCanvasElement) => {
      const d = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
      let n = 0;
      for (let i = 3; i < d.length; i += 4) if (d[i]! > 0) n++;
      return n / (d.length / 4);
    })) as number;
    assert.ok(painted > 0.2, `share of the canvas painted: ${painted}`);
    assert.match(
      await page.locator('section.panel').filter({ hasText: 'Timeline' }).locator('.aside').innerText(),
      /the latest 1,000 of/,
    );
    await page.screenshot({ path: screenshotPath('status-job-whole.png'), fullPage: true });
    await context.close();
  });

  test('a job of 6,000 tasks loads in pages, saying how far it got, and its grid draws runs of tasks', async () => {
    const context = await browser.newContext({ viewport: { width: 1360, height: 900 } });
    const page = await signedInPage(context);
    const requests = taskRequests(page);
    // Every "Loading tasks…" line the page shows, recorded in the document as it appears.
    await page.evaluate(`{
      const seen = (window.loading = []);
      new MutationObserver(() => {
        const text = document.querySelector('.loading')?.textContent?.trim();
        if (text && !seen.includes(text)) seen.push(text);
      }).observe(document.body, { subtree: true, childList: true, characterData: true });
    }`);
    const id = await submitJob(master, [
      writeModule('stuck-big.js', STUCK),
      lines(6_000),
      '--split-size',
      '64',
      '--reduces',
      '2',
      '--task-timeout',
      '2m',
    ]);
    try {
      await page.evaluate(`location.hash = '#/jobs/${id}'`);
      const maps = page.locator('.phases .phase').first().locator('.cell');
      await until('the map cells', async () => (await maps.count()) === 2_000, 20_000);
      assert.equal(await page.locator('.phases .phase').nth(1).locator('.cell').count(), 2, 'one cell per reduce');
      assert.match(await page.locator('.hint').filter({ hasText: 'Each square' }).innerText(), /run of up to 3 tasks/);
      const shown = (await page.evaluate('window.loading')) as string[];
      assert.deepEqual(shown, ['Loading tasks… 5,000 of 6,002 (the timeline follows when all are in)']);
      assert.equal(await page.locator('.loading').count(), 0, 'done loading');
      assert.match(requests[0]!, /^\?after=0&limit=5000$/);
      assert.match(requests[1]!, /^\?after=\d+&limit=5000$/);
      // A click on a run opens its most telling task: a running one here.
      await maps.and(page.locator('.running')).first().click();
      assert.match(await page.locator('section.detail').innerText(), /running/);
      await page.screenshot({ path: screenshotPath('status-job-6000-tasks.png'), fullPage: true });
    } finally {
      await fetch(`${master.url}/api/jobs/${id}/cancel`, {
        method: 'POST',
        headers: { authorization: `Bearer ${master.token}` },
      });
      await context.close();
    }
  });
});

describe('SSE parser', () => {
  test('reassembles events split anywhere, with CRLF, comments and multi-line data', () => {
    const stream = ': hi\r\nevent: job\r\ndata: {"a":\r\ndata: 1}\r\n\r\nevent: workers\ndata: []\n\ndata: plain\n\n';
    const want = [
      { event: 'job', data: '{"a":\n1}' },
      { event: 'workers', data: '[]' },
      { event: 'message', data: 'plain' },
    ];
    for (let cut = 0; cut <= stream.length; cut++) {
      for (const size of [1, 3, 7]) {
        const p = new SseParser();
        const got = [...p.push(stream.slice(0, cut))];
        for (let i = cut; i < stream.length; i += size) got.push(...p.push(stream.slice(i, i + size)));
        assert.deepEqual(got, want, `cut at ${cut}, chunks of ${size}`);
      }
    }
  });
});

describe('status page pieces', () => {
  const job = { createdAt: 1_000, finishedAt: null } as JobView;
  const attempt = (worker: string, startedAt: number, endedAt: number | null, outcome = 'succeeded') =>
    ({ worker, startedAt, endedAt, outcome, error: null, backup: false }) as TaskView['attempts'][number];
  const task = (id: number, attempts: TaskView['attempts']) =>
    ({ id, phase: 'map', index: id, state: 'succeeded', input: 'in.txt', attempts }) as TaskView;

  test('the timeline gives a volunteer one lane per attempt it ran at once, and reuses unchanged bars', () => {
    const b = new TimelineBuilder();
    const tasks = [
      task(1, [attempt('a', 1_000, 3_000)]),
      task(2, [attempt('a', 1_500, 2_500)]), // overlaps task 1 on volunteer a: a second lane
      task(3, [attempt('a', 3_000, 4_000), attempt('b', 2_000, null, 'running')]), // reuses lane 0
    ];
    const m = b.build(job, tasks, 5_000);
    assert.deepEqual(
      m.rows.map((r) => [r.worker, r.firstLane, r.lanes]),
      [
        ['a', 0, 2],
        ['b', 2, 1],
      ],
    );
    assert.deepEqual(
      m.bars.map((x) => [x.key, x.lane, x.end]),
      [
        ['1:0', 0, 3_000],
        ['2:0', 1, 2_500],
        ['3:0', 0, 4_000],
        ['3:1', 2, 5_000], // a running attempt ends at "now"
      ],
    );
    const again = b.build(job, structuredClone(tasks), 6_000);
    assert.equal(again.bars[0], m.bars[0], 'an unchanged bar keeps its object');
    assert.notEqual(again.bars[3], m.bars[3], 'the running bar grew');
    assert.equal(again.bars[3]!.end, 6_000);
  });

  test('past its limit the timeline draws the attempts that started last, counted from the job start', () => {
    const b = new TimelineBuilder(2);
    const tasks = [
      task(1, [attempt('a', 1_000, 2_000, 'failed'), attempt('a', 2_000, 3_000)]),
      task(2, [attempt('b', 2_500, 3_500)]),
      task(3, [attempt('b', 4_000, null, 'running')]),
      task(4, [attempt('c', 2_500, 4_500)]),
    ];
    const m = b.build(job, tasks, 5_000);
    assert.equal(m.total, 5);
    // 2,500 is the second latest start, and two attempts share it: only one of them is drawn.
    assert.deepEqual(
      m.bars.map((x) => x.key),
      ['2:0', '3:0'],
    );
    assert.deepEqual([m.t0, m.origin], [2_500, 1_000]);
    assert.equal(new TimelineBuilder(3).build(job, tasks, 5_000).bars.length, 3);

    // A refresh that replaces a few tasks picks from the last picture and those tasks alone, and
    // draws what a fresh look at every task would.
    const bars = (x: ReturnType<TimelineBuilder['build']>) =>
      x.bars.map((bar) => `${bar.key} ${bar.outcome} ${bar.lane}`);
    let now = tasks;
    for (const [i, t] of [
      [0, task(1, [...tasks[0]!.attempts, attempt('c', 4_600, null, 'running')])],
      [2, task(3, [attempt('b', 4_000, 4_700)])],
      [1, task(2, [attempt('b', 2_500, 3_500), attempt('a', 4_800, null, 'running')])],
    ] as const) {
      now = now.map((x, j) => (j === i ? t : x));
      const fresh = new TimelineBuilder(2).build(job, now, 5_000);
      const refreshed = b.build(job, now, 5_000);
      assert.deepEqual(bars(refreshed), bars(fresh));
      assert.equal(refreshed.total, fresh.total);
    }
    assert.equal(new TimelineBuilder(5).build(job, tasks, 5_000).bars.length, 5);
  });

  test('the task grid draws one cell per task, or past its limit one per run with its most telling state', () => {
    const tasks: TaskView[] = Array.from({ length: 10 }, (_, i) => task(i + 1, []));
    tasks[5] = { ...tasks[5]!, state: 'running', attempts: [attempt('a', 1_000, null, 'running')] };
    tasks[6] = { ...tasks[6]!, state: 'failed', attempts: [attempt('a', 1_000, 2_000, 'failed')] };
    assert.equal(new CellBuilder().build(tasks)[0]!.cells.length, 10);
    const b = new CellBuilder(3);
    const [maps] = b.build(tasks);
    assert.equal(maps!.per, 4);
    assert.deepEqual(
      maps!.cells.map((c) => [c.first, c.last, c.state, c.id]),
      [
        [1, 4, 'succeeded', 1],
        [5, 8, 'failed', 7],
        [9, 10, 'succeeded', 9],
      ],
    );
    assert.equal(maps!.cells[1]!.label, 'map 5–8: 1 failed, 1 running, 2 succeeded');
    const again = b.build(tasks.map((t) => (t.id === 10 ? { ...t, state: 'running' as const } : t)));
    assert.equal(again[0]!.cells[0], maps!.cells[0], 'an unchanged run keeps its object');
    assert.equal(again[0]!.cells[2]!.state, 'running');
  });

  test('the task list loads page by page, then merges the changed tasks by id', () => {
    const headers = (after: number | null, since: number) =>
      ({ tasks: [], nextAfter: after, nextChangedSince: since }) as const;
    const l = new TaskList();
    assert.equal(l.nextPath('j'), '/api/jobs/j/tasks?after=0&limit=5000');
    l.take({ ...headers(2, 900), tasks: [task(1, []), task(2, [])] });
    assert.equal(l.loaded, false);
    assert.equal(l.nextPath('j'), '/api/jobs/j/tasks?after=2&limit=5000');
    l.take({ ...headers(null, 950), tasks: [task(3, []), task(4, [])] });
    assert.equal(l.loaded, true);
    // The first page's time: what changed while later pages came in is asked for again.
    assert.equal(l.nextPath('j'), '/api/jobs/j/tasks?changedSince=900');
    const before = l.tasks;
    const changed = { ...task(3, [attempt('a', 1_000, 2_000)]), state: 'succeeded' as const };
    l.take({ ...headers(null, 1_500), tasks: [changed] });
    assert.notEqual(l.tasks, before, 'a new array, so the views see the change');
    assert.deepEqual(
      l.tasks.map((t) => t.id),
      [1, 2, 3, 4],
    );
    assert.equal(l.get(3), changed);
    assert.deepEqual(l.counts(), {
      running: 0,
      succeeded: 1,
      failed: 0,
      lost: 0,
      superseded: 0,
      voted: 0,
      rejected: 0,
    });
    const failing = { ...task(2, [attempt('a', 1_000, 1_500, 'failed'), attempt('b', 1_600, null, 'running')]) };
    l.take({ ...headers(null, 1_400), tasks: [{ ...failing, state: 'running' }] });
    assert.deepEqual(l.counts(), {
      running: 1,
      succeeded: 1,
      failed: 1,
      lost: 0,
      superseded: 0,
      voted: 0,
      rejected: 0,
    });
    assert.deepEqual(l.stateCounts(), { pending: 0, running: 1, succeeded: 3, failed: 0, cancelled: 0 });
    assert.deepEqual(
      l.failed().map((t) => t.id),
      [2],
    );
    l.take({ ...headers(null, 1_450), tasks: [{ ...task(2, []), state: 'succeeded' }] });
    assert.deepEqual(l.failed(), [], 'counted out when it changes again');
    assert.deepEqual(l.counts(), {
      running: 0,
      succeeded: 1,
      failed: 0,
      lost: 0,
      superseded: 0,
      voted: 0,
      rejected: 0,
    });
    assert.equal(l.nextPath('j'), '/api/jobs/j/tasks?changedSince=1450');
    l.take({ ...headers(null, 1_600), tasks: [] });
    assert.equal(l.tasks.length, 4);
    // A task never seen is put in its place by id.
    l.take({ ...headers(null, 1_700), tasks: [task(0, [])] });
    assert.deepEqual(
      l.tasks.map((t) => t.id),
      [0, 1, 2, 3, 4],
    );
    assert.equal(l.get(4)!.id, 4);
  });

  test('a live time axis grows in round steps with room to spare', () => {
    for (let ms = 50; ms < 1e7; ms = Math.ceil(ms * 1.07)) {
      const span = roomySpan(ms);
      assert.ok(span >= ms * 1.05 && span <= ms * 1.05 * 1.67 + 100, `${ms} -> ${span}`);
    }
    assert.equal(roomySpan(20_000), 30_000);
  });

  test('throughput samples merge by second and keep ten minutes', () => {
    const held = [
      { t: 0, tasks: 1, bytes: 10 },
      { t: 1_000, tasks: 2, bytes: 20 },
    ];
    assert.deepEqual(
      mergeSamples(held, [
        { t: 1_000, tasks: 5, bytes: 50 },
        { t: 2_000, tasks: 1, bytes: 1 },
      ]),
      [
        { t: 0, tasks: 1, bytes: 10 },
        { t: 1_000, tasks: 5, bytes: 50 },
        { t: 2_000, tasks: 1, bytes: 1 },
      ],
    );
    assert.equal(mergeSamples(held, []), held);
    assert.deepEqual(
      mergeSamples(held, [{ t: 600_500, tasks: 1, bytes: 1 }]).map((s) => s.t),
      [1_000, 600_500],
    );
  });
});
