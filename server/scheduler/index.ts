/**
 * The scheduler's façade: the entry points the hub, the routes and `serve.ts` call, and the order in
 * which the rules apply. Each rule lives in a file named for it (README, "Architecture").
 *
 * SQLite is the truth; memory (memory.ts) holds only what a restart can rebuild from it, plus live
 * connections. Time comes from the clock and the 10-second rules run in `sweep()`, so tests drive
 * them without sleeping: advance the clock, call `sweep()`.
 */
import type { Db } from '../db.js';
import type { Stores } from '../sql/index.js';
import { insertJob, type JobSpec, type StagedInput } from '../submit-job.js';
import { addUploadedInputs, beginUpload, endUpload, removeAbandonedUploads, stillUploading } from './upload.js';
import { isJobFinished } from '../../shared/states.js';
import type { HelloMessage, VolunteerMessage } from '../../shared/protocol.js';
import { toError, type SerializedError } from '../../shared/errors.js';
import { countOf, formatBytes } from '../../shared/units.js';
import { blobNames } from '../blobs/blob-store.js';
import { createStackMapper } from '../stack-map.js';
import {
  createContext,
  discard,
  emit,
  type Connection,
  type Context,
  type Lease,
  type SchedulerEvent,
  type SchedulerOptions,
  type Upload,
  type Volunteer,
} from './context.js';
import { activate, anyOtherFor, clearMemory, currentTasks, rateOf } from './memory.js';
import { batched, durably, flush, send } from './group-commit.js';
import { recover } from './recovery.js';
import { attach, closed, detach, excuse, saveVolunteers, seen, update, welcome } from './volunteers.js';
import { dispatch, fill } from './dispatch.js';
import { heldLease, ownLease } from './lease-owner.js';
import { commitResult } from './commit.js';
import { cancelLease, endJob, settle } from './settle.js';
import { findDue, goneReason } from './lease-sweeper.js';
import { forgetVolunteers, removeJob, type JobRemoval } from './deletion.js';

export { HARD_LIMIT_FACTOR, SPOT_CHECK_RATE, TRUST_AFTER } from './context.js';
export type { Clock, Connection, Lease, SchedulerEvent, SchedulerOptions, Volunteer } from './context.js';
export type { JobRemoval } from './deletion.js';

/** How the log words each reason a volunteer gives for a failed attempt. */
const FAIL_REASONS = {
  threw: 'threw',
  timeout: 'ran past its time limit',
  crashed: 'crashed its worker',
  'too-large': 'made an output too large to send',
};

export class Scheduler {
  private readonly ctx: Context;
  /** Volunteers' stacks name lines of the bundle; failures are stored with the author's lines. */
  private readonly authorStack = createStackMapper((jobId) => this.ctx.stores.jobs.module(jobId));

  constructor(db: Db, stores: Stores, opts: SchedulerOptions) {
    const ctx = createContext(db, stores, opts);
    ctx.reload = () => {
      clearMemory(ctx);
      recover(ctx);
      emit(ctx, { kind: 'volunteers' });
    };
    this.ctx = ctx;
    removeAbandonedUploads(ctx);
    recover(ctx);
    // Volunteers of the jobs that were running come back over the reassignment window (with backoff).
    if (ctx.mem.active.size > 0) ctx.reconnectUntil = ctx.clock.now() + ctx.reassignAfterMs;
  }

  get clock() {
    return this.ctx.clock;
  }
  get volunteers(): ReadonlyMap<string, Volunteer> {
    return this.ctx.mem.volunteers;
  }
  get counters(): Readonly<Context['counters']> {
    return this.ctx.counters;
  }
  get commits(): Readonly<Context['commits']> {
    return this.ctx.commits;
  }
  /** Agreeing results after which a volunteer's results are accepted alone. */
  get trustAfter(): number {
    return this.ctx.trustAfter;
  }

  on(listener: (e: SchedulerEvent) => void): () => void {
    this.ctx.listeners.add(listener);
    return () => this.ctx.listeners.delete(listener);
  }

  // ---------------------------------------------------------------- jobs

  /**
   * Queues a job whose inputs are stored: its tasks go in by batches of durable transactions outside
   * any group commit (submit-job.ts), then its tasks are offered.
   */
  async submit(spec: JobSpec): Promise<string> {
    const ctx = this.ctx;
    await insertJob(ctx.stores, spec, ctx.clock.now(), (fn) => {
      flush(ctx);
      return ctx.stores.transaction(fn);
    });
    // The first wave of assignments goes out in one commit.
    this.durably(() => this.jobAdded(spec.id));
    return spec.id;
  }

