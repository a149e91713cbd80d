/**
 * Issue 3, tabs: word count over ~100 MB (the corpus repeated) on 2 headless Chromium tabs, against
 * `tabreduce local` on the same module and data in the same run. The ratio is the distributed wall
 * time, upload included (`tabreduce submit --wait` from start to exit), over the local wall time.
 */
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { chromiumType, joinedParts, phaseSpan, procName, repeatedCorpus, waitVolunteers } from './job-run.js';
import { chromium, type Browser } from 'playwright-core';
import { apiGet, corpusFiles, EXAMPLES, ROOT, tempDir } from '../helpers/cluster.js';
import type { JobView, TaskView } from '../../shared/api.js';
import {
  fmtBytes,
  fmtInt,
  fmtMs,
  summarize,
  type BenchContext,
  type BenchReport,
  type Benchmark,
  type Row,
  commandFor,
  timedCli,
} from './bench-kit.js';
import { startBenchMaster } from './bench-master.js';
import { renderProfile, summarizeProfile } from './cpu-profile.js';
import { BoxSampler, cpuMsOf, descendants, ProcSampler, ThreadSampler } from './proc-stats.js';
import { CHROMIUM, CHROMIUM_ARGS } from '../helpers/browser.js';

/** Issue 15: two tabs at most 0.8 × `local`'s wall time on this 2-core box (issue 3 asked for 1.0). */
const TARGET_RATIO = 0.8;
const PAGE = join(ROOT, 'dist/client/index.html');

function skipped(why: string, ctx: BenchContext): BenchReport {
  return {
    name: 'tabs',
    title: '100 MB word count on 2 Chromium tabs vs tabreduce local (issue 3)',
    command: commandFor('tabs', ctx),
    setup: [],
    rows: [{ what: 'skipped', value: why }],
    notes: [],
  };
}

