/**
 * The scheduler: hands tasks to volunteers, commits results exactly once, and applies the fault rules.
 *
 * SQLite is the truth; memory holds only what a restart can rebuild from it (running leases, active
 * jobs) plus live connections. Every state change that depends on a lease names the lease, so a late,
 * duplicate or forged result changes nothing and is recorded as `superseded` (or refused).
 *
 * Time comes from `clock`, and the 10-second rules run in `sweep()`, so tests drive them without
 * sleeping: advance the clock, call `sweep()`.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { newLease } from './lease.js';
import type { Db } from './db.js';
import { isStorageError } from './storage-errors.js';
import { createAttemptStore, type AttemptRow } from './sql/attempt-store.js';
import { createJobStore, type JobRow } from './sql/job-store.js';
import { createOutputStore } from './sql/output-store.js';
import { createTaskStore, type PendingTask, type TaskRow } from './sql/task-store.js';
import { createVolunteerStore } from './sql/volunteer-store.js';
import { nextTaskState, type JobState, type Phase } from '../shared/states.js';
import {
  checkMapOutput,
  checkReduceOutput,
  type HelloMessage,
  type MasterMessage,
  type TaskFailMessage,
  type TaskResultMessage,
  type VolunteerMessage,
} from '../shared/protocol.js';
import type { Partition } from '../shared/engine.js';
import { toError, type SerializedError } from '../shared/errors.js';

export interface Clock {
  now(): number;
}
export const systemClock: Clock = { now: () => Date.now() };

/** What the scheduler needs of a volunteer's socket. */
export interface Connection {
  send(text: string): void;
  close(code: number, reason: string): void;
  /** Sends several frames in one write when the transport can (an ack and the next assignment). */
  sendAll?(texts: string[]): void;
}

export interface SchedulerOptions {
  clock?: Clock;
  /** A volunteer silent (or disconnected) this long loses its tasks. */
  reassignAfterMs?: number;
  heartbeatMs?: number;
  /** Least time between two group commits (see `COMMIT_GAP_MS`). */
  commitGapMs?: number;
  log?: (line: string) => void;
}

/**
 * Least time between two group commits. With one COMMIT per event-loop turn, 10,000 volunteers at
 * 2,000 tasks/s made 820 commits/s of 164 µs each (`npm run bench -- load`): a quarter of the
 * master's CPU went to writing nearly the same WAL pages again. Spacing commits shares that cost
 * among every frame of the gap; an idle master still commits at the end of the turn, so a lone
 * volunteer waits no longer for its next task.
 */
export const COMMIT_GAP_MS = 4;

/** How long a volunteer may let the job's code run, as a multiple of the job's task timeout. */
export const HARD_LIMIT_FACTOR = 3;

interface Lease {
  lease: string;
  taskId: number;
  jobId: string;
  volunteerId: string;
  phase: Phase;
  index: number;
  startedAt: number;
  backup: boolean;
  /** Bytes of a map task's input, once read to send it; for throughput. Null after a restart. */
  bytes: number | null;
}

export interface Volunteer {
  id: string;
  secret: string;
  agent: string;
  threads: number;
  slots: number;
  paused: boolean;
  connectedAt: number;
  lastSeenAt: number;
  /** When the socket closed; null while connected. */
  closedAt: number | null;
  conn: Connection | null;
  running: Set<string>;
  done: number;
  /** When `lastSeenAt` was last written to the volunteer table (see `saveVolunteers`). */
  savedAt: number;
  /** Input bytes of tasks committed, for throughput. */
  bytes: number;
}

interface ActiveJob {
  id: string;
  name: string;
  state: JobState;
  nReduce: number;
  taskTimeoutMs: number;
  maxAttempts: number;
  running: number;
  /** Set when a look for pending tasks found none; cleared when a task becomes pending again. */
  drained: boolean;
}

export type SchedulerEvent =
  | { kind: 'job'; jobId: string }
  | { kind: 'volunteers' }
  | { kind: 'commit'; jobId: string; phase: Phase; bytes: number };

export class Scheduler {
  readonly clock: Clock;
  readonly reassignAfterMs: number;
  readonly heartbeatMs: number;
  readonly jobs;
  readonly tasks;
  readonly attempts;
  readonly outputs;
  readonly volunteerRows;
  readonly volunteers = new Map<string, Volunteer>();
  private readonly leases = new Map<string, Lease>();
  /** The running leases of each task: one, or two during a backup race. */
  private readonly taskLeases = new Map<number, Set<string>>();
  private readonly active = new Map<string, ActiveJob>();
  /** Tasks whose only running attempt passed the task timeout: they get a backup attempt. */
  private readonly needBackup = new Set<number>();
  /** Volunteers each task's code failed on, so a retry goes to someone else. */
  private readonly failedOn = new Map<number, Set<string>>();
  private readonly listeners = new Set<(e: SchedulerEvent) => void>();
  private readonly log: (line: string) => void;
  private dispatching = false;
  private dispatchAgain = false;
  /** The open group commit: frames to send once it is durable (see `batched`). */
  private batch: { outbox: [Connection, string][]; cancel: () => void } | null = null;
  private readonly commitGapMs: number;
  private lastCommitAt = -Infinity;
  /** The two transactions of every task, prepared once (see `insertAttempt` and `commit`). */
  private readonly assignTx;
  private readonly commitTx;
  readonly counters = { committed: 0, superseded: 0, failed: 0, lost: 0, refused: 0, assigned: 0, invalid: 0 };
  /** Group commits made, and the milliseconds their COMMITs took (SQLite writing the WAL). */
  readonly commits = { count: 0, ms: 0 };

