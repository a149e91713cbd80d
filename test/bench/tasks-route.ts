/**
 * Issue 14, tasks at scale: `GET /api/jobs/:id/tasks` for a job of 200,000 map tasks that have all
 * run (one attempt each, 1% with a failed attempt first), and what the master's event loop feels
 * meanwhile: `/healthz` is asked again and again while the list is served, and its slowest answer
 * is the time the loop was held. Then the ways the status page and the CLI read the same job now:
 * page by page, only what changed, and the summary.
 *
 * The attempts are written into the database while the master is stopped, not run by volunteers:
 * 200,000 real tasks would take minutes and measure dispatch, not this route.
 *
 * With Chromium (CHROMIUM_PATH, default /usr/bin/chromium), the job page of that job is measured
 * too: the time to read every task and what it costs the page's main thread, then a refresh.
 *
 * Run alone: `node --import tsx test/bench/tasks-route.ts [--tasks 200000]` (after `npm run build`).
 */
import Database from 'better-sqlite3';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { adminCli, EXAMPLES, startMaster, until, type MasterProc } from '../helpers/cluster.js';
import { CHROMIUM, launchBrowser } from '../helpers/browser.js';
import { openRawClient } from '../helpers/raw-volunteer.js';
import { MAX_CELLS } from '../../client/status/task-cells.js';
import {
  fmtBytes,
  fmtInt,
  fmtMs,
  isMainModule,
  runStandalone,
  sleep,
  summarize,
  tinyTaskInput,
  type BenchContext,
  type BenchReport,
  type Benchmark,
  type Row,
} from './bench-kit.js';

/** Gives every map task of `jobId` one succeeded attempt (1% a failed one before it), as if run. */
export function fillAttempts(dataDir: string, jobId: string): number {
  const db = new Database(join(dataDir, 'tabreduce.db'));
  try {
    const tasks = db.prepare(`SELECT id, idx FROM task WHERE job_id = ? AND phase = 'map' ORDER BY id`).all(jobId) as {
      id: number;
      idx: number;
    }[];
    const insert = db.prepare(`INSERT INTO attempt (task_id, job_id, volunteer_id, address, lease, backup,
      started_at, ended_at, outcome, error, ms, records_in, records_out)
      VALUES (?, ?, ?, '127.0.0.1', ?, 0, ?, ?, ?, ?, ?, 1, 1)`);
    const t0 = Date.now() - 3_600_000;
    const error = JSON.stringify({ name: 'Error', message: 'boom', stack: 'Error: boom\n    at map (job.js:1:1)' });
    let attempts = 0;
    db.transaction(() => {
      for (const t of tasks) {
        const worker = `v${(t.idx % 500).toString().padStart(4, '0')}`;
        const start = t0 + t.idx * 15;
        if (t.idx % 100 === 7) {
          insert.run(t.id, jobId, worker, `f${t.id}`, start, start + 40, 'failed', error, 40);
          attempts++;
        }
        insert.run(t.id, jobId, worker, `s${t.id}`, start + 50, start + 1_050, 'succeeded', null, 1_000);
        attempts++;
      }
      db.prepare(`UPDATE task SET state = 'succeeded' WHERE job_id = ? AND phase = 'map'`).run(jobId);
      db.prepare(`UPDATE job SET state = 'reducing', maps_done = maps_total WHERE id = ?`).run(jobId);
    })();
    return attempts;
  } finally {
    db.close();
  }
}

/** Asks `/healthz` in a loop until stopped; `stop` gives the answer times (ms). */
function probeHealth(m: MasterProc): { stop: () => Promise<number[]> } {
  let done = false;
  const health: number[] = [];
  const probe = (async () => {
    while (!done) {
      const t = performance.now();
      await (await fetch(`${m.url}/healthz`)).text();
      health.push(performance.now() - t);
      await sleep(5);
    }
  })();
  return {
    stop: async () => {
      done = true;
      await probe;
      return health;
    },
  };
}

/** `timedFetch` for small answers: read here, no process to start. */
async function probedFetch(m: MasterProc, path: string) {
  const probe = probeHealth(m);
  const t0 = performance.now();
  const res = await fetch(`${m.url}${path}`, { headers: { authorization: `Bearer ${m.token}` } });
  const body = await res.text();
  const ms = performance.now() - t0;
  const health = await probe.stop();
  return { status: res.status, headers: res.headers, body, ms, health: summarize(health) };
}

