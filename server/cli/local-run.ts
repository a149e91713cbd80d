/**
 * `tabreduce local`: the job run sequentially in this process with the same splitting and the same
 * engine as the distributed run, so its output is the reference the distributed output must equal.
 */
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  addCounters,
  asJobModule,
  COUNTER_LIMITS,
  runMap,
  runReduce,
  type Counters,
  type SkippedRecord,
} from '../../shared/engine.js';
import { describeError, toError } from '../../shared/errors.js';
import { mapStack } from '../stack-map.js';
import { loadJobSource } from './bundle.js';
import { checkSpec, inputKeys, JOB_DEFAULTS } from '../submit-job.js';
import { checkReadable, expandInputs, fsUserError, isFsError } from './files.js';
import { SplitFinder, type SplitRange } from '../../shared/split.js';
import { decodeRecords, encodePartition } from '../../shared/records.js';
import { Utf8Check } from '../utf8-check.js';
import { UserError } from '../../shared/errors.js';
import { createReadStream } from 'node:fs';
import { appendFile, mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** The job's own code threw: reported like a failed distributed job (exit 1), with its stack. */
export class LocalJobError extends Error {
  override name = 'LocalJobError';
}

/** Runs job code; what it throws becomes a LocalJobError, its stack in the author's files when `map` has them. */
async function guarded<T>(what: string, fn: () => Promise<T>, map: (e: Error) => Error): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw new LocalJobError(`${what} failed: ${describeError(map(toError(e)))}`);
  }
}

export interface LocalOptions {
  reduces?: number;
  splitSize?: number;
  onProgress?: (done: number, total: number, phase: 'map' | 'reduce') => void;
  /** Bundle the module (server/cli/bundle.ts) rather than import it as it is; default true. */
  bundle?: boolean;
  /** Lines whose `map` throws that the whole job may skip (a `records = 'lines'` job); default 0. */
  skipBadRecords?: number;
  onSkip?: (record: SkippedRecord & { key: string }) => void;
  /** The job's counters (`ctx.count`), names ascending, once it has run. */
  onCounters?: (counters: Counters) => void;
}

/** Adds a task's counters to the job's, which may have no more names than the master allows either. */
function addJobCounters(job: Counters, task: Counters): Counters {
  const sum = addCounters(job, task);
  if (Object.keys(sum).length > COUNTER_LIMITS.names) {
    throw new LocalJobError(
      `the job counted more than ${COUNTER_LIMITS.names} counter names; ctx.count takes a fixed set of names, not one per record`,
    );
  }
  return sum;
}

function countNewlines(text: string): number {
  let n = 0;
  for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) n++;
  return n;
}

/** Finds an input's splits as `submit` does: streamed, its UTF-8 checked, never read whole. */
async function scanInput(path: string, splitSize: number): Promise<SplitRange[]> {
  const finder = new SplitFinder(splitSize);
  const utf8 = new Utf8Check(`input ${path}`);
  const splits: SplitRange[] = [];
  try {
    for await (const chunk of createReadStream(path, { highWaterMark: 1024 * 1024 }) as AsyncIterable<Buffer>) {
      utf8.push(chunk);
      splits.push(...finder.push(chunk));
    }
    utf8.end();
  } catch (e) {
    if (isFsError(e)) throw fsUserError(e, 'read input file', path);
    throw new UserError(toError(e).message);
  }
  return [...splits, ...finder.end()];
}

async function readRange(path: string, r: SplitRange): Promise<string> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.allocUnsafe(r.end - r.start);
    let off = 0;
    while (off < buf.length) {
      const { bytesRead } = await fh.read(buf, off, buf.length - off, r.start + off);
      if (bytesRead === 0) throw new UserError(`input ${path} changed while it was read`);
      off += bytesRead;
    }
    return buf.toString('utf8');
  } finally {
    await fh.close();
  }
}

