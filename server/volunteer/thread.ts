/** A worker thread of `tabreduce volunteer`: loads job modules from the master and runs the engine. */
import { parentPort, workerData } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';
import { createModuleCache, loadWithRetries, runTask } from '../../shared/task-runner.js';
import { serializeError } from '../../shared/errors.js';
import type { TaskAssign } from '../../shared/protocol.js';

const base = (workerData as { base: string }).base;

/** data: URLs of loaded modules → the module's URL on the master, so stacks name a real place. */
const aliases = new Map<string, string>();

const load = createModuleCache(async (url) => {
  const full = new URL(url, base).href;
  // A failed fetch (TypeError) is retried: the master may be restarting.
  const res = await loadWithRetries(() => fetch(full));
  if (!res.ok) throw new Error(`could not load the job module from ${url}: HTTP ${res.status}`);
  const dataUrl = `data:text/javascript;base64,${Buffer.from(await res.text()).toString('base64')}`;
  aliases.set(dataUrl, full);
  return (await import(dataUrl)) as Record<string, unknown>;
});

function readableError(e: unknown) {
  const err = serializeError(e);
  for (const [dataUrl, url] of aliases) err.stack = err.stack?.replaceAll(dataUrl, url);
  return err;
}

parentPort!.on('message', async (task: TaskAssign) => {
  try {
    const mod = await load(task.moduleUrl);
    const out = await runTask(mod, task, () => performance.now());
    parentPort!.postMessage({ lease: task.lease, ok: true, out });
  } catch (e) {
    parentPort!.postMessage({ lease: task.lease, ok: false, error: readableError(e) });
  }
});