/**
 * Reads `path` to its last byte in a child process, while this one asks `/healthz` in a loop: the
 * slowest answer is how long the master's event loop was held. (Read here, 41 MB arriving would
 * hold this process too, and the probe would time both.)
 */
async function timedFetch(m: MasterProc, path: string) {
  const probe = probeHealth(m);
  const reader = `
    const t0 = performance.now();
    const res = await fetch(process.argv[1], { headers: { authorization: 'Bearer ' + process.argv[2] } });
    const body = await res.text();
    const headers = Object.fromEntries(res.headers);
    process.stdout.write(JSON.stringify({ status: res.status, headers, body, ms: performance.now() - t0 }));`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', reader, `${m.url}${path}`, m.token], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const chunks: Buffer[] = [];
  child.stdout.on('data', (d: Buffer) => chunks.push(d));
  await new Promise((r) => child.once('exit', r));
  const health = await probe.stop();
  const got = JSON.parse(Buffer.concat(chunks).toString()) as {
    status: number;
    headers: Record<string, string>;
    body: string;
    ms: number;
  };
  return { ...got, headers: new Headers(got.headers), health: summarize(health) };
}

/** Long tasks on the page since the last call, from the PerformanceObserver the init script set. */
async function longTasks(page: Page): Promise<number[]> {
  return (await page.evaluate('window.benchLong.splice(0)')) as number[];
}

function longRow(what: string, list: number[], ms: number): Row {
  const total = list.reduce((a, b) => a + b, 0);
  return {
    what: `${what}: long tasks (> 50 ms) count / longest / total`,
    value: `${list.length} / ${list.length ? fmtMs(Math.max(...list)) : '-'} / ${fmtMs(total)} in ${fmtMs(ms)}`,
  };
}

/**
 * The job page of the same job in Chromium: how long its tasks take to arrive and what that costs
 * the page's main thread; then a change (a volunteer takes a reduce task) and the refresh it causes.
 */
async function jobPage(m: MasterProc, id: string, maps: number, ctx: BenchContext): Promise<Row[]> {
  const browser = await launchBrowser();
  try {
    const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
    await context.addInitScript((t) => localStorage.setItem('tabreduce.adminToken', t), m.token);
    // Scripts go in as strings: tsx would wrap named functions in a helper the page does not have.
    await context.addInitScript(`{
      window.benchLong = [];
      new PerformanceObserver((l) => { for (const e of l.getEntries()) window.benchLong.push(e.duration); })
        .observe({ type: 'longtask', buffered: true });
    }`);
    const page = await context.newPage();
    const changes: number[] = [];
    page.on('response', (r) => {
      if (r.url().includes('changedSince=')) changes.push(performance.now());
    });
    ctx.log('tasks-route: the job page in Chromium');
    const t0 = performance.now();
    await page.goto(`${m.url}/status#/jobs/${id}`);
    const cells = page.locator('.phases .phase').first().locator('.cell');
    await until('the map cells', async () => (await cells.count()) === MAX_CELLS, 120_000, 50);
    await page.locator('.loading').waitFor({ state: 'detached', timeout: 120_000 });
    const loadMs = performance.now() - t0;
    const loading = await longTasks(page);

    // A change: a volunteer takes a reduce task, and the page asks for what changed.
    const v = await openRawClient(m.url);
    v.ws.send(
      JSON.stringify({ type: 'hello', protocol: 2, threads: 1, slots: 1, paused: false, agent: 'bench', running: [] }),
    );
    await until('a refresh with changedSince', () => changes.length > 0, 30_000, 50);
    const t1 = performance.now();
    await sleep(5_000);
    const refresh = await longTasks(page);
    const refreshMs = performance.now() - t1;
    v.ws.close();
    return [
      {
        what: `job page: ${fmtInt(maps + 10)} tasks read in pages, grid drawn (${MAX_CELLS} map cells)`,
        value: fmtMs(loadMs),
      },
      longRow('job page while loading', loading, loadMs),
      { what: 'job page refresh after a change: answers with changedSince', value: `${changes.length}` },
      longRow('job page in the 5 s after the change', refresh, refreshMs),
    ];
  } finally {
    await browser.close();
  }
}

