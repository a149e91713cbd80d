/**
 * Exactly-once commit. One attempt's output is committed per task, atomically with the task's state
 * and the job's counters, in one transaction: the task moves to succeeded only from running, the
 * attempt ends only while running, and the task's other running attempts are superseded. A late,
 * duplicate or losing result changes nothing and is recorded `superseded`.
 */
import {
  checkMapOutput,
  checkReduceOutput,
  isCheckedOutput,
  type CheckedOutput,
  type TaskResultMessage,
} from '../../shared/protocol.js';
import type { Partition } from '../../shared/engine.js';
import type { SerializedError } from '../../shared/errors.js';
import { nextJobState, nextTaskState, type JobState } from '../../shared/states.js';
import { emit, transactionOf, type ActiveJob, type Context, type Lease, type Volunteer } from './context.js';
import { forget, moveJob } from './memory.js';
import { send } from './group-commit.js';

/** What became of a result, for the façade to act on. */
export type ResultOutcome =
  /** Committed: `others` are the task's other running attempts, now superseded, to be told to stop. */
  | { kind: 'committed'; others: string[]; moved: JobState | null }
  /** It lost (or its job ended); the sender was answered and is free for more work. */
  | { kind: 'superseded' }
  /** The output broke the protocol: the sender should be expelled, and its attempt is lost. */
  | { kind: 'invalid'; reason: string };

const SUPERSEDED: SerializedError = { name: 'Superseded', message: 'another attempt of this task committed first' };

/** Commits `v`'s result under lease `l` (which `v` holds), or says why it did not. */
export function commitResult(ctx: Context, v: Volunteer, l: Lease, msg: TaskResultMessage): ResultOutcome {
  const job = ctx.mem.active.get(l.jobId);
  // A job that ended supersedes its running attempts; one still here is answered the same way.
  if (!job) return supersede(ctx, v, l, 'the job is no longer running');
  const checked = isCheckedOutput(msg.output) ? msg.output : null;
  const invalid = checked
    ? checkedError(checked, l.phase, job.nReduce)
    : l.phase === 'map'
      ? checkMapOutput(msg.output, job.nReduce)
      : checkReduceOutput(msg.output);
  if (invalid) {
    // Not the job's fault: the volunteer broke the protocol.
    ctx.counters.invalid++;
    send(ctx, v, { type: 'error', message: `invalid output for ${msg.lease}: ${invalid}` });
    return { kind: 'invalid', reason: invalid };
  }
  const others = [...(ctx.mem.taskLeases.get(l.taskId) ?? [])].filter((other) => other !== l.lease);
  const bytes =
    l.phase === 'map'
      ? (l.bytes ?? ctx.stores.tasks.input(l.taskId)?.length ?? 0)
      : (checked?.text ?? (msg.output as string)).length;
  let moved: JobState | null | undefined;
  try {
    moved = transactionOf(ctx, commitInTx).immediate(ctx, job, l, msg, checked, others, ctx.clock.now());
  } catch (e) {
    if (!(e instanceof StaleLeaseError)) throw e;
    moved = undefined;
  }
  forget(ctx, msg.lease);
  ctx.mem.failedOn.delete(l.taskId);
  if (moved === undefined) return supersede(ctx, v, l, 'another attempt won');
  ctx.counters.committed++;
  v.done++;
  v.bytes += bytes;
  send(ctx, v, { type: 'task.ack', lease: msg.lease, outcome: 'committed' });
  if (moved) moveJob(ctx, job, moved);
  emit(ctx, { kind: 'job', jobId: job.id });
  emit(ctx, { kind: 'commit', jobId: job.id, phase: l.phase, bytes });
  return { kind: 'committed', others, moved };
}

/** Answers a result that lost: its attempt is recorded superseded. */
function supersede(ctx: Context, v: Volunteer, l: Lease, reason: string): ResultOutcome {
  forget(ctx, l.lease);
  ctx.counters.superseded++;
  ctx.stores.attempts.end({ lease: l.lease, outcome: 'superseded', at: ctx.clock.now(), error: SUPERSEDED });
  send(ctx, v, { type: 'task.ack', lease: l.lease, outcome: 'superseded', reason });
  return { kind: 'superseded' };
}

/**
 * The transaction itself, given the output as checked off the event loop when it was. Throws `StaleLeaseError` (rolling the task back) when the attempt ended
 * between the task's move and its own end. Returns undefined when the task had already left
 * running, else the job's new state when this commit moved it (the barrier, or the end), or null.
 */
function commitInTx(
  ctx: Context,
  job: ActiveJob,
  l: Lease,
  msg: TaskResultMessage,
  checked: CheckedOutput | null,
  others: string[],
  now: number,
): JobState | null | undefined {
  const { tasks, attempts, jobs, outputs, volunteers } = ctx.stores;
  if (!tasks.move(l.taskId, 'running', nextTaskState('running', { type: 'commit' }))) return undefined;
  // A reduce's records out are its output's lines, counted here, not taken on the volunteer's word.
  const recordsOut = l.phase === 'reduce' ? countLines(checked?.text ?? (msg.output as string)) : msg.stats.recordsOut;
  const ended = attempts.end({
    lease: l.lease,
    outcome: 'succeeded',
    at: now,
    ms: msg.stats.ms,
    records_in: msg.stats.recordsIn,
    records_out: recordsOut,
  });
  if (!ended) throw new StaleLeaseError(l.lease);
  volunteers.done(l.volunteerId);
  for (const other of others) attempts.end({ lease: other, outcome: 'superseded', at: now, error: SUPERSEDED });
  if (l.phase === 'map') {
    if (checked) {
      if (!checked.empty) outputs.putMap(l.jobId, l.index, checked.text);
    } else {
      const parts = msg.output as Partition[];
      if (parts.some((p) => p.length > 0)) outputs.putMap(l.jobId, l.index, JSON.stringify(parts));
    }
    const c = jobs.mapDone(l.jobId, msg.stats.recordsOut);
    if (c.maps_done < c.maps_total) return null;
    const state = nextJobState(job.state, { type: 'maps-done' });
    return state !== job.state && jobs.advance(l.jobId, job.state, state) ? state : null;
  }
  outputs.put(l.jobId, l.index, checked?.text ?? (msg.output as string));
  const c = jobs.reduceDone(l.jobId, recordsOut);
  if (c.reduces_done < c.n_reduce) return null;
  const state = nextJobState(job.state, { type: 'reduces-done' });
  if (state !== 'succeeded') return null;
  jobs.finish(l.jobId, state, now);
  outputs.dropMaps(l.jobId);
  tasks.dropInputs(l.jobId);
  return state;
}

/** Checks an output parsed off-thread against the task it is for. */
function checkedError(c: CheckedOutput, phase: 'map' | 'reduce', nReduce: number): string | null {
  if (phase === 'map') {
    if (c.kind !== 'map' || c.partitions !== nReduce) return `map output must be an array of ${nReduce} partitions`;
    return c.error;
  }
  return c.kind === 'reduce' ? c.error : 'reduce output must be a string';
}

function countLines(text: string): number {
  let n = 0;
  for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', i + 1)) n++;
  return n;
}

/** The attempt ended (superseded or lost) between the task's move and its own end: undo the commit. */
class StaleLeaseError extends Error {
  constructor(lease: string) {
    super(`lease ${lease} is no longer running`);
    this.name = 'StaleLeaseError';
  }
}