  /**
   * A job whose upload is still arriving (upload.ts): it goes in with no tasks, each stored input's
   * maps are offered at once (`addUploadedInputs`), and `endUpload` completes it.
   */
  beginUpload(spec: JobSpec): void {
    beginUpload(this.ctx, spec);
  }

  /** Offers the maps of inputs just stored; false when the job has ended meanwhile (stop the upload). */
  async addUploadedInputs(spec: JobSpec, inputs: StagedInput[], first: number): Promise<boolean> {
    if (!(await addUploadedInputs(this.ctx, spec, inputs, first))) return false;
    this.durably(() => {
      emit(this.ctx, { kind: 'job', jobId: spec.id });
      dispatch(this.ctx);
    });
    return true;
  }

  /** The upload is complete; false when the job has ended meanwhile. */
  endUpload(spec: JobSpec): boolean {
    return this.durably(() => {
      if (!endUpload(this.ctx, spec)) return false;
      dispatch(this.ctx);
      return true;
    });
  }

  /** An upload failed part way: its job's attempts are cancelled and the job is deleted. */
  async abandonUpload(jobId: string, why: string): Promise<void> {
    if (stillUploading(this.ctx, jobId)) this.durably(() => this.endJob(jobId, 'cancelled', why));
    await this.deleteJob(jobId, `as its upload failed (${why})`);
  }

  /** Why a job that ended while its upload arrived ended (failed or cancelled), or null. */
  endedDuringUpload(jobId: string): string | null {
    const row = this.ctx.stores.jobs.get(jobId);
    if (!row || !isJobFinished(row.state)) return null;
    const what = row.state === 'failed' ? 'failed' : `was ${row.state}`;
    return `job ${jobId} ${what} while its input was uploading${row.error ? `: ${row.error}` : ''}`;
  }

  // ---------------------------------------------------------------- task data (routes/data.ts)

  /** The running attempt a lease names, with its job; null once it has ended. */
  running(lease: string): { lease: Lease; nReduce: number } | null {
    const l = this.ctx.mem.leases.get(lease);
    const job = l && this.ctx.mem.active.get(l.jobId);
    return l && job ? { lease: l, nReduce: job.nReduce } : null;
  }

  /**
   * An output was uploaded, checked and stored for a lease; false when the lease ended meanwhile
   * (the caller deletes it). A second upload for the lease replaces the first.
   */
  uploaded(lease: string, upload: Upload): boolean {
    if (!this.ctx.mem.leases.has(lease)) return false;
    const before = this.ctx.mem.uploads.get(lease);
    this.ctx.mem.uploads.set(lease, upload);
    if (before && before.blob !== upload.blob) this.discardBlob(before.blob);
    return true;
  }

  discardBlob(name: string): void {
    discard(this.ctx, name);
  }

  /** A job was inserted (see submit-job.ts): offer its tasks. */
  jobAdded(id: string): void {
    const job = this.ctx.stores.jobs.get(id);
    if (!job) return;
    activate(this.ctx, job);
    emit(this.ctx, { kind: 'job', jobId: id });
    dispatch(this.ctx);
  }

  /** Fails or cancels a job; false when it had already ended. */
  endJob(jobId: string, state: 'failed' | 'cancelled', reason: string | null): boolean {
    const ended = endJob(this.ctx, jobId, state, reason);
    if (ended) dispatch(this.ctx);
    return ended;
  }

  /** An admin cancels a job, durably. */
  cancel(jobId: string): boolean {
    return this.durably(() => this.endJob(jobId, 'cancelled', 'cancelled by an admin'));
  }

  /**
   * Deletes a finished job: its rows in one durable transaction, then its blobs (deletion.ts says
   * why in that order). `why` completes the log line: "by an admin".
   */
  async deleteJob(jobId: string, why: string): Promise<JobRemoval> {
    const r = this.durably(() => removeJob(this.ctx, jobId));
    if (r.kind !== 'deleted') return r;
    try {
      await this.ctx.blobs.deletePrefix(blobNames.jobPrefix(jobId));
    } catch (e) {
      this.ctx.log(`could not delete the data of job ${jobId} (${toError(e).message}); the next start removes it`);
    }
    this.ctx.log(`deleted job ${jobId} (${r.name}) ${why}; freed ${formatBytes(r.freedBytes)}`);
    return r;
  }

