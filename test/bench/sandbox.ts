/**
 * Issue 12, the cost of the Node volunteer's job sandbox: the same word-count map task run in this
 * process (`tabreduce local`), in a plain worker thread (the volunteer before the sandbox) and in a
 * sandbox process (server/volunteer/sandbox-host.ts: a V8 isolate; the module fetched over HTTP by the
 * volunteer). A big task
 * (one 4 MiB split, the default split size) shows the throughput of job code inside the isolate; a
 * tiny one (1 KiB) the fixed cost of a round trip, in wall time and in CPU of every process involved.
 */
import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { corpusFiles, EXAMPLES, ROOT } from '../helpers/cluster.js';
import { readyText, type ExecutorOutput, type ReadyTask } from '../../shared/volunteer-session.js';
import type { PoolWorker } from '../../shared/worker-pool.js';
import { commandFor, fmtInt, summarize, type BenchContext, type BenchReport, type Benchmark } from './bench-kit.js';
import { descendants, readProc } from './proc-stats.js';

async function dist<T>(rel: string): Promise<T> {
  return (await import(pathToFileURL(join(ROOT, 'dist', rel)).href)) as T;
}

/** Corpus text repeated up to `bytes`, cut after a line: one split as the master would cut it. */
function split(bytes: number): string {
  const text = corpusFiles()
    .map((f) => readFileSync(f, 'utf8'))
    .join('');
  let s = '';
  while (s.length < bytes) s += text;
  return s.slice(0, bytes).replace(/[^\n]*$/, '');
}

let leases = 0;
function mapTask(value: string, moduleUrl: string): ReadyTask {
  return {
    type: 'task.assign',
    lease: `bench-${++leases}`,
    jobId: 'bench',
    jobName: 'bench',
    taskId: leases,
    index: 0,
    nReduce: 10,
    moduleUrl,
    hardLimitMs: 600_000,
    phase: 'map',
    input: { key: 'split.txt', bytes: Buffer.byteLength(value), text: value },
  };
}

interface Runner {
  name: string;
  run(task: ReadyTask): Promise<ExecutorOutput>;
  /** CPU ms of every process involved so far (this one included). */
  cpuMs(): number;
  close(): void;
}

function selfCpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

