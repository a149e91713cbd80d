import { randomBytes } from 'node:crypto';
import { basename } from 'node:path';
import type { Stores } from './sql/index.js';
import { checkJobModule } from './module-check.js';
import { decodeUtf8, splitRanges } from '../shared/split.js';
import { UserError, toError } from '../shared/errors.js';

export interface JobInput {
  name: string;
  bytes: Uint8Array;
}

export interface JobSpec {
  name?: string;
  moduleName: string;
  module: string;
  inputs: JobInput[];
  reduces: number;
  splitSize: number;
  taskTimeoutMs: number;
  maxAttempts: number;
}

export const JOB_DEFAULTS = Object.freeze({
  reduces: 10,
  splitSize: 4 * 1024 * 1024,
  taskTimeoutMs: 10_000,
  maxAttempts: 4,
});

/** Bounds that keep one job from swamping the master; each error says which bound it broke. */
export const JOB_LIMITS = Object.freeze({
  reduces: 10_000,
  maps: 200_000,
  minSplitSize: 64,
  minTaskTimeoutMs: 100,
  maxTaskTimeoutMs: 24 * 3_600_000,
  maxAttempts: 100,
  moduleBytes: 5 * 1024 * 1024,
});

function checkInt(what: string, v: number, min: number, max: number): void {
  if (!Number.isInteger(v) || v < min || v > max) {
    throw new UserError(`${what} must be a whole number from ${min} to ${max}, got ${v}`);
  }
}

export function checkSpec(spec: Omit<JobSpec, 'inputs' | 'module'>): void {
  checkInt('reduces', spec.reduces, 1, JOB_LIMITS.reduces);
  checkInt('split size', spec.splitSize, JOB_LIMITS.minSplitSize, Number.MAX_SAFE_INTEGER);
  checkInt('task timeout (ms)', spec.taskTimeoutMs, JOB_LIMITS.minTaskTimeoutMs, JOB_LIMITS.maxTaskTimeoutMs);
  checkInt('max attempts', spec.maxAttempts, 1, JOB_LIMITS.maxAttempts);
}

/** The base names under which inputs reach `map`; two inputs may not share one. */
export function inputKeys(names: string[]): string[] {
  const keys = names.map((n) => basename(n));
  const seen = new Map<string, string>();
  keys.forEach((k, i) => {
    const other = seen.get(k);
    if (other !== undefined) {
      throw new UserError(
        `two inputs have the base name "${k}" (${other} and ${names[i]}); map keys must be unique, so rename one`,
      );
    }
    seen.set(k, names[i]!);
  });
  return keys;
}

/** One map task's input: a run of whole lines from the input named `key`. */
export interface Split {
  key: string;
  bytes: Buffer;
}

/**
 * Cuts the inputs into splits at line ends, checking each input's key and encoding on the way, for
 * `submitJob` and `tabreduce local` alike so both run the same map tasks. The encoding is checked
 * split by split, as `map` receives it: a whole input may be longer than the longest string V8 can
 * hold (2^29 - 24 characters).
 */
export function planSplits(inputs: JobInput[], splitSize: number): { splits: Split[]; bytes: number } {
  if (inputs.length === 0) throw new UserError('no input files given');
  const keys = inputKeys(inputs.map((i) => i.name));
  const splits: Split[] = [];
  let bytes = 0;
  inputs.forEach((input, i) => {
    const buf = Buffer.from(input.bytes.buffer, input.bytes.byteOffset, input.bytes.byteLength);
    for (const r of splitRanges(buf, splitSize)) {
      const piece = buf.subarray(r.start, r.end);
      try {
        decodeUtf8(piece, `input ${input.name}`, r.start);
      } catch (e) {
        throw new UserError(toError(e).message);
      }
      splits.push({ key: keys[i]!, bytes: piece });
    }
    bytes += buf.length;
  });
  return { splits, bytes };
}

/**
 * Validates a job completely (module, options, every input's encoding), then inserts the job and all
 * its tasks in one transaction: either the whole job is queued or nothing is.
 */
export function submitJob(stores: Stores, spec: JobSpec, now: number): string {
  checkSpec(spec);
  if (Buffer.byteLength(spec.module) > JOB_LIMITS.moduleBytes) {
    throw new UserError(`${spec.moduleName}: module is larger than ${JOB_LIMITS.moduleBytes} bytes`);
  }
  checkJobModule(spec.module, spec.moduleName);
  const { splits, bytes: inputBytes } = planSplits(spec.inputs, spec.splitSize);
  if (splits.length > JOB_LIMITS.maps) {
    throw new UserError(
      `the inputs make ${splits.length} map tasks, more than ${JOB_LIMITS.maps}; use a larger --split-size`,
    );
  }
  const id = newJobId();
  const { jobs, tasks } = stores;
  stores.transaction(() => {
    jobs.insert({
      id,
      name: spec.name?.trim() || spec.moduleName.replace(/\.m?js$/, ''),
      state: 'queued',
      created_at: now,
      module_name: spec.moduleName,
      module: spec.module,
      n_reduce: spec.reduces,
      split_size: spec.splitSize,
      task_timeout_ms: spec.taskTimeoutMs,
      max_attempts: spec.maxAttempts,
      maps_total: splits.length,
      input_bytes: inputBytes,
    });
    splits.forEach((s, idx) => tasks.insert({ job_id: id, phase: 'map', idx, input_key: s.key, input: s.bytes }));
    for (let r = 0; r < spec.reduces; r++)
      tasks.insert({ job_id: id, phase: 'reduce', idx: r, input_key: null, input: null });
  });
  return id;
}

/** Short, unguessable, easy to type: 12 characters of lowercase base-32. */
function newJobId(): string {
  const alphabet = 'abcdefghijkmnpqrstuvwxyz23456789';
  return [...randomBytes(12)].map((b) => alphabet[b % 32]).join('');
}
