/**
 * The sandbox benchmark's reference: a worker thread that runs the engine on the job's module
 * imported straight into Node, as `tabreduce volunteer` did before job code was sandboxed. Plain
 * JavaScript, because worker threads do not get tsx's loader.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { pathToFileURL } from 'node:url';
import { join } from 'node:path';

const { root, modulePath } = workerData;
const { runTask, taskInput } = await import(pathToFileURL(join(root, 'dist/shared/task-runner.js')).href);
const { asJobModule } = await import(pathToFileURL(join(root, 'dist/shared/engine.js')).href);
const mod = asJobModule(await import(pathToFileURL(modulePath).href));

parentPort.on('message', async (task) => {
  const input = taskInput(task.phase, task.nReduce, task.input.key ?? '', task.input.text);
  parentPort.postMessage(await runTask(mod, input, () => performance.now()));
});
parentPort.postMessage('ready');