  // ---------------------------------------------------------------- volunteers

  /** A socket from `address` sent a valid `hello`: tasks it lost are settled, then it is welcomed and filled. */
  hello(conn: Connection, msg: HelloMessage, address = ''): Volunteer {
    const { v, gone, kept } = attach(this.ctx, conn, msg, address);
    if (gone.length > 0) {
      settle(this.ctx, gone, 'lost', { name: 'Lost', message: 'volunteer reconnected without this task' });
    }
    welcome(this.ctx, v, kept);
    fill(this.ctx, v);
    return v;
  }

  closed(v: Volunteer, conn: Connection): void {
    closed(this.ctx, v, conn);
  }

  seen(v: Volunteer): void {
    seen(this.ctx, v);
  }

  handle(v: Volunteer, msg: VolunteerMessage): void {
    const ctx = this.ctx;
    seen(ctx, v);
    switch (msg.type) {
      case 'hello':
        send(ctx, v, { type: 'error', message: 'hello was already received on this connection' });
        return;
      case 'heartbeat':
        return;
      case 'volunteer.update':
        update(ctx, v, msg);
        fill(ctx, v);
        return;
      case 'task.result': {
        const l = heldLease(ctx, v, msg.lease);
        if (!l) return;
        // A skipped line's stack names the author's file and line, as a failure's does.
        for (const r of msg.stats.skipped ?? []) r.error = this.authorStack(l.jobId, r.error);
        const r = commitResult(ctx, v, l, msg);
        if (r.kind === 'missing') {
          settle(ctx, [msg.lease], 'lost', {
            name: 'Lost',
            message: 'its uploaded output was not found (the master restarted before the commit); the task runs again',
          });
          send(ctx, v, { type: 'task.ack', lease: msg.lease, outcome: 'refused', reason: 'no upload for this lease' });
          dispatch(ctx);
          return;
        }
        if (r.kind === 'invalid') {
          this.expel(v, 'invalid task output', {
            name: 'InvalidOutput',
            message: `volunteer sent invalid output: ${r.reason}`,
          });
          return;
        }
        if (r.kind === 'superseded' || r.kind === 'voted') {
          dispatch(ctx);
          return;
        }
        if (r.kind === 'disagree') {
          endJob(ctx, l.jobId, 'failed', r.reason);
          dispatch(ctx);
          return;
        }
        for (const other of r.others) cancelLease(ctx, other, 'another attempt of this task finished first');
        if (r.fail) {
          endJob(ctx, l.jobId, 'failed', r.fail);
          dispatch(ctx);
          return;
        }
        // After any dispatch, no volunteer has a free slot while work waits. A commit frees one slot
        // of `v` only, so refilling `v` restores that, unless the commit opened new work (the
        // barrier) or cancelled a loser, which frees a volunteer too.
        if (r.moved || r.reopened || r.others.length > 0) dispatch(ctx);
        else fill(ctx, v);
        return;
      }
      case 'task.fail': {
        if (!ownLease(ctx, v, msg.lease)) return;
        const why = FAIL_REASONS[msg.reason];
        // Named as the pages name it: job, phase and index.
        const l = ctx.mem.leases.get(msg.lease);
        ctx.log(
          `${l ? `job ${l.jobId} ${l.phase} ${l.index}` : 'a task'} on ${v.id}: job code ${why}: ${msg.error.message}`,
        );
        settle(ctx, [msg.lease], 'failed', l ? this.authorStack(l.jobId, msg.error) : msg.error);
        dispatch(ctx);
        return;
      }
    }
  }

  /**
   * Handling `v`'s frame threw something other than a storage error (a bug, or input no check
   * foresaw): the attempt it named ends lost and `v` is dropped, rather than leave the lease running.
   */
  dropAfterError(v: Volunteer, e: Error): void {
    this.expel(v, 'the master could not handle a message', { name: 'Lost', message: `master error: ${e.message}` });
  }

  /** Drops a volunteer at once; every task it holds is lost now rather than after the delay. */
  private expel(v: Volunteer, reason: string, error: SerializedError, code = 1008): void {
    const held = detach(this.ctx, v, code, reason);
    if (held.length > 0) settle(this.ctx, held, 'lost', error);
    emit(this.ctx, { kind: 'volunteers' });
    dispatch(this.ctx);
  }