/**
 * Returns the R output partitions as `key<TAB>value\n` texts. Map outputs are written as records
 * (shared/records.ts) to one temporary file per partition, as the master keeps them, so the run
 * holds one split and one partition at a time, not the job.
 */
export async function runLocal(modulePath: string, inputPaths: string[], opts: LocalOptions = {}): Promise<string[]> {
  const reduces = opts.reduces ?? JOB_DEFAULTS.reduces;
  const splitSize = opts.splitSize ?? JOB_DEFAULTS.splitSize;
  checkSpec({ reduces, splitSize, taskTimeoutMs: JOB_DEFAULTS.taskTimeoutMs, maxAttempts: 1 });
  const bundle = opts.bundle ?? true;
  const job = await loadJobSource(modulePath, { bundle });
  if (inputPaths.length === 0) throw new UserError('no input files given');
  const inputFiles = await expandInputs(inputPaths);
  const keys = inputKeys(inputFiles);
  const plan: { path: string; key: string; range: SplitRange }[] = [];
  for (const [i, path] of inputFiles.entries()) {
    await checkReadable(path, 'input file');
    for (const range of await scanInput(path, splitSize)) plan.push({ path, key: keys[i]!, range });
  }

  const dir = await mkdtemp(join(tmpdir(), 'tabreduce-local-'));
  try {
    // A bundle is imported from a file of its own; a module sent as it is, from where it is.
    let url = pathToFileURL(resolve(modulePath)).href;
    if (bundle) {
      url = pathToFileURL(join(dir, 'job.mjs')).href;
      await writeFile(join(dir, 'job.mjs'), job.source);
    }
    const map = job.map;
    const authorStack = (e: Error): Error => {
      if (map && e.stack) e.stack = mapStack(e.stack, map, (u) => u === url);
      return e;
    };
    const mod = asJobModule(
      (await guarded('loading the job module', () => import(url), authorStack)) as Record<string, unknown>,
    );
    const skipBadRecords = opts.skipBadRecords ?? 0;
    if (skipBadRecords > 0 && mod.records !== 'lines') {
      throw new UserError(
        `--skip-bad-records skips lines, but ${modulePath} does not declare \`export const records = 'lines'\``,
      );
    }
    let skippedSoFar = 0;
    let counters: Counters = {};
    // Line numbers run on across a file's splits, which end at line boundaries.
    let firstLine = 1;
    const files = Array.from({ length: reduces }, (_, r) => join(dir, `part-${r}`));
    for (const [i, s] of plan.entries()) {
      const value = await readRange(s.path, s.range);
      if (i === 0 || plan[i - 1]!.path !== s.path) firstLine = 1;
      // The master hands a volunteer its split decoded the same way.
      const {
        partitions,
        skipped,
        counters: mapCounters,
      } = await guarded(
        `map task ${i} (input ${JSON.stringify(s.key)})`,
        () => runMap(mod, s.key, value, reduces, { skipBadRecords, skippedBefore: skippedSoFar, firstLine }),
        authorStack,
      );
      for (const r of skipped) {
        if (r.error.stack) r.error.stack = authorStack(toError(r.error)).stack;
        opts.onSkip?.({ ...r, key: s.key });
      }
      skippedSoFar += skipped.length;
      counters = addJobCounters(counters, mapCounters);
      firstLine += countNewlines(value);
      for (const [r, p] of partitions.entries()) {
        if (p.length > 0) await appendFile(files[r]!, encodePartition(r, p));
      }
      opts.onProgress?.(i + 1, plan.length, 'map');
    }
    const out: string[] = [];
    for (const [r, file] of files.entries()) {
      const text = await readFile(file, 'utf8').catch(() => '');
      const reduced = await guarded(
        `reduce task ${r} (partition ${r})`,
        () => runReduce(mod, [decodeRecords(text)]),
        authorStack,
      );
      counters = addJobCounters(counters, reduced.counters);
      out.push(reduced.text);
      opts.onProgress?.(r + 1, reduces, 'reduce');
    }
    opts.onCounters?.(counters);
    return out;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
