import { randomBytes } from 'node:crypto';
import { basename } from 'node:path';
import type { Stores } from './sql/index.js';
import { checkJobModule, type ModuleFacts } from './module-check.js';
import { MAX_SKIP_BAD_RECORDS } from '../shared/protocol.js';
import type { SplitRange } from '../shared/split.js';
import { UserError } from '../shared/errors.js';
import { VERIFY_MODES, type VerifyMode } from '../shared/states.js';

/**
 * One input file, already in the blob store: its key (base name), its size, and its splits as byte
 * ranges of its blob, found while it streamed in (server/receive-job.ts).
 */
export interface StagedInput {
  name: string;
  blob: string;
  bytes: number;
  splits: SplitRange[];
}

export interface JobSpec {
  /** Chosen before the inputs are stored, as their blobs are named after it. */
  id: string;
  name?: string;
  moduleName: string;
  module: string;
  inputs: StagedInput[];
  reduces: number;
  splitSize: number;
  taskTimeoutMs: number;
  maxAttempts: number;
  verify: VerifyMode;
  /**
   * Lines whose `map` throws that the job may skip (`--skip-bad-records`); the module must declare
   * `records = 'lines'`, and each split must carry its `firstLine` (`numberLines`).
   */
  skipBadRecords?: number;
}

