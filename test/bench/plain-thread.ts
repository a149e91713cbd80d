/**
 * The sandbox benchmark's reference: a worker thread that runs the engine on the job's module
 * imported straight into Node, as `tabreduce volunteer` did before job code was sandboxed.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { pathToFileURL } from 'node:url';
import { join } from 'node:path';
import type { TaskAssign } from '../../shared/protocol.js';

const { root, modulePath } = workerData as { root: string; modulePath: string };
const { runTask } = (await import(
  pathToFileURL(join(root, 'dist/shared/task-runner.js')).href
)) as typeof import('../../shared/task-runner.js');
const { asJobModule } = (await import(
  pathToFileURL(join(root, 'dist/shared/engine.js')).href
)) as typeof import('../../shared/engine.js');
const mod = asJobModule((await import(pathToFileURL(modulePath).href)) as Record<string, unknown>);

parentPort!.on('message', async (task: TaskAssign) => {
  const out = await runTask(mod, task, () => performance.now());
  parentPort!.postMessage(out);
});
parentPort!.postMessage('ready');