async function run(ctx: BenchContext): Promise<BenchReport> {
  if (!existsSync(PAGE)) {
    return skipped(
      `the volunteer page is not built (${PAGE} is missing): run \`npx vite build\`, then this benchmark`,
      ctx,
    );
  }
  if (!existsSync(CHROMIUM)) return skipped(`no Chromium at ${CHROMIUM}: set CHROMIUM_PATH`, ctx);
  const tabs = Number(ctx.options.get('tabs') ?? 2);
  const threads = Number(ctx.options.get('threads') ?? 1);
  const prefetch = ctx.options.get('prefetch');
  const megabytes = Number(ctx.options.get('megabytes') ?? 100);
  const reduces = ctx.options.get('reduces') ?? '10';
  const module = join(EXAMPLES, 'word-count.js');
  const benchStart = Date.now();
  ctx.log(`tabs: writing ~${megabytes} MB of input`);
  const input = repeatedCorpus(megabytes * 1024 ** 2);
  const flags = ['--reduces', reduces];

  ctx.log(`tabs: tabreduce local over ${fmtBytes(input.total)}`);
  const localOut = tempDir('tabreduce-bench-local-');
  const local = await timedCli(['local', module, ...input.files, ...flags, '--out', localOut], {}, 170_000);

  const profile = ctx.flags.has('profile');
  const master = await startBenchMaster({ profileDir: profile ? tempDir('tabreduce-bench-prof-') : undefined });
  const sampler = new ProcSampler(master.pid);
  const box = new BoxSampler();
  let browser: Browser | null = null;
  try {
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
    for (let i = 0; i < tabs; i++) {
      // One context per tab: each its own sessionStorage, so each is its own volunteer.
      const page = await (await browser.newContext()).newPage();
      await page.goto(`${master.url}/?threads=${threads}${prefetch === undefined ? '' : `&prefetch=${prefetch}`}`);
    }
    await waitVolunteers(master, tabs, 'tabs');
    ctx.log(`tabs: ${tabs} tabs connected; submitting with --wait`);
    const browserPids = descendants(process.pid).filter((pid) => /chrom/i.test(procName(pid)));
    const browserCpu0 = cpuMsOf(browserPids);
    const byType0 = new Map(browserPids.map((pid) => [pid, cpuMsOf([pid])]));
    const renderers = browserPids.filter((pid) => chromiumType(pid) === 'renderer');
    const threadCpu = new ThreadSampler(() => renderers);
    const submitAt = Date.now();
    // Bounded: a box too slow to finish in time gets a lower bound for the ratio, not a hang.
    const budgetMs = Math.max(30_000, 175_000 - (Date.now() - benchStart));
    let dist: Awaited<ReturnType<typeof timedCli>> | null = null;
    let failure = '';
    try {
      dist = await timedCli(
        ['submit', module, ...input.files, ...flags, '--wait', '--server', master.url],
        { TABREDUCE_TOKEN: master.token },
        budgetMs,
      );
    } catch (e) {
      failure = (e as Error).message.split('\n')[0]!;
    }
    const wallMs = dist?.ms ?? Date.now() - submitAt;
    threadCpu.stop();
    const byThread = threadCpu.byName(submitAt, submitAt + wallMs);
    const browserCpu = cpuMsOf(browserPids) - browserCpu0;
    // Which Chromium processes did the work: the tabs' renderers (job code, JSON, the socket's
    // messages) or the browser and network-service processes that carry the WebSocket bytes.
    const byType = new Map<string, number>();
    for (const pid of browserPids) {
      const type = chromiumType(pid);
      byType.set(type, (byType.get(type) ?? 0) + cpuMsOf([pid]) - (byType0.get(pid) ?? 0));
    }
    const jobs = await apiGet<JobView[]>(master, '/api/jobs');
    const job = jobs[0]!;
    const tasks = await apiGet<TaskView[]>(master, `/api/jobs/${job.id}/tasks`);
    const maps = phaseSpan(tasks, 'map');
    const reds = phaseSpan(tasks, 'reduce');
    const masterCpu = sampler.cpuMs(submitAt, submitAt + wallMs);
    const boxCpu = box.cpuPercent(submitAt, submitAt + wallMs);
    let exact = `not checked (job ${job.state})`;
    if (job.state === 'succeeded') {
      const output = await fetch(`${master.url}/api/jobs/${job.id}/output`, {
        headers: { authorization: `Bearer ${master.token}` },
      }).then((r) => r.text());
      const expected = joinedParts(localOut);
      exact = output === expected ? 'yes' : 'NO';
    } else {
      await fetch(`${master.url}/api/jobs/${job.id}/cancel`, {
        method: 'POST',
        headers: { authorization: `Bearer ${master.token}` },
      }).catch(() => undefined);
    }
    const ratio = wallMs / local.ms;
    const mapD = summarize(maps.durations);
    const redD = summarize(reds.durations);
    const rows: Row[] = [
      { what: 'input', value: `${fmtBytes(input.total)} in ${input.files.length} files` },
      { what: 'tabreduce local (wall / CPU)', value: `${fmtMs(local.ms)} / ${fmtMs(local.cpuMs)}` },
      {
        what: `${tabs} tabs x ${threads} thread: submit --wait (wall, upload included)`,
        value: dist
          ? fmtMs(dist.ms)
          : `did not finish in ${fmtMs(wallMs)}: ${job.state}, maps ${job.maps.done}/${job.maps.total}, reduces ${job.reduces.done}/${job.reduces.total}`,
      },
      {
        what: 'ratio distributed / local',
        value: dist ? ratio.toFixed(2) : `> ${ratio.toFixed(2)}`,
        target: `<= ${TARGET_RATIO.toFixed(1)}`,
        met: dist !== null && ratio <= TARGET_RATIO,
      },
      {
        what: '  submit start to the job created (CLI start, its first input stored and split)',
        value: fmtMs(job.createdAt - submitAt),
      },
      {
        what: "  submit start to the upload's end (the master's answer; maps run meanwhile)",
        value: dist?.firstOutMs ? fmtMs(dist.firstOutMs) : 'n/a',
      },
      {
        what: `  map phase (${fmtInt(maps.n)} tasks committed)`,
        value: `${fmtMs(maps.end - maps.start)}; per task p50 ${fmtMs(mapD.p50)}, max ${fmtMs(mapD.max)}`,
      },
      { what: '  barrier (last map commit to first reduce assign)', value: fmtMs(reds.start - maps.end) },
      {
        what: `  reduce phase (${fmtInt(reds.n)} tasks committed)`,
        value: `${fmtMs(reds.end - reds.start)}; per task p50 ${fmtMs(redD.p50)}, max ${fmtMs(redD.max)}`,
      },
      {
        what: '  job succeeded to submit --wait exit',
        value: dist ? fmtMs(submitAt + dist.ms - (job.finishedAt ?? NaN)) : 'n/a',
      },
      {
        what: 'tab task time, all tasks summed / local wall',
        value: `${fmtMs(maps.busy + reds.busy)} / ${fmtMs(local.ms)} = ${((maps.busy + reds.busy) / local.ms).toFixed(2)}`,
      },
      {
        what: 'tabs busy share of the map phase',
        value: `${((maps.busy / tabs / Math.max(1, maps.end - maps.start)) * 100).toFixed(0)}%`,
      },
      { what: 'CPU during the distributed run: master', value: fmtMs(masterCpu) },
      {
        what: 'CPU during the distributed run: Chromium (all its processes)',
        value: `${fmtMs(browserCpu)} (${(browserCpu / Math.max(1, local.cpuMs)).toFixed(2)} x local's CPU)`,
      },
      {
        what: '  Chromium CPU by process type',
        value: [...byType]
          .sort((a, b) => b[1] - a[1])
          .map(([t, ms]) => `${t} ${fmtMs(ms)}`)
          .join(', '),
      },
      {
        what: "  the renderers' CPU by thread (both tabs)",
        value: [...byThread]
          .filter(([, ms]) => ms >= 50)
          .sort((a, b) => b[1] - a[1])
          .map(([name, ms]) => `${name} ${fmtMs(ms)}`)
          .join(', '),
      },
      {
        what: "lower bound of the ratio on this box: (master + Chromium CPU) / cores / local's wall",
        value: ((masterCpu + browserCpu) / availableParallelism() / Math.max(1, local.ms)).toFixed(2),
      },
      {
        what: 'box CPU during the distributed run (200% = both cores)',
        value: `${boxCpu.toFixed(0)}%`,
      },
      { what: 'output equals tabreduce local', value: exact, met: exact === 'yes' },
    ];
    if (failure) rows.push({ what: 'submit --wait', value: failure.slice(0, 200) });
    const notes: string[] = [];
    if (profile) {
      await master.stop();
      const prof = master.profile();
      if (prof) notes.push(...renderProfile(summarizeProfile(prof), 'CPU profile of the master (whole run)'));
    } else notes.push('Add --profile to profile the master: npm run bench -- tabs --profile');
    return {
      name: 'tabs',
      title: `${megabytes} MB word count on ${tabs} Chromium tabs vs tabreduce local (issue 3)`,
      command: commandFor('tabs', ctx),
      setup: [
        `word-count over the corpus copied ${input.files.length / corpusFiles().length} times (${fmtBytes(input.total)}), ` +
          `default --split-size 4MiB, --reduces ${reduces}`,
        `headless Chromium (${CHROMIUM}), ${tabs} tabs at /?threads=${threads}, each in its own browser context`,
        'local first, then distributed, same files, same process setup; wall times from process start to exit',
      ],
      rows,
      notes,
    };
  } finally {
    sampler.stop();
    box.stop();
    await browser?.close().catch(() => undefined);
    if (master.proc.exitCode === null && master.proc.signalCode === null) await master.stop();
  }
}

export const tabsBench: Benchmark = {
  name: 'tabs',
  summary: '100 MB word count: 2 headless Chromium tabs vs tabreduce local (ratio)',
  run,
};