export const JOB_DEFAULTS = Object.freeze({
  reduces: 10,
  splitSize: 4 * 1024 * 1024,
  taskTimeoutMs: 10_000,
  maxAttempts: 4,
  verify: 'adaptive' as VerifyMode,
  skipBadRecords: 0,
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

export function checkSpec(
  spec: Pick<JobSpec, 'reduces' | 'splitSize' | 'taskTimeoutMs' | 'maxAttempts' | 'skipBadRecords'>,
): void {
  checkInt('reduces', spec.reduces, 1, JOB_LIMITS.reduces);
  checkInt('skip bad records', spec.skipBadRecords ?? 0, 0, MAX_SKIP_BAD_RECORDS);
  checkInt('split size', spec.splitSize, JOB_LIMITS.minSplitSize, Number.MAX_SAFE_INTEGER);
  checkInt('task timeout (ms)', spec.taskTimeoutMs, JOB_LIMITS.minTaskTimeoutMs, JOB_LIMITS.maxTaskTimeoutMs);
  checkInt('max attempts', spec.maxAttempts, 1, JOB_LIMITS.maxAttempts);
}

/** A `verify` option as given (`--verify`, the API's `verify` field). */
export function parseVerify(v: string): VerifyMode {
  if ((VERIFY_MODES as readonly string[]).includes(v)) return v as VerifyMode;
  throw new UserError(`verify must be one of ${VERIFY_MODES.join(', ')}, got ${JSON.stringify(v)}`);
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

/**
 * Specs that passed `checkJob`, so `insertJob` does not parse a module twice: a job that skips bad
 * records is checked before its inputs are read back for line numbers.
 */
const checked = new WeakSet<JobSpec>();

/** Specs whose options and module passed `checkJobCode` (a job begun early is checked again at its end). */
const codeChecked = new WeakSet<JobSpec>();

/** Checks a job's options and module: what can be checked before its inputs arrive. */
export function checkJobCode(spec: JobSpec): void {
  if (codeChecked.has(spec)) return;
  checkSpec(spec);
  if (Buffer.byteLength(spec.module) > JOB_LIMITS.moduleBytes) {
    throw new UserError(`${spec.moduleName}: module is larger than ${JOB_LIMITS.moduleBytes} bytes`);
  }
  const facts: ModuleFacts = {};
  checkJobModule(spec.module, spec.moduleName, facts);
  if ((spec.skipBadRecords ?? 0) > 0 && facts.records !== 'lines') {
    throw new UserError(
      `${spec.moduleName}: skipping bad records skips lines, but the module does not declare \`export const records = 'lines'\``,
    );
  }
  codeChecked.add(spec);
}

/** Checks what can be checked of a job before its tasks are inserted: options, module, task count. */
export function checkJob(spec: JobSpec): void {
  if (checked.has(spec)) return;
  checkJobCode(spec);
  if (spec.inputs.length === 0) throw new UserError('no input files given');
  inputKeys(spec.inputs.map((i) => i.name));
  checkMapCount(spec.inputs.reduce((n, i) => n + i.splits.length, 0));
  checked.add(spec);
}

export function checkMapCount(maps: number): void {
  if (maps > JOB_LIMITS.maps) {
    throw new UserError(`the inputs make more than ${JOB_LIMITS.maps} map tasks; use a larger --split-size`);
  }
}

/** Map tasks inserted per transaction: each batch is a few milliseconds, then other work runs. */
const TASKS_PER_BATCH = 5_000;

/** Runs one durable transaction (the scheduler's, outside its group commit). */
export type Transaction = <T>(fn: () => T) => T;

function jobRow(spec: JobSpec, now: number, maps: number, inputBytes: number) {
  return {
    id: spec.id,
    name: spec.name?.trim() || spec.moduleName.replace(/\.m?[jt]s$/, ''),
    state: 'queued' as const,
    created_at: now,
    module_name: spec.moduleName,
    module: spec.module,
    n_reduce: spec.reduces,
    split_size: spec.splitSize,
    task_timeout_ms: spec.taskTimeoutMs,
    max_attempts: spec.maxAttempts,
    verify: spec.verify,
    skip_bad_records: spec.skipBadRecords ?? 0,
    maps_total: maps,
    input_bytes: inputBytes,
    stored_bytes: inputBytes,
  };
}

/**
 * Inserts the map tasks of `inputs`, numbered from `first`, in batches of their own transactions
 * with the event loop's turns between them. With `open`, the job's upload is arriving: each batch
 * is added to the job's counts, and none goes in once `open()` is false (the job has ended).
 * Returns the number inserted.
 */
async function insertMaps(
  stores: Stores,
  spec: JobSpec,
  inputs: StagedInput[],
  first: number,
  transaction: Transaction,
  open?: () => boolean,
): Promise<number> {
  const maps = inputs.flatMap((input) =>
    input.splits.map((r) => ({ key: basename(input.name), blob: input.blob, ...r })),
  );
  for (let from = 0; from < maps.length; from += TASKS_PER_BATCH) {
    if (from > 0) await new Promise<void>((resolve) => setImmediate(resolve));
    if (open && !open()) return from;
    transaction(() => {
      const end = Math.min(maps.length, from + TASKS_PER_BATCH);
      let bytes = 0;
      for (let i = from; i < end; i++) {
        const m = maps[i]!;
        bytes += m.end - m.start;
        stores.tasks.insert({
          job_id: spec.id,
          phase: 'map',
          idx: first + i,
          input_key: m.key,
          input_blob: m.blob,
          input_start: m.start,
          input_end: m.end,
          first_line: (spec.skipBadRecords ?? 0) > 0 ? (m.firstLine ?? null) : null,
        });
      }
      if (open) stores.jobs.addMaps(spec.id, end - from, bytes);
    });
  }
  return maps.length;
}

/** The reduces go in last, so a job's task ids run from map 0 to its last reduce (server/task-pages.ts pages by id). */
function insertReduces(stores: Stores, spec: JobSpec): void {
  for (let r = 0; r < spec.reduces; r++) stores.tasks.insert({ ...NO_INPUT, job_id: spec.id, phase: 'reduce', idx: r });
}

/**
 * Inserts a checked job and its tasks. The job row goes in first, hidden (`ready = 0`), then the map
 * tasks in batches (in index order, then the reduces), each its own transaction, yielding to the event loop between them so a job of
 * 200,000 tasks does not stall the master; then the job is made visible. A master that stops in
 * between deletes the hidden job at its next start (server/blobs/sweep.ts).
 */
export async function insertJob(stores: Stores, spec: JobSpec, now: number, transaction: Transaction): Promise<void> {
  checkJob(spec);
  const { jobs } = stores;
  const maps = spec.inputs.reduce((n, i) => n + i.splits.length, 0);
  const inputBytes = spec.inputs.reduce((n, i) => n + i.bytes, 0);
  transaction(() => jobs.insert(jobRow(spec, now, maps, inputBytes)));
  try {
    await insertMaps(stores, spec, spec.inputs, 0, transaction);
    transaction(() => {
      insertReduces(stores, spec);
      jobs.ready(spec.id);
    });
  } catch (e) {
    try {
      transaction(() => jobs.remove(spec.id));
    } catch {
      // the next start removes the hidden job
    }
    throw e;
  }
}

/**
 * A job whose upload is still arriving (server/receive-job.ts): its row goes in shown, with no tasks,
 * its options and module checked; `addUploadedMaps` adds the map tasks of each input as it is
 * stored, and `endUploadJob` the reduces once the upload is complete. Until then the job's barrier
 * waits (maps_total still grows), and a master that stops deletes it at its next start
 * (`abandonedUploads`), as it deletes a job whose submit never finished.
 */
export function beginUploadJob(stores: Stores, spec: JobSpec, now: number, transaction: Transaction): void {
  checkJobCode(spec);
  transaction(() => stores.jobs.insert(jobRow(spec, now, 0, 0), { uploading: true }));
}

/** Adds the map tasks of stored inputs to an uploading job, numbered from `first`, while `open()` holds. */
export function addUploadedMaps(
  stores: Stores,
  spec: JobSpec,
  inputs: StagedInput[],
  first: number,
  transaction: Transaction,
  open: () => boolean,
): Promise<number> {
  return insertMaps(stores, spec, inputs, first, transaction, open);
}

/**
 * The upload is complete: the reduces go in and the map count is final. Returns the maps' counts.
 * Run inside a transaction that also moves the job on if its maps are all done.
 */
export function endUploadJob(stores: Stores, spec: JobSpec): { maps_done: number; maps_total: number } {
  checkJob(spec);
  insertReduces(stores, spec);
  return stores.jobs.uploaded(spec.id)!;
}

const NO_INPUT = { input_key: null, input_blob: null, input_start: null, input_end: null, first_line: null } as const;

/** Short, unguessable, easy to type: 12 characters of lowercase base-32. */
export function newJobId(): string {
  const alphabet = 'abcdefghijkmnpqrstuvwxyz23456789';
  return [...randomBytes(12)].map((b) => alphabet[b % 32]).join('');
}
