/**
 * Every page at a phone's 390 × 844 and a laptop's 1280 × 800, in real Chromium: no sideways scroll
 * of the page, and no control cut off, except inside a box that is meant to scroll (a wide table
 * in an `overflow-x: auto` box). The jobs make the pages as full as they get: hundreds of tasks
 * with failed attempts, a failed job, a cancelled one, a running one, and a volunteer table with
 * twenty rows. A screenshot of each page at each size goes to SCREENSHOT_DIR (the README's are
 * made with TABREDUCE_SCREENSHOTS=docs/screenshots).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { EXAMPLES, apiGet, removeTempDirs, startMaster, tempDir, until, type MasterProc } from './helpers/cluster.js';
import { launchBrowser, screenshotPath, submitJob, waitConnected, waitJob } from './helpers/browser.js';
import { startSimulatedVolunteers, type SimulatedVolunteers } from './helpers/simulated-volunteers.js';

const SIZES = [
  { name: 'phone', width: 390, height: 844 },
  { name: 'desktop', width: 1280, height: 800 },
] as const;

/** Never finishes while the test looks: a job that stays running. */
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
let dir: string;
const ids = { many: '', failed: '', cancelled: '', running: '' };
const pools: SimulatedVolunteers[] = [];

/** `n` lines of 70 bytes: one map task each at --split-size 64. */
function lines(n: number): string {
  const path = join(dir, `lines-${n}.txt`);
  writeFileSync(path, `${'word '.repeat(14)}\n`.repeat(n));
  return path;
}

function pool(opts: Omit<Parameters<typeof startSimulatedVolunteers>[0], 'url'>): SimulatedVolunteers {
  const p = startSimulatedVolunteers({ url: master.url, ...opts });
  pools.push(p);
  return p;
}

before(async () => {
  dir = tempDir('tabreduce-layout-');
  master = await startMaster();
  browser = await launchBrowser();
  const stuck = join(dir, 'stuck.js');
  writeFileSync(stuck, STUCK);
  const wordCount = join(EXAMPLES, 'word-count.js');

  // A job that fails: every attempt throws.
  const failing = pool({ count: 2, failRate: 1, taskMs: [20, 60] });
  ids.failed = await submitJob(master, [wordCount, lines(6), '--split-size', '64', '--max-attempts', '2']);
  assert.equal((await waitJob(master, ids.failed)).state, 'failed');
  await failing.stop();

  // A job cancelled before anyone ran it.
  ids.cancelled = await submitJob(master, [stuck, lines(5), '--split-size', '64', '--name', 'cancelled-early']);
  await fetch(`${master.url}/api/jobs/${ids.cancelled}/cancel`, {
    method: 'POST',
    headers: { authorization: `Bearer ${master.token}` },
  });

  // Hundreds of tasks on a dozen volunteers, some attempts failing on the way.
  const busy = pool({ count: 12, failRate: 0.1, taskMs: [20, 120], seed: 7 });
  await until('the volunteers to join', async () => busy.connected() === 12);
  ids.many = await submitJob(master, [
    wordCount,
    lines(300),
    '--split-size',
    '64',
    '--reduces',
    '6',
    '--max-attempts',
    '10',
    '--name',
    'word-count-of-a-rather-long-corpus-name',
  ]);
  assert.equal((await waitJob(master, ids.many)).state, 'succeeded');
  await busy.stop();

  // A job that stays running, its tasks in the hands of slow volunteers.
  pool({ count: 8, taskMs: [600_000, 600_000], seed: 3 });
  ids.running = await submitJob(master, [
    stuck,
    lines(200),
    '--split-size',
    '64',
    '--reduces',
    '4',
    '--task-timeout',
    '10m',
    '--name',
    'still-running',
  ]);
  await until('the slow volunteers to hold tasks', async () => {
    const workers = await apiGet<{ running: number }[]>(master, '/api/workers');
    return workers.filter((w) => w.running > 0).length >= 8;
  });
});

after(async () => {
  for (const p of pools) await p.stop();
  await browser?.close();
  await master?.stop();
  removeTempDirs();
});

async function contextFor(size: (typeof SIZES)[number]): Promise<BrowserContext> {
  const context = await browser.newContext({
    viewport: { width: size.width, height: size.height },
    isMobile: size.name === 'phone',
    hasTouch: size.name === 'phone',
  });
  await context.addInitScript((token) => localStorage.setItem('tabreduce.adminToken', token), master.token);
  return context;
}

interface Problem {
  what: string;
  why: string;
}

/**
 * What overflows on the page: the document wider than the window, or a control (button, input,
 * table, chart, progress bar, panel) that reaches outside the window or outside an ancestor that
 * clips it. A box that scrolls sideways on purpose (`overflow-x: auto | scroll`) must itself fit;
 * what is inside it may be wider.
 */
