/**
 * Issue 5, load: 10,000 simulated volunteers connected while a job of 20,000 tiny tasks runs
 * (19,990 one-line map tasks + 10 reduces). The volunteers answer at once with real output, so the
 * master is what is measured: committed tasks/s, how fast it hands out the next task after a result,
 * how responsive its API stays, and its memory and CPU.
 */
import { readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { apiGet, EXAMPLES, localOutput, tempDir } from '../helpers/cluster.js';
import type { JobView, TaskView } from '../../shared/api.js';
import { isJobFinished } from '../../shared/states.js';
import {
  fmtBytes,
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
  readCommitCounters,
} from './bench-kit.js';
import { startBenchMaster, type BenchMaster } from './bench-master.js';
import { renderProfile, summarizeProfile } from './cpu-profile.js';
import { mapPhase, steadyRate } from './dispatch.js';
import { BoxSampler, ProcSampler, readTcpCounters } from './proc-stats.js';
import { SimFleet } from './sim-fleet.js';

const TARGET_RATE = 2_000;
/** What the volunteers offer by default: a quarter above the target (see `run`). */
const OFFERED_RATE = 2_500;
const TARGET_P99_ASSIGN_MS = 100;
const TARGET_RSS = 1024 ** 3;
/** The job must end within this, or the benchmark reports what it got and cancels it. */
const JOB_DEADLINE_MS = 120_000;

/** Submits over HTTP from this process, so no CLI start-up is timed. */
export async function submitJob(
  master: BenchMaster,
  module: string,
  files: string[],
  fields: Record<string, string>,
): Promise<string> {
  const form = new FormData();
  form.append('module', new Blob([readFileSync(module)], { type: 'text/javascript' }), basename(module));
  for (const f of files) form.append('input', new Blob([readFileSync(f)]), basename(f));
  for (const [k, v] of Object.entries(fields)) form.append(k, v);
  const res = await fetch(`${master.url}/api/jobs`, {
    method: 'POST',
    body: form,
    headers: { authorization: `Bearer ${master.token}` },
  });
  if (res.status !== 201) throw new Error(`submit: HTTP ${res.status} ${await res.text()}`);
  return ((await res.json()) as { id: string }).id;
}

/**
 * GETs `url` again 100 ms after each answer until stopped. A request still waiting at the stop
 * counts with the time it has waited so far, so a master that never answers shows as slow, not as
 * missing.
 */
function poll(url: string, token: string) {
  const ms: number[] = [];
  let running = true;
  let inFlightSince = 0;
  const loop = (async () => {
    while (running) {
      inFlightSince = performance.now();
      try {
        const res = await fetch(url, {
          headers: { authorization: `Bearer ${token}` },
          signal: AbortSignal.timeout(180_000),
        });
        await res.arrayBuffer();
      } catch {
        // counted below as the time waited
      }
      if (!running) break; // stop() already counted this one
      ms.push(performance.now() - inFlightSince);
      inFlightSince = 0;
      await sleep(100);
    }
  })();
  return {
    async stop(): Promise<number[]> {
      running = false;
      if (inFlightSince > 0) ms.push(performance.now() - inFlightSince);
      await Promise.race([loop, sleep(5_000)]);
      return ms;
    },
  };
}

async function run(ctx: BenchContext): Promise<BenchReport> {
  const volunteers = Number(ctx.options.get('volunteers') ?? 10_000);
  const processes = Number(ctx.options.get('processes') ?? 4);
  const totalTasks = Number(ctx.options.get('tasks') ?? 20_000);
  // The master's default; `--verify off` for the first-result-commits figure to compare with.
  const verify = ctx.options.get('verify') ?? 'adaptive';
  const reduces = 10;
  // Each volunteer "computes" for a random time averaging thinkMs, so N volunteers offer N / thinkMs
  // tasks/s if the master answered in no time. By default they offer OFFERED_RATE: at exactly the
  // target, each volunteer's cycle is its think time plus the master's latency, so the committed
  // rate could only approach 2,000/s from below and would never show whether the master sustains
  // it. With --think-ms 0 they answer at once and the master is saturated; then every volunteer
  // waits in its queue and, by Little's law, the result-to-assign latency is just volunteers /
  // throughput, which says nothing about the master.
  const offered = Number(ctx.options.get('offered') ?? OFFERED_RATE);
  const thinkMs = Number(ctx.options.get('think-ms') ?? Math.round((volunteers / offered) * 1000));
  const profile = ctx.flags.has('profile');
  const module = join(EXAMPLES, 'word-count.js');
  const input = tinyTaskInput(totalTasks - reduces);
  const master = await startBenchMaster({
    profileDir: profile ? tempDir('tabreduce-bench-prof-') : undefined,
    maxPerIp: volunteers + 100,
  });
  const sampler = new ProcSampler(master.pid);
  const tcp0 = readTcpCounters();
  const box = new BoxSampler();
  let fleet: SimFleet | null = null;
  try {
    ctx.log(`load: master at ${master.url} (pid ${master.pid}); connecting ${volunteers} simulated volunteers`);
    fleet = (
      await SimFleet.start({
        mode: 'raw',
        url: master.url,
        volunteers,
        processes,
        threads: 1,
        slots: 1,
        workMs: thinkMs,
      })
    ).fleet;
    const connected = (await fleet.progress()).connected;
    ctx.log(`load: ${connected} connected; submitting ${totalTasks} tasks`);
    const commits0 = await readCommitCounters(master.url);
    const submitAt = Date.now();
    const id = await submitJob(master, module, [input.file], { reduces: String(reduces), splitSize: '64', verify });
    const submittedAt = Date.now();
    // Two pollers of their own, so a slow answer to one does not hide the other; the job's end is
    // read from the volunteers' acks, which needs nothing from the master's HTTP side.
    const apiPoll = poll(`${master.url}/api/jobs/${id}`, master.token);
    const healthPoll = poll(`${master.url}/healthz`, master.token);
    for (;;) {
      const s = await fleet.progress();
      // A vote is acknowledged as a commit is, so with verification on the job's state says when it ended.
      const acked = (s.acks['committed'] ?? 0) >= totalTasks;
      if (acked && (verify === 'off' || isJobFinished((await apiGet<JobView>(master, `/api/jobs/${id}`)).state))) break;
      if (Date.now() - submitAt > JOB_DEADLINE_MS) break;
      await sleep(250);
    }
    const commits1 = await readCommitCounters(master.url);
    const apiMs = await apiPoll.stop();
    const healthMs = await healthPoll.stop();
    const job = await apiGet<JobView>(master, `/api/jobs/${id}`);
    const finishedInTime = job.state === 'succeeded';
    const end = Date.now();
    const sims = await fleet.stats();
    const tasks = await apiGet<TaskView[]>(master, `/api/jobs/${id}/tasks`);
    const ph = mapPhase(tasks);
    const allCommits = tasks
      .flatMap((t) => t.attempts)
      .filter((a) => a.outcome === 'succeeded' && a.endedAt !== null)
      .map((a) => a.endedAt!)
      .sort((a, b) => a - b);
    const jobMs = (allCommits.at(-1) ?? NaN) - ph.firstStart;
    const jobRate = (allCommits.length / jobMs) * 1000;
    const mapMs = ph.lastCommit - ph.firstStart;
    const mapRate = (ph.commits.length / mapMs) * 1000;
    const next = summarize(sims.nextAssignMs);
    const first = summarize(sims.firstAssignAt.map((t) => t - job.createdAt));
    const api = summarize(apiMs);
    const health = summarize(healthMs);
    const cpu = sampler.cpuPercent(ph.firstStart, allCommits.at(-1) ?? end);
    const masterMsPerTask = sampler.cpuMs(ph.firstStart, allCommits.at(-1) ?? end) / allCommits.length;
    const simCpu = fleet.cpuPercent(ph.firstStart, allCommits.at(-1) ?? end);
    const boxCpu = box.cpuPercent(ph.firstStart, allCommits.at(-1) ?? end);
    // The steady window (10th to 90th percentile commit) leaves out the first wave and the idle
    // tail, when 10,000 volunteers heartbeat and few tasks commit.
    const s0 = allCommits[Math.floor(allCommits.length * 0.1)] ?? NaN;
    const s1 = allCommits[Math.floor(allCommits.length * 0.9)] ?? NaN;
    const steadyCpu = sampler.cpuPercent(s0, s1);
    const steadyMsPerTask =
      sampler.cpuMs(s0, s1) / (Math.floor(allCommits.length * 0.9) - Math.floor(allCommits.length * 0.1));
    const rss = sampler.peakRss();
    let exact = 'not checked (job did not finish)';
    if (finishedInTime) {
      const output = await fetch(`${master.url}/api/jobs/${id}/output`, {
        headers: { authorization: `Bearer ${master.token}` },
      }).then((r) => r.text());
      const expected = await localOutput(module, [input.file], ['--split-size', '64', '--reduces', String(reduces)]);
      exact = output === expected ? 'yes' : 'NO';
    }
    const attemptsPerTask = tasks.reduce((n, t) => n + t.attempts.length, 0) / tasks.length;
    const rows: Row[] = [
      { what: `--verify ${verify}: attempts per task`, value: attemptsPerTask.toFixed(2) },
      {
        what: 'simulated volunteers connected',
        value: fmtInt(connected),
        target: fmtInt(volunteers),
        met: connected >= volunteers,
      },
      {
        what: 'job',
        value: finishedInTime
          ? `${fmtInt(allCommits.length)} tasks committed`
          : `did not finish in ${JOB_DEADLINE_MS / 1000} s: ${job.state}, ${fmtInt(allCommits.length)}/${fmtInt(totalTasks)} committed`,
        met: finishedInTime,
      },
      {
        // jobAdded() dispatches before the 201 goes out, so this includes handing out the first wave.
        what: `POST /api/jobs (upload, split, queue ${fmtInt(totalTasks)} tasks, first wave of assigns)`,
        value: fmtMs(submittedAt - submitAt),
      },
      {
        what: 'committed tasks/s (first assign to last commit)',
        value: `${fmtInt(jobRate)} (${fmtMs(jobMs)})`,
      },
      {
        // Each volunteer runs about two tasks, so ramp-up and tail weigh on the whole-job average.
        what: 'committed tasks/s, steady (10th to 90th percentile commit)',
        value: fmtInt(steadyRate(allCommits)),
        target: `>= ${fmtInt(TARGET_RATE)}`,
        met: steadyRate(allCommits) >= TARGET_RATE,
      },
      { what: 'committed map tasks/s (map phase)', value: `${fmtInt(mapRate)} (${fmtMs(mapMs)})` },
      {
        what: 'assignment latency p50 / p99 (result sent to next assign)',
        value: `${fmtMs(next.p50)} / ${fmtMs(next.p99)} (max ${fmtMs(next.max)}, n=${fmtInt(next.n)})`,
        target: `p99 < ${TARGET_P99_ASSIGN_MS} ms`,
        met: next.p99 < TARGET_P99_ASSIGN_MS,
      },
      {
        what: 'first wave: job created to first assign, p50 / p99',
        value: `${fmtMs(first.p50)} / ${fmtMs(first.p99)} (n=${fmtInt(first.n)})`,
      },
      {
        what: 'GET /api/jobs/:id while loaded, p50 / p99',
        value: `${fmtMs(api.p50)} / ${fmtMs(api.p99)} (max ${fmtMs(api.max)}, n=${api.n})`,
      },
      { what: 'GET /healthz while loaded, p50 / p99', value: `${fmtMs(health.p50)} / ${fmtMs(health.p99)}` },
      { what: 'master peak RSS', value: fmtBytes(rss), target: `< ${fmtBytes(TARGET_RSS)}`, met: rss < TARGET_RSS },
      { what: 'master CPU during the job (% of one core)', value: `${cpu.toFixed(0)}%` },
      { what: 'master CPU per committed task', value: `${masterMsPerTask.toFixed(2)} ms` },
      {
        what: 'master CPU in the steady window: % of one core, per committed task',
        value: `${steadyCpu.toFixed(0)}%, ${steadyMsPerTask.toFixed(2)} ms`,
      },
      {
        what: 'group commits during the job: count, per second, time in COMMIT',
        value: (() => {
          const n = commits1.commits - commits0.commits;
          const s = commits1.seconds - commits0.seconds;
          return `${fmtInt(n)}, ${fmtInt(n / ((end - submitAt) / 1000))}/s, ${fmtMs(s * 1000)} (${((s * 1e6) / n).toFixed(0)} µs each)`;
        })(),
      },
      { what: `${processes} load generators' CPU during the job`, value: `${simCpu.toFixed(0)}%` },
      {
        what: 'other programs on the box during the job',
        value: `${Math.max(0, boxCpu - cpu - simCpu).toFixed(0)}% (box total ${boxCpu.toFixed(0)}% of 200%)`,
      },
      {
        what: 'acks seen by the volunteers',
        value: Object.entries(sims.acks)
          .map(([k, v]) => `${k} ${fmtInt(v)}`)
          .join(', '),
      },
      {
        what: 'attempts by outcome (maps)',
        value: Object.entries(ph.outcomes)
          .map(([k, v]) => `${k} ${fmtInt(v)}`)
          .join(', '),
      },
      {
        what: 'sockets closed by the master',
        value:
          Object.entries(sims.closedByMaster)
            .map(([code, n]) => `${n} x ${code}`)
            .join(', ') || '0',
      },
      { what: 'output equals tabreduce local', value: exact, met: exact === 'yes' },
      tcpRow(tcp0),
    ];
    if (!finishedInTime) {
      await fetch(`${master.url}/api/jobs/${id}/cancel`, {
        method: 'POST',
        headers: { authorization: `Bearer ${master.token}` },
      }).catch(() => undefined);
    }
    await fleet.stop();
    fleet = null;
    sampler.stop();
    box.stop();
    await master.stop();
    const notes = [
      'commits per second over the job (from the attempts):',
      '',
      ...histogram(
        allCommits.map((t) => t - ph.firstStart),
        1000,
      ).map((l) => `    ${l}`),
      '',
      'assignment latency (result sent to next assign), distribution:',
      '',
      ...histogram(sims.nextAssignMs, Math.max(5, Math.ceil(next.p99 / 10 / 5) * 5)).map((l) => `    ${l}`),
    ];
    const prof = master.profile();
    if (prof) notes.push('', ...renderProfile(summarizeProfile(prof), 'CPU profile of the master (connect + job)'));
    return {
      name: 'load',
      title: `${fmtInt(volunteers)} volunteers and a job of ${fmtInt(totalTasks)} tiny tasks (issue 5)`,
      command: commandFor('load', ctx),
      setup: [
        `${fmtInt(volunteers)} simulated volunteers (raw protocol, threads 1, slots 1) from ${processes} load-generator processes`,
        `word-count over one file of ${fmtInt(totalTasks - reduces)} lines (${fmtBytes(input.bytes)}), --split-size 64 ` +
          `(one line per map task), --reduces ${reduces}: ${fmtInt(totalTasks)} tasks`,
        'volunteers compute real output with the shared engine (microseconds), then hold it for a random ' +
          (thinkMs > 0
            ? `${fmtMs(thinkMs / 2)}..${fmtMs(1.5 * thinkMs)}: ${fmtInt((volunteers / thinkMs) * 1000)} tasks/s offered`
            : '0 ms: as fast as the master can take them (saturation; latency is then volunteers / rate)'),
        'GET /api/jobs/:id and /healthz polled every 100 ms while the job runs',
      ],
      rows,
      notes,
    };
  } finally {
    await fleet?.stop();
    sampler.stop();
    box.stop();
    if (master.proc.exitCode === null && master.proc.signalCode === null) await master.kill();
  }
}

export const loadBench: Benchmark = {
  name: 'load',
  summary: '10,000 simulated volunteers + a 20,000-task job: tasks/s, assignment latency, API latency, RSS',
  run,
};
