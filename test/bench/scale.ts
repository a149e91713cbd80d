/**
 * Issue 15, scaling out: one word count on 1, 2, 4 and 8 `tabreduce volunteer --threads 1`
 * processes, each count on a master of its own, against `tabreduce local` on the same files. This
 * machine has 2 cores, so past 2 volunteers they only share them; what the table shows beyond that
 * is the cost of more volunteers, not more speed. Its other half is the master's side: CPU per task
 * and per MiB of input in each run, from which the README's model says where one master saturates
 * when volunteers bring their own cores.
 *
 *   npm run bench -- scale                          # 60 MiB, 1/2/4/8 volunteers
 *   npm run bench -- scale --megabytes 30 --counts 1,2
 */
import { join } from 'node:path';
import { apiGet, EXAMPLES, tempDir } from '../helpers/cluster.js';
import type { JobView, TaskView } from '../../shared/api.js';
import {
  commandFor,
  fmtBytes,
  fmtMs,
  timedCli,
  type BenchContext,
  type BenchReport,
  type Benchmark,
  type Row,
} from './bench-kit.js';
import { startBenchMaster, startBenchVolunteer } from './bench-master.js';
import { joinedParts, phaseSpan, repeatedCorpus, waitVolunteers } from './job-run.js';
import { cpuMsOf, descendants, ProcSampler } from './proc-stats.js';

interface ScaleRun {
  volunteers: number;
  wallMs: number;
  mapMs: number;
  masterCpuMs: number;
  volunteerCpuMs: number;
  tasks: number;
  exact: boolean;
}

async function runWith(
  volunteers: number,
  args: string[],
  expected: string,
  log: (line: string) => void,
): Promise<ScaleRun> {
  const master = await startBenchMaster();
  const procs = Array.from({ length: volunteers }, () => startBenchVolunteer(master.url, 1));
  const sampler = new ProcSampler(master.pid);
  try {
    await waitVolunteers(master, volunteers);
    log(`scale: ${volunteers} volunteer(s) connected; submitting with --wait`);
    const pids = () => procs.flatMap((p) => [p.proc.pid!, ...descendants(p.proc.pid!)]);
    const cpu0 = cpuMsOf(pids());
    const submitAt = Date.now();
    const dist = await timedCli(
      ['submit', ...args, '--wait', '--server', master.url],
      { TABREDUCE_TOKEN: master.token },
      900_000,
    );
    const volunteerCpuMs = cpuMsOf(pids()) - cpu0;
    const masterCpuMs = sampler.cpuMs(submitAt, submitAt + dist.ms);
    const job = (await apiGet<JobView[]>(master, '/api/jobs'))[0]!;
    const tasks = await apiGet<TaskView[]>(master, `/api/jobs/${job.id}/tasks`);
    const maps = phaseSpan(tasks, 'map');
    const output = await fetch(`${master.url}/api/jobs/${job.id}/output`, {
      headers: { authorization: `Bearer ${master.token}` },
    }).then((r) => r.text());
    return {
      volunteers,
      wallMs: dist.ms,
      mapMs: maps.end - maps.start,
      masterCpuMs,
      volunteerCpuMs,
      tasks: tasks.length,
      exact: output === expected,
    };
  } finally {
    sampler.stop();
    await Promise.all(procs.map((p) => p.kill()));
    await master.stop();
  }
}

async function run(ctx: BenchContext): Promise<BenchReport> {
  const megabytes = Number(ctx.options.get('megabytes') ?? 60);
  const counts = (ctx.options.get('counts') ?? '1,2,4,8').split(',').map(Number);
  if (counts.some((n) => !Number.isInteger(n) || n < 1)) throw new Error('--counts takes whole numbers, like 1,2,4,8');
  const reduces = ctx.options.get('reduces') ?? '8';
  const module = join(EXAMPLES, 'word-count.js');
  ctx.log(`scale: writing ~${megabytes} MB of input`);
  const input = repeatedCorpus(megabytes * 1024 ** 2);
  const flags = ['--reduces', reduces];

  ctx.log('scale: tabreduce local');
  const localOut = tempDir('tabreduce-bench-local-');
  const local = await timedCli(['local', module, ...input.files, ...flags, '--out', localOut], {}, 900_000);
  const expected = joinedParts(localOut);

  const runs: ScaleRun[] = [];
  for (const n of counts) runs.push(await runWith(n, [module, ...input.files, ...flags], expected, ctx.log));

  const mib = input.total / 1024 ** 2;
  const one = runs.find((r) => r.volunteers === 1) ?? runs[0]!;
  const rows: Row[] = [
    { what: 'input', value: `${fmtBytes(input.total)} in ${input.files.length} files` },
    {
      what: 'tabreduce local (wall / CPU)',
      value: `${fmtMs(local.ms)} / ${fmtMs(local.cpuMs)}: ${(mib / (local.ms / 1000)).toFixed(1)} MiB/s`,
    },
  ];
  for (const r of runs) {
    rows.push({
      what: `${r.volunteers} volunteer${r.volunteers === 1 ? '' : 's'} × 1 thread`,
      value:
        `${fmtMs(r.wallMs)} (${(mib / (r.wallMs / 1000)).toFixed(1)} MiB/s; ${(one.wallMs / r.wallMs).toFixed(2)} × one volunteer, ` +
        `${(local.ms / r.wallMs).toFixed(2)} × local); maps ${fmtMs(r.mapMs)}; ` +
        `master CPU ${fmtMs(r.masterCpuMs)} = ${(r.masterCpuMs / r.tasks).toFixed(2)} ms per task, ` +
        `${(r.masterCpuMs / mib).toFixed(1)} ms per MiB; volunteers' CPU ${fmtMs(r.volunteerCpuMs)}`,
      met: r.exact,
    });
  }
  // The master's ceiling if it did nothing else: its CPU per MiB and per task, from the run with
  // the most volunteers that still had the cores to itself (two volunteers on two cores, or fewer).
  const ref = runs.filter((r) => r.volunteers <= 2).at(-1) ?? one;
  const perMib = ref.masterCpuMs / mib;
  const perTask = ref.masterCpuMs / ref.tasks;
  rows.push({
    what: "the master's ceiling on one core, from the run with ≤ 2 volunteers",
    value:
      `${(1000 / perMib).toFixed(0)} MiB/s of input for this job (${perMib.toFixed(1)} ms of master CPU per MiB, ` +
      `${perTask.toFixed(2)} ms per task of ${fmtBytes(input.total / Math.max(1, ref.tasks))} on average)`,
  });
  rows.push({
    what: 'outputs equal local',
    value: runs.every((r) => r.exact) ? 'yes' : 'NO',
    met: runs.every((r) => r.exact),
  });
  return {
    name: 'scale',
    title: 'word count on 1, 2, 4, 8 Node volunteers vs tabreduce local (issue 15)',
    command: commandFor('scale', ctx),
    setup: [
      `word-count over the corpus copied to ${fmtBytes(input.total)}, default --split-size 4MiB, --reduces ${reduces}`,
      'each count of `tabreduce volunteer --threads 1` processes on a master of its own; wall from submit --wait start to exit, upload included',
      'this box has 2 cores: beyond 2 volunteers they share them with each other and the master',
    ],
    rows,
    notes: [],
  };
}

export const scaleBench: Benchmark = {
  name: 'scale',
  summary: 'word count on 1/2/4/8 Node volunteers vs local, and the master CPU per task and MiB (--megabytes 60)',
  run,
};
