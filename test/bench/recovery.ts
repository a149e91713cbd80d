/**
 * Issue 5, recovery: 1,000 volunteers (the real VolunteerSession: exponential backoff with full
 * jitter, kept leases, results resent after a reconnect) work on a job; the master is SIGKILLed and
 * restarted on the same data directory and port. We time the first task committed after the restart
 * and show when the volunteers came back (a herd would show as one tall bar).
 */
import { join } from 'node:path';
import { apiGet, EXAMPLES, localOutput, tempDir } from '../helpers/cluster.js';
import type { JobView, TaskView } from '../../shared/api.js';
import {
  fmtInt,
  fmtMs,
  histogram,
  sleep,
  summarize,
  tinyTaskInput,
  type BenchContext,
  type BenchReport,
  type Benchmark,
  type Row,
  tcpRow,
  commandFor,
} from './bench-kit.js';
import { startBenchMaster, type BenchMaster } from './bench-master.js';
import { readTcpCounters } from './proc-stats.js';
import { SimFleet } from './sim-fleet.js';
import { submitJob } from './load.js';

const TARGET_FIRST_COMMIT_MS = 5_000;
const JOB_DEADLINE_MS = 100_000;

async function waitForJob(master: BenchMaster, id: string, deadline: number): Promise<JobView> {
  for (;;) {
    const job = await apiGet<JobView>(master, `/api/jobs/${id}`);
    if (job.state !== 'queued' && job.state !== 'mapping' && job.state !== 'reducing') return job;
    if (Date.now() > deadline) return job;
    await sleep(200);
  }
}

