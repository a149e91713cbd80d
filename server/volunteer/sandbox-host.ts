/**
 * One sandbox process of `tabreduce volunteer` (node-volunteer.ts starts one per thread). It runs
 * job code in a V8 isolate (isolated-vm) that has no Node APIs at all: no file system, no processes,
 * no sockets, no fetch, no import(). The job's module text comes from the volunteer, which fetched
 * it from the master: job code never fetches anything. Each job gets a context of its own inside
 * the isolate, holding the engine (sandbox-realm.ts) and the job's module, so one job's changed
 * built-ins or leftover timers never touch another's tasks. Messages: sandbox-protocol.ts.
 */
import ivm from 'isolated-vm';
import { readFileSync } from 'node:fs';
import { serializeError, toError, type SerializedError } from '../../shared/errors.js';
import type { FromSandbox, RealmReply, SandboxTask, ToSandbox } from './sandbox-protocol.js';

/**
 * The isolate's heap limit, MiB. Measured on the examples (the smallest limit each task ran under):
 * a map of a 4 MiB split (the default) needs 15-23 MiB, of a 16 MiB split 23-63 MiB, and a reduce
 * about 5.5 times its input's JSON (271 MiB for 49 MiB of word count without combine). So 1 GiB
 * runs reduces of up to about 180 MiB of input, and stops code that allocates without end within a
 * few seconds. Two threads cannot take more than a few GiB of a volunteer's machine even from a
 * determined attacker (isolated-vm: up to 2-3 times the limit). V8's limit is not airtight: code
 * that grows one huge object can abort the process instead, which is why each sandbox is a process
 * of its own, and the parent then fails the task like any crash.
 */
export const SANDBOX_MEMORY_MIB = 1024;

/** Job contexts kept warm per sandbox, as a tab keeps a Web Worker for each of its 3 latest jobs. */
const JOB_CONTEXTS = 3;

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

function send(message: FromSandbox): void {
  // After the volunteer is gone there is nobody to tell (and 'disconnect' ends this process).
  if (process.connected) process.send!(message);
}

let nextRequest = 1;
const sourceRequests = new Map<number, (m: Extract<ToSandbox, { type: 'source' }>) => void>();

function requestSource(moduleUrl: string): Promise<{ url: string; source: string }> {
  const id = nextRequest++;
  return new Promise((resolve, reject) => {
    sourceRequests.set(id, (m) => (m.ok ? resolve(m) : reject(toError(m.error))));
    send({ type: 'source.get', id, moduleUrl });
  });
}

async function createJob(moduleUrl: string): Promise<JobContext> {
  const { url, source } = await requestSource(moduleUrl);
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

async function runTask(task: SandboxTask): Promise<FromSandbox> {
  try {
    const job = await jobFor(task);
    // applySync runs the job's code on this thread rather than on one of isolated-vm's, which saves
    // a thread hop per task (30 instead of 88 µs of CPU per call, measured). Blocking this process's
    // event loop meanwhile is fine, it has nothing else to do; an async task's later parts run when
    // their timers fire, and the promise resolves then.
    const reply = await job.run.applySync(
      undefined,
      [task.phase, task.nReduce, task.key, task.data, task.skipBadRecords, task.firstLine],
      {
        result: { promise: true, copy: true },
      },
    );
    return { type: 'result', lease: task.lease, ...reply };
  } catch (e) {
    const error = serializeError(e);
    if (isolate?.isDisposed) {
      // The memory limit ended the isolate (and every job's context in it); the next task gets a new one.
      error.name = 'MemoryLimitError';
      error.message = `the job's code used more than ${SANDBOX_MEMORY_MIB} MiB, its sandbox's memory limit (${error.message})`;
      freshIsolate();
    }
    return { type: 'result', lease: task.lease, ok: false, error };
  }
}

// A first task should not wait for the isolate and the engine compiled in it: both are made now.
freshIsolate();

process.on('message', (m: ToSandbox) => {
  if (m.type === 'source') {
    sourceRequests.get(m.id)?.(m);
    sourceRequests.delete(m.id);
  } else void runTask(m).then(send);
});
// The volunteer is gone (even SIGKILLed): nothing is left to work for.
process.on('disconnect', () => process.exit(0));
send({ type: 'ready' });
