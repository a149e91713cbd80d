/**
 * What runs inside the Node volunteer's job sandbox, a V8 isolate with no Node APIs: the globals of
 * realm-globals.ts, then the very `runTask` the tab and `tabreduce local` run. `npm run build`
 * bundles this file and its imports into one script (dist/server/volunteer/sandbox-realm.iife.js);
 * sandbox-host.ts evaluates it in each job's fresh context before the job's module. A task crosses
 * into the realm once, as strings, and its output comes back once, as the text the master stores.
 */
import { fireTimer, onUncaught } from './realm-globals.js';
import { runTask, taskInput } from '../../shared/task-runner.js';
import { asJobModule } from '../../shared/engine.js';
import { serializeError, type SerializedError } from '../../shared/errors.js';
import type { JobModule } from '../../shared/job-types.js';
import type { RealmReply } from './sandbox-protocol.js';

// Job code may replace Date.now; the task's clock is the one from before it existed.
const clock = Date.now;
let mod: JobModule | null = null;
let failRunning: ((e: unknown) => void) | null = null;
// An error thrown by a timer or microtask callback of the job fails the task running then, as an
// uncaught error ends a tab's Web Worker; between tasks there is nothing to fail.
onUncaught((e) => failRunning?.(e));

const realm = {
  /** Takes the job module's namespace; returns why it is not a job module, or null. */
  setModule(namespace: Record<string, unknown>): SerializedError | null {
    try {
      mod = asJobModule(namespace);
      return null;
    } catch (e) {
      return serializeError(e);
    }
  },

  /** One task: a map's split (`key`, `data` its text) or a reduce's input (`data`, its records text). */
  async run(
    phase: 'map' | 'reduce',
    nReduce: number,
    key: string,
    data: string,
    skipBadRecords: number,
    firstLine: number,
  ): Promise<RealmReply> {
    try {
      if (!mod) throw new Error('no job module was loaded');
      const failed = new Promise<never>((_, reject) => (failRunning = reject));
      const skip = skipBadRecords > 0 ? { skipBadRecords, firstLine } : undefined;
      const input = taskInput(phase, nReduce, key, data, skip);
      const out = await Promise.race([runTask(mod, input, () => clock()), failed]);
      return { ok: true, output: out.output, stats: out.stats };
    } catch (e) {
      return { ok: false, error: serializeError(e) };
    } finally {
      failRunning = null;
    }
  },

  fireTimer,
};

(globalThis as unknown as { __tabreduceRealm: typeof realm }).__tabreduceRealm = realm;