async function run(ctx: BenchContext): Promise<BenchReport> {
  const bigRuns = Number(ctx.options.get('big-runs') ?? 9);
  const tinyRuns = Number(ctx.options.get('tiny-runs') ?? 2000);
  const modulePath = join(EXAMPLES, 'word-count.js');
  const source = readFileSync(modulePath, 'utf8');
  const server = createServer((_, res) => res.writeHead(200, { 'content-type': 'text/javascript' }).end(source));
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const base = `http://127.0.0.1:${(server.address() as { port: number }).port}/`;
  const moduleUrl = '/jobs/bench/module.js';

  const { runTask, taskInput } = await dist<typeof import('../../shared/task-runner.js')>('shared/task-runner.js');
  const { asJobModule } = await dist<typeof import('../../shared/engine.js')>('shared/engine.js');
  const { sandboxWorker, moduleSource } = await dist<typeof import('../../server/volunteer/node-volunteer.js')>(
    'server/volunteer/node-volunteer.js',
  );
  const mod = asJobModule((await import(pathToFileURL(modulePath).href)) as Record<string, unknown>);

  const inProcess: Runner = {
    name: 'in this process (tabreduce local)',
    run: (task) => runTask(mod, taskInput('map', task.nReduce, 'split.txt', readyText(task)), () => performance.now()),
    cpuMs: selfCpuMs,
    close() {},
  };
  const worker = new Worker(new URL('./plain-thread.mjs', import.meta.url), { workerData: { root: ROOT, modulePath } });
  await new Promise((ok) => worker.once('message', ok));
  const thread: Runner = {
    name: 'plain worker thread (volunteer before the sandbox)',
    run: (task) =>
      new Promise((ok) => {
        worker.once('message', ok);
        worker.postMessage(task);
      }),
    cpuMs: selfCpuMs,
    close: () => void worker.terminate(),
  };
  const before = new Set(descendants(process.pid));
  const sandbox: PoolWorker = sandboxWorker(moduleSource(base));
  // The first task starts the sandbox, fetches the module and makes the job's context.
  await sandbox.run(mapTask('warm up\n', moduleUrl));
  const sandboxPids = descendants(process.pid).filter((p) => !before.has(p));
  const sandboxed: Runner = {
    name: 'sandbox process (isolated-vm)',
    run: (task) => sandbox.run(task),
    cpuMs: () => selfCpuMs() + sandboxPids.reduce((n, p) => n + (readProc(p)?.cpuMs ?? 0), 0),
    close: () => sandbox.terminate(),
  };

  const big = split(4 * 1024 * 1024);
  const tiny = split(1024);
  const runners = [inProcess, thread, sandboxed];
  const rows = [];
  try {
    for (const r of runners) {
      ctx.log(`sandbox: ${r.name}, tiny tasks`);
      // Tiny tasks first, on a fresh runner: after big ones every runner's heap and code are in
      // another state, and tiny tasks then cost about twice as much everywhere.
      for (let i = 0; i < 200; i++) await r.run(mapTask(tiny, moduleUrl));
      const cpu0 = r.cpuMs();
      const t0 = performance.now();
      for (let i = 0; i < tinyRuns; i++) await r.run(mapTask(tiny, moduleUrl));
      const wallUs = ((performance.now() - t0) / tinyRuns) * 1000;
      const cpuUs = ((r.cpuMs() - cpu0) / tinyRuns) * 1000;
      rows.push({
        what: `${r.name}: 1 KiB map task, wall / CPU per task`,
        value: `${fmtInt(wallUs)} µs / ${fmtInt(cpuUs)} µs`,
      });
    }
    ctx.log('sandbox: big tasks, the runners taking turns');
    const outputs = await Promise.all(runners.map((r) => r.run(mapTask(big, moduleUrl))));
    if (outputs.some((o) => o.output !== outputs[0]!.output)) throw new Error('the runners disagree on the output');
    // Turns, so that whatever else the box does falls on every runner alike.
    const times = runners.map((): number[] => []);
    for (let i = 0; i < bigRuns; i++) {
      for (const [k, r] of runners.entries()) {
        const t = performance.now();
        await r.run(mapTask(big, moduleUrl));
        times[k]!.push(performance.now() - t);
      }
    }
    for (const [k, r] of runners.entries()) {
      const ms = summarize(times[k]!.sort((a, b) => a - b)).p50;
      rows.push({
        what: `${r.name}: 4 MiB map task, median of ${bigRuns}`,
        value: `${fmtInt(ms)} ms (${(4000 / ms).toFixed(1)} MiB/s)`,
      });
    }
  } finally {
    thread.close();
    sandboxed.close();
    server.close();
  }
  return {
    name: 'sandbox',
    title: "the Node volunteer's job sandbox: throughput of a big task and cost of a tiny one (issue 12)",
    command: commandFor('sandbox', ctx),
    setup: [
      `word-count map (nReduce 10): a 1 KiB split ${tinyRuns} times after 200 warm-up runs per runner, then a 4 MiB split of the corpus ${bigRuns} times per runner (after one warm-up), the runners taking turns`,
      'one task at a time; the sandbox process is the one `tabreduce volunteer` starts per thread',
      'CPU per tiny task counts this process and, for the sandbox, the sandbox process too',
    ],
    rows,
    notes: [],
  };
}

export const sandboxBench: Benchmark = {
  name: 'sandbox',
  summary: "job code in the Node volunteer's sandbox vs a plain worker thread: big-task MiB/s, tiny-task cost",
  run,
};
