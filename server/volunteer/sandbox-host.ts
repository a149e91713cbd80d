/**
 * One sandbox process of `tabreduce volunteer` (node-volunteer.ts starts one per thread): it fetches
 * job modules from the master itself, trusted code, and runs them in a V8 isolate (isolated-vm) that
 * has no Node APIs at all: no file system, no processes, no sockets, no fetch, no import(). Each job
 * gets a context of its own inside the isolate, holding the engine (sandbox-realm.ts) and the job's
 * module, so one job's changed built-ins or leftover timers never touch another's tasks.
 *
 * The parent talks to it over the IPC channel: `{type: 'ready'}` once, then one reply per task.
 */
import ivm from 'isolated-vm';
import { readFileSync } from 'node:fs';
import { loadWithRetries } from '../../shared/task-runner.js';
import { serializeError, type SerializedError } from '../../shared/errors.js';
import type { RealmReply } from './sandbox-realm.js';

/** A task as the parent sends it: a map's split as `key` + `data`, a reduce's partitions as JSON `data`. */
export interface SandboxTask {
  lease: string;
  jobId: string;
  moduleUrl: string;
  phase: 'map' | 'reduce';
  nReduce: number;
  key: string;
  data: string;
}

export type SandboxReply = { lease: string } & RealmReply;

/**
 * The isolate's heap limit, MiB. The largest tasks we measured stay far below it (word count on a
 * 4 MiB split peaks at about 60 MiB, a 64 MiB reduce output at about 400 MiB; README "Limits and
 * security"), so it stops only code that allocates without end. A V8 limit is a guideline: code
 * that grows one huge object can abort the process instead, which is why each sandbox is a process
 * of its own, and the parent then fails the task like any crash.
 */
export const SANDBOX_MEMORY_MIB = 1024;

/** Job contexts kept warm per sandbox, as a tab keeps a Web Worker for each of its 3 latest jobs. */
const JOB_CONTEXTS = 3;

const base = process.argv[2]!;
const REALM_SOURCE = readFileSync(new URL('./sandbox-realm.iife.js', import.meta.url), 'utf8');

interface JobContext {
  context: ivm.Context;
  run: ivm.Reference<(...args: unknown[]) => Promise<RealmReply>>;
  timers: Map<number, ReturnType<typeof setTimeout>>;
}

let isolate: ivm.Isolate | null = null;
let realmScript: ivm.Script | null = null;
/** Job contexts by job id, least recently used first; a failed load is dropped so the next task retries. */
const jobs = new Map<string, Promise<JobContext>>();

function freshIsolate(): ivm.Isolate {
  if (!isolate || isolate.isDisposed) {
    for (const id of [...jobs.keys()]) drop(id);
    isolate = new ivm.Isolate({
      memoryLimit: SANDBOX_MEMORY_MIB,
      // V8 lost control of the isolate: nothing in this process can be trusted to go on.
      onCatastrophicError: () => process.abort(),
    });
    realmScript = isolate.compileScriptSync(REALM_SOURCE, { filename: 'tabreduce:engine.js' });
  }
  return isolate;
}

function drop(jobId: string): void {
  const p = jobs.get(jobId);
  const owner = isolate;
  jobs.delete(jobId);
  void p?.then(
    (job) => {
      for (const t of job.timers.values()) clearTimeout(t);
      job.timers.clear();
      if (owner && !owner.isDisposed) job.context.release();
    },
    () => {},
  );
}

async function fetchModule(moduleUrl: string): Promise<{ url: string; source: string }> {
  const url = new URL(moduleUrl, base).href;
  // A failed fetch (TypeError) is retried: the master may be restarting.
  const res = await loadWithRetries(() => fetch(url));
  if (!res.ok) throw new Error(`could not load the job module from ${moduleUrl}: HTTP ${res.status}`);
  return { url, source: await res.text() };
}

async function createJob(moduleUrl: string): Promise<JobContext> {
  const { url, source } = await fetchModule(moduleUrl);
  const iso = freshIsolate();
  const context = await iso.createContext();
  const timers = new Map<number, ReturnType<typeof setTimeout>>();
  const job: JobContext = { context, run: null!, timers };
  let fire: ivm.Reference<(id: number) => void> | null = null;
  const setTimer = new ivm.Callback(
    (id: number, ms: number) => {
      timers.set(
        id,
        setTimeout(() => {
          timers.delete(id);
          fire?.applyIgnored(undefined, [id]);
        }, ms),
      );
    },
    { ignored: true },
  );
  const clearTimer = new ivm.Callback(
    (id: number) => {
      clearTimeout(timers.get(id));
      timers.delete(id);
    },
    { ignored: true },
  );
  await context.evalClosure('globalThis.__tabreduceHost = { setTimer: $0, clearTimer: $1 };', [setTimer, clearTimer]);
  await realmScript!.run(context);
  // The realm's entry points are taken and removed from the global object before the job's code
  // runs, so job code can neither call nor replace them.
  const realm = (await context.eval(
    '(() => { const r = globalThis.__tabreduceRealm; delete globalThis.__tabreduceRealm; return r; })()',
    { reference: true },
  )) as ivm.Reference<Record<string, unknown>>;
  job.run = (await realm.get('run', { reference: true })) as JobContext['run'];
  fire = (await realm.get('fireTimer', { reference: true })) as ivm.Reference<(id: number) => void>;
  const setModule = (await realm.get('setModule', { reference: true })) as ivm.Reference<
    (ns: unknown) => SerializedError | null
  >;
  const module = await iso.compileModule(source, { filename: url });
  await module.instantiate(context, (specifier) => {
    throw new Error(`job modules cannot import (${specifier})`);
  });
  await module.evaluate();
  const notModule = await setModule.apply(undefined, [module.namespace.derefInto()], { result: { copy: true } });
  if (notModule) throw Object.assign(new Error(notModule.message), notModule);
  return job;
}

function jobFor(task: SandboxTask): Promise<JobContext> {
  let p = jobs.get(task.jobId);
  if (p) jobs.delete(task.jobId);
  else {
    p = createJob(task.moduleUrl);
    p.catch(() => jobs.delete(task.jobId));
  }
  jobs.set(task.jobId, p);
  for (const id of jobs.keys()) {
    if (jobs.size <= JOB_CONTEXTS) break;
    drop(id);
  }
  return p;
}

async function runTask(task: SandboxTask): Promise<SandboxReply> {
  try {
    const job = await jobFor(task);
    const reply = await job.run.apply(undefined, [task.phase, task.nReduce, task.key, task.data], {
      result: { promise: true, copy: true },
    });
    return { lease: task.lease, ...reply };
  } catch (e) {
    const error = serializeError(e);
    if (isolate?.isDisposed) {
      // The memory limit ended the isolate (and every job's context in it); the next task gets a new one.
      error.name = 'MemoryLimitError';
      error.message = `the job's code used more than ${SANDBOX_MEMORY_MIB} MiB, its sandbox's memory limit (${error.message})`;
      freshIsolate();
    }
    return { lease: task.lease, ok: false, error };
  }
}

process.on('message', (task: SandboxTask) => {
  void runTask(task).then((reply) => process.send!(reply));
});
// The parent is gone (even SIGKILLed): nothing is left to work for.
process.on('disconnect', () => process.exit(0));
process.send!({ type: 'ready' });
