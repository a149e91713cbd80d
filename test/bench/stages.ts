/**
 * Issue 15, stages: one word count's wall time and CPU broken into its stages, for `tabreduce
 * local`, one Node volunteer with one thread, and one browser tab with one thread, on the same input
 * in the same run. The master's side comes from the job's attempts (upload and split, map phase,
 * barrier, reduce phase, output); the volunteer's from its session's stage times (input fetch, the
 * executor's run with the hand-off to the job's worker, the job's code, the report), which the Node
 * volunteer prints when it stops and a tab keeps on its page (`data-stages`).
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { CLI, EXAMPLES, ROOT, apiGet, tempDir } from '../helpers/cluster.js';
import { CHROMIUM, CHROMIUM_ARGS } from '../helpers/browser.js';
import type { JobView, TaskView } from '../../shared/api.js';
import type { StageTimes } from '../../shared/volunteer-session.js';
import { noStageTimes } from '../../shared/volunteer-session.js';
import { runLocal } from '../../server/cli/local-run.js';
import { parseSize } from '../../shared/units.js';
import {
  commandFor,
  fmtBytes,
  nodeCommand,
  fmtMs,
  timedCli,
  track,
  type BenchContext,
  type BenchReport,
  type Benchmark,
  type Row,
} from './bench-kit.js';
import { startBenchMaster, type BenchMaster } from './bench-master.js';
import { ProcSampler, ThreadSampler, cpuMsOf, descendants } from './proc-stats.js';
import { chromiumType, phaseSpan, procName, repeatedCorpus, waitVolunteers } from './job-run.js';
import { renderProfile, summarizeProfile } from './cpu-profile.js';
import { freePort, TabProfiler } from './tab-profile.js';

const PAGE = join(ROOT, 'dist/client/index.html');
/** A tab thread's map throughput against `local`'s per core (issue 15). */
const TARGET_MAP_RATIO = 0.9;

/** One distributed run, as its master saw it and its volunteer measured it. */
interface Distributed {
  wallMs: number;
  /** CPU of the volunteer's processes (Node) or Chromium's renderers (tab), and of everything of Chromium. */
  workerCpuMs: number;
  otherCpuMs: number | null;
  masterCpuMs: number;
  /** Submit start to the job's creation (its first input stored), and to the end of the upload. */
  createdMs: number;
  uploadMs: number;
  mapMs: number;
  /** The map phase, first assignment to last commit (epoch ms). */
  mapSpan: { start: number; end: number };
  /** The tab's job worker thread's CPU in the map phase (tab runs). */
  jobWorkerMapCpuMs?: number;
  barrierMs: number;
  reduceMs: number;
  outputMs: number;
  /** Committed attempts' time from assignment to commit, summed, per phase. */
  attemptMs: { map: number; reduce: number };
  stages: { map: StageTimes; reduce: StageTimes };
  exact: boolean;
  profile: string | null;
  /** The tab's threads' CPU profiles (tab run with --profile). */
  tabProfiles?: { thread: string; file: string }[];
}

/**
 * Submits the job with --wait to `master` (one volunteer connected), then reads its phases from its
 * attempts and downloads its output. `workerCpu` reads the volunteer side's CPU so far.
 */
/**
 * With `--pin`, this box stands for two machines: the master and the CLI on core 0, the volunteer
 * (the Node volunteer, or Chromium) and `local` on core 1, so each side has a core of its own and
 * what one side does while the other waits (the upload, the maps) shows in the wall time.
 */
interface Pinning {
  master: string;
  volunteer: string;
}

/** One distributed run's job (the submit's arguments), the output it must give, and how to run it. */
interface RunSetup {
  args: string[];
  expected: string;
  profileDir: string | undefined;
  pin: Pinning | null;
}