  constructor(
    readonly db: Db,
    opts: SchedulerOptions = {},
  ) {
    this.clock = opts.clock ?? systemClock;
    this.reassignAfterMs = opts.reassignAfterMs ?? 10_000;
    this.heartbeatMs = opts.heartbeatMs ?? 2_000;
    this.commitGapMs = opts.commitGapMs ?? COMMIT_GAP_MS;
    this.log = opts.log ?? (() => {});
    this.jobs = createJobStore(db);
    this.tasks = createTaskStore(db);
    this.attempts = createAttemptStore(db);
    this.outputs = createOutputStore(db);
    this.volunteerRows = createVolunteerStore(db);
    this.assignTx = db.transaction(this.insertAttempt.bind(this));
    this.commitTx = db.transaction(this.commit.bind(this));
    this.recover();
  }

  /**
   * After a restart every volunteer that held a running attempt is treated as disconnected now:
   * it keeps its tasks if it reconnects within `reassignAfterMs`, like a tab after a network blip.
   */
  private recover(): void {
    const now = this.clock.now();
    for (const job of this.jobs.active()) this.activate(job);
    for (const a of this.attempts.allRunning()) {
      const task = this.tasks.get(a.task_id)!;
      let v = this.volunteers.get(a.volunteer_id);
      if (!v) {
        const row = this.volunteerRows.get(a.volunteer_id);
        v = this.newVolunteer(a.volunteer_id, row?.secret ?? '', row?.agent ?? '', row?.threads ?? 1, now);
        v.closedAt = now;
        v.done = row?.done ?? 0;
        this.volunteers.set(v.id, v);
      }
      this.track(leaseOf(a, task));
    }
    for (const a of this.attempts.failedOfActiveJobs()) {
      const set = this.failedOn.get(a.task_id) ?? new Set<string>();
      set.add(a.volunteer_id);
      this.failedOn.set(a.task_id, set);
    }
    if (this.leases.size > 0) {
      this.log(
        `recovered ${this.leases.size} running attempts; their volunteers have ${this.reassignAfterMs}ms to reconnect`,
      );
    }
  }

