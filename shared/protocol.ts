/**
 * The volunteer WebSocket protocol at `/ws`: one message union per direction, `noun.verb` types,
 * JSON text frames, validated on arrival by `parseVolunteerMessage` (master side) and
 * `parseMasterMessage` (volunteer side).
 *
 * A session: the volunteer sends `hello` (with its id and secret when it reconnects, and the leases
 * it still holds); the master answers `welcome` and then pushes `task.assign` while the volunteer has
 * free slots. The volunteer answers each lease with `task.result` or `task.fail`, sends `heartbeat`
 * every `heartbeatMs`, and the master answers results with `task.ack` and may send `task.cancel`
 * (a backup attempt won, or the job ended). Invalid messages get an `error` reply and are ignored.
 */
import { z } from 'zod';
import type { SerializedError } from './errors.js';
import { COUNTER_LIMITS } from './engine.js';

/** 2: task data travels by URL when large (`TaskData`), and outputs are records text (shared/records.ts). */
export const PROTOCOL_VERSION = 2;

const id = z.string().min(1).max(64);
const lease = z.string().regex(/^[0-9a-f]{32}$/, 'lease must be 32 hex digits');
const leases = z.array(lease).max(1024);
const threads = z.int().min(1).max(256);
/**
 * The name the volunteer's visitor chose, optional (a volunteer without one sends none, so its
 * hello is what it always was). The master keeps it cleaned and cut (shared/volunteer-label.ts).
 */
const name = z.string().max(200);

const serializedError = z.strictObject({
  name: z.string().max(200),
  message: z.string().max(10_000),
  stack: z.string().max(20_000).optional(),
});

/**
 * Most records one task may report: 2^31 - 1. Summed over a job's at most 200,000 map and 10,000
 * reduce tasks that stays below 2^53, so no volunteer's figure can overflow a job's counters.
 */
export const MAX_TASK_RECORDS = 2 ** 31 - 1;

/** Most lines a job may skip (`submit --skip-bad-records N`), so one task's report of them fits a message. */
export const MAX_SKIP_BAD_RECORDS = 1_000;

/** What `ctx.count` added up to in the task (shared/engine.ts COUNTER_LIMITS), names ascending. */
const counters = z
  .record(
    z.string().min(1).max(COUNTER_LIMITS.nameChars),
    z.int().min(-COUNTER_LIMITS.perTask).max(COUNTER_LIMITS.perTask),
  )
  .refine((c) => Object.keys(c).length <= COUNTER_LIMITS.names, {
    message: `at most ${COUNTER_LIMITS.names} counters`,
  });

/** A line a map task skipped under `skipBadRecords` (shared/engine.ts SkippedRecord). */
const skippedRecord = z.strictObject({
  line: z.int().min(1).max(Number.MAX_SAFE_INTEGER),
  text: z.string().max(200),
  error: z.strictObject({
    name: z.string().max(200),
    message: z.string().max(1_000),
    stack: z.string().max(2_000).optional(),
  }),
});

export const taskStats = z.strictObject({
  /** Wall time spent in the job's code, milliseconds. */
  ms: z.number().min(0).max(1e9),
  recordsIn: z.int().min(0).max(MAX_TASK_RECORDS),
  recordsOut: z.int().min(0).max(MAX_TASK_RECORDS),
  /** Absent when the job counted nothing. */
  counters: counters.optional(),
  /** Lines skipped, in order; only for a map task of a job with `skipBadRecords`, at most that many. */
  skipped: z.array(skippedRecord).max(MAX_SKIP_BAD_RECORDS).optional(),
});
export type SkippedRecordReport = z.infer<typeof skippedRecord>;
export type TaskStats = z.infer<typeof taskStats>;

const hello = z.strictObject({
  type: z.literal('hello'),
  protocol: z.literal(PROTOCOL_VERSION),
  volunteerId: id.optional(),
  secret: z.string().max(64).optional(),
  /** Web Workers (or worker threads) computing at once. */
  threads,
  /** Tasks the volunteer will hold at once: its threads plus a small prefetch queue. */
  slots: z.int().min(0).max(512),
  paused: z.boolean(),
  agent: z.string().max(300),
  name: name.optional(),
  /** Leases the volunteer still holds from before a reconnect. */
  running: leases,
});

const heartbeat = z.strictObject({
  type: z.literal('heartbeat'),
  running: leases,
});

const update = z.strictObject({
  type: z.literal('volunteer.update'),
  threads,
  slots: z.int().min(0).max(512),
  paused: z.boolean(),
  /** A new name; '' drops the old one. Absent: the name stays as it is. */
  name: name.optional(),
});

const result = z
  .strictObject({
    type: z.literal('task.result'),
    lease,
    /**
     * The output itself, when it is at most `welcome.inlineBytes` of UTF-8. Map: its records
     * (shared/records.ts); reduce: the `key<TAB>value\n` text. Checked per phase by the master.
     */
    output: z.string().optional(),
    /** The output went up by `PUT /data/LEASE/output` instead, and the master has it. */
    uploaded: z.literal(true).optional(),
    stats: taskStats,
  })
  .refine((m) => (m.output === undefined) !== (m.uploaded === undefined), {
    message: 'a result has either output or uploaded: true',
  });

