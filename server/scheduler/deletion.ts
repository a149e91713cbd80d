/**
 * What the master stops keeping: a finished job (`tabreduce delete`, `serve --retain`) and the rows
 * of volunteers long gone. Rows go here, in the caller's transaction; a job's blobs go only once
 * that is durable (the façade), so a crash in between leaves blobs of no job, which the next start
 * removes (server/blobs/sweep.ts), never a job whose data is missing.
 */
import { isJobFinished, type JobState } from '../../shared/states.js';
import { emit, type Context } from './context.js';

export type JobRemoval =
  /** Its rows are gone; `freedBytes` is what it kept (`stored_bytes`). */
  | { kind: 'deleted'; name: string; freedBytes: number }
  /** Still queued or running: it must be cancelled first. */
  | { kind: 'unfinished'; state: JobState }
  | { kind: 'missing' };

/** Deletes a finished job's rows: its tasks, attempts and data rows go with it (ON DELETE CASCADE). */
export function removeJob(ctx: Context, jobId: string): JobRemoval {
  const { jobs, tasks } = ctx.stores;
  const row = jobs.get(jobId);
  if (!row) return { kind: 'missing' };
  if (!isJobFinished(row.state)) return { kind: 'unfinished', state: row.state };
  // Task ids are rowids, which SQLite hands out again once the newest rows are deleted: what memory
  // still holds about this job's tasks (losses of a job that then succeeded) must not pass to
  // another job's tasks.
  const { needBackup, failedOn, lostOn } = ctx.mem;
  for (const taskId of [...needBackup, ...failedOn.keys(), ...lostOn.keys()]) {
    if (tasks.get(taskId)?.job_id === jobId) {
      needBackup.delete(taskId);
      failedOn.delete(taskId);
      lostOn.delete(taskId);
    }
  }
  ctx.stores.transaction(() => jobs.remove(jobId));
  emit(ctx, { kind: 'job', jobId });
  return { kind: 'deleted', name: row.name, freedBytes: row.stored_bytes };
}

/**
 * Deletes the rows of volunteers last seen before `before` that hold nothing: not in the master's
 * memory (connected, or gone for less than the reassignment delay) and with no running attempt.
 * Attempts keep the volunteer's id as text, so the history of every job stays as it was; the
 * identity itself is forgotten, and a tab that comes back with it starts as a new volunteer.
 */
export function forgetVolunteers(ctx: Context, before: number): number {
  const { volunteers } = ctx.stores;
  const ids = volunteers.idleSince(before).filter((id) => !ctx.mem.volunteers.has(id));
  ctx.stores.transaction(() => {
    for (const id of ids) volunteers.remove(id);
  });
  return ids.length;
}
