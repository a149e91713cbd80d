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
 * Run alone: `node --import tsx test/bench/tasks-route.ts [--tasks 200000]` (after `npm run build`).
 */
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { adminCli, EXAMPLES, startMaster, removeTempDirs, type MasterProc } from '../helpers/cluster.js';
import {
  fmtBytes,
  fmtInt,
  fmtMs,
  renderReport,
  sleep,
  summarize,
  tinyTaskInput,
  type BenchContext,
  type BenchReport,
  type Benchmark,
  type Row,
} from './bench-kit.js';

/** Gives every map task of `jobId` one succeeded attempt (1% a failed one before it), as if run. */
function fillAttempts(dataDir: string, jobId: string): number {
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

/** Fetches `path` to its last byte while asking `/healthz` in a loop; the slowest answer is the stall. */
async function timedFetch(m: MasterProc, path: string) {
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
  const t0 = performance.now();
  const res = await fetch(`${m.url}${path}`, { headers: { authorization: `Bearer ${m.token}` } });
  const body = await res.text();
  const ms = performance.now() - t0;
  done = true;
  await probe;
  return { status: res.status, headers: res.headers, body, ms, health: summarize(health) };
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
    const summary = await timedFetch(master, `${base}/summary`);
    if (summary.status === 200) {
      let after = 0;
      let pages = 0;
      let stall = 0;
      const t0 = performance.now();
      for (;;) {
        const r = await timedFetch(master, `${base}/tasks?after=${after}&limit=5000`);
        pages++;
        stall = Math.max(stall, r.health.max);
        const next = r.headers.get('x-next-after');
        if (!next) break;
        after = Number(next);
      }
      const pagedMs = performance.now() - t0;
      const since = Date.now() - 60_000;
      const changed = await timedFetch(master, `${base}/tasks?changedSince=${since}`);
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
    const load = (await import('node:os')).loadavg();
    return {
      name: 'tasks-route',
      title: `GET /api/jobs/:id/tasks for a job of ${fmtInt(maps)} tasks`,
      command: 'node --import tsx test/bench/tasks-route.ts',
      setup: [
        'one master from dist/; the attempts written into its database while it was stopped',
        '/healthz asked in a loop (5 ms apart) while each request is served; its slowest answer is how long the event loop was held',
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

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!)) {
  const options = new Map<string, string>();
  const argv = process.argv.slice(2);
  for (let i = 0; i + 1 < argv.length; i += 2) options.set(argv[i]!.replace(/^--/, ''), argv[i + 1]!);
  const log = (line: string) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
  run({ flags: new Set(), options, log })
    .then((r) => process.stdout.write(`${renderReport(r)}\n`))
    .catch((e: unknown) => {
      process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
      process.exitCode = 1;
    })
    .finally(() => removeTempDirs());
}
