/**
 * Issue 2, dispatch: committed map tasks per second through one master with durable SQLite, fed by
 * 4 `tabreduce volunteer` processes with 2 threads each, on the corpus split at 1 KiB (~3,300 maps).
 * The rate comes from the attempts' own times (first map assigned to last map committed), so the
 * upload and the reduce phase are not in it.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import {
  adminCli,
  apiGet,
  corpusFiles,
  CORPUS_DIR,
  EXAMPLES,
  localOutput,
  tempDir,
  type VolunteerProc,
} from '../helpers/cluster.js';
import type { JobView, TaskView } from '../../shared/api.js';
import {
  fmtBytes,
  fmtInt,
  fmtMs,
  histogram,
  sleep,
  summarize,
  type BenchContext,
  type BenchReport,
  type Benchmark,
  commandFor,
  tinyTaskInput,
} from './bench-kit.js';
import { startBenchMaster, startBenchVolunteer } from './bench-master.js';
import { BoxSampler, ProcSampler } from './proc-stats.js';
import { renderProfile, summarizeProfile } from './cpu-profile.js';

const TARGET_PER_SECOND = 2_000;

export interface PhaseTimes {
  maps: number;
  /** First map attempt started, last map attempt committed (epoch ms). */
  firstStart: number;
  lastCommit: number;
  /** Commit times of the maps, sorted. */
  commits: number[];
  outcomes: Record<string, number>;
}

/** Map-phase timing from `GET /api/jobs/:id/tasks`: the master's own record of every attempt. */
export function mapPhase(tasks: TaskView[]): PhaseTimes {
  const maps = tasks.filter((t) => t.phase === 'map');
  const outcomes: Record<string, number> = {};
  let firstStart = Infinity;
  const commits: number[] = [];
  for (const t of maps) {
    for (const a of t.attempts) {
      outcomes[a.outcome] = (outcomes[a.outcome] ?? 0) + 1;
      firstStart = Math.min(firstStart, a.startedAt);
      if (a.outcome === 'succeeded' && a.endedAt !== null) commits.push(a.endedAt);
    }
  }
  commits.sort((a, b) => a - b);
  return { maps: maps.length, firstStart, lastCommit: commits.at(-1) ?? NaN, commits, outcomes };
}

/** Commits per second between the 10th and 90th percentile commit: the steady state, no ramp-up or tail. */
export function steadyRate(commits: number[]): number {
  if (commits.length < 20) return NaN;
  const a = commits[Math.floor(commits.length * 0.1)]!;
  const b = commits[Math.floor(commits.length * 0.9)]!;
  return b > a ? ((Math.floor(commits.length * 0.9) - Math.floor(commits.length * 0.1)) / (b - a)) * 1000 : NaN;
}

