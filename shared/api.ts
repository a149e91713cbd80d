/**
 * The JSON shapes of the HTTP API (README "HTTP API"). They live here, not beside the master that
 * builds them, so the status page and the CLI read the same contract without importing the master.
 */
import type { SerializedError } from './errors.js';
import type { AttemptOutcome, JobState, Phase, TaskState, VerifyMode } from './states.js';

export interface JobView {
  id: string;
  name: string;
  state: JobState;
  createdAt: number;
  finishedAt: number | null;
  maps: { total: number; done: number };
  reduces: { total: number; done: number };
  error: string | null;
  inputBytes: number;
  recordsIn: number;
  recordsOut: number;
  splitSize: number;
  taskTimeoutMs: number;
  maxAttempts: number;
  /**
   * Bytes of the job's data the master keeps: its inputs until the maps are done, map outputs until
   * it ends, its output until it is deleted (`tabreduce delete`, `serve --retain`).
   */
  storedBytes: number;
  /** How its results are checked (README "Verification"). */
  verify: VerifyMode;
  /**
   * Committed tasks by how their output was confirmed: by two independent volunteers, by a spot
   * check of a trusted volunteer's result, a trusted volunteer's result alone, or one result for
   * want of a second volunteer; and attempts whose result lost a vote or was taken back.
   */
  verification: { verified: number; spotChecked: number; trusted: number; unconfirmed: number; rejected: number };
  /** What an unfinished job waits for, when it waits for volunteers to confirm results; else null. */
  waiting: string | null;
  /**
   * The job's own counters (`ctx.count` in its code): each name's sum over the attempts whose output
   * was committed, names ascending. Equal to `tabreduce local`'s once the job has succeeded.
   */
  counters: Record<string, number>;
  /** Lines whose `map` threw that the job may skip (`--skip-bad-records`), and how many it has skipped. */
  skipBadRecords: number;
  skipped: number;
  /**
   * Its input is still uploading: its maps run as each input file is stored (`maps.total` grows
   * until the upload ends), and its reduces wait for the rest.
   */
  uploading: boolean;
}

/** A line a job skipped because its `map` threw (`--skip-bad-records`), as `GET /api/jobs/:id/summary` lists it. */
export interface SkippedRecordView {
  /** Its map task. */
  taskId: number;
  index: number;
  /** The input file's name, and the line's number in it (from 1). */
  input: string;
  line: number;
  /** The line's first characters. */
  text: string;
  error: SerializedError;
}

/** `DELETE /api/jobs/:id`: the job is gone, with the bytes it kept. */
export interface DeletedJob {
  id: string;
  freedBytes: number;
}

export interface AttemptView {
  worker: string;
  startedAt: number;
  endedAt: number | null;
  outcome: AttemptOutcome;
  error: SerializedError | null;
  backup: boolean;
}

export interface TaskView {
  id: number;
  phase: Phase;
  index: number;
  state: TaskState;
  input: string | null;
  attempts: AttemptView[];
}

/**
 * The response headers of `GET /api/jobs/:id/tasks` (README "HTTP API"). The body stays a bare
 * array of TaskView, as the contract fixes it; where to go next travels beside it.
 */
export const TASKS_HEADERS = Object.freeze({
  /** The `after` of the next page; absent on the last page and on answers without `after`/`limit`. */
  nextAfter: 'x-next-after',
  /** The `changedSince` that picks up every change this answer may not show. */
  nextChangedSince: 'x-next-changed-since',
});

/** The most tasks one `GET /api/jobs/:id/tasks?limit=N` answer holds, and its default with `after`. */
export const TASKS_PAGE_LIMIT = 5_000;

/** A failed attempt as `GET /api/jobs/:id/summary` lists it: with its task, so it reads alone. */
export interface FailedAttemptView {
  taskId: number;
  phase: Phase;
  index: number;
  input: string | null;
  worker: string;
  startedAt: number;
  endedAt: number | null;
  error: SerializedError | null;
}

/** `GET /api/jobs/:id/summary`: what a job's attempts add up to, counted by the master. */
export interface JobSummary {
  attempts: Record<AttemptOutcome, number>;
  /** The newest failed attempts (by end), newest first; at most 10. */
  recentFailures: FailedAttemptView[];
  /** How long succeeded attempts ran, from assignment to result; null until one has. */
  durations: { meanMs: number; maxMs: number } | null;
  /** The lines the job skipped so far, in input order (map task, then line). */
  skipped: SkippedRecordView[];
}

export interface WorkerView {
  id: string;
  connectedAt: number;
  lastSeenAt: number;
  threads: number;
  running: number;
  done: number;
  state: 'connected' | 'paused' | 'disconnected';
  agent: string;
  /** The name its visitor chose, or null. */
  name: string | null;
  /** Its browser and system in a few words ("Firefox on Android"), from `agent`. */
  label: string;
  tasks: { jobId: string; phase: string; index: number; startedAt: number }[];
  /**
   * Its record (README "Verification"): results that matched another volunteer's, results that lost
   * a vote, and whether its results are accepted alone.
   */
  trust: { agreed: number; rejected: number; trusted: boolean };
  /**
   * Seconds of its verified work: from assignment to result, as the master measured it, of its
   * results in verified jobs that were committed or agreed with the committed one, less those taken back.
   */
  credit: number;
  /** Its committed results and votes, and the input bytes they covered, per second over the last minute. */
  rate: { tasksPerSec: number; bytesPerSec: number };
}

/**
 * `GET /credit?volunteer=ID` (no token: the volunteer page asks): seconds of verified work of the
 * volunteer ID (null when it has none) and of the master's top contributors, by a short id.
 */
export interface CreditBoard {
  you: number | null;
  top: { volunteer: string; seconds: number }[];
}

/** One second of the `throughput` event stream. */
export interface ThroughputSample {
  /** Start of the second, epoch ms. */
  t: number;
  tasks: number;
  bytes: number;
}

/**
 * Time left for a job from its rate so far, maps and reduces weighted equally per task; null while
 * nothing has finished (no rate yet) or once the job has ended. The CLI's progress bar and the
 * status page both use it, so they never disagree.
 */
export function estimateRemainingMs(job: JobView, now: number): number | null {
  if (job.state !== 'mapping' && job.state !== 'reducing') return null;
  const total = job.maps.total + job.reduces.total;
  const done = job.maps.done + job.reduces.done;
  if (done === 0 || done >= total) return null;
  return ((now - job.createdAt) / done) * (total - done);
}
