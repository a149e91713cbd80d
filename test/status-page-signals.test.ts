/**
 * What the status page's colours and notices mean, in real Chromium against a real master: a job
 * that waits for volunteers says so instead of an ETA, a cancelled job is grey and not the red of a
 * failure, and a master that went away dims the page with a plain message, never the browser's
 * "Failed to fetch", until it is back. Also the throughput chart's one scale for both lines.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { corpusFiles, removeTempDirs, startMaster, tempDir, until, type MasterProc } from './helpers/cluster.js';
import { launchBrowser, screenshotPath, submitJob } from './helpers/browser.js';
import { startSimulatedVolunteers, type SimulatedVolunteers } from './helpers/simulated-volunteers.js';
import { shareOf, sharedScale } from '../client/status/throughput-scale.js';

const STUCK = `
export async function map(key, value, emit) {
  await new Promise((r) => setTimeout(r, 600000));
}
export function reduce(key, values) {
  return '';
}
`;

let master: MasterProc;
let browser: Browser;
let context: BrowserContext;
let stuck: string;
const pools: SimulatedVolunteers[] = [];

before(async () => {
  const dir = tempDir('tabreduce-signals-');
  stuck = join(dir, 'stuck.js');
  writeFileSync(stuck, STUCK);
  master = await startMaster();
  browser = await launchBrowser();
  context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  await context.addInitScript((token) => localStorage.setItem('tabreduce.adminToken', token), master.token);
});

after(async () => {
  for (const p of pools) await p.stop();
  await browser?.close();
  await master?.stop();
  removeTempDirs();
});

async function statusPage(hash = ''): Promise<Page> {
  const page = await context.newPage();
  await page.goto(`${master.url}/status${hash}`);
  await page.locator('.conn.live').waitFor({ timeout: 10_000 });
  return page;
}

/** A colour as the browser computes it, for comparing with what an element shows. */
function rgb(page: Page, color: string): Promise<string> {
  return page.evaluate(`(() => {
    const el = document.createElement('span');
    el.style.color = ${JSON.stringify(color)};
    document.body.append(el);
    const c = getComputedStyle(el).color;
    el.remove();
    return c;
  })()`);
}

const opacity = (page: Page) => page.locator('main').evaluate((el) => getComputedStyle(el).opacity);