  // ---------------------------------------------------------------- group commit

  batched<T>(fn: () => T): T {
    return batched(this.ctx, fn);
  }

  flush(): void {
    flush(this.ctx);
  }

  durably<T>(fn: () => T): T {
    return durably(this.ctx, fn);
  }

  // ---------------------------------------------------------------- the 10-second rules

  /** Applies the time rules; the server calls it a few times a second, tests call it after moving the clock. */
  sweep(): void {
    const ctx = this.ctx;
    const now = ctx.clock.now();
    const due = findDue(ctx.mem, now, ctx.reassignAfterMs);
    for (const v of due.gone) {
      const why = goneReason(v, now);
      if (v.running.size > 0)
        ctx.log(`volunteer ${v.id} is gone (${why}); reassigning ${countOf(v.running.size, 'task')}`);
      this.expel(v, 'missed heartbeats', { name: 'Lost', message: `volunteer went away (${why})` }, 4000);
    }
    for (const taskId of due.backups) ctx.mem.needBackup.add(taskId);
    if (due.overdue.length > 0) {
      for (const lease of due.overdue) cancelLease(ctx, lease, 'attempt overdue');
      settle(ctx, due.overdue, 'lost', { name: 'Lost', message: 'volunteer did not report within the hard limit' });
    }
    // Votes that waited past the task timeout for another address may now go to any volunteer, and
    // once the volunteers had their time to reconnect after a start, a voter alone may run its task.
    let released = false;
    if (ctx.reconnectUntil !== -Infinity && now >= ctx.reconnectUntil) {
      ctx.reconnectUntil = -Infinity;
      released = true;
    }
    for (const b of ctx.mem.votedOn.values()) {
      const job = ctx.mem.active.get(b.jobId);
      if (b.released || !job || now - b.since <= job.taskTimeoutMs) continue;
      b.released = true;
      released = true;
    }
    if (released || due.gone.length > 0 || due.backups.length > 0 || due.overdue.length > 0) dispatch(ctx);
  }

  /** The master itself stalled `ms`: volunteers are not blamed for the silence. */
  excuse(ms: number): void {
    excuse(this.ctx, ms);
  }

  /** Forgets the rows of volunteers idle since `before` (deletion.ts); returns how many. */
  forgetVolunteers(before: number): number {
    return this.durably(() => forgetVolunteers(this.ctx, before));
  }

  /** Saves volunteers' last-seen times in slices (all of them with `Infinity`, at shutdown). */
  saveVolunteers(max = Math.max(100, Math.ceil(this.ctx.mem.volunteers.size / 100))): number {
    return saveVolunteers(this.ctx, max);
  }

  // ---------------------------------------------------------------- views

  runningLeases(): Lease[] {
    return [...this.ctx.mem.leases.values()];
  }

  /** Its tasks and input bytes per second over the last minute. */
  rateOf(v: Volunteer): { tasksPerSec: number; bytesPerSec: number } {
    return rateOf(v, this.ctx.clock.now());
  }

  currentTasks(v: Volunteer): Lease[] {
    return currentTasks(this.ctx, v);
  }

  /**
   * What a verified job waits for, when tasks with a result wait for another that no connected
   * volunteer can give (each has already voted, or lost a vote): in `all` mode a second result, in
   * either mode a third when two disagree; else null.
   */
  waitingFor(jobId: string): string | null {
    const ctx = this.ctx;
    const job = ctx.mem.active.get(jobId);
    if (!job || job.verify === 'off') return null;
    let n = 0;
    let split = 0;
    for (const [taskId, b] of ctx.mem.votedOn) {
      if (b.jobId !== jobId || b.decided || ctx.mem.taskLeases.has(taskId)) continue;
      if (job.verify !== 'all' && b.hashes.size < 2) continue;
      if (anyOtherFor(ctx, jobId, taskId, null)) continue;
      n++;
      if (b.hashes.size > 1) split++;
    }
    if (n === 0) return null;
    const why =
      split > 0
        ? `${split} of them with results that disagree`
        : '--verify all commits a result only when two volunteers agree';
    return (
      `${n} task${n === 1 ? '' : 's'} wait${n === 1 ? 's' : ''} for a volunteer other than those that returned ` +
      `a result for ${n === 1 ? 'it' : 'them'} (${why})`
    );
  }
}
