/**
 * Fair dispatch: hands out tasks while volunteers have free slots, backups first, then pending tasks
 * of the least-served job, one task per volunteer per pass so work spreads across tabs before any
 * tab gets a second. A task whose code failed on a volunteer goes elsewhere when anyone else can
 * take it.
 */
import { newLease } from '../lease.js';
import { pendingInput, type TaskRow } from '../sql/task-store.js';
import { inputBytes, mapInputSync, partitionBytes, reduceInputSync } from '../blobs/job-data.js';
import { nextJobState, nextTaskState } from '../../shared/states.js';
import {
  emit,
  HARD_LIMIT_FACTOR,
  transactionOf,
  type ActiveJob,
  type Context,
  type Lease,
  type Volunteer,
} from './context.js';
import { betterElsewhere, clockStart, freeSlots, isExpelled, shownThreads, track, votedElsewhere } from './memory.js';
import { sendRaw } from './group-commit.js';

/** Hands out tasks until no volunteer has a free slot or nothing waits. Re-entrant calls run once more. */
export function dispatch(ctx: Context): void {
  if (ctx.dispatching) {
    ctx.dispatchAgain = true;
    return;
  }
  if (!hasWork(ctx)) return;
  ctx.dispatching = true;
  try {
    do {
      ctx.dispatchAgain = false;
      let hungry = [...ctx.mem.volunteers.values()].filter((v) => freeSlots(v) > 0);
      // Least-loaded first, relative to the threads it has shown by its work.
      hungry.sort((a, b) => a.running.size / shownThreads(a) - b.running.size / shownThreads(b));
      while (hungry.length > 0) {
        const next: Volunteer[] = [];
        for (const v of hungry) {
          if (assignOne(ctx, v) && freeSlots(v) > 0) next.push(v);
        }
        hungry = next;
      }
    } while (ctx.dispatchAgain);
  } finally {
    ctx.dispatching = false;
  }
}

/** Fills one volunteer's free slots; the cheap path after its own result. */
export function fill(ctx: Context, v: Volunteer): void {
  if (ctx.dispatching) {
    ctx.dispatchAgain = true;
    return;
  }
  while (freeSlots(v) > 0 && assignOne(ctx, v));
}

/** Cheap check before scanning volunteers: is anything waiting to be handed out? */
function hasWork(ctx: Context): boolean {
  if (ctx.mem.needBackup.size > 0) return true;
  for (const j of ctx.mem.active.values()) if (!j.drained) return true;
  return false;
}

/** Gives `v` the next task it may run: a backup first, else a pending task of the least-served job. */
function assignOne(ctx: Context, v: Volunteer): boolean {
  const { needBackup, taskLeases, leases, active } = ctx.mem;
  const tasks = ctx.stores.tasks;
  for (const taskId of needBackup) {
    const holders = taskLeases.get(taskId);
    if (holders?.size !== 1) {
      needBackup.delete(taskId);
      continue;
    }
    const [only] = holders;
    const held = leases.get(only!);
    if (held?.volunteerId === v.id) continue;
    // A backup of a task with votes is a vote too: it goes where a vote would.
    const job = held && active.get(held.jobId);
    if (job && (isExpelled(ctx, job.id, v.id) || votedElsewhere(ctx, job, taskId, v))) continue;
    needBackup.delete(taskId);
    const task = tasks.get(taskId);
    if (task && task.state === 'running') return assign(ctx, v, task, true);
  }
  const jobs = [...active.values()]
    .filter((j) => !j.drained && (j.state === 'queued' || j.state === 'mapping' || j.state === 'reducing'))
    .sort((a, b) => a.running - b.running);
  for (const job of jobs) {
    if (isExpelled(ctx, job.id, v.id)) continue;
    const phase = job.state === 'reducing' ? 'reduce' : 'map';
    let task = tasks.nextPending(job.id, phase);
    if (!task) {
      job.drained = true;
      continue;
    }
    // A task that failed or was lost on this volunteer (or its address) goes elsewhere when anyone else can take it.
    // So does a task whose result waits for a vote from someone else.
    for (let skips = 0; task && skips < 16 && elsewhere(ctx, job, task.id, v); skips++) {
      task = tasks.nextPendingAfter(job.id, phase, task.idx);
    }
    if (task && !elsewhere(ctx, job, task.id, v)) return assign(ctx, v, task, false);
  }
  return false;
}

