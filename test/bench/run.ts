/**
 * `npm run bench [-- NAME...] [--profile] [--option value]`: runs the benchmarks (all, or the ones
 * named) one after another and prints a Markdown table per benchmark. It measures and reports; it
 * asserts nothing about time. Every child process is killed at the end, also on failure.
 *
 * Examples:
 *   npm run bench
 *   npm run bench -- dispatch --profile
 *   npm run bench -- load --volunteers 2000 --tasks 5000
 */
import { killChildren, renderReport, type Benchmark, type BenchContext } from './bench-kit.js';
import { removeTempDirs } from '../helpers/cluster.js';
import { dispatchBench } from './dispatch.js';
import { connectionsBench } from './connections.js';
import { loadBench } from './load.js';
import { recoveryBench } from './recovery.js';
import { tabsBench } from './tabs.js';
import { coreBench } from './core.js';
import { statusPageBench } from './status-page.js';
import { framesBench } from './frames.js';
import { sandboxBench } from './sandbox.js';
import { bigBench } from './big.js';
import { tasksRouteBench } from './tasks-route.js';
import { verifyBench } from './verify.js';
import { stagesBench } from './stages.js';
import { scaleBench } from './scale.js';
import { engineBench } from './engine.js';

const BENCHMARKS: Benchmark[] = [
  dispatchBench,
  connectionsBench,
  loadBench,
  recoveryBench,
  tabsBench,
  statusPageBench,
  coreBench,
  framesBench,
  sandboxBench,
  bigBench,
  tasksRouteBench,
  verifyBench,
  stagesBench,
  scaleBench,
  engineBench,
];

function usage(): string {
  const width = Math.max(...BENCHMARKS.map((b) => b.name.length));
  return [
    'usage: npm run bench [-- NAME...] [--profile] [--OPTION VALUE]',
    '',
    ...BENCHMARKS.map((b) => `  ${b.name.padEnd(width)}  ${b.summary}`),
    '',
    '--profile runs the master under node --cpu-prof and prints where its time went;',
    "TABREDUCE_BENCH_PROFILES=DIR keeps the master's .cpuprofile files there.",
  ].join('\n');
}

function parse(argv: string[]): { names: string[]; ctx: BenchContext } {
  const names: string[] = [];
  const flags = new Set<string>();
  const options = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--')) {
      names.push(a);
      continue;
    }
    const next = argv[i + 1];
    if (a === '--profile' || a === '--pin' || a === '--help' || next === undefined || next.startsWith('--'))
      flags.add(a.slice(2));
    else {
      options.set(a.slice(2), next);
      i++;
    }
  }
  const log = (line: string) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
  return { names, ctx: { flags, options, log } };
}

async function main(): Promise<number> {
  const { names, ctx } = parse(process.argv.slice(2));
  if (ctx.flags.has('help')) {
    process.stdout.write(`${usage()}\n`);
    return 0;
  }
  const unknown = names.filter((n) => !BENCHMARKS.some((b) => b.name === n));
  if (unknown.length > 0) {
    process.stderr.write(`unknown benchmark ${unknown.join(', ')}\n\n${usage()}\n`);
    return 2;
  }
  const chosen = names.length > 0 ? BENCHMARKS.filter((b) => names.includes(b.name)) : BENCHMARKS;
  let failed = 0;
  for (const b of chosen) {
    const started = Date.now();
    ctx.log(`${b.name}: starting`);
    try {
      const report = await b.run(ctx);
      process.stdout.write(`${renderReport(report)}\n`);
    } catch (e) {
      failed++;
      process.stdout.write(`## ${b.name}: FAILED\n\n${(e as Error).stack ?? String(e)}\n\n`);
    } finally {
      await killChildren();
      ctx.log(`${b.name}: done in ${((Date.now() - started) / 1000).toFixed(0)} s`);
    }
  }
  removeTempDirs();
  return failed > 0 ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  async (e: unknown) => {
    await killChildren();
    process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
    process.exit(1);
  },
);