async function run(ctx: BenchContext): Promise<BenchReport> {
  const volunteers = Number(ctx.options.get('volunteers') ?? 4);
  const threads = Number(ctx.options.get('threads') ?? 2);
  const splitSize = ctx.options.get('split-size') ?? '1KiB';
  // The master's default; `--verify off` for the first-result-commits figure to compare with.
  const verify = ctx.options.get('verify') ?? 'adaptive';
  const profile = ctx.flags.has('profile');
  const profileDir = profile ? tempDir('tabreduce-bench-prof-') : undefined;
  // Volunteers stop with SIGTERM when profiled, so each thread writes its profile.
  const volProfileDir = ctx.flags.has('profile-volunteers') ? tempDir('tabreduce-bench-vprof-') : undefined;
  const module = join(EXAMPLES, 'word-count.js');
  const inputs = corpusFiles();

  const master = await startBenchMaster({ profileDir });
  const sampler = new ProcSampler(master.pid);
  const box = new BoxSampler();
  const vols: VolunteerProc[] = [];
  let volSamplers: ProcSampler[] = [];
  try {
    for (let i = 0; i < volunteers; i++) vols.push(startBenchVolunteer(master.url, threads, volProfileDir));
    volSamplers = vols.map((v) => new ProcSampler(v.proc.pid!, 200, true));
    const deadline = Date.now() + 20_000;
    while ((await apiGet<unknown[]>(master, '/api/workers')).length < volunteers) {
      if (Date.now() > deadline) throw new Error(`volunteers did not connect:\n${vols[0]!.output()}`);
      await sleep(100);
    }
    // Volunteers start their sandbox processes at their first task; a sandbox's start-up (~0.3 s)
    // is not dispatch, so a small job first warms every thread, as long-lived volunteers would be.
    const warm = tinyTaskInput(volunteers * threads * 8);
    const w = await adminCli(master)(['submit', module, warm.file, '--split-size', '64', '--reduces', '1', '--wait']);
    if (w.code !== 0) throw new Error(`warm-up job failed: ${w.stderr}`);
    ctx.log(`dispatch: ${volunteers} volunteers x ${threads} threads connected and warm; submitting`);
    const submitStart = Date.now();
    const sub = await adminCli(master)([
      'submit',
      module,
      ...inputs,
      '--split-size',
      splitSize,
      '--reduces',
      '2',
      '--name',
      'bench-dispatch',
      '--verify',
      verify,
    ]);
    if (sub.code !== 0) throw new Error(`submit failed: ${sub.stderr}`);
    const id = sub.stdout.split('\n')[0]!.trim();
    const submitted = Date.now();
    let job: JobView;
    for (;;) {
      job = await apiGet<JobView>(master, `/api/jobs/${id}`);
      if (job.state === 'succeeded' || job.state === 'failed' || job.state === 'cancelled') break;
      if (Date.now() - submitted > 150_000)
        throw new Error(`job ${id} did not finish in 150 s: ${JSON.stringify(job)}`);
      await sleep(100);
    }
    if (job.state !== 'succeeded') throw new Error(`job ${id} ${job.state}: ${job.error}`);
    const tasks = await apiGet<TaskView[]>(master, `/api/jobs/${id}/tasks`);
    const ph = mapPhase(tasks);
    const mapMs = ph.lastCommit - ph.firstStart;
    const rate = (ph.maps / mapMs) * 1000;
    const steady = steadyRate(ph.commits);
    const masterCpu = sampler.cpuPercent(ph.firstStart, ph.lastCommit);
    const volCpu = volSamplers.reduce((n, s) => n + s.cpuPercent(ph.firstStart, ph.lastCommit), 0);
    const boxCpu = box.cpuPercent(ph.firstStart, ph.lastCommit);
    const masterMsPerTask = sampler.cpuMs(ph.firstStart, ph.lastCommit) / ph.maps;
    const volMsPerTask = volSamplers.reduce((n, s) => n + s.cpuMs(ph.firstStart, ph.lastCommit), 0) / ph.maps;
    const output = await fetch(`${master.url}/api/jobs/${id}/output`, {
      headers: { authorization: `Bearer ${master.token}` },
    }).then((r) => r.text());
    const expected = await localOutput(module, inputs, ['--split-size', splitSize, '--reduces', '2']);
    const rows = [
      { what: 'map tasks', value: fmtInt(ph.maps) },
      { what: 'map phase (first assign to last commit)', value: fmtMs(mapMs) },
      {
        what: 'committed map tasks/s (whole map phase)',
        value: fmtInt(rate),
        target: `>= ${fmtInt(TARGET_PER_SECOND)}`,
        met: rate >= TARGET_PER_SECOND,
      },
      { what: 'committed map tasks/s (steady, 10th-90th pct commit)', value: fmtInt(steady) },
      { what: 'upload + split + queue (submit to job id)', value: fmtMs(submitted - submitStart) },
      { what: 'whole job (submit to succeeded)', value: fmtMs((job.finishedAt ?? NaN) - submitStart) },
      { what: 'master CPU during map phase (% of one core)', value: `${masterCpu.toFixed(0)}%` },
      { what: `${volunteers} volunteer processes' CPU during map phase`, value: `${volCpu.toFixed(0)}%` },
      {
        what: 'other programs on the box during map phase',
        value: `${Math.max(0, boxCpu - masterCpu - volCpu).toFixed(0)}% (box total ${boxCpu.toFixed(0)}% of 200%)`,
      },
      { what: 'master CPU per committed map task', value: `${masterMsPerTask.toFixed(2)} ms` },
      { what: 'volunteers CPU per committed map task', value: `${volMsPerTask.toFixed(2)} ms` },
      {
        what: 'ceiling: master alone on one core / whole job on 2 cores',
        value: `${fmtInt(1000 / masterMsPerTask)} / ${fmtInt(2000 / (masterMsPerTask + volMsPerTask))} tasks/s`,
      },
      { what: 'master peak RSS', value: fmtBytes(sampler.peakRss()) },
      {
        what: 'map attempts by outcome',
        value: Object.entries(ph.outcomes)
          .map(([k, v]) => `${k} ${v}`)
          .join(', '),
      },
      { what: 'output equals tabreduce local', value: output === expected ? 'yes' : 'NO', met: output === expected },
    ];
    sampler.stop();
    box.stop();
    for (const s of volSamplers) s.stop();
    await Promise.all(vols.map((v) => v.kill(volProfileDir ? 'SIGTERM' : 'SIGKILL')));
    await master.stop();
    const durations = tasks
      .filter((t) => t.phase === 'map')
      .flatMap((t) => t.attempts.map((a) => (a.endedAt ?? NaN) - a.startedAt));
    const d = summarize(durations);
    rows.splice(4, 0, {
      what: 'map attempt round trip p50 / p99 (assigned to committed)',
      value: `${fmtMs(d.p50)} / ${fmtMs(d.p99)}`,
    });
    const notes: string[] = [
      'commits over the map phase (per 0.5 s):',
      '',
      ...histogram(
        ph.commits.map((t) => t - ph.firstStart),
        500,
      ).map((l) => `    ${l}`),
      '',
      `The box has 2 cores shared by the master and ${volunteers} volunteers (each a process plus ${threads} ` +
        `sandbox processes running the job's code, counted with it), so master CPU near 100% means the master's one thread is the bottleneck; ` +
        'a total near 200% means the box is.',
    ];
    const prof = master.profile();
    if (prof) notes.push('', ...renderProfile(summarizeProfile(prof), 'CPU profile of the master (whole run)'));
    else if (!profile) notes.push(`Add --profile to profile the master: npm run bench -- dispatch --profile`);
    if (volProfileDir) notes.push('', ...volunteerProfiles(volProfileDir));
    return {
      name: 'dispatch',
      title: 'committed map tasks per second through the master (issue 2)',
      command: commandFor('dispatch', ctx),
      setup: [
        `word-count over ${CORPUS_DIR.replace(/^.*\/test\//, 'test/')}/*.txt (${inputs.length} files), --split-size ${splitSize}, --reduces 2, --verify ${verify}`,
        `${volunteers} \`tabreduce volunteer --threads ${threads}\` processes (prefetch = threads), master with SQLite WAL in a temp dir`,
        `volunteers warmed first with a ${volunteers * threads * 8}-task job (their sandbox processes start at the first task)`,
        profile ? 'master run under `node --cpu-prof` (the profiler costs a few % of the rate)' : 'master not profiled',
      ],
      rows,
      notes,
    };
  } finally {
    sampler.stop();
    box.stop();
    for (const s of volSamplers) s.stop();
    await Promise.all(vols.map((v) => v.kill()));
    if (master.proc.exitCode === null && master.proc.signalCode === null) await master.kill();
  }
}

/** One summary for the volunteers' main threads together and one for their worker threads together. */
function volunteerProfiles(dir: string): string[] {
  const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'));
  // Node names profiles CPU.<date>.<time>.<pid>.<thread id>.<seq>.cpuprofile; thread 0 is the main thread.
  const main = files.filter((f) => f.split('.')[4] === '0').map((f) => join(dir, f));
  const workers = files.filter((f) => f.split('.')[4] !== '0').map((f) => join(dir, f));
  const out: string[] = [];
  if (main[0]) out.push(...renderProfile(summarizeProfile(main[0]), `CPU profile of one volunteer's main thread`), '');
  if (workers[0])
    out.push(...renderProfile(summarizeProfile(workers[0]), `CPU profile of one volunteer worker thread`));
  return out;
}

export const dispatchBench: Benchmark = {
  name: 'dispatch',
  summary: 'committed map tasks/s: 4 Node volunteers x 2 threads, corpus at 1 KiB splits',
  run,
};
