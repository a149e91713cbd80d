/**
 * `tabreduce local`: the job run sequentially in this process with the same splitting and the same
 * engine as the distributed run, so its output is the reference the distributed output must equal.
 */
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { asJobModule, runMap, runReduce, type Partition } from '../../shared/engine.js';
import { describeError, toError } from '../../shared/errors.js';
import { checkJobModule } from '../module-check.js';
import { checkSpec, planSplits, JOB_DEFAULTS, type JobInput } from '../submit-job.js';
import { readInput } from './files.js';

/** The job's own code threw: reported like a failed distributed job (exit 1), with its stack. */
export class LocalJobError extends Error {
  override name = 'LocalJobError';
}

async function guarded<T>(what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw new LocalJobError(`${what} failed: ${describeError(toError(e))}`);
  }
}

export interface LocalOptions {
  reduces?: number;
  splitSize?: number;
  onProgress?: (done: number, total: number, phase: 'map' | 'reduce') => void;
}

/** Returns the R output partitions as `key<TAB>value\n` texts. */
export async function runLocal(modulePath: string, inputPaths: string[], opts: LocalOptions = {}): Promise<string[]> {
  const reduces = opts.reduces ?? JOB_DEFAULTS.reduces;
  const splitSize = opts.splitSize ?? JOB_DEFAULTS.splitSize;
  checkSpec({ moduleName: modulePath, reduces, splitSize, taskTimeoutMs: JOB_DEFAULTS.taskTimeoutMs, maxAttempts: 1 });
  const source = await readInput(modulePath, 'job module').then((b) => b.toString('utf8'));
  checkJobModule(source, modulePath);
  const inputs: JobInput[] = [];
  for (const path of inputPaths) inputs.push({ name: path, bytes: await readInput(path, 'input file') });
  const { splits } = planSplits(inputs, splitSize);
  const mod = asJobModule((await import(pathToFileURL(resolve(modulePath)).href)) as Record<string, unknown>);

  const byPartition: Partition[][] = Array.from({ length: reduces }, () => []);
  for (const [i, s] of splits.entries()) {
    // The master hands a volunteer its split decoded the same way.
    const { partitions } = await guarded(`map task ${i} (input ${JSON.stringify(s.key)})`, () =>
      runMap(mod, s.key, s.bytes.toString('utf8'), reduces),
    );
    partitions.forEach((p, r) => byPartition[r]!.push(p));
    opts.onProgress?.(i + 1, splits.length, 'map');
  }
  const out: string[] = [];
  for (const [r, inputs] of byPartition.entries()) {
    out.push((await guarded(`reduce task ${r} (partition ${r})`, () => runReduce(mod, inputs))).text);
    opts.onProgress?.(r + 1, reduces, 'reduce');
  }
  return out;
}
