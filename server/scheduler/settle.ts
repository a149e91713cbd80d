/**
 * Fail or retry, and the end of a job. Attempts that end without a result (the job's code failed,
 * or the volunteer was lost) all go through `settle`: the task runs again unless another attempt is
 * still on it, or its failures reached the job's max attempts (only `failed` counts), which fails
 * the job. Failing or cancelling a job cancels its open tasks and tells running attempts to stop.
 */
import type { TaskRow } from '../sql/task-store.js';
import type { AttemptRow } from '../sql/attempt-store.js';
import { describeError, type SerializedError } from '../../shared/errors.js';
import { nextJobState, nextTaskState } from '../../shared/states.js';
import { blobNames } from '../blobs/blob-store.js';
import { discard, emit, LOSS_FACTOR, type Context } from './context.js';
import { blame, dropInputs, dropMaps, forget, refreshJob } from './memory.js';
import { send } from './group-commit.js';

/** Ends running attempts without a result; the caller dispatches afterwards. */
export function settle(ctx: Context, leaseIds: string[], outcome: 'failed' | 'lost', error: SerializedError): void {
  const { attempts, tasks, jobs } = ctx.stores;
  const now = ctx.clock.now();
  const failedJobs = new Map<string, string>();
  ctx.stores.transaction(() => {
    for (const lease of leaseIds) {
      const a = attempts.byLease(lease);
      if (!a || !attempts.end({ lease, outcome, at: now, error })) continue;
      const task = tasks.get(a.task_id)!;
      const job = jobs.get(a.job_id)!;
      const failed = outcome === 'failed';
      // Repeats from one identity or one address count once while someone else can decide.
      const on = failed ? ctx.mem.failedOn : ctx.mem.lostOn;
      const counts = blame(ctx, on, a.job_id, task.id, a.volunteer_id, a.address);
      const failures = failed && counts ? tasks.addFailure(task.id) : task.failures;
      const losses = !failed && counts ? tasks.addLoss(task.id) : task.losses;
      const maxLosses = job.max_attempts * LOSS_FACTOR;
      const state = nextTaskState(task.state, {
        type: 'settle',
        othersRunning: attempts.runningForTask(task.id).length,
        failures,
        maxAttempts: job.max_attempts,
        losses,
        maxLosses,
      });
      tasks.move(task.id, task.state, state);
      if (state === 'failed') {
        const why = failed
          ? describeFailure(task, failures, error)
          : describeLosses(task, losses, attempts.forTask(task.id));
        failedJobs.set(job.id, why);
      }
      if (state === 'pending') {
        const aj = ctx.mem.active.get(job.id);
        if (aj) aj.drained = false;
      }
    }
  });
  for (const lease of leaseIds) {
    if (forget(ctx, lease)) ctx.counters[outcome]++;
  }
  for (const [jobId, reason] of failedJobs) endJob(ctx, jobId, 'failed', reason);
  for (const lease of leaseIds) {
    const jobId = attempts.byLease(lease)?.job_id;
    if (jobId) refreshJob(ctx, jobId);
  }
}

/**
 * Fails or cancels a job: open tasks are cancelled and running attempts told to stop. False when
 * the job had already ended. The caller dispatches afterwards.
 */
export function endJob(ctx: Context, jobId: string, state: 'failed' | 'cancelled', reason: string | null): boolean {
  const { attempts, tasks, jobs } = ctx.stores;
  const row = jobs.get(jobId);
  if (!row || nextJobState(row.state, { type: state === 'failed' ? 'fail' : 'cancel' }) !== state) return false;
  const now = ctx.clock.now();
  const running = attempts.runningForJob(jobId);
  const ended = ctx.stores.transaction(() => {
    if (!jobs.finish(jobId, state, now, reason)) return false;
    tasks.cancelOpen(jobId);
    // Its inputs and map outputs are of no more use; it keeps what output it has until deleted.
    if (row.state === 'queued' || row.state === 'mapping' || row.verify !== 'off') dropInputs(ctx, jobId);
    dropMaps(ctx, jobId);
    const why = { name: 'Superseded', message: `job ${state}` };
    for (const a of running) attempts.end({ lease: a.lease, outcome: 'superseded', at: now, error: why });
    return true;
  });
  if (!ended) return false;
  discard(ctx, blobNames.inputPrefix(jobId));
  discard(ctx, blobNames.mapPrefix(jobId));
  for (const a of running) cancelLease(ctx, a.lease, `job ${state}`);
  const { active, needBackup, failedOn, lostOn, votedOn, expelled } = ctx.mem;
  active.delete(jobId);
  expelled.delete(jobId);
  for (const [taskId, b] of votedOn) if (b.jobId === jobId) votedOn.delete(taskId);
  for (const taskId of [...needBackup, ...failedOn.keys(), ...lostOn.keys()]) {
    if (tasks.get(taskId)?.job_id === jobId) {
      needBackup.delete(taskId);
      failedOn.delete(taskId);
      lostOn.delete(taskId);
    }
  }
  ctx.log(`job ${jobId} ${state}${reason ? `: ${reason.split('\n')[0]}` : ''}`);
  emit(ctx, { kind: 'job', jobId });
  return true;
}

/** Tells the holder of a lease to stop it (its attempt has already ended in the database). */
export function cancelLease(ctx: Context, lease: string, reason: string): void {
  const { leases, volunteers } = ctx.mem;
  const l = leases.get(lease);
  const holder = l ? volunteers.get(l.volunteerId) : undefined;
  const attempt = l ? undefined : ctx.stores.attempts.byLease(lease);
  const v = holder ?? (attempt ? volunteers.get(attempt.volunteer_id) : undefined);
  forget(ctx, lease);
  if (v) send(ctx, v, { type: 'task.cancel', lease, reason });
}

function taskName(task: TaskRow): string {
  const input = task.phase === 'map' ? ` (input ${JSON.stringify(task.input_key)})` : ` (partition ${task.idx})`;
  return `${task.phase} task ${task.idx}${input}`;
}

function describeFailure(task: TaskRow, failures: number, error: SerializedError): string {
  return `${taskName(task)} failed ${failures} time${failures === 1 ? '' : 's'}: ${describeError(error)}`;
}

/** The task went round the volunteers without a result: say so, with each attempt's story. */
function describeLosses(task: TaskRow, losses: number, history: AttemptRow[]): string {
  const lines = history.slice(-20).map((a) => {
    const why = a.error ? (JSON.parse(a.error) as SerializedError).message : '';
    return `  ${a.outcome} on volunteer ${a.volunteer_id}${a.address ? ` (${a.address})` : ''}${why ? `: ${why}` : ''}`;
  });
  const more = history.length > 20 ? [`  (${history.length - 20} earlier attempts not shown)`] : [];
  return [
    `${taskName(task)} could not be delivered or returned: its attempts were lost ${losses} times on different volunteers`,
    ...more,
    ...lines,
  ].join('\n');
}
