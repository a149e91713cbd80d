/**
 * One slot of the tab's WorkerPool: a module Web Worker (worker.ts) driven through Comlink. Inputs
 * and outputs cross as transferred buffers. A worker that closed itself or threw outside the job's
 * functions rejects its task with `crashed`, and the pool replaces it.
 */
import { transfer, wrap, type Remote } from 'comlink';
import { skipOptionsOf } from '../../shared/task-runner.js';
import { serializeError } from '../../shared/errors.js';
import { TaskFailure, type ExecutorOutput, type ReadyTask } from '../../shared/volunteer-session.js';
import type { PoolWorker } from '../../shared/worker-pool.js';
import { bufferOf, encodeText } from './bytes.js';
import { isClosedNotice, type JobReply, type JobRequest, type JobWorkerApi } from './wire.js';

interface Live {
  worker: Worker;
  remote: Remote<JobWorkerApi>;
  jobId: string;
  /** Set once the worker is unusable; later tasks get a fresh worker. */
  dead: TaskFailure | null;
  /** Rejects the task in flight, if any, when the worker dies. */
  onDeath: ((f: TaskFailure) => void) | null;
  idleTimer: ReturnType<typeof setTimeout> | null;
}

function spawn(jobId: string): Live {
  const worker = new Worker(new URL('./worker.ts', import.meta.url), {
    type: 'module',
    name: `tabreduce job ${jobId}`,
  });
  const live: Live = {
    worker,
    remote: wrap<JobWorkerApi>(worker),
    jobId,
    dead: null,
    onDeath: null,
    idleTimer: null,
  };
  const die = (name: string, message: string) => {
    if (live.dead) return;
    live.dead = new TaskFailure('crashed', { name, message });
    live.onDeath?.(live.dead);
  };
  worker.addEventListener('message', (ev: MessageEvent) => {
    if (isClosedNotice(ev.data)) die('WorkerClosed', "the job's code closed its Web Worker (it called close())");
  });
  worker.addEventListener('error', (ev: ErrorEvent) => {
    // Uncaught errors outside map/reduce (a timer callback, a failed worker script load): the worker's
    // state can no longer be trusted, so it is replaced.
    ev.preventDefault();
    die(
      'WorkerError',
      `the job's Web Worker failed: ${ev.message || 'it could not start or threw outside map/reduce'}`,
    );
  });
  worker.addEventListener('messageerror', () => die('WorkerError', 'a message from the Web Worker could not be read'));
  return live;
}

function request(task: ReadyTask) {
  // The input crosses as one transferred buffer of UTF-8 rather than as a copied string: a map's
  // split, a reduce's records text (parsed in the job worker, off this thread). Fetched inputs are
  // bytes already (the pool `takesBytes`) and cross as they came.
  const data = task.input.utf8 ? bufferOf(task.input.utf8) : encodeText(task.input.text);
  const key = task.phase === 'map' ? task.input.key : '';
  const skip = skipOptionsOf(task);
  const req: JobRequest = { moduleUrl: task.moduleUrl, phase: task.phase, nReduce: task.nReduce, key, data };
  if (skip) req.skip = skip;
  return transfer(req, [data]);
}

/**
 * Workers one slot keeps, one per recent job. Starting a module worker took 30-150 ms here (median
 * about 50 ms, Chromium 156 on the loaded 2-core test machine), and the master often alternates
 * between running jobs when it refills a tab, so each job keeps its warm worker for a while.
 */
const JOB_WORKERS_PER_SLOT = 3;
/** An idle job worker is ended after this long, so a finished job's leftover timers stop using the CPU. */
const IDLE_WORKER_MS = 30_000;

/**
 * Job code of different jobs never shares a worker: a job's leftover timers or changed globals
 * cannot touch another job's results. Within a job the worker, and its loaded module, are reused.
 */
export function createWebPoolWorker(): PoolWorker {
  /** Live workers by job id, least recently used first. */
  const lives = new Map<string, Live>();
  const end = (live: Live) => {
    if (live.idleTimer) clearTimeout(live.idleTimer);
    live.worker.terminate();
    if (lives.get(live.jobId) === live) lives.delete(live.jobId);
  };
  const workerFor = (jobId: string): Live => {
    let live = lives.get(jobId);
    if (live && live.idleTimer) clearTimeout(live.idleTimer);
    lives.delete(jobId);
    if (!live || live.dead) {
      if (live) end(live);
      live = spawn(jobId);
    }
    lives.set(jobId, live);
    for (const old of lives.values()) {
      if (lives.size <= JOB_WORKERS_PER_SLOT) break;
      end(old);
    }
    return live;
  };
  return {
    run(task: ReadyTask): Promise<ExecutorOutput> {
      const current = workerFor(task.jobId);
      const died = new Promise<never>((_, reject) => (current.onDeath = reject));
      const ran = current.remote.run(request(task)).then(
        (reply: JobReply) => {
          if (!reply.ok) throw new TaskFailure('threw', reply.error);
          // Left as bytes: the session uploads them as they are and decodes only a small output it sends inline.
          return { output: new Uint8Array(reply.output), stats: reply.stats };
        },
        (e: unknown) => {
          throw e instanceof TaskFailure ? e : new TaskFailure('crashed', serializeError(e));
        },
      );
      // Whichever loses the race may still settle later; nobody waits for it then.
      died.catch(() => {});
      ran.catch(() => {});
      return Promise.race([ran, died]).finally(() => {
        current.onDeath = null;
        current.idleTimer = setTimeout(() => end(current), IDLE_WORKER_MS);
      });
    },
    terminate() {
      for (const live of [...lives.values()]) end(live);
    },
  };
}
