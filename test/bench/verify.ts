/**
 * Issue 13, verify: what checking results costs. The word count over the corpus on 4 honest Node
 * volunteers, once per `--verify` mode on a fresh master, and in `adaptive` a second and third job
 * on the same master, when the volunteers have earned trust. Attempts per committed task is the
 * work a mode costs (a count, not a timing: it does not depend on how busy the box is); wall time
 * is shown beside it. Every job's output is checked against `tabreduce local`.
 */
import { apiGet, corpusFiles, EXAMPLES, localOutput, type VolunteerProc } from '../helpers/cluster.js';
import type { JobView, TaskView } from '../../shared/api.js';
import { ATTEMPT_OUTCOMES, type AttemptOutcome, type VerifyMode } from '../../shared/states.js';
import {
  commandFor,
  fmtInt,
  fmtMs,
  isMainModule,
  runStandalone,
  sleep,
  timedCli,
  type BenchContext,
  type BenchReport,
  type Benchmark,
  type Row,
} from './bench-kit.js';
import { startBenchMaster, startBenchVolunteer, type BenchMaster } from './bench-master.js';
import { join } from 'node:path';

/** The bound on adaptive's work, once trust is established, against `off`. */
const TARGET_OVERHEAD = 1.15;

interface JobRun {
  label: string;
  wallMs: number;
  tasks: number;
  attempts: Record<AttemptOutcome, number>;
  job: JobView;
  exact: boolean;
}

async function runJob(
  master: BenchMaster,
  mode: VerifyMode,
  label: string,
  flags: string[],
  expected: string,
): Promise<JobRun> {
  const module = join(EXAMPLES, 'word-count.js');
  const r = await timedCli(
    ['submit', module, ...corpusFiles(), ...flags, '--verify', mode, '--wait', '--server', master.url],
    { TABREDUCE_TOKEN: master.token },
    300_000,
  );
  const id = r.out.split('\n')[0]!;
  const job = await apiGet<JobView>(master, `/api/jobs/${id}`);
  const tasks = await apiGet<TaskView[]>(master, `/api/jobs/${id}/tasks`);
  const attempts = Object.fromEntries(ATTEMPT_OUTCOMES.map((o) => [o, 0])) as Record<AttemptOutcome, number>;
  for (const t of tasks) for (const a of t.attempts) attempts[a.outcome]++;
  const output = await fetch(`${master.url}/api/jobs/${id}/output`, {
    headers: { authorization: `Bearer ${master.token}` },
  }).then((res) => res.text());
  return { label, wallMs: r.ms, tasks: tasks.length, attempts, job, exact: output === expected };
}

async function withMaster<T>(volunteers: number, fn: (m: BenchMaster) => Promise<T>): Promise<T> {
  const master = await startBenchMaster();
  const vs: VolunteerProc[] = [];
  try {
    for (let i = 0; i < volunteers; i++) vs.push(startBenchVolunteer(master.url, 1));
    for (const deadline = Date.now() + 30_000; ; await sleep(100)) {
      const ws = await apiGet<{ state: string }[]>(master, '/api/workers');
      if (ws.filter((w) => w.state === 'connected').length >= volunteers) break;
      if (Date.now() > deadline) throw new Error(`${volunteers} volunteers did not connect in 30 s`);
    }
    return await fn(master);
  } finally {
    await Promise.all(vs.map((v) => v.kill()));
    await master.stop();
  }
}

function perTask(r: JobRun): number {
  const all = Object.values(r.attempts).reduce((a, b) => a + b, 0);
  return all / r.tasks;
}

async function run(ctx: BenchContext): Promise<BenchReport> {
  const volunteers = Number(ctx.options.get('volunteers') ?? 4);
  const flags = [
    '--split-size',
    ctx.options.get('split-size') ?? '64KiB',
    '--reduces',
    ctx.options.get('reduces') ?? '4',
  ];
  ctx.log('verify: tabreduce local for the expected output');
  const expected = await localOutput(join(EXAMPLES, 'word-count.js'), corpusFiles(), flags);
  const runs: JobRun[] = [];
  for (const mode of ['off', 'all'] as const) {
    ctx.log(`verify: --verify ${mode} on a fresh master`);
    runs.push(await withMaster(volunteers, (m) => runJob(m, mode, `${mode}`, flags, expected)));
  }
  ctx.log('verify: --verify adaptive, three jobs on one fresh master');
  await withMaster(volunteers, async (m) => {
    runs.push(await runJob(m, 'adaptive', 'adaptive, new volunteers', flags, expected));
    runs.push(await runJob(m, 'adaptive', 'adaptive, 2nd job', flags, expected));
    runs.push(await runJob(m, 'adaptive', 'adaptive, 3rd job (trust established)', flags, expected));
  });
  const off = runs[0]!;
  const rows: Row[] = runs.map((r) => {
    const a = r.attempts;
    const v = r.job.verification;
    return {
      what: `${r.label}: attempts per task (succeeded / voted / rejected / other), wall`,
      value:
        `${perTask(r).toFixed(2)} (${fmtInt(a.succeeded)} / ${fmtInt(a.voted)} / ${fmtInt(a.rejected)} / ` +
        `${fmtInt(a.failed + a.lost + a.superseded)}), ${fmtMs(r.wallMs)}; verified ${v.verified}, ` +
        `spot-checked ${v.spotChecked}, trusted ${v.trusted}, unconfirmed ${v.unconfirmed}`,
    };
  });
  const trusted = runs.at(-1)!;
  const overhead = perTask(trusted) / perTask(off);
  rows.push({
    what: 'adaptive once trusted: work against off (attempts per task)',
    value: `${overhead.toFixed(2)} x`,
    target: `< ${TARGET_OVERHEAD}`,
    met: overhead < TARGET_OVERHEAD,
  });
  rows.push({
    what: 'every output equals tabreduce local',
    value: runs.every((r) => r.exact) ? 'yes' : `NO: ${runs.filter((r) => !r.exact).map((r) => r.label)}`,
    met: runs.every((r) => r.exact),
  });
  return {
    name: 'verify',
    title: 'Verification: attempts per committed task and wall time per --verify mode (issue 13)',
    command: commandFor('verify', ctx),
    setup: [
      `word-count over the corpus (${corpusFiles().length} files), ${flags.join(' ')}: ${off.tasks} tasks`,
      `${volunteers} honest Node volunteers (1 thread each) on one address, a fresh master per mode`,
      'adaptive: three jobs in a row on the same master and volunteers; trust comes after --trust-after (10) agreeing results',
    ],
    rows,
    notes: [],
  };
}

export const verifyBench: Benchmark = {
  name: 'verify',
  summary: 'word count with 4 honest volunteers per --verify mode: attempts per task and wall time',
  run,
};

if (isMainModule(import.meta.url)) runStandalone(run);
