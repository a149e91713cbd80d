/** Builds the HTTP API's JSON shapes (shared/api.ts) from rows and live state. */
import type { JobRow } from './sql/job-store.js';
import type { AttemptListRow, FailedAttemptRow } from './sql/attempt-store.js';
import type { TaskListRow } from './sql/task-store.js';
import type { Scheduler, Volunteer } from './scheduler/index.js';
import type { SerializedError } from '../shared/errors.js';
import type { AttemptView, FailedAttemptView, JobView, TaskView, WorkerView } from '../shared/api.js';
import { agentLabel } from '../shared/volunteer-label.js';

/** `waiting`: what the scheduler says an unfinished job waits for (`Scheduler.waitingFor`). */
export function jobView(j: JobRow, waiting: string | null = null): JobView {
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
    storedBytes: j.stored_bytes,
    verify: j.verify,
    verification: {
      verified: j.verified,
      spotChecked: j.spot_checked,
      trusted: j.trusted,
      unconfirmed: j.unconfirmed,
      rejected: j.rejected,
    },
    waiting,
    counters: JSON.parse(j.counters) as Record<string, number>,
    skipBadRecords: j.skip_bad_records,
    skipped: j.skipped,
    uploading: j.uploading === 1,
  };
}

/** Tasks with their attempts; `attempts` may hold those of other tasks too. */
export function taskViews(tasks: TaskListRow[], attempts: AttemptListRow[]): TaskView[] {
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

export function failedAttemptView(a: FailedAttemptRow): FailedAttemptView {
  return {
    taskId: a.task_id,
    phase: a.phase,
    index: a.idx,
    input: a.input_key,
    worker: a.volunteer_id,
    startedAt: a.started_at,
    endedAt: a.ended_at,
    error: a.error ? (JSON.parse(a.error) as SerializedError) : null,
  };
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
    name: v.name || null,
    label: agentLabel(v.agent),
    tasks: s.currentTasks(v).map((l) => ({ jobId: l.jobId, phase: l.phase, index: l.index, startedAt: l.startedAt })),
    trust: {
      agreed: v.trust.agreed,
      rejected: v.trust.rejected,
      trusted: v.trust.rejected === 0 && v.trust.agreed >= s.trustAfter,
    },
    credit: v.trust.creditMs / 1000,
    rate: v.conn ? s.rateOf(v) : { tasksPerSec: 0, bytesPerSec: 0 },
  };
}