  on(listener: (e: SchedulerEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emit(e: SchedulerEvent): void {
    for (const l of this.listeners) l(e);
  }

  private activate(job: JobRow): void {
    this.active.set(job.id, {
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

  /** A job was inserted (see submit-job.ts): offer its tasks. */
  jobAdded(id: string): void {
    const job = this.jobs.get(id);
    if (!job) return;
    this.activate(job);
    this.emit({ kind: 'job', jobId: id });
    this.dispatch();
  }

  private newVolunteer(id: string, secret: string, agent: string, threads: number, now: number): Volunteer {
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

  // ---------------------------------------------------------------- connections

  /** A socket sent a valid `hello`: attach it to its old identity when it proves it, else a new one. */
  hello(conn: Connection, msg: HelloMessage): Volunteer {
    const now = this.clock.now();
    let v = msg.volunteerId ? this.volunteers.get(msg.volunteerId) : undefined;
    if (v && !secretMatches(v.secret, msg.secret)) v = undefined;
    if (!v && msg.volunteerId && msg.secret) {
      const row = this.volunteerRows.get(msg.volunteerId);
      if (row && secretMatches(row.secret, msg.secret)) {
        v = this.newVolunteer(row.id, row.secret, row.agent, row.threads, now);
        v.done = row.done;
        this.volunteers.set(v.id, v);
      }
    }
    if (!v) {
      v = this.newVolunteer(
        randomBytes(8).toString('hex'),
        randomBytes(16).toString('hex'),
        msg.agent,
        msg.threads,
        now,
      );
      this.volunteers.set(v.id, v);
    } else if (v.conn && v.conn !== conn) {
      v.conn.close(4001, 'replaced by a newer connection');
    }
    v.conn = conn;
    v.closedAt = null;
    v.lastSeenAt = now;
    v.agent = msg.agent;
    v.threads = msg.threads;
    v.slots = msg.slots;
    v.paused = msg.paused;
    this.volunteerRows.upsert({
      id: v.id,
      secret: v.secret,
      agent: v.agent,
      connected_at: v.connectedAt,
      last_seen_at: now,
      threads: v.threads,
    });
    // Leases the master gave this volunteer but the volunteer no longer has (a reloaded tab) are lost
    // now rather than after the reassignment delay; leases it has but the master ended are dropped.
    const held = new Set(msg.running);
    const gone = [...v.running].filter((l) => !held.has(l));
    if (gone.length > 0)
      this.settle(gone, 'lost', { name: 'Lost', message: 'volunteer reconnected without this task' });
    const kept = msg.running.filter((l) => v.running.has(l));
    this.send(v, { type: 'welcome', volunteerId: v.id, secret: v.secret, heartbeatMs: this.heartbeatMs, kept });
    this.log(`volunteer ${v.id} connected (${v.threads} threads${kept.length ? `, kept ${kept.length} tasks` : ''})`);
    this.emit({ kind: 'volunteers' });
    this.fill(v);
    return v;
  }

  closed(v: Volunteer, conn: Connection): void {
    if (v.conn !== conn) return;
    v.conn = null;
    v.closedAt = this.clock.now();
    this.saveVolunteer(v);
    this.log(
      `volunteer ${v.id} disconnected${v.running.size ? `; ${v.running.size} tasks wait ${this.reassignAfterMs}ms for it` : ''}`,
    );
    this.emit({ kind: 'volunteers' });
  }

  /** Any frame from a volunteer counts as a sign of life. */
  seen(v: Volunteer): void {
    v.lastSeenAt = this.clock.now();
  }

  handle(v: Volunteer, msg: VolunteerMessage): void {
    this.seen(v);
    switch (msg.type) {
      case 'hello':
        this.send(v, { type: 'error', message: 'hello was already received on this connection' });
        return;
      case 'heartbeat':
        return;
      case 'volunteer.update':
        v.threads = msg.threads;
        v.slots = msg.slots;
        v.paused = msg.paused;
        this.emit({ kind: 'volunteers' });
        this.fill(v);
        return;
      case 'task.result':
        this.result(v, msg);
        return;
      case 'task.fail':
        this.fail(v, msg);
        return;
    }
  }

  send(v: Volunteer, msg: MasterMessage): void {
    this.sendRaw(v, JSON.stringify(msg));
  }

  private sendRaw(v: Volunteer, text: string): void {
    if (!v.conn) return;
    // Inside a group commit nothing leaves before the commit: an ack or an assignment the master
    // could still roll back must never reach a volunteer.
    if (this.batch) this.batch.outbox.push([v.conn, text]);
    else this.deliver(v.conn, [text]);
  }

  /** Sends frames to one connection, in one write when it can; a failed send is logged, not thrown. */
  private deliver(conn: Connection, texts: string[]): void {
    try {
      if (texts.length > 1 && conn.sendAll) conn.sendAll(texts);
      else for (const t of texts) conn.send(t);
    } catch (e) {
      this.log(`send failed: ${String(e)}`);
    }
  }

  // ---------------------------------------------------------------- group commit

  /**
   * Runs `fn` inside the current group commit, opening one if none is open. Every frame volunteers
   * send until the commit shares one SQLite transaction (each handler's own transaction becomes a
   * savepoint in it), committed by `flush()` at the end of the turn, or `commitGapMs` after the
   * previous commit if that is later; the frames the master sends meanwhile wait for that commit.
   * One commit per gap instead of two per task is what lets the master keep up with thousands of
   * results per second.
   */
  batched<T>(fn: () => T): T {
    if (this.batch && !this.db.inTransaction) this.abandon(new Error('SQLite ended the transaction'));
    if (!this.batch) {
      this.db.exec('BEGIN IMMEDIATE');
      const commit = () => {
        try {
          this.flush();
        } catch {
          // abandon() has logged it and reloaded the state
        }
      };
      const wait = this.lastCommitAt + this.commitGapMs - performance.now();
      if (wait > 0) {
        const timer = setTimeout(commit, wait);
        this.batch = { outbox: [], cancel: () => clearTimeout(timer) };
      } else {
        const immediate = setImmediate(commit);
        this.batch = { outbox: [], cancel: () => clearImmediate(immediate) };
      }
    }
    try {
      return fn();
    } catch (e) {
      if (isStorageError(e)) this.abandon(e);
      throw e;
    }
  }

  /**
   * Commits the open group commit, then sends what it held back; throws when the commit failed
   * (after `abandon`). Admin requests call it first so that they read and write durable state only.
   */
  flush(): void {
    const b = this.batch;
    if (!b) return;
    try {
      if (!this.db.inTransaction) throw new Error('SQLite ended the transaction');
      const t0 = performance.now();
      this.db.exec('COMMIT');
      this.commits.count++;
      this.commits.ms += performance.now() - t0;
    } catch (e) {
      this.abandon(e);
      throw e;
    }
    b.cancel();
    this.batch = null;
    this.lastCommitAt = performance.now();
    const byConn = new Map<Connection, string[]>();
    for (const [conn, text] of b.outbox) {
      const list = byConn.get(conn);
      if (list) list.push(text);
      else byConn.set(conn, [text]);
    }
    for (const [conn, texts] of byConn) this.deliver(conn, texts);
  }

  /** Runs `fn` in a group commit of its own and makes it durable before returning: for admin requests. */
  durably<T>(fn: () => T): T {
    this.flush();
    const result = this.batched(fn);
    this.flush();
    return result;
  }

  /**
   * The group commit could not be made durable (a full disk, an I/O error): roll it back, drop the
   * frames it held, and rebuild the master's state from the database as after a restart. Every
   * volunteer is disconnected and reconnects with backoff; it keeps its tasks and sends again the
   * results that were not acknowledged, so nothing is lost and nothing counts twice.
   */
  private abandon(e: unknown): void {
    this.batch?.cancel();
    this.batch = null;
    if (this.db.inTransaction) {
      try {
        this.db.exec('ROLLBACK');
      } catch {
        // already rolled back by SQLite
      }
    }
    this.log(`could not commit (${e instanceof Error ? e.message : String(e)}); reloading state from the database`);
    for (const v of this.volunteers.values()) v.conn?.close(1011, 'master storage error; reconnect');
    this.volunteers.clear();
    this.leases.clear();
    this.taskLeases.clear();
    this.active.clear();
    this.needBackup.clear();
    this.failedOn.clear();
    this.recover();
    this.emit({ kind: 'volunteers' });
  }

  // ---------------------------------------------------------------- dispatch

  private freeSlots(v: Volunteer): number {
    if (!v.conn || v.paused) return 0;
    return v.slots - v.running.size;
  }

  /**
   * Hands out tasks while volunteers have free slots: one task per volunteer per pass, so work
   * spreads across tabs before any tab gets a second task.
   */
  dispatch(): void {
    if (this.dispatching) {
      this.dispatchAgain = true;
      return;
    }
    if (!this.hasWork()) return;
    this.dispatching = true;
    try {
      do {
        this.dispatchAgain = false;
        let hungry = [...this.volunteers.values()].filter((v) => this.freeSlots(v) > 0);
        // Least-loaded first, relative to its threads.
        hungry.sort((a, b) => a.running.size / a.threads - b.running.size / b.threads);
        while (hungry.length > 0) {
          const next: Volunteer[] = [];
          for (const v of hungry) {
            if (this.assignOne(v) && this.freeSlots(v) > 0) next.push(v);
          }
          hungry = next;
        }
      } while (this.dispatchAgain);
    } finally {
      this.dispatching = false;
    }
  }

  /** Cheap check before scanning volunteers: is anything waiting to be handed out? */
  private hasWork(): boolean {
    if (this.needBackup.size > 0) return true;
    for (const j of this.active.values()) if (!j.drained) return true;
    return false;
  }

  /** Gives `v` the next task it may run: a backup first, else a pending task of the least-served job. */
  private assignOne(v: Volunteer): boolean {
    for (const taskId of this.needBackup) {
      const holders = this.taskLeases.get(taskId);
      if (holders?.size !== 1) {
        this.needBackup.delete(taskId);
        continue;
      }
      const [only] = holders;
      if (this.leases.get(only!)?.volunteerId === v.id) continue;
      this.needBackup.delete(taskId);
      const task = this.tasks.get(taskId);
      if (task && task.state === 'running') return this.assign(v, task, true);
    }
    const jobs = [...this.active.values()]
      .filter((j) => !j.drained && (j.state === 'queued' || j.state === 'mapping' || j.state === 'reducing'))
      .sort((a, b) => a.running - b.running);
    for (const job of jobs) {
      const phase = job.state === 'reducing' ? 'reduce' : 'map';
      let task = this.tasks.nextPending(job.id, phase);
      if (!task) {
        job.drained = true;
        continue;
      }
      // A task whose code failed on this volunteer is retried elsewhere when anyone else can take it.
      for (let skips = 0; task && skips < 16 && this.betterElsewhere(task.id, v); skips++) {
        task = this.tasks.nextPendingAfter(job.id, phase, task.idx);
      }
      if (task && !this.betterElsewhere(task.id, v)) return this.assign(v, task, false);
    }
    return false;
  }

  private betterElsewhere(taskId: number, v: Volunteer): boolean {
    const failed = this.failedOn.get(taskId);
    if (!failed?.has(v.id)) return false;
    for (const u of this.volunteers.values()) {
      if (u !== v && u.conn && !u.paused && !failed.has(u.id)) return true;
    }
    return false;
  }

  private assign(v: Volunteer, task: TaskRow | PendingTask, backup: boolean): boolean {
    const job = this.active.get(task.job_id);
    if (!job) return false;
    const now = this.clock.now();
    const lease = newLease(now);
    this.assignTx.immediate(v, task, job, lease, backup, now);
    const l: Lease = {
      lease,
      taskId: task.id,
      jobId: job.id,
      volunteerId: v.id,
      phase: task.phase,
      index: task.idx,
      startedAt: now,
      backup,
      bytes: null,
    };
    this.track(l);
    this.counters.assigned++;
    this.sendRaw(v, this.assignMessage(job, task, l));
    this.emit({ kind: 'job', jobId: job.id });
    return true;
  }

  /** Records a new running attempt and moves its task (and a queued job) on, in one transaction. */
  private insertAttempt(v: Volunteer, task: TaskRow, job: ActiveJob, lease: string, backup: boolean, now: number) {
    this.attempts.insert({
      task_id: task.id,
      job_id: task.job_id,
      volunteer_id: v.id,
      lease,
      backup: backup ? 1 : 0,
      started_at: now,
    });
    this.tasks.move(task.id, task.state, nextTaskState(task.state, { type: 'assign' }));
    if (job.state === 'queued' && this.jobs.advance(job.id, 'queued', 'mapping')) job.state = 'mapping';
  }

  private assignMessage(job: ActiveJob, task: TaskRow | PendingTask, l: Lease): string {
    const lease = l.lease;
    const head = {
      type: 'task.assign',
      lease,
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
      const bytes = ('input' in task ? task.input : this.tasks.input(task.id)) ?? Buffer.alloc(0);
      l.bytes = bytes.length;
      return JSON.stringify({ ...head, input: { key: task.input_key ?? '', value: bytes.toString('utf8') } });
    }
    // Map outputs are stored as the JSON the volunteers sent (already checked), so the reduce input
    // is spliced together without parsing it again.
    const parts = this.outputs.reduceInput(job.id, task.idx);
    const json = JSON.stringify(head);
    return `${json.slice(0, -1)},"input":[${parts.join(',')}]}`;
  }

  // ---------------------------------------------------------------- results

  /** Looks a lease up for `v`; answers and returns undefined when `v` may not act on it. */
  private ownLease(v: Volunteer, lease: string): AttemptRow | undefined {
    const a = this.attempts.byLease(lease);
    if (!a) {
      this.refuse(v, lease, 'unknown lease');
      return undefined;
    }
    if (a.volunteer_id !== v.id) {
      this.refuse(v, lease, 'this lease belongs to another volunteer');
      return undefined;
    }
    if (a.outcome !== 'running') {
      // Late: the volunteer was declared lost, or another attempt already won.
      if (a.outcome === 'lost') this.attempts.relabel(lease, 'lost', 'superseded');
      this.counters.superseded++;
      this.send(v, { type: 'task.ack', lease, outcome: 'superseded', reason: `attempt already ${a.outcome}` });
      return undefined;
    }
    return a;
  }

  private refuse(v: Volunteer, lease: string, reason: string): void {
    this.counters.refused++;
    this.send(v, { type: 'task.ack', lease, outcome: 'refused', reason });
  }

  /**
   * The lease `v` may commit under, from memory (where every running attempt is) when it is there;
   * otherwise the database says why not and `v` is answered. Memory and database disagreeing would
   * be a bug: then the database wins and memory takes the lease back.
   */
  private heldLease(v: Volunteer, lease: string): Lease | undefined {
    const l = this.leases.get(lease);
    if (l && l.volunteerId === v.id) return l;
    const a = this.ownLease(v, lease);
    if (!a) return undefined;
    const task = this.tasks.get(a.task_id)!;
    this.log(`lease ${lease} was running in the database but not in memory; taking it back`);
    const back = leaseOf(a, task);
    this.track(back);
    return back;
  }

  private result(v: Volunteer, msg: TaskResultMessage): void {
    const l = this.heldLease(v, msg.lease);
    if (!l) return;
    const job = this.active.get(l.jobId);
    if (!job) {
      // A job that ended supersedes its running attempts; one still here is answered the same way.
      this.supersede(v, l, 'the job is no longer running');
      return;
    }
    const invalid = l.phase === 'map' ? checkMapOutput(msg.output, job.nReduce) : checkReduceOutput(msg.output);
    if (invalid) {
      // Not the job's fault: the volunteer broke the protocol. Its attempt is lost and it is dropped.
      this.counters.invalid++;
      this.send(v, { type: 'error', message: `invalid output for ${msg.lease}: ${invalid}` });
      this.expel(v, 'invalid task output', {
        name: 'InvalidOutput',
        message: `volunteer sent invalid output: ${invalid}`,
      });
      return;
    }
    const others = [...(this.taskLeases.get(l.taskId) ?? [])].filter((other) => other !== l.lease);
    const bytes =
      l.phase === 'map' ? (l.bytes ?? this.tasks.input(l.taskId)?.length ?? 0) : (msg.output as string).length;
    let outcome: CommitOutcome;
    try {
      outcome = this.commitTx.immediate(l, msg, others, this.clock.now());
    } catch (e) {
      if (!(e instanceof StaleLeaseError)) throw e;
      outcome = null;
    }
    this.forget(msg.lease);
    this.failedOn.delete(l.taskId);
    if (outcome === null) {
      this.supersede(v, l, 'another attempt won');
      return;
    }
    this.counters.committed++;
    v.done++;
    v.bytes += bytes;
    this.send(v, { type: 'task.ack', lease: msg.lease, outcome: 'committed' });
    for (const other of others) this.cancelLease(other, 'another attempt of this task finished first');
    if (outcome.moved) this.moveJob(job, outcome.moved);
    this.emit({ kind: 'job', jobId: job.id });
    this.emit({ kind: 'commit', jobId: job.id, phase: l.phase, bytes });
    // After any dispatch, no volunteer has a free slot while work waits. A commit frees one slot of
    // `v` only, so refilling `v` restores that, unless the commit opened new work (the barrier).
    // A cancelled loser frees a volunteer too; only a plain commit can just refill the sender.
    if (outcome.moved || others.length > 0) this.dispatch();
    else this.fill(v);
  }

  /**
   * Commits one attempt's output with its task, atomically: the task moves to succeeded only from
   * running, the attempt ends only while running (else `StaleLeaseError` rolls the task back), and
   * the other running attempts of the task are superseded. Returns null when the task had already
   * left running, and the job's new state when this commit moved it (the barrier, or the end).
   */
  private commit(l: Lease, msg: TaskResultMessage, others: string[], now: number): CommitOutcome {
    if (!this.tasks.move(l.taskId, 'running', nextTaskState('running', { type: 'commit' }))) return null;
    const ended = this.attempts.end({
      lease: l.lease,
      outcome: 'succeeded',
      at: now,
      ms: msg.stats.ms,
      records_in: msg.stats.recordsIn,
      records_out: msg.stats.recordsOut,
    });
    if (!ended) throw new StaleLeaseError(l.lease);
    this.volunteerRows.done(l.volunteerId);
    for (const other of others) {
      this.attempts.end({ lease: other, outcome: 'superseded', at: now, error: errorJson(SUPERSEDED) });
    }
    if (l.phase === 'map') {
      const parts = msg.output as Partition[];
      if (parts.some((p) => p.length > 0)) this.outputs.putMap(l.jobId, l.index, JSON.stringify(parts));
      const c = this.jobs.mapDone(l.jobId, msg.stats.recordsOut);
      if (c.maps_done === c.maps_total && this.jobs.advance(l.jobId, 'mapping', 'reducing')) {
        return { moved: 'reducing' };
      }
      return { moved: null };
    }
    this.outputs.put(l.jobId, l.index, msg.output as string);
    const c = this.jobs.reduceDone(l.jobId, msg.stats.recordsOut);
    if (c.reduces_done < c.n_reduce) return { moved: null };
    this.jobs.finish(l.jobId, 'succeeded', now);
    this.outputs.dropMaps(l.jobId);
    this.tasks.dropInputs(l.jobId);
    return { moved: 'succeeded' };
  }

  /** Answers a result that lost: its attempt is recorded superseded, and `v` is free for more work. */
  private supersede(v: Volunteer, l: Lease, reason: string): void {
    this.forget(l.lease);
    this.counters.superseded++;
    this.attempts.end({ lease: l.lease, outcome: 'superseded', at: this.clock.now(), error: errorJson(SUPERSEDED) });
    this.send(v, { type: 'task.ack', lease: l.lease, outcome: 'superseded', reason });
    this.dispatch();
  }

  /** Fills one volunteer's free slots; the cheap path after its own result. */
  private fill(v: Volunteer): void {
    if (this.dispatching) {
      this.dispatchAgain = true;
      return;
    }
    while (this.freeSlots(v) > 0 && this.assignOne(v));
  }

  private fail(v: Volunteer, msg: TaskFailMessage): void {
    if (!this.ownLease(v, msg.lease)) return;
    const why = { threw: 'threw', timeout: 'ran past its time limit', crashed: 'crashed its worker' }[msg.reason];
    this.log(`task ${this.leases.get(msg.lease)?.taskId} on ${v.id}: job code ${why}: ${msg.error.message}`);
    this.settle([msg.lease], 'failed', msg.error);
    this.dispatch();
  }

  /**
   * The one "fail or retry" path for attempts that end without a result: the job's code failed, or
   * the volunteer was lost. The task runs again unless another attempt is still on it, or its
   * failures reached the job's max attempts, which fails the job.
   */
  settle(leaseIds: string[], outcome: 'failed' | 'lost', error: SerializedError): void {
    const now = this.clock.now();
    const failedJobs = new Map<string, string>();
    this.db
      .transaction(() => {
        for (const lease of leaseIds) {
          const a = this.attempts.byLease(lease);
          if (!a || !this.attempts.end({ lease, outcome, at: now, error: errorJson(error) })) continue;
          const task = this.tasks.get(a.task_id)!;
          const job = this.jobs.get(a.job_id)!;
          const failures = outcome === 'failed' ? this.tasks.addFailure(task.id) : task.failures;
          if (outcome === 'failed') {
            const set = this.failedOn.get(task.id) ?? new Set<string>();
            set.add(a.volunteer_id);
            this.failedOn.set(task.id, set);
          }
          const state = nextTaskState(task.state, {
            type: 'settle',
            othersRunning: this.attempts.runningForTask(task.id).length,
            failures,
            maxAttempts: job.max_attempts,
          });
          this.tasks.move(task.id, task.state, state);
          if (state === 'failed') failedJobs.set(job.id, describeFailure(task, failures, error));
          if (state === 'pending') {
            const aj = this.active.get(job.id);
            if (aj) aj.drained = false;
          }
        }
      })
      .immediate();
    for (const lease of leaseIds) {
      if (this.forget(lease)) this.counters[outcome]++;
    }
    for (const [jobId, reason] of failedJobs) this.endJob(jobId, 'failed', reason);
    for (const lease of leaseIds) {
      const jobId = this.attempts.byLease(lease)?.job_id;
      if (jobId) this.refreshJob(jobId);
    }
  }

  /** Holds a running attempt in memory: by lease, by task, on its volunteer and its job. */
  private track(l: Lease): void {
    this.leases.set(l.lease, l);
    const set = this.taskLeases.get(l.taskId);
    if (set) set.add(l.lease);
    else this.taskLeases.set(l.taskId, new Set([l.lease]));
    this.volunteers.get(l.volunteerId)?.running.add(l.lease);
    const job = this.active.get(l.jobId);
    if (job) job.running++;
  }

  /** Drops a lease from memory; returns whether it was there. */
  private forget(lease: string): boolean {
    const l = this.leases.get(lease);
    if (!l) return false;
    this.leases.delete(lease);
    const set = this.taskLeases.get(l.taskId);
    set?.delete(lease);
    if (set?.size === 0) this.taskLeases.delete(l.taskId);
    this.volunteers.get(l.volunteerId)?.running.delete(lease);
    const job = this.active.get(l.jobId);
    if (job) job.running--;
    return true;
  }

  private cancelLease(lease: string, reason: string): void {
    const l = this.leases.get(lease);
    const holder = l ? this.volunteers.get(l.volunteerId) : undefined;
    const attempt = l ? undefined : this.attempts.byLease(lease);
    const v = holder ?? (attempt ? this.volunteers.get(attempt.volunteer_id) : undefined);
    this.forget(lease);
    if (v) this.send(v, { type: 'task.cancel', lease, reason });
  }

  /** Re-reads a job after a change: phase moves, and finished jobs leave the active set. True if it moved. */
  private refreshJob(jobId: string): boolean {
    const row = this.jobs.get(jobId);
    const job = this.active.get(jobId);
    if (!row || !job) return false;
    const moved = row.state !== job.state;
    if (moved) this.moveJob(job, row.state);
    this.emit({ kind: 'job', jobId });
    return moved;
  }

  /** A job changed phase: its pending work is new, and a finished one leaves the active set. */
  private moveJob(job: ActiveJob, state: JobState): void {
    job.state = state;
    job.drained = false;
    if (state === 'succeeded') {
      this.active.delete(job.id);
      this.log(`job ${job.id} (${job.name}) succeeded`);
    }
  }

  /** Fails or cancels a job: open tasks are cancelled and running attempts told to stop. */
  endJob(jobId: string, state: 'failed' | 'cancelled', reason: string | null): boolean {
    const now = this.clock.now();
    const running = this.attempts.runningForJob(jobId);
    const ended = this.db
      .transaction(() => {
        if (!this.jobs.finish(jobId, state, now, reason)) return false;
        this.tasks.cancelOpen(jobId);
        const why = { name: 'Superseded', message: `job ${state}` };
        for (const a of running)
          this.attempts.end({ lease: a.lease, outcome: 'superseded', at: now, error: errorJson(why) });
        return true;
      })
      .immediate();
    if (!ended) return false;
    for (const a of running) this.cancelLease(a.lease, `job ${state}`);
    this.active.delete(jobId);
    for (const taskId of [...this.needBackup, ...this.failedOn.keys()]) {
      if (this.tasks.get(taskId)?.job_id === jobId) {
        this.needBackup.delete(taskId);
        this.failedOn.delete(taskId);
      }
    }
    this.log(`job ${jobId} ${state}${reason ? `: ${reason.split('\n')[0]}` : ''}`);
    this.emit({ kind: 'job', jobId });
    this.dispatch();
    return true;
  }

  /**
   * Drops a volunteer at once: its socket is closed, and every task it holds is lost now rather than
   * after the reassignment delay (it broke the protocol, or went silent).
   */
  private expel(v: Volunteer, reason: string, error: SerializedError, code = 1008): void {
    const conn = v.conn;
    v.conn = null;
    conn?.close(code, reason);
    this.saveVolunteer(v);
    this.volunteers.delete(v.id);
    if (v.running.size > 0) this.settle([...v.running], 'lost', error);
    this.emit({ kind: 'volunteers' });
    this.dispatch();
  }

  // ---------------------------------------------------------------- the 10-second rules

  /** Applies the time rules; the server calls it a few times a second, tests call it after moving the clock. */
  sweep(): void {
    const now = this.clock.now();
    let changed = false;
    // Sweeps run four times a second over every volunteer and lease (10,000 of each under
    // `npm run bench -- load`): they read the indexes as they are and copy only what they act on.
    const gone: Volunteer[] = [];
    for (const v of this.volunteers.values()) {
      if (now - (v.closedAt ?? v.lastSeenAt) >= this.reassignAfterMs) gone.push(v);
    }
    for (const v of gone) {
      const since = v.closedAt ?? v.lastSeenAt;
      const why = v.conn ? `no message for ${now - since}ms` : `disconnected ${now - since}ms ago`;
      if (v.running.size > 0) this.log(`volunteer ${v.id} is gone (${why}); reassigning ${v.running.size} tasks`);
      this.expel(v, 'missed heartbeats', { name: 'Lost', message: `volunteer went away (${why})` }, 4000);
      changed = true;
    }
    const overdue: string[] = [];
    for (const [taskId, held] of this.taskLeases) {
      for (const lease of held) {
        const l = this.leases.get(lease)!;
        const job = this.active.get(l.jobId);
        if (!job) continue;
        // The volunteer should have stopped the code at the hard limit; past that plus the
        // reassignment delay it is not reporting, so the attempt counts as lost.
        if (now - l.startedAt >= job.taskTimeoutMs * HARD_LIMIT_FACTOR + this.reassignAfterMs) overdue.push(l.lease);
        if (held.size === 1 && now - l.startedAt >= job.taskTimeoutMs && !this.needBackup.has(taskId)) {
          this.needBackup.add(taskId);
          changed = true;
        }
      }
    }
    if (overdue.length > 0) {
      for (const lease of overdue) this.cancelLease(lease, 'attempt overdue');
      this.settle(overdue, 'lost', { name: 'Lost', message: 'volunteer did not report within the hard limit' });
      changed = true;
    }
    if (changed) this.dispatch();
  }

  /**
   * Forgives `ms` of silence: the master itself was stalled that long, so messages volunteers sent
   * meanwhile have not been read yet. Without it one long stall would expel every volunteer.
   */
  excuse(ms: number): void {
    const now = this.clock.now();
    for (const v of this.volunteers.values()) {
      if (v.closedAt !== null) v.closedAt = Math.min(now, v.closedAt + ms);
      else v.lastSeenAt = Math.min(now, v.lastSeenAt + ms);
    }
  }

  // ---------------------------------------------------------------- views

  runningLeases(): Lease[] {
    return [...this.leases.values()];
  }

  currentTasks(v: Volunteer): Lease[] {
    return [...v.running].map((l) => this.leases.get(l)).filter((l): l is Lease => l !== undefined);
  }

  /**
   * Writes volunteers' last-seen times, which the master keeps in memory, to the volunteer table:
   * those not written for `VOLUNTEER_SAVE_MS`, at most `max` of them (all with `Infinity`, at
   * shutdown). Every 5 s for everyone, that was 2,000 updates a second under 10,000 volunteers and
   * a stall each time; in slices it is 400 small updates a second and no stall. The time is a record
   * only: the 10-second rules run on the master's memory, and after a restart on the restart time.
   */
  saveVolunteers(max = Math.max(100, Math.ceil(this.volunteers.size / 100))): number {
    const now = this.clock.now();
    let saved = 0;
    this.db.transaction(() => {
      for (const v of this.volunteers.values()) {
        if (saved >= max) break;
        if (max !== Infinity && now - v.savedAt < VOLUNTEER_SAVE_MS) continue;
        this.saveVolunteer(v);
        saved++;
      }
    })();
    return saved;
  }

  /**
   * Best effort: it runs when sockets close, where a throw would take the master down, and a full
   * disk must not. What it writes is a record; the next save catches up once there is space.
   */
  private saveVolunteer(v: Volunteer): void {
    v.savedAt = this.clock.now();
    try {
      this.volunteerRows.seen(v.id, v.lastSeenAt);
    } catch (e) {
      if (!isStorageError(e)) throw e;
      this.log(`could not save volunteer ${v.id}: ${toError(e).message}`);
    }
  }
}

/** How often a connected volunteer's last-seen time reaches the database. */
const VOLUNTEER_SAVE_MS = 30_000;

/** What a commit did: null when the task had already left running. */
type CommitOutcome = { moved: 'reducing' | 'succeeded' | null } | null;

/** The attempt ended (superseded or lost) between the task's move and its own end: undo the commit. */
class StaleLeaseError extends Error {
  constructor(lease: string) {
    super(`lease ${lease} is no longer running`);
    this.name = 'StaleLeaseError';
  }
}

const SUPERSEDED: SerializedError = { name: 'Superseded', message: 'another attempt of this task committed first' };

/** A running attempt as memory holds it, from its row and its task's. */
function leaseOf(a: AttemptRow, task: TaskRow): Lease {
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

function errorJson(e: SerializedError): string {
  return JSON.stringify(e);
}

function describeFailure(task: TaskRow, failures: number, error: SerializedError): string {
  const input = task.phase === 'map' ? ` (input ${JSON.stringify(task.input_key)})` : ` (partition ${task.idx})`;
  const head = `${task.phase} task ${task.idx}${input} failed ${failures} time${failures === 1 ? '' : 's'}`;
  const line = `${error.name}: ${error.message}`;
  // V8 stacks begin with "Name: message"; show that line once.
  const trace = error.stack?.startsWith(line) ? error.stack.slice(line.length).replace(/^\n/, '') : error.stack;
  return `${head}: ${line}${trace ? `\n${trace}` : ''}`;
}

function secretMatches(expected: string, given: string | undefined): boolean {
  if (!given || given.length !== expected.length || expected.length === 0) return false;
  return timingSafeEqual(Buffer.from(expected), Buffer.from(given));
}