async function run(ctx: BenchContext): Promise<BenchReport> {
  const maps = Number(ctx.options.get('tasks') ?? 200_000);
  let master = await startMaster();
  const data = master.data;
  try {
    const input = tinyTaskInput(maps, 64);
    ctx.log(`tasks-route: submitting ${fmtInt(maps)} map tasks`);
    const sub = await adminCli(master)(
      ['submit', join(EXAMPLES, 'word-count.js'), input.file, '--split-size', '64', '--reduces', '10'],
      300_000,
    );
    if (sub.code !== 0) throw new Error(`submit failed: ${sub.stderr}`);
    const id = sub.stdout.trim().split('\n')[0]!;
    await master.stop();
    ctx.log('tasks-route: writing the attempts');
    const attempts = fillAttempts(data, id);
    master = await startMaster({ data });

    const base = `/api/jobs/${id}`;
    const rows: Row[] = [{ what: 'job', value: `${fmtInt(maps)} maps + 10 reduces, ${fmtInt(attempts)} attempts` }];
    const bare: { ms: number; bytes: number; stallMax: number; stallP50: number }[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await timedFetch(master, `${base}/tasks`);
      if (r.status !== 200) throw new Error(`GET ${base}/tasks: HTTP ${r.status}`);
      bare.push({ ms: r.ms, bytes: r.body.length, stallMax: r.health.max, stallP50: r.health.p50 });
    }
    const med = (k: 'ms' | 'stallMax' | 'stallP50') => summarize(bare.map((b) => b[k])).p50;
    rows.push(
      {
        what: 'GET /tasks, whole list (median of 3)',
        value: `${fmtBytes(bare[0]!.bytes)} in ${fmtMs(med('ms'))}`,
      },
      {
        what: '/healthz meanwhile: slowest answer (median of 3) / p50',
        value: `${fmtMs(med('stallMax'))} / ${fmtMs(med('stallP50'))}`,
        target: '< 100 ms',
        met: med('stallMax') < 100,
      },
    );

    // The newer ways in; a master without them answers 404 or ignores the parameters.
    const summary = await probedFetch(master, `${base}/summary`);
    if (summary.status === 200) {
      let after = 0;
      let pages = 0;
      let stall = 0;
      const t0 = performance.now();
      for (;;) {
        const r = await probedFetch(master, `${base}/tasks?after=${after}&limit=5000`);
        pages++;
        stall = Math.max(stall, r.health.max);
        const next = r.headers.get('x-next-after');
        if (!next) break;
        after = Number(next);
      }
      const pagedMs = performance.now() - t0;
      const since = Date.now() - 60_000;
      const changed = await probedFetch(master, `${base}/tasks?changedSince=${since}`);
      rows.push(
        {
          what: `GET /tasks?after=…&limit=5000, every page (${pages} requests)`,
          value: `${fmtMs(pagedMs)}; /healthz slowest ${fmtMs(stall)}`,
        },
        {
          what: 'GET /tasks?changedSince=(a minute ago), nothing changed',
          value: `${fmtBytes(changed.body.length)} in ${fmtMs(changed.ms)}`,
        },
        { what: 'GET /summary', value: `${fmtBytes(summary.body.length)} in ${fmtMs(summary.ms)}` },
      );
    }
    if (existsSync(CHROMIUM)) rows.push(...(await jobPage(master, id, maps, ctx)));
    else ctx.log(`tasks-route: no Chromium at ${CHROMIUM}; the job page is not measured`);
    const load = (await import('node:os')).loadavg();
    return {
      name: 'tasks-route',
      title: `GET /api/jobs/:id/tasks for a job of ${fmtInt(maps)} tasks`,
      command: 'node --import tsx test/bench/tasks-route.ts',
      setup: [
        'one master from dist/; the attempts written into its database while it was stopped',
        '/healthz asked in a loop (5 ms apart) while another process reads each answer; its slowest answer is how long the event loop was held',
        `load average at the end: ${load.map((l) => l.toFixed(1)).join(' ')}`,
      ],
      rows,
      notes: [],
    };
  } finally {
    await master.stop();
  }
}

export const tasksRouteBench: Benchmark = {
  name: 'tasks-route',
  summary: 'GET /api/jobs/:id/tasks of a 200,000-task job and /healthz meanwhile',
  run,
};

if (isMainModule(import.meta.url)) runStandalone(run);