const failure = z.strictObject({
  type: z.literal('task.fail'),
  lease,
  /**
   * `threw`: the job's code threw; `timeout`: it ran past the hard limit; `crashed`: its worker died;
   * `too-large`: its output is larger than the master takes (`welcome.maxOutputBytes`, `serve --max-upload`).
   */
  reason: z.enum(['threw', 'timeout', 'crashed', 'too-large']),
  error: serializedError,
});

const volunteerMessage = z.discriminatedUnion('type', [hello, heartbeat, update, result, failure]);
export type VolunteerMessage = z.infer<typeof volunteerMessage>;
export type HelloMessage = z.infer<typeof hello>;
export type TaskResultMessage = z.infer<typeof result>;
export type TaskFailMessage = z.infer<typeof failure>;

/**
 * A task's input: inside the message when it is small (`text`), else on the master at `url`
 * (`GET`, a path on the master's origin, authorised by the lease in it), which the volunteer fetches
 * as a stream before running the task. Job code never fetches it: the volunteer's own code does.
 */
export interface TaskData {
  /** Its size in UTF-8 bytes. */
  bytes: number;
  text?: string;
  url?: string;
}
interface MapAssign {
  phase: 'map';
  /**
   * The input file's base name, and one split of it (text); for a job that skips bad records, the
   * line number of the split's first line in its file.
   */
  input: TaskData & { key: string; firstLine?: number };
  /** Lines whose `map` throws that the task may skip (`submit --skip-bad-records`); absent: none. */
  skipBadRecords?: number;
}
interface ReduceAssign {
  phase: 'reduce';
  /** Partition `index` of every map task's output, in map-task order, as records (shared/records.ts). */
  input: TaskData;
}
export type TaskAssign = {
  type: 'task.assign';
  lease: string;
  jobId: string;
  jobName: string;
  taskId: number;
  index: number;
  nReduce: number;
  /** Path of the job module on the master; the same for every task of a job, so it is cached. */
  moduleUrl: string;
  /** Past this the volunteer stops the job's code and reports `task.fail` with reason `timeout`. */
  hardLimitMs: number;
} & (MapAssign | ReduceAssign);

export type MasterMessage =
  | {
      type: 'welcome';
      volunteerId: string;
      secret: string;
      heartbeatMs: number;
      /** Leases from `hello.running` that the master still counts as this volunteer's. */
      kept: string[];
      /** Largest frame the master accepts (`serve --max-message`). */
      maxMessageBytes?: number;
      /** Outputs of more UTF-8 bytes than this go up by `PUT /data/LEASE/output`, not in `task.result`. */
      inlineBytes: number;
      /** Largest output the master takes (`serve --max-upload`): a larger one is reported as too large. */
      maxOutputBytes: number;
      /**
       * What this identity has given so far: tasks committed (kept in the database) and their input
       * bytes (kept while the master runs). A reloaded tab shows its running total from these.
       * Optional: a volunteer must not count on it.
       */
      totals?: { done: number; bytes: number };
    }
  | TaskAssign
  | { type: 'task.cancel'; lease: string; reason: string }
  | { type: 'task.ack'; lease: string; outcome: 'committed' | 'superseded' | 'refused'; reason?: string }
  | { type: 'error'; message: string };

export type Parsed<T> = { ok: true; msg: T } | { ok: false; error: string };

function describe(err: z.ZodError): string {
  const issue = err.issues[0];
  if (!issue) return 'invalid message';
  const path = issue.path.length > 0 ? issue.path.join('.') : 'message';
  return `${path}: ${issue.message}`;
}

function parseJson(text: string): Parsed<unknown> {
  try {
    return { ok: true, msg: JSON.parse(text) as unknown };
  } catch {
    return { ok: false, error: 'not JSON' };
  }
}

/** Validates one frame from a volunteer. Never throws. */
export function parseVolunteerMessage(text: string): Parsed<VolunteerMessage> {
  const json = parseJson(text);
  if (!json.ok) return json;
  const r = volunteerMessage.safeParse(json.msg);
  return r.success ? { ok: true, msg: r.data } : { ok: false, error: describe(r.error) };
}

/** Volunteers trust their master, but still refuse frames they cannot act on. */
export function parseMasterMessage(text: string): Parsed<MasterMessage> {
  const json = parseJson(text);
  if (!json.ok) return json;
  const m = json.msg as { type?: unknown };
  const known = ['welcome', 'task.assign', 'task.cancel', 'task.ack', 'error'];
  if (typeof m !== 'object' || m === null || !known.includes(m.type as string)) {
    return { ok: false, error: 'unknown message type' };
  }
  return { ok: true, msg: m as MasterMessage };
}

export type { SerializedError };
