/** The JSON shapes of the HTTP API (DESIGN.md "HTTP API"), built from rows and live state. */
import type { JobRow } from './sql/job-store.js';
import type { AttemptRow } from './sql/attempt-store.js';
import type { TaskRow } from './sql/task-store.js';
import type { Scheduler, Volunteer } from './scheduler/index.js';
import type { SerializedError } from '../shared/errors.js';

export interface JobView {
  id: string;
  name: string;
  state: JobRow['state'];
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
}

export function jobView(j: JobRow): JobView {
  return {
    id: j.id,
    name: j.name,
    state: j.state,
    createdAt: j.created_at,
    finishedAt: j.finished_at,
    maps: { total: j.maps_total, done: j.maps_done },
    reduces: { total: j.n_reduce, done: j.reduces_done },
    error: j.error,
    inputBytes: j.input_bytes,
    recordsIn: j.records_in,
    recordsOut: j.records_out,
    splitSize: j.split_size,
    taskTimeoutMs: j.task_timeout_ms,
    maxAttempts: j.max_attempts,
  };
}

export interface AttemptView {
  worker: string;
  startedAt: number;
  endedAt: number | null;
  outcome: AttemptRow['outcome'];
  error: SerializedError | null;
  backup: boolean;
}

export interface TaskView {
  id: number;
  phase: TaskRow['phase'];
  index: number;
  state: TaskRow['state'];
  input: string | null;
  attempts: AttemptView[];
}

export function taskViews(tasks: TaskRow[], attempts: AttemptRow[]): TaskView[] {
  const byTask = new Map<number, AttemptView[]>();
  for (const a of attempts) {
    const list = byTask.get(a.task_id) ?? [];
    list.push({
      worker: a.volunteer_id,
      startedAt: a.started_at,
      endedAt: a.ended_at,
      outcome: a.outcome,
      error: a.error ? (JSON.parse(a.error) as SerializedError) : null,
      backup: a.backup === 1,
    });
    byTask.set(a.task_id, list);
  }
  return tasks.map((t) => ({
    id: t.id,
    phase: t.phase,
    index: t.idx,
    state: t.state,
    input: t.input_key,
    attempts: byTask.get(t.id) ?? [],
  }));
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

export function workerView(s: Scheduler, v: Volunteer): WorkerView {
  return {
    id: v.id,
    connectedAt: v.connectedAt,
    lastSeenAt: v.lastSeenAt,
    threads: v.threads,
    running: v.running.size,
    done: v.done,
    state: !v.conn ? 'disconnected' : v.paused ? 'paused' : 'connected',
    agent: v.agent,
    tasks: s.currentTasks(v).map((l) => ({ jobId: l.jobId, phase: l.phase, index: l.index, startedAt: l.startedAt })),
  };
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
