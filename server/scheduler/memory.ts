/**
 * The master's memory of running work: volunteers, running leases (by lease, by task, on their
 * volunteer and their job) and active jobs. All of it but live sockets can be rebuilt from SQLite
 * (recovery.ts); these functions keep its indexes in step with each other.
 */
import type { AttemptRow } from '../sql/attempt-store.js';
import type { JobRow } from '../sql/job-store.js';
import type { TaskRow } from '../sql/task-store.js';
import type { JobState } from '../../shared/states.js';
import { emit, type ActiveJob, type Context, type Lease, type Volunteer } from './context.js';

export function newVolunteer(id: string, secret: string, agent: string, threads: number, now: number): Volunteer {
  return {
    id,
    secret,
    agent,
    threads,
    slots: threads,
    paused: false,
    connectedAt: now,
    lastSeenAt: now,
    closedAt: null,
    conn: null,
    running: new Set(),
    done: 0,
    savedAt: now,
    bytes: 0,
  };
}

/** Tasks a volunteer can take now: none while disconnected or paused. */
export function freeSlots(v: Volunteer): number {
  if (!v.conn || v.paused) return 0;
  return v.slots - v.running.size;
}

export function activate(ctx: Context, job: JobRow): void {
  ctx.mem.active.set(job.id, {
    id: job.id,
    name: job.name,
    state: job.state,
    nReduce: job.n_reduce,
    taskTimeoutMs: job.task_timeout_ms,
    maxAttempts: job.max_attempts,
    running: 0,
    drained: false,
  });
}

/** A job changed phase: its pending work is new, and a finished one leaves the active set. */
export function moveJob(ctx: Context, job: ActiveJob, state: JobState): void {
  job.state = state;
  job.drained = false;
  if (state === 'succeeded') {
    ctx.mem.active.delete(job.id);
    ctx.log(`job ${job.id} (${job.name}) succeeded`);
  }
}

/** Re-reads a job after a change: phase moves, and finished jobs leave the active set. True if it moved. */
export function refreshJob(ctx: Context, jobId: string): boolean {
  const row = ctx.stores.jobs.get(jobId);
  const job = ctx.mem.active.get(jobId);
  if (!row || !job) return false;
  const moved = row.state !== job.state;
  if (moved) moveJob(ctx, job, row.state);
  emit(ctx, { kind: 'job', jobId });
  return moved;
}

/** A running attempt as memory holds it, from its row and its task's. */
export function leaseOf(a: AttemptRow, task: TaskRow): Lease {
  return {
    lease: a.lease,
    taskId: a.task_id,
    jobId: a.job_id,
    volunteerId: a.volunteer_id,
    phase: task.phase,
    index: task.idx,
    startedAt: a.started_at,
    backup: a.backup === 1,
    bytes: null,
  };
}

/** Holds a running attempt in memory: by lease, by task, on its volunteer and its job. */
export function track(ctx: Context, l: Lease): void {
  const mem = ctx.mem;
  mem.leases.set(l.lease, l);
  const set = mem.taskLeases.get(l.taskId);
  if (set) set.add(l.lease);
  else mem.taskLeases.set(l.taskId, new Set([l.lease]));
  mem.volunteers.get(l.volunteerId)?.running.add(l.lease);
  const job = mem.active.get(l.jobId);
  if (job) job.running++;
}

/** Drops a lease from memory; returns whether it was there. */
export function forget(ctx: Context, lease: string): boolean {
  const mem = ctx.mem;
  const l = mem.leases.get(lease);
  if (!l) return false;
  mem.leases.delete(lease);
  const set = mem.taskLeases.get(l.taskId);
  set?.delete(lease);
  if (set?.size === 0) mem.taskLeases.delete(l.taskId);
  mem.volunteers.get(l.volunteerId)?.running.delete(lease);
  const job = mem.active.get(l.jobId);
  if (job) job.running--;
  return true;
}

/** Remembers that a task's code failed on a volunteer, so its retry goes elsewhere when it can. */
export function noteFailure(ctx: Context, taskId: number, volunteerId: string): void {
  const set = ctx.mem.failedOn.get(taskId) ?? new Set<string>();
  set.add(volunteerId);
  ctx.mem.failedOn.set(taskId, set);
}

/** Forgets everything; recovery.ts then rebuilds it from the database. */
export function clearMemory(ctx: Context): void {
  const mem = ctx.mem;
  mem.volunteers.clear();
  mem.leases.clear();
  mem.taskLeases.clear();
  mem.active.clear();
  mem.needBackup.clear();
  mem.failedOn.clear();
}

/** The running attempts of one volunteer, for the views. */
export function currentTasks(ctx: Context, v: Volunteer): Lease[] {
  return [...v.running].map((l) => ctx.mem.leases.get(l)).filter((l): l is Lease => l !== undefined);
}