async function runJob(
  master: BenchMaster,
  { args, expected, pin }: RunSetup,
  workerCpu: () => { worker: number; other: number | null },
  stages: () => Promise<{ map: StageTimes; reduce: StageTimes }>,
): Promise<Distributed> {
  const sampler = new ProcSampler(master.pid);
  try {
    const cpu0 = workerCpu();
    const submitAt = Date.now();
    const dist = await timedCli(
      ['submit', ...args, '--wait', '--server', master.url],
      { TABREDUCE_TOKEN: master.token },
      600_000,
      pin?.master,
    );
    const cpu1 = workerCpu();
    const job = (await apiGet<JobView[]>(master, '/api/jobs'))[0]!;
    const tasks = await apiGet<TaskView[]>(master, `/api/jobs/${job.id}/tasks`);
    const maps = phaseSpan(tasks, 'map');
    const reds = phaseSpan(tasks, 'reduce');
    const masterCpuMs = sampler.cpuMs(submitAt, submitAt + dist.ms);
    const t0 = performance.now();
    const output = await fetch(`${master.url}/api/jobs/${job.id}/output`, {
      headers: { authorization: `Bearer ${master.token}` },
    }).then((r) => r.text());
    const outputMs = performance.now() - t0;
    return {
      wallMs: dist.ms,
      workerCpuMs: cpu1.worker - cpu0.worker,
      otherCpuMs: cpu1.other === null || cpu0.other === null ? null : cpu1.other - cpu0.other,
      masterCpuMs,
      createdMs: job.createdAt - submitAt,
      uploadMs: dist.firstOutMs ?? NaN,
      mapMs: maps.end - maps.start,
      mapSpan: { start: maps.start, end: maps.end },
      barrierMs: reds.start - maps.end,
      reduceMs: reds.end - reds.start,
      outputMs,
      attemptMs: { map: maps.busy, reduce: reds.busy },
      stages: await stages(),
      exact: output === expected,
      profile: null,
    };
  } finally {
    sampler.stop();
  }
}

/** "its 26 map results took: input fetch 12 ms, run 5012 ms (waiting for a thread 100 ms, job code 4800 ms), report 210 ms" */
function parseVolunteerStages(log: string): { map: StageTimes; reduce: StageTimes } {
  const out = { map: noStageTimes(), reduce: noStageTimes() };
  const re =
    /its (\d+) (map|reduce) results took: input fetch (\d+) ms, run (\d+) ms \(waiting for a thread (\d+) ms, job code (\d+) ms\), report (\d+) ms/g;
  for (const m of log.matchAll(re)) {
    out[m[2] as 'map' | 'reduce'] = {
      tasks: Number(m[1]),
      fetchMs: Number(m[3]),
      runMs: Number(m[4]),
      queueMs: Number(m[5]),
      computeMs: Number(m[6]),
      reportMs: Number(m[7]),
    };
  }
  return out;
}

async function nodeRun(setup: RunSetup): Promise<Distributed> {
  const { profileDir, pin } = setup;
  const master = await startBenchMaster({ profileDir, cpus: pin?.master });
  const [command, argv] = nodeCommand([CLI, 'volunteer', '--server', master.url, '--threads', '1'], pin?.volunteer);
  const vol = track(spawn(command, argv, { stdio: 'pipe' }));
  let log = '';
  vol.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  const exited = new Promise<void>((r) => vol.once('exit', () => r()));
  try {
    await waitVolunteers(master, 1);
    const cpu = () => ({ worker: cpuMsOf([vol.pid!, ...descendants(vol.pid!)]), other: null });
    const r = await runJob(master, setup, cpu, async () => {
      // It prints where its time went as it stops.
      vol.kill('SIGINT');
      await exited;
      return parseVolunteerStages(log);
    });
    await master.stop();
    return { ...r, profile: master.profile() };
  } finally {
    vol.kill('SIGKILL');
    if (master.proc.exitCode === null && master.proc.signalCode === null) await master.stop();
  }
}