function overflowOf(
  page: Page,
  width: number,
): Promise<{ scrollWidth: number; innerWidth: number; problems: Problem[] }> {
  // A string, because tsx would wrap named functions in a helper the page does not have.
  return page.evaluate(`(() => {
    const problems = [];
    const name = (el) => {
      const cls = typeof el.className === 'string' ? el.className : el.className.baseVal;
      const text = (el.textContent || '').trim().replace(/\\s+/g, ' ').slice(0, 30);
      return el.tagName.toLowerCase() + (cls ? '.' + cls.trim().split(/\\s+/).join('.') : '') + (text ? ' "' + text + '"' : '');
    };
    const sel = 'button, input, select, textarea, table, svg, [role=progressbar], .panel, section, h1, pre, nav, header';
    for (const el of document.querySelectorAll(sel)) {
      const r = el.getBoundingClientRect();
      if (r.width === 0 || r.height === 0) continue;
      if (el.closest('svg') && el.tagName.toLowerCase() !== 'svg') continue;
      let scrolled = false;
      for (let a = el.parentElement; a && a !== document.body; a = a.parentElement) {
        const s = getComputedStyle(a);
        const box = a.getBoundingClientRect();
        if (s.overflowX === 'auto' || s.overflowX === 'scroll') {
          scrolled = true;
          break;
        }
        if (s.overflowX === 'hidden' || s.overflowX === 'clip') {
          if (r.left < box.left - 1 || r.right > box.right + 1) {
            problems.push({ what: name(el), why: 'cut off by ' + name(a) + ': ' + Math.round(r.left) + '..' + Math.round(r.right) + ' in ' + Math.round(box.left) + '..' + Math.round(box.right) });
            scrolled = true;
            break;
          }
        }
      }
      if (scrolled) continue;
      if (r.left < -1 || r.right > ${width} + 1) {
        problems.push({ what: name(el), why: 'outside the window: ' + Math.round(r.left) + '..' + Math.round(r.right) + ' of ${width}' });
      }
    }
    return { scrollWidth: document.documentElement.scrollWidth, innerWidth, problems };
  })()`);
}

/**
 * A phone lays out a page wider than its screen at a wider window and zooms out, so `innerWidth`
 * itself must be the screen's width, as well as the document no wider.
 */
async function assertFits(page: Page, label: string, width: number): Promise<void> {
  const o = await overflowOf(page, width);
  const lines = o.problems.map((p) => `  ${p.what}: ${p.why}`);
  assert.ok(
    o.innerWidth === width && o.scrollWidth <= o.innerWidth && o.problems.length === 0,
    `${label}: page ${o.scrollWidth} px wide in a ${o.innerWidth} px window on a ${width} px screen; ` +
      `${o.problems.length} problems:\n${lines.slice(0, 25).join('\n')}`,
  );
}

async function openStatus(context: BrowserContext, hash = ''): Promise<Page> {
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`${master.url}/status${hash}`);
  await page.locator('.conn.live').waitFor({ timeout: 10_000 });
  assert.deepEqual(errors, []);
  return page;
}

describe('every page fits a phone and a laptop', () => {
  for (const size of SIZES) {
    test(`${size.name} ${size.width} × ${size.height}`, async () => {
      const context = await contextFor(size);
      const problems: string[] = [];
      const check = async (page: Page, label: string, shot: string) => {
        try {
          await assertFits(page, `${label} at ${size.name}`, size.width);
        } catch (e) {
          problems.push((e as Error).message);
        }
        await page.screenshot({ path: screenshotPath(`${shot}-${size.name}.png`) });
      };
      try {
        // The job list, with the throughput chart and the volunteers table.
        const list = await openStatus(context);
        await list.locator(`tr.job[data-job="${ids.many}"][data-state="succeeded"]`).waitFor();
        await list.locator('tr.worker').first().waitFor();
        await check(list, 'job list', 'status-jobs');
        await list.locator('section.panel', { hasText: 'Volunteers' }).scrollIntoViewIfNeeded();
        await check(list, 'job list, volunteers', 'status-volunteers');

        // A job of 306 tasks with failed attempts, one of them open in the detail panel.
        const job = await openStatus(context, `#/jobs/${ids.many}`);
        await job.locator('svg.gantt rect.bar.failed').first().waitFor({ timeout: 15_000 });
        await job.locator('.cells .cell.retried').first().click();
        await job.locator('section.detail').waitFor();
        await check(job, 'job page', 'status-job');

        // A failed job: its error and stacks.
        const failed = await openStatus(context, `#/jobs/${ids.failed}`);
        await failed.locator('.job-error').waitFor();
        await failed.locator('li.failure').first().waitFor();
        await failed.locator('li.failure summary').first().click();
        await check(failed, 'failed job page', 'status-job-failed');

        // A running job, and a cancelled one.
        const running = await openStatus(context, `#/jobs/${ids.running}`);
        await running.locator('svg.gantt rect.bar.running').first().waitFor({ timeout: 15_000 });
        await check(running, 'running job page', 'status-job-running');
        const cancelled = await openStatus(context, `#/jobs/${ids.cancelled}`);
        await cancelled.locator('section.summary[data-state="cancelled"]').waitFor();
        await check(cancelled, 'cancelled job page', 'status-job-cancelled');

        // The volunteer page, holding a task of the running job.
        const tab = await context.newPage();
        await tab.goto(`${master.url}/?threads=1`);
        await waitConnected(tab);
        await tab.locator('[data-testid=task]').first().waitFor({ timeout: 15_000 });
        await check(tab, 'volunteer page', 'volunteer');
      } finally {
        await context.close();
      }
      assert.deepEqual(problems, []);
    });
  }
});