/** Whether task `id`, which failed, was lost or has votes, is better given to someone other than `v`. */
function elsewhere(ctx: Context, job: ActiveJob, id: number, v: Volunteer): boolean {
  const { failedOn, lostOn, votedOn } = ctx.mem;
  if (votedOn.size > 0 && votedElsewhere(ctx, job, id, v)) return true;
  if (failedOn.size + lostOn.size === 0) return false;
  return betterElsewhere(ctx, job.id, id, failedOn.get(id), lostOn.get(id), v);
}

function assign(ctx: Context, v: Volunteer, task: TaskRow, backup: boolean): boolean {
  const job = ctx.mem.active.get(task.job_id);
  if (!job) return false;
  const now = ctx.clock.now();
  const lease = newLease(now);
  transactionOf(ctx, insertAttempt).immediate(ctx, v, task, job, lease, backup, now);
  const l: Lease = {
    lease,
    taskId: task.id,
    jobId: job.id,
    volunteerId: v.id,
    phase: task.phase,
    index: task.idx,
    startedAt: now,
    clockFrom: clockStart(ctx, v, job.taskTimeoutMs, now),
    backup,
    bytes: null,
  };
  track(ctx, l);
  ctx.counters.assigned++;
  sendRaw(ctx, v, assignMessage(ctx, job, task, l));
  emit(ctx, { kind: 'job', jobId: job.id });
  return true;
}

/** Records a new running attempt and moves its task (and a queued job) on, in one transaction. */
function insertAttempt(
  ctx: Context,
  v: Volunteer,
  task: TaskRow,
  job: ActiveJob,
  lease: string,
  backup: boolean,
  now: number,
): void {
  const { attempts, tasks, jobs } = ctx.stores;
  attempts.insert({
    task_id: task.id,
    job_id: task.job_id,
    volunteer_id: v.id,
    address: v.address,
    lease,
    backup: backup ? 1 : 0,
    started_at: now,
  });
  tasks.move(task.id, task.state, nextTaskState(task.state, { type: 'assign' }));
  const state = nextJobState(job.state, { type: 'start' });
  if (state !== job.state && jobs.advance(job.id, job.state, state)) job.state = state;
}

function assignMessage(ctx: Context, job: ActiveJob, task: TaskRow, l: Lease): string {
  const head = {
    type: 'task.assign',
    lease: l.lease,
    jobId: job.id,
    jobName: job.name,
    taskId: task.id,
    phase: task.phase,
    index: task.idx,
    nReduce: job.nReduce,
    moduleUrl: `/jobs/${job.id}/module.js`,
    hardLimitMs: job.taskTimeoutMs * HARD_LIMIT_FACTOR,
  };
  if (task.phase === 'map') {
    const src = pendingInput(task) ?? ctx.stores.tasks.input(task.id) ?? { inline: Buffer.alloc(0) };
    const bytes = inputBytes(src);
    l.bytes = bytes;
    const data =
      bytes <= ctx.inlineBytes
        ? { bytes, text: mapInputSync(ctx.blobs, src).toString('utf8') }
        : { bytes, url: `/data/${l.lease}/input` };
    const input = { key: task.input_key ?? '', ...data };
    if (job.skipBadRecords === 0) return JSON.stringify({ ...head, input });
    // A job that skips bad lines reports them by line number: each map learns where its split starts.
    const firstLine = ctx.stores.tasks.firstLine(task.id) ?? 1;
    return JSON.stringify({ ...head, skipBadRecords: job.skipBadRecords, input: { ...input, firstLine } });
  }
  job.partitionBytes ??= partitionBytes(ctx.stores.outputs, job.id, job.nReduce);
  const bytes = job.partitionBytes[task.idx] ?? 0;
  l.bytes = bytes;
  const data =
    bytes <= ctx.inlineBytes
      ? { bytes, text: reduceInputSync(ctx.stores.outputs, ctx.blobs, job.id, task.idx).toString('utf8') }
      : { bytes, url: `/data/${l.lease}/input` };
  return JSON.stringify({ ...head, input: data });
}
