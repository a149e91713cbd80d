/**
 * A job worker: the only place job code runs in a tab. Loads a job's module from the master with
 * `import()` (once per job, cached), runs the shared engine on one task at a time, and hands the
 * output back as transferred UTF-8 bytes. Served with the page's Content-Security-Policy, so the job's
 * code can reach no host but the master.
 */
import { expose, transfer } from 'comlink';
import { createModuleCache, loadWithRetries, runTask, taskInput } from '../../shared/task-runner.js';
import { serializeError } from '../../shared/errors.js';
import { decodeText, encodeText } from './bytes.js';
import { CLOSED_NOTICE, type ClosedNotice, type JobReply, type JobRequest, type JobWorkerApi } from './wire.js';

/** The part of DedicatedWorkerGlobalScope used here (the project's TypeScript lib is DOM, not WebWorker). */
interface WorkerScope {
  close(): void;
  postMessage(message: unknown): void;
  location: { href: string };
}
const scope = globalThis as unknown as WorkerScope;

// Must happen before any job code is imported. A job calling close() (or self.close()) ends this
// worker without any event reaching the session; announcing it first lets the pool report the task
// as `crashed` at once instead of after the hard limit. Non-configurable, so job code cannot delete
// it to reach the original again (calling the prototype's close directly still ends up as a timeout).
const realClose = scope.close.bind(scope);
const postMessage = scope.postMessage.bind(scope);
Object.defineProperty(scope, 'close', {
  value: () => {
    postMessage({ type: CLOSED_NOTICE } satisfies ClosedNotice);
    realClose();
  },
  writable: false,
  configurable: false,
});

/** Fresh URLs for retries: this worker's module map keeps a failed fetch for the URL it used. */
let retries = 0;
const loadModule = createModuleCache((url) =>
  loadWithRetries((attempt) => {
    const href = new URL(url, scope.location.href);
    if (attempt > 0) href.searchParams.set('retry', String(++retries));
    return import(/* @vite-ignore */ href.href) as Promise<Record<string, unknown>>;
  }),
);

const api: JobWorkerApi = {
  async run(req: JobRequest): Promise<JobReply> {
    try {
      const input = taskInput(req.phase, req.nReduce, req.key, decodeText(req.data), req.skip);
      const mod = await loadModule(req.moduleUrl);
      const out = await runTask(mod, input, () => performance.now());
      const reply: JobReply = { ok: true, stats: out.stats, output: encodeText(out.output) };
      return transfer(reply, [reply.output]);
    } catch (e) {
      return { ok: false, error: serializeError(e) };
    }
  },
};

expose(api);
