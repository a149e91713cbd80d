/**
 * Exactly-once commit. One attempt's output is committed per task, atomically with the task's state
 * and the job's counters, in one transaction: the task moves to succeeded only from running, the
 * attempt ends only while running, and the task's other running attempts are superseded. A late,
 * duplicate or losing result changes nothing and is recorded `superseded`.
 */
import type { TaskResultMessage } from '../../shared/protocol.js';
import type { SerializedError } from '../../shared/errors.js';
import { nextJobState, nextTaskState, type JobState } from '../../shared/states.js';
import { MapOutputCheck, OutputError, ReduceOutputCheck, packOffsets } from '../output-check.js';
import { blobNames } from '../blobs/blob-store.js';
import { discard, emit, transactionOf, type ActiveJob, type Context, type Lease, type Volunteer } from './context.js';
import { dropInputs, dropMaps, forget, moveJob } from './memory.js';
import { send } from './group-commit.js';

/** What became of a result, for the façade to act on. */
export type ResultOutcome =
  /** Committed: `others` are the task's other running attempts, now superseded, to be told to stop. */
  | { kind: 'committed'; others: string[]; moved: JobState | null }
  /** It lost (or its job ended); the sender was answered and is free for more work. */
  | { kind: 'superseded' }
  /** The output broke the protocol: the sender should be expelled, and its attempt is lost. */
  | { kind: 'invalid'; reason: string }
  /** It says its output was uploaded, but the master has no upload for the lease (it restarted since). */
  | { kind: 'missing' };

/** A result's output, checked, and where it is to be kept. */
interface Checked {
  blob: string | null;
  data: Buffer | null;
  bytes: number;
  /** A reduce's lines (its records out); a map's records. */
  records: number;
  offsets: number[] | null;
}

/** Checks an output that came inside its `task.result`; throws OutputError. */
function checkInline(output: string, phase: 'map' | 'reduce', nReduce: number): Checked {
  const data = Buffer.from(output, 'utf8');
  if (phase === 'map') {
    const check = new MapOutputCheck(nReduce);
    check.push(data);
    const s = check.end();
    return { blob: null, data, bytes: s.bytes, records: s.records, offsets: s.offsets };
  }
  const check = new ReduceOutputCheck();
  check.push(data);
  const s = check.end();
  return { blob: null, data, bytes: s.bytes, records: s.records, offsets: null };
}

const SUPERSEDED: SerializedError = { name: 'Superseded', message: 'another attempt of this task committed first' };

/** Commits `v`'s result under lease `l` (which `v` holds), or says why it did not. */
export function commitResult(ctx: Context, v: Volunteer, l: Lease, msg: TaskResultMessage): ResultOutcome {
  const job = ctx.mem.active.get(l.jobId);
  // A job that ended supersedes its running attempts; one still here is answered the same way.
  if (!job) return supersede(ctx, v, l, 'the job is no longer running');
  let checked: Checked;
  if (msg.uploaded) {
    const up = ctx.mem.uploads.get(l.lease);
    if (!up) return { kind: 'missing' };
    checked = { blob: up.blob, data: null, bytes: up.bytes, records: up.records, offsets: up.offsets };
  } else {
    try {
      checked = checkInline(msg.output ?? '', l.phase, job.nReduce);
    } catch (e) {
      if (!(e instanceof OutputError)) throw e;
      // Not the job's fault: the volunteer broke the protocol.
      ctx.counters.invalid++;
      send(ctx, v, { type: 'error', message: `invalid output for ${msg.lease}: ${e.message}` });
      return { kind: 'invalid', reason: e.message };
    }
  }
  const others = [...(ctx.mem.taskLeases.get(l.taskId) ?? [])].filter((other) => other !== l.lease);
  const bytes = l.phase === 'map' ? (l.bytes ?? 0) : checked.bytes;
  let moved: JobState | null | undefined;
  try {
    moved = transactionOf(ctx, commitInTx).immediate(ctx, job, l, msg, checked, others, ctx.clock.now());
  } catch (e) {
    if (!(e instanceof StaleLeaseError)) throw e;
    moved = undefined;
  }
  // A committed upload is the task's now; one that lost is deleted with its lease (forget).
  if (moved !== undefined) ctx.mem.uploads.delete(msg.lease);
  forget(ctx, msg.lease);
  ctx.mem.failedOn.delete(l.taskId);
  if (moved === undefined) return supersede(ctx, v, l, 'another attempt won');
  // Data the job no longer needs goes once this commit is durable: the inputs after the barrier
  // (maps never run again), the map outputs once the job has succeeded.
  if (moved === 'reducing' || moved === 'succeeded') discard(ctx, blobNames.inputPrefix(l.jobId));
  if (moved === 'succeeded') discard(ctx, blobNames.mapPrefix(l.jobId));
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
  checked: Checked,
  others: string[],
  now: number,
): JobState | null | undefined {
  const { tasks, attempts, jobs, outputs, volunteers } = ctx.stores;
  if (!tasks.move(l.taskId, 'running', nextTaskState('running', { type: 'commit' }))) return undefined;
  // A reduce's records out are its output's lines, counted here, not taken on the volunteer's word.
  const recordsOut = l.phase === 'reduce' ? checked.records : msg.stats.recordsOut;
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
    if (checked.bytes > 0) {
      outputs.putMap({
        job_id: l.jobId,
        map_idx: l.index,
        blob: checked.blob,
        data: checked.data,
        bytes: checked.bytes,
        offsets: packOffsets(checked.offsets!),
      });
      jobs.addStored(l.jobId, checked.bytes);
    }
    const c = jobs.mapDone(l.jobId, msg.stats.recordsOut);
    if (c.maps_done < c.maps_total) return null;
    const state = nextJobState(job.state, { type: 'maps-done' });
    if (state === job.state || !jobs.advance(l.jobId, job.state, state)) return null;
    dropInputs(ctx, l.jobId);
    return state;
  }
  outputs.put({ job_id: l.jobId, part: l.index, blob: checked.blob, data: checked.data, bytes: checked.bytes });
  jobs.addStored(l.jobId, checked.bytes);
  const c = jobs.reduceDone(l.jobId, recordsOut);
  if (c.reduces_done < c.n_reduce) return null;
  const state = nextJobState(job.state, { type: 'reduces-done' });
  if (state !== 'succeeded') return null;
  jobs.finish(l.jobId, state, now);
  dropMaps(ctx, l.jobId);
  return state;
}

/** The attempt ended (superseded or lost) between the task's move and its own end: undo the commit. */
class StaleLeaseError extends Error {
  constructor(lease: string) {
    super(`lease ${lease} is no longer running`);
    this.name = 'StaleLeaseError';
  }
}
