/** A worker thread of `tabreduce volunteer`: loads job modules from the master and runs the engine. */
import { parentPort, workerData } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';
import { createModuleCache, runTask } from '../../shared/task-runner.js';
import { serializeError } from '../../shared/errors.js';
import type { TaskAssign } from '../../shared/protocol.js';

const base = (workerData as { base: string }).base;

const load = createModuleCache(async (url) => {
  const res = await fetch(new URL(url, base));
  if (!res.ok) throw new Error(`could not load the job module from ${url}: HTTP ${res.status}`);
  const source = await res.text();
  return (await import(`data:text/javascript;base64,${Buffer.from(source).toString('base64')}`)) as Record<
    string,
    unknown
  >;
});

parentPort!.on('message', async (task: TaskAssign) => {
  try {
    const mod = await load(task.moduleUrl);
    const out = await runTask(mod, task, () => performance.now());
    parentPort!.postMessage({ lease: task.lease, ok: true, out });
  } catch (e) {
    parentPort!.postMessage({ lease: task.lease, ok: false, error: serializeError(e) });
  }
});
