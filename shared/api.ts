/**
 * The JSON shapes of the HTTP API (README "HTTP API"). They live here, not beside the master that
 * builds them, so the status page and the CLI read the same contract without importing the master.
 */
import type { SerializedError } from './errors.js';
import type { AttemptOutcome, JobState, Phase, TaskState } from './states.js';

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

export interface WorkerView {
  id: string;
  connectedAt: number;
  lastSeenAt: number;
  threads: number;
  running: number;
  done: number;
  state: 'connected' | 'paused' | 'disconnected';
  agent: string;
  tasks: { jobId: string; phase: string; index: number; startedAt: number }[];
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
