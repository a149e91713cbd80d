/**
 * The master's own cost per task, without sockets, volunteers or the rest of the box: the built
 * Scheduler (dist/) on a durable SQLite file, driven in-process by fake connections that answer every
 * task.assign at once with a precomputed result, each frame parsed by the same validator as /ws.
 * CPU time per committed task is what a change to server/scheduler/ or sql/* moves; it is far less
 * sensitive to other programs on the box than the end-to-end rates.
 */
import { readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { corpusFiles, EXAMPLES, ROOT, tempDir } from '../helpers/cluster.js';
import type { Connection, Scheduler as SchedulerType } from '../../server/scheduler/index.js';
import type { TaskAssign, VolunteerMessage } from '../../shared/protocol.js';
import { fmtInt, type BenchContext, type BenchReport, type Benchmark, commandFor } from './bench-kit.js';

/** The built modules, as `tabreduce serve` runs them. */
async function dist<T>(rel: string): Promise<T> {
  return (await import(pathToFileURL(join(ROOT, 'dist', rel)).href)) as T;
}

async function run(ctx: BenchContext): Promise<BenchReport> {
  const volunteers = Number(ctx.options.get('volunteers') ?? 8);
  const slots = Number(ctx.options.get('slots') ?? 2);
  const splitSize = Number(ctx.options.get('split-bytes') ?? 1024);
  const { openDatabase } = await dist<typeof import('../../server/db.js')>('server/db.js');
  const { Scheduler } = await dist<typeof import('../../server/scheduler/index.js')>('server/scheduler/index.js');
  const { createStores } = await dist<typeof import('../../server/sql/index.js')>('server/sql/index.js');
  const { insertJob, newJobId } = await dist<typeof import('../../server/submit-job.js')>('server/submit-job.js');
  const { stageInputs } = await dist<typeof import('../../server/receive-job.js')>('server/receive-job.js');
  const { LocalBlobStore } = await dist<typeof import('../../server/blobs/local-blob-store.js')>(
    'server/blobs/local-blob-store.js',
  );
  const { parseVolunteerMessage } = await dist<typeof import('../../shared/protocol.js')>('shared/protocol.js');
  const { runTask, taskInput } = await dist<typeof import('../../shared/task-runner.js')>('shared/task-runner.js');
  const { asJobModule } = await dist<typeof import('../../shared/engine.js')>('shared/engine.js');
  const { splitRanges } = await dist<typeof import('../../shared/split.js')>('shared/split.js');
  const modulePath = join(EXAMPLES, 'word-count.js');
  const mod = asJobModule((await import(pathToFileURL(modulePath).href)) as Record<string, unknown>);

  // Map outputs in map-task order, computed before the clock starts: only the master's work is timed.
  const mapOutputs: string[] = [];
  for (const f of corpusFiles()) {
    const bytes = readFileSync(f);
    for (const r of splitRanges(bytes, splitSize)) {
      const value = bytes.subarray(r.start, r.end).toString('utf8');
      const out = await runTask(mod, { phase: 'map', nReduce: 2, input: { key: basename(f), value } }, () => 0);
      mapOutputs.push(`"stats":${JSON.stringify(out.stats)},"output":${JSON.stringify(out.output)}`);
    }
  }

  const db = openDatabase(join(tempDir('tabreduce-bench-core-'), 'tabreduce.db'));
  const stores = createStores(db);
  const dir = tempDir('tabreduce-bench-core-blobs-');
  const blobs = new LocalBlobStore(join(dir, 'blobs'));
  // Every task's data inside its frames, as there is no HTTP server here: the master's cost per task.
  const scheduler: SchedulerType = new Scheduler(db, stores, { blobs, inlineBytes: 1024 ** 3 });
  const id = newJobId();
  await insertJob(
    stores,
    {
      id,
      moduleName: basename(modulePath),
      module: readFileSync(modulePath, 'utf8'),
      inputs: await stageInputs(
        blobs,
        id,
        corpusFiles().map((f) => ({ name: basename(f), bytes: readFileSync(f) })),
        splitSize,
      ),
      reduces: 2,
      splitSize,
      taskTimeoutMs: 60_000,
      maxAttempts: 4,
      // The master's cost per task as the README's figures measured it, before verification.
      verify: 'off',
    },
    Date.now(),
    stores.transaction,
  );

  const inbox: TaskAssign[] = [];
  const conns: { conn: Connection; v: ReturnType<SchedulerType['hello']> | null }[] = [];
  let bytesOut = 0;
  for (let i = 0; i < volunteers; i++) {
    const conn: Connection = {
      send(text) {
        bytesOut += text.length;
        const m = JSON.parse(text) as { type: string };
        if (m.type === 'task.assign') inbox.push(m as TaskAssign);
      },
      close() {},
    };
    conns.push({ conn, v: null });
  }
  const byLease = new Map<string, (typeof conns)[number]>();
  const results: { who: (typeof conns)[number]; frame: string }[] = [];
  const hello = (c: (typeof conns)[number]) =>
    scheduler.batched(() =>
      scheduler.hello(c.conn, {
        type: 'hello',
        protocol: 2,
        threads: slots,
        slots,
        paused: false,
        agent: 'core bench',
        running: [],
      }),
    );
  const t0 = process.cpuUsage();
  const w0 = performance.now();
  for (const c of conns) c.v = hello(c);
  scheduler.durably(() => scheduler.jobAdded(id));
  let committed = 0;
  let parseUs = 0;
  let engineUs = 0;
  for (;;) {
    // Each assign goes to the connection whose volunteer holds the lease.
    while (inbox.length > 0) {
      const a = inbox.shift()!;
      const who = conns.find((c) => c.v!.running.has(a.lease))!;
      byLease.set(a.lease, who);
      let body = a.phase === 'map' ? mapOutputs[a.index] : undefined;
      if (body === undefined) {
        // The two reduces run the engine here; their CPU is taken out of the master's.
        const e0 = process.cpuUsage();
        const out = await runTask(mod, taskInput(a.phase, a.nReduce, '', a.input.text ?? ''), () => 0);
        body = `"stats":${JSON.stringify(out.stats)},"output":${JSON.stringify(out.output)}`;
        const e = process.cpuUsage(e0);
        engineUs += e.user + e.system;
      }
      results.push({ who, frame: `{"type":"task.result","lease":"${a.lease}",${body}}` });
    }
    if (results.length === 0) {
      // The group commit is made, and its frames sent, at the end of the turn or when the least
      // gap between commits has passed: the frames of this turn are all in, so make it now.
      scheduler.flush();
      if (inbox.length === 0) break;
      continue;
    }
    // Every result that is waiting arrives before the loop turns, as frames read from many sockets do.
    for (const { who, frame } of results.splice(0)) {
      const p0 = performance.now();
      const parsed = parseVolunteerMessage(frame);
      parseUs += (performance.now() - p0) * 1000;
      if (!parsed.ok) throw new Error(parsed.error);
      // As the WebSocket hub does: every frame of one turn shares one group commit.
      scheduler.batched(() => scheduler.handle(who.v!, parsed.msg as VolunteerMessage));
      committed++;
    }
    scheduler.flush();
  }
  const wallMs = performance.now() - w0;
  const cpu = process.cpuUsage(t0);
  const job = stores.jobs.get(id)!;
  const cpuUs = cpu.user + cpu.system - engineUs;
  db.close();
  return {
    name: 'core',
    title: "the master's CPU per task, in-process (no sockets)",
    command: commandFor('core', ctx),
    setup: [
      `built Scheduler from dist/ on SQLite in a temp dir; word-count over the corpus at ${splitSize}-byte splits, 2 reduces`,
      `${volunteers} fake volunteers x ${slots} slots; each result frame goes through parseVolunteerMessage then scheduler.handle`,
    ],
    rows: [
      { what: 'tasks committed', value: `${fmtInt(committed)} (job ${job.state})` },
      { what: 'master CPU per committed task', value: `${(cpuUs / committed).toFixed(0)} us` },
      { what: '  of which parseVolunteerMessage', value: `${(parseUs / committed).toFixed(0)} us` },
      { what: 'ceiling on one core', value: `${fmtInt((committed / cpuUs) * 1e6)} tasks/s` },
      { what: 'wall time', value: `${(wallMs / 1000).toFixed(2)} s` },
      { what: 'bytes sent to volunteers', value: fmtInt(bytesOut) },
    ],
    notes: [],
  };
}

export const coreBench: Benchmark = {
  name: 'core',
  summary: "the master's CPU per task in-process: the scheduler and SQLite alone",
  run,
};