async function tabRun(setup: RunSetup): Promise<Distributed> {
  const { profileDir, pin } = setup;
  // Chromium runs where this process runs (on the volunteer's core, with --pin).
  const master = await startBenchMaster({ profileDir, cpus: pin?.master });
  let browser: Browser | null = null;
  try {
    const port = profileDir ? await freePort() : 0;
    const debug = profileDir ? [`--remote-debugging-port=${port}`] : [];
    browser = await chromium.launch({ executablePath: CHROMIUM, args: [...CHROMIUM_ARGS, ...debug] });
    const profiler = profileDir ? await TabProfiler.attach(port) : null;
    const page = await (await browser.newContext()).newPage();
    await page.goto(`${master.url}/?threads=1`);
    await waitVolunteers(master, 1);
    const pids = descendants(process.pid).filter((pid) => /chrom/i.test(procName(pid)));
    const renderers = pids.filter((pid) => chromiumType(pid) === 'renderer');
    const cpu = () => ({ worker: cpuMsOf(renderers), other: cpuMsOf(pids) - cpuMsOf(renderers) });
    const threads = new ThreadSampler(() => renderers);
    const r = await runJob(master, setup, cpu, async () => {
      const raw = await page.locator('.page').getAttribute('data-stages');
      return JSON.parse(raw ?? '{}') as { map: StageTimes; reduce: StageTimes };
    });
    threads.stop();
    // Chromium names a Web Worker's thread "DedicatedWorker thread" (15 characters of it in /proc);
    // the session's worker is one, the job's worker the one that computes.
    r.jobWorkerMapCpuMs = threads.busiest('DedicatedWorker', r.mapSpan.start, r.mapSpan.end)?.cpuMs;
    const tabProfiles = profiler && profileDir ? await profiler.stop(profileDir) : [];
    await master.stop();
    return { ...r, profile: master.profile(), tabProfiles };
  } finally {
    await browser?.close().catch(() => undefined);
    if (master.proc.exitCode === null && master.proc.signalCode === null) await master.stop();
  }
}

/** One phase's volunteer stages as a table cell: each stage's share of the attempts' time. */
function stageCell(s: StageTimes, attemptMs: number): string {
  if (s.tasks === 0) return 'n/a';
  const handoff = s.runMs - s.queueMs - s.computeMs;
  const rest = attemptMs - s.fetchMs - s.runMs - s.reportMs;
  const pct = (ms: number) => `${fmtMs(ms)} (${((ms / Math.max(1, attemptMs)) * 100).toFixed(0)}%)`;
  return [
    `fetch ${pct(s.fetchMs)}`,
    `waiting for a thread ${pct(s.queueMs)}`,
    `hand-off ${pct(handoff)}`,
    `job code ${pct(s.computeMs)}`,
    `report ${pct(s.reportMs)}`,
    `master & socket ${pct(rest)}`,
  ].join(', ');
}

const mbps = (bytes: number, ms: number) => `${(bytes / 1024 ** 2 / (ms / 1000)).toFixed(1)} MB/s`;