async function run(ctx: BenchContext): Promise<BenchReport> {
  const volunteers = Number(ctx.options.get('volunteers') ?? 1_000);
  const processes = Number(ctx.options.get('processes') ?? 2);
  const totalTasks = Number(ctx.options.get('tasks') ?? 10_000);
  const workMs = Number(ctx.options.get('work-ms') ?? 500);
  const killAfterCommits = Number(ctx.options.get('kill-after') ?? 1_000);
  const reduces = 10;
  const module = join(EXAMPLES, 'word-count.js');
  const input = tinyTaskInput(totalTasks - reduces);
  const data = tempDir('tabreduce-bench-data-');
  let master = await startBenchMaster({ data, maxPerIp: volunteers + 100 });
  const port = master.port;
  const tcp0 = readTcpCounters();
  let fleet: SimFleet | null = null;
  try {
    ctx.log(`recovery: starting ${volunteers} volunteer sessions`);
    fleet = (
      await SimFleet.start({ mode: 'session', url: master.url, volunteers, processes, threads: 1, slots: 2, workMs })
    ).fleet;
    for (const deadline = Date.now() + 60_000; ;) {
      const s = await fleet.progress();
      if (s.open >= volunteers) break;
      if (Date.now() > deadline) throw new Error(`only ${s.open}/${volunteers} sessions connected in 60 s`);
      await sleep(200);
    }
    const id = await submitJob(master, module, [input.file], { reduces: String(reduces), splitSize: '64' });
    // The volunteers count acknowledged commits: that needs nothing from the busy master's HTTP side.
    for (const deadline = Date.now() + 60_000; ;) {
      const s = await fleet.progress();
      if ((s.acks['committed'] ?? 0) >= killAfterCommits) break;
      if (Date.now() > deadline) throw new Error(`job did not reach ${killAfterCommits} commits in 60 s`);
      await sleep(20);
    }
    ctx.log(`recovery: ${killAfterCommits}+ commits acknowledged; SIGKILL the master`);
    const killAt = Date.now();
    await master.kill();
    // A commit stamped between the signal and the exit is the old master's; count from its death.
    const deadAt = Date.now();
    master = await startBenchMaster({
      data,
      port,
      maxPerIp: volunteers + 100,
      profileDir: ctx.flags.has('profile') ? tempDir('tabreduce-bench-prof-') : undefined,
    });
    const upAt = Date.now();
    const before = await apiGet<JobView>(master, `/api/jobs/${id}`);
    ctx.log(`recovery: master back on port ${port} after ${fmtMs(upAt - killAt)}`);
    const job = await waitForJob(master, id, Date.now() + JOB_DEADLINE_MS);
    // Volunteers back off up to 10 s; give the last of them time to return before counting.
    for (const deadline = killAt + 30_000; Date.now() < deadline; await sleep(200)) {
      if ((await fleet.progress()).open >= volunteers) break;
    }
    const sims = await fleet.stats();
    const tasks = await apiGet<TaskView[]>(master, `/api/jobs/${id}/tasks`);
    const attempts = tasks.flatMap((t) => t.attempts);
    const commitsAfter = attempts
      .filter((a) => a.outcome === 'succeeded' && a.endedAt !== null && a.endedAt >= deadAt)
      .map((a) => a.endedAt!)
      .sort((a, b) => a - b);
    const firstCommit = commitsAfter[0] ?? NaN;
    const reconnects = sims.connectedAt.filter((t) => t >= killAt).map((t) => t - killAt);
    const spread = summarize(reconnects);
    const outcomes: Record<string, number> = {};
    for (const a of attempts) outcomes[a.outcome] = (outcomes[a.outcome] ?? 0) + 1;
    // The busiest 100 ms of reconnects: a thundering herd puts most of them in one such window.
    const per100 = new Map<number, number>();
    for (const r of reconnects) per100.set(Math.floor(r / 100), (per100.get(Math.floor(r / 100)) ?? 0) + 1);
    const peak100 = Math.max(0, ...per100.values());
    let exact = `not checked (job ${job.state})`;
    if (job.state === 'succeeded') {
      const output = await fetch(`${master.url}/api/jobs/${id}/output`, {
        headers: { authorization: `Bearer ${master.token}` },
      }).then((r) => r.text());
      const expected = await localOutput(module, [input.file], ['--split-size', '64', '--reduces', String(reduces)]);
      exact = output === expected ? 'yes' : 'NO';
    }
    const rows: Row[] = [
      {
        what: 'maps committed before the SIGKILL (durable, read after restart)',
        value: `${fmtInt(before.maps.done)} of ${fmtInt(before.maps.total)}`,
      },
      { what: 'master restarted and listening (SIGKILL to listening)', value: fmtMs(upAt - killAt) },
      {
        what: 'first task committed after restart, from SIGKILL',
        value: fmtMs(firstCommit - killAt),
        target: `< ${fmtMs(TARGET_FIRST_COMMIT_MS)}`,
        met: firstCommit - killAt < TARGET_FIRST_COMMIT_MS,
      },
      { what: 'first task committed after restart, from listening', value: fmtMs(firstCommit - upAt) },
      {
        what: 'volunteers reconnected',
        value: `${fmtInt(reconnects.length)} of ${fmtInt(volunteers)}`,
        met: reconnects.length >= volunteers,
      },
      {
        what: 'reconnect times from SIGKILL: p50 / p90 / last',
        value: `${fmtMs(spread.p50)} / ${fmtMs(spread.p90)} / ${fmtMs(spread.max)}`,
      },
      {
        what: 'busiest 100 ms of reconnects',
        value: `${fmtInt(peak100)} (${((peak100 / Math.max(1, reconnects.length)) * 100).toFixed(0)}% of them)`,
      },
      {
        what: 'job after the restart',
        value: `${job.state} (${fmtMs((job.finishedAt ?? NaN) - killAt)} after the kill)`,
        met: job.state === 'succeeded',
      },
      {
        what: 'attempts by outcome',
        value: Object.entries(outcomes)
          .map(([k, v]) => `${k} ${fmtInt(v)}`)
          .join(', '),
      },
      { what: 'output equals tabreduce local', value: exact, met: exact === 'yes' },
      tcpRow(tcp0),
    ];
    await fleet.stop();
    fleet = null;
    await master.stop();
    return {
      name: 'recovery',
      title: 'SIGKILL the master under 1,000 volunteers, restart, resume (issue 5)',
      command: commandFor('recovery', ctx),
      setup: [
        `${fmtInt(volunteers)} VolunteerSession instances (shared/volunteer-session.ts, default backoff 500 ms..10 s, ` +
          `full jitter) in ${processes} load-generator processes; threads 1 + prefetch 1; each task takes ${workMs} ms`,
        `word-count, ${fmtInt(totalTasks - reduces)} one-line map tasks + ${reduces} reduces; ` +
          `SIGKILL after ${fmtInt(killAfterCommits)} maps committed, restart at once on the same --data and port`,
      ],
      rows,
      notes: [
        'reconnects after the SIGKILL (per 250 ms):',
        '',
        ...histogram(reconnects, 250).map((l) => `    ${l}`),
        '',
        'commits after the SIGKILL (per 1 s):',
        '',
        ...histogram(
          commitsAfter.map((t) => t - killAt),
          1000,
        ).map((l) => `    ${l}`),
      ],
    };
  } finally {
    await fleet?.stop();
    if (master.proc.exitCode === null && master.proc.signalCode === null) await master.kill();
  }
}

export const recoveryBench: Benchmark = {
  name: 'recovery',
  summary: 'SIGKILL + restart under 1,000 volunteers: time to first commit, reconnect spread',
  run,
};