describe('status page signals', () => {
  test('a job with no volunteer says to open the volunteer page instead of an ETA, until one joins', async () => {
    const id = await submitJob(master, [stuck, corpusFiles()[0]!, '--name', 'lonely', '--task-timeout', '10m']);
    const page = await statusPage();
    const row = page.locator(`tr.job[data-job="${id}"]`);
    await row.waitFor();
    const notice = page.locator(`tr.job[data-job="${id}"] + tr.reason .stall-line`);
    assert.equal(await notice.innerText(), `no volunteers connected: open ${master.url}/ in a browser`);
    assert.equal(await row.locator('td[data-label="ETA"]').innerText(), 'waiting');

    await row.getByRole('link', { name: 'lonely' }).click();
    const box = page.locator('.warn-box.stall');
    await box.waitFor();
    assert.match(
      await box.innerText(),
      new RegExp(`^No volunteers connected: open ${master.url}/ in a browser, or run`),
    );
    assert.match(await page.locator('dl').innerText(), /ETA\s+waiting for volunteers/);
    await page.screenshot({ path: screenshotPath('status-job-no-volunteers.png') });

    // One joins (and holds a task for good): the notice goes.
    pools.push(startSimulatedVolunteers({ url: master.url, count: 1, taskMs: [600_000, 600_000] }));
    await box.waitFor({ state: 'detached', timeout: 10_000 });
    assert.doesNotMatch(await page.locator('dl').innerText(), /waiting for volunteers/);
    await page.close();
  });

  test('a cancelled job is grey, with its reason as a note, not the red bar and box of a failure', async () => {
    const id = await submitJob(master, [stuck, corpusFiles()[1]!, '--name', 'to-cancel', '--task-timeout', '10m']);
    const res = await fetch(`${master.url}/api/jobs/${id}/cancel`, {
      method: 'POST',
      headers: { authorization: `Bearer ${master.token}` },
    });
    assert.equal(res.status, 200);
    const page = await statusPage();
    const row = page.locator(`tr.job[data-job="${id}"][data-state="cancelled"]`);
    await row.waitFor();
    const grey = await rgb(page, '#6b7280');
    const red = await rgb(page, '#d93025');
    const fills = await row
      .locator('.fill')
      .evaluateAll((els) => els.map((el) => getComputedStyle(el).backgroundColor));
    assert.deepEqual(fills, [grey, grey], 'both bars in the cancelled grey');
    assert.ok(!fills.includes(red));
    const reason = page.locator(`tr.job[data-job="${id}"] + tr.reason .error-line`);
    assert.equal(await reason.innerText(), 'cancelled by an admin');
    assert.notEqual(
      await reason.evaluate((el) => getComputedStyle(el).color),
      await rgb(page, '#c62828'),
      'the reason is not in the danger colour',
    );

    await row.getByRole('link', { name: 'to-cancel' }).click();
    await page.locator('section.summary[data-state="cancelled"]').waitFor();
    assert.equal(await page.locator('.job-note').innerText(), 'cancelled by an admin');
    assert.equal(await page.locator('.error-box').count(), 0, 'no red box');
    const summaryFills = await page
      .locator('section.summary .fill')
      .evaluateAll((els) => els.map((el) => getComputedStyle(el).backgroundColor));
    assert.deepEqual(summaryFills, [grey, grey]);
    await page.screenshot({ path: screenshotPath('status-job-cancelled.png') });
    await page.close();
  });

  test('a master that went away dims the page and says so plainly, until it is back', async () => {
    const list = await statusPage();
    await list.locator('tr.job').first().waitFor();
    const job = await statusPage(`#/jobs/${await list.locator('tr.job').first().getAttribute('data-job')}`);
    await job.locator('section.summary').waitFor();
    const port = master.port;
    const data = master.data;
    await master.kill();
    for (const page of [list, job]) {
      const note = page.locator('.stale-note');
      await note.waitFor({ timeout: 15_000 });
      assert.match(await note.innerText(), /^Master unreachable, retrying… The figures below are as of .+ ago\.$/);
      assert.equal(await page.locator('.conn').innerText(), 'master unreachable, retrying…');
      // (It fades in.)
      await until('the page dimmed', async () => (await opacity(page)) === '0.5', 5_000);
      // Long enough for the job page to have asked for its tasks and for a few retries.
      await page.waitForTimeout(1500);
      const text = await page.locator('body').innerText();
      assert.doesNotMatch(text, /failed to fetch|networkerror|network error|load failed/i);
    }
    await list.screenshot({ path: screenshotPath('status-master-down.png') });

    master = await startMaster({ data, port });
    for (const page of [list, job]) {
      await page.locator('.conn.live').waitFor({ timeout: 15_000 });
      assert.equal(await page.locator('.stale-note').count(), 0);
      await until('the page bright again', async () => (await opacity(page)) === '1', 5_000);
    }
    await list.close();
    await job.close();
  });
});

describe('throughput chart scale', () => {
  test('both lines share one scale: tasks of the usual size draw the two lines as one', () => {
    // Two equal bursts of 1 KiB tasks, a minute apart.
    const tasks = new Float64Array(120);
    const bytes = new Float64Array(120);
    for (const at of [10, 70]) {
      tasks[at] = 12;
      bytes[at] = 12 * 1024;
    }
    const s = sharedScale(tasks, bytes);
    assert.equal(s.bytesPerTask, 1024);
    assert.equal(s.top, 20);
    for (let i = 0; i < tasks.length; i++) {
      assert.equal(shareOf(s, tasks[i]!, 'tasks'), shareOf(s, bytes[i]!, 'bytes'), `second ${i}`);
    }
    assert.equal(shareOf(s, tasks[10]!, 'tasks'), shareOf(s, tasks[70]!, 'tasks'));
  });

  test('equal bytes are equally high, and bigger tasks lift the data line above the tasks line', () => {
    // 20 small tasks (1 KiB) in one second, 5 big ones (4 KiB) in another: the same 20 KiB.
    const tasks = [20, 0, 5];
    const bytes = [20 * 1024, 0, 20 * 1024];
    const s = sharedScale(tasks, bytes);
    assert.equal(shareOf(s, bytes[0]!, 'bytes'), shareOf(s, bytes[2]!, 'bytes'));
    assert.ok(shareOf(s, tasks[2]!, 'tasks') < shareOf(s, bytes[2]!, 'bytes'));
    assert.ok(shareOf(s, tasks[0]!, 'tasks') > shareOf(s, bytes[0]!, 'bytes'));
    // Nothing above the top.
    for (let i = 0; i < 3; i++) {
      assert.ok(shareOf(s, tasks[i]!, 'tasks') <= 1 && shareOf(s, bytes[i]!, 'bytes') <= 1);
    }
  });

  test('with nothing done the scale is 0 to 1 task/s', () => {
    assert.deepEqual(sharedScale([0, 0], [0, 0]), { top: 1, bytesPerTask: 1, measured: false });
  });
});