async function run(ctx: BenchContext): Promise<BenchReport> {
  const megabytes = Number(ctx.options.get('megabytes') ?? 30);
  const splitSize = ctx.options.get('split-size') ?? '4MiB';
  const reduces = ctx.options.get('reduces') ?? '4';
  const withTab = existsSync(PAGE) && existsSync(CHROMIUM);
  const profile = ctx.flags.has('profile');
  const pin: Pinning | null = ctx.flags.has('pin') ? { master: '0', volunteer: '1' } : null;
  // This process runs `local` and launches Chromium: on the volunteer's core.
  if (pin) execFileSync('taskset', ['-a', '-p', '-c', pin.volunteer, String(process.pid)], { stdio: 'ignore' });
  const module = join(EXAMPLES, 'word-count.js');
  ctx.log(`stages: writing ~${megabytes} MB of input`);
  const input = repeatedCorpus(megabytes * 1024 ** 2);
  const args = [module, ...input.files, '--reduces', reduces, '--split-size', splitSize];

  // local, in this process, so its phases can be timed: scan and maps, then reduces.
  ctx.log('stages: tabreduce local');
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  let mapsEnd = t0;
  let mapsCpu = cpu0;
  const parts = await runLocal(module, input.files, {
    reduces: Number(reduces),
    splitSize: parseSize(splitSize, '--split-size'),
    onProgress: (_done, _total, phase) => {
      if (phase !== 'map') return;
      mapsEnd = performance.now();
      mapsCpu = process.cpuUsage();
    },
  });
  const localMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const localCpuMs = (cpu.user + cpu.system) / 1000;
  const expected = parts.join('');
  const localMapMs = mapsEnd - t0;
  const localMapCpuMs = (mapsCpu.user - cpu0.user + mapsCpu.system - cpu0.system) / 1000;

  ctx.log('stages: one Node volunteer');
  const setup = (): RunSetup => ({
    args,
    expected,
    profileDir: profile ? tempDir('tabreduce-bench-prof-') : undefined,
    pin,
  });
  const node = await nodeRun(setup());
  let tab: Distributed | null = null;
  if (withTab) {
    ctx.log('stages: one tab');
    tab = await tabRun(setup());
  }
  const cols = (f: (d: Distributed) => string, local = '—') =>
    `local ${local} · Node ${f(node)} · tab ${tab ? f(tab) : 'n/a'}`;
  const mapBytes = input.total;
  const tabMap = tab ? mapBytes / 1024 ** 2 / (tab.stages.map.computeMs / 1000) : NaN;
  const localMap = mapBytes / 1024 ** 2 / (localMapMs / 1000);
  const tabWorkerCpu = tab?.jobWorkerMapCpuMs;
  const rows: Row[] = [
    { what: 'input', value: `${fmtBytes(input.total)} in ${input.files.length} files, splits of ${splitSize}` },
    { what: 'whole job, wall (upload and output included)', value: cols((d) => fmtMs(d.wallMs), fmtMs(localMs)) },
    {
      what: 'CPU: the computing side',
      value: cols(
        (d) => `${fmtMs(d.workerCpuMs)}${d.otherCpuMs === null ? '' : ` (+ ${fmtMs(d.otherCpuMs)} other Chromium)`}`,
        fmtMs(localCpuMs),
      ),
    },
    { what: 'CPU: the master', value: cols((d) => fmtMs(d.masterCpuMs)) },
    {
      what: 'submit start to the job created (its first input stored and split)',
      value: cols((d) => fmtMs(d.createdMs)),
    },
    {
      what: "upload and split (submit start to the master's answer; maps run meanwhile)",
      value: cols((d) => fmtMs(d.uploadMs)),
    },
    {
      what: 'map phase (local: scan and maps)',
      value: cols((d) => fmtMs(d.mapMs), fmtMs(localMapMs)),
    },
    { what: 'barrier (last map commit to first reduce assigned)', value: cols((d) => fmtMs(d.barrierMs)) },
    {
      what: 'reduce phase',
      value: cols((d) => fmtMs(d.reduceMs), fmtMs(localMs - localMapMs)),
    },
    { what: 'output download (GET /output)', value: cols((d) => fmtMs(d.outputMs)) },
    {
      what: `Node: map tasks (${node.stages.map.tasks}), their ${fmtMs(node.attemptMs.map)} split`,
      value: stageCell(node.stages.map, node.attemptMs.map),
    },
    {
      what: `Node: reduce tasks (${node.stages.reduce.tasks})`,
      value: stageCell(node.stages.reduce, node.attemptMs.reduce),
    },
  ];
  if (tab) {
    rows.push(
      {
        what: `tab: map tasks (${tab.stages.map.tasks}), their ${fmtMs(tab.attemptMs.map)} split`,
        value: stageCell(tab.stages.map, tab.attemptMs.map),
      },
      {
        what: `tab: reduce tasks (${tab.stages.reduce.tasks})`,
        value: stageCell(tab.stages.reduce, tab.attemptMs.reduce),
      },
    );
  }
  rows.push(
    {
      what: 'map throughput in the job code (local: its map phase)',
      value: cols((d) => mbps(mapBytes, d.stages.map.computeMs), mbps(mapBytes, localMapMs)),
    },
    {
      what: 'map throughput per task, end to end (assignment to commit)',
      value: cols((d) => mbps(mapBytes, d.attemptMs.map)),
    },
    {
      what: "tab thread's map throughput / local's per core",
      value: tab ? (tabMap / localMap).toFixed(2) : 'n/a (no tab)',
      target: `>= ${TARGET_MAP_RATIO}`,
      met: tab ? tabMap / localMap >= TARGET_MAP_RATIO : undefined,
    },
    {
      what: "map throughput per CPU second: local's process, the tab's job worker thread",
      value: `local ${mbps(mapBytes, localMapCpuMs)} · tab ${tabWorkerCpu ? mbps(mapBytes, tabWorkerCpu) : 'n/a'}`,
    },
    {
      what: "the same, tab / local (the job worker's own CPU: time it waited for a core left out)",
      value: tabWorkerCpu ? (localMapCpuMs / tabWorkerCpu).toFixed(2) : 'n/a',
      target: `>= ${TARGET_MAP_RATIO}`,
      met: tabWorkerCpu ? localMapCpuMs / tabWorkerCpu >= TARGET_MAP_RATIO : undefined,
    },
    {
      what: 'outputs equal local',
      value: cols((d) => (d.exact ? 'yes' : 'NO')),
      met: node.exact && (tab?.exact ?? true),
    },
  );
  const notes: string[] = [];
  for (const [who, d] of [
    ['Node volunteer run', node],
    ['tab run', tab],
  ] as const) {
    if (d?.profile) notes.push('', ...renderProfile(summarizeProfile(d.profile), `CPU profile of the master (${who})`));
  }
  for (const { thread, file } of tab?.tabProfiles ?? []) {
    notes.push('', ...renderProfile(summarizeProfile(file), `CPU profile of the tab's ${thread}`, thread));
  }
  if (profile && tab) {
    notes.push(
      '',
      "The tab's profiles name the page's functions as the minified build calls them; for their own names, " +
        'build the page without minifying (npx vite build --minify false) and run node --import tsx test/bench/run.ts stages --profile',
    );
  }
  if (!profile) notes.push('Add --profile to profile the master and the tab: npm run bench -- stages --profile');
  return {
    name: 'stages',
    title: `where one job's time goes: local, one Node volunteer and one tab (issue 15)`,
    command: commandFor('stages', ctx),
    setup: [
      `word-count, --reduces ${reduces}, --split-size ${splitSize}, over the corpus copied to ${fmtBytes(input.total)}`,
      'each distributed run on a master of its own, with one volunteer of one thread, one after the other',
      pin
        ? '--pin: the master and the CLI on core 0, the volunteer (Node or Chromium) and local on core 1, as on two machines'
        : 'master, CLI and volunteer share the box (add --pin to give the master and the volunteer a core each)',
      "volunteer stages: fetch = input by HTTP; hand-off = the executor's time beyond the job code (queue, copies to and from the job's worker); report = encoding and uploading the output; master & socket = the rest of the time from assignment to commit",
      withTab ? `headless Chromium (${CHROMIUM})` : 'no tab run: build the page (npm run build) and install Chromium',
    ],
    rows,
    notes,
  };
}

export const stagesBench: Benchmark = {
  name: 'stages',
  summary: "one job's time by stage: local, one Node volunteer, one tab (--megabytes 30)",
  run,
};
