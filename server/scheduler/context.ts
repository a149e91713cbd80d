/**
 * What every rule of the scheduler shares: the clock, the options, the stores, the memory records
 * and the event listeners. It imports no sibling; memory.ts and group-commit.ts import only this
 * file, the rule files import those, and only index.ts imports every rule.
 */
import type { Transaction } from 'better-sqlite3';
import type { Db } from '../db.js';
import type { Stores } from '../sql/index.js';
import type { BlobStore } from '../blobs/blob-store.js';
import type { JobState, Phase, VerifyMode } from '../../shared/states.js';

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
  /** Largest frame the hub accepts, told to volunteers. */
  maxMessageBytes?: number;
  /** Where job data lives (inputs, map outputs, outputs). */
  blobs: BlobStore;
  /** Task data up to this many bytes travels inside frames; larger goes by HTTP (`INLINE_BYTES`). */
  inlineBytes?: number;
  /** Largest task output the master takes (`serve --max-upload`). */
  maxOutputBytes?: number;
  /** Agreeing results after which an identity's results are accepted alone (`serve --trust-after`). */
  trustAfter?: number;
  /** Share of a trusted identity's results checked by another volunteer (`serve --spot-check`). */
  spotCheckRate?: number;
  /** Draws the spot checks; tests pass their own. */
  random?: () => number;
  log?: (line: string) => void;
}

/**
 * Task data up to this size rides inside the socket's frames and is kept in SQLite rows; larger
 * data goes by HTTP to and from the blob store. Two HTTP requests per task would cost a small task
 * more than its data does (the `load` benchmark's tasks are a few hundred bytes), while 64 KiB
 * frames keep the socket's frames small enough to parse on the event loop.
 */
export const INLINE_BYTES = 64 * 1024;

/** A task output a volunteer uploaded (`PUT /data/LEASE/output`), checked and durable, not yet committed. */
export interface Upload {
  blob: string;
  bytes: number;
  /** Records written: a reduce's lines, counted by the master. */
  records: number;
  /** A map output's partition offsets. */
  offsets: number[] | null;
  /** SHA-256 of the output, hex (server/output-check.ts). */
  hash: string;
}

/**
 * Least time between two group commits. With one COMMIT per event-loop turn, 10,000 volunteers at
 * 2,000 tasks/s made 820 commits/s of 164 µs each (`npm run bench -- load`): a quarter of the
 * master's CPU went to writing nearly the same WAL pages again. Spacing commits shares that cost
 * among every frame of the gap; an idle master still commits at the end of the turn, so a lone
 * volunteer waits no longer for its next task.
 */
export const COMMIT_GAP_MS = 4;

/**
 * Verification's defaults, from the model in the README ("Verification"): an identity is trusted
 * after 10 results that matched another volunteer's with none that lost a vote, and then one result
 * in 10 is still checked. A volunteer that falsifies 30 % of its results passes the 10 checks with
 * probability 0.7^10 = 2.8 %; once trusted, each falsified result is caught with probability 0.1,
 * and the work of a trusted volunteer costs 1.1 times the work of `--verify off`.
 */
export const TRUST_AFTER = 10;
export const SPOT_CHECK_RATE = 0.1;

/** Votes a task may gather without two that agree before its job fails as not deterministic, per max attempt. */
export const VOTE_FACTOR = 2;

/** How long a volunteer may let the job's code run, as a multiple of the job's task timeout. */
export const HARD_LIMIT_FACTOR = 3;

/**
 * Lost attempts a task may have, as a multiple of the job's max attempts, before it fails as "could
 * not be delivered or returned": a task whose input or output breaks the transport, or that crashes
 * every tab it reaches, would otherwise go round the volunteers for ever.
 */
export const LOSS_FACTOR = 3;

/** A running attempt, as memory holds it. */
export interface Lease {
  lease: string;
  taskId: number;
  jobId: string;
  volunteerId: string;
  phase: Phase;
  index: number;
  startedAt: number;
  /**
   * When its task timeout starts counting: `startedAt`, or later for a task held beyond the
   * volunteer's threads, which waits in the volunteer for a thread (memory.ts `clockStart`).
   */
  clockFrom: number;
  backup: boolean;
  /** Bytes of a map task's input, once read to send it; for throughput. Null after a restart. */
  bytes: number | null;
  /** An upload of its output is under way (one at a time per lease). */
  uploading?: boolean;
}

export interface Volunteer {
  id: string;
  secret: string;
  /** The address its socket came from; '' for a volunteer known only from the database. */
  address: string;
  agent: string;
  /** The name its visitor chose, cleaned (shared/volunteer-label.ts); '' or absent: none. */
  name?: string;
  threads: number;
  slots: number;
  paused: boolean;
  connectedAt: number;
  lastSeenAt: number;
  /** When the socket closed; null while connected. */
  closedAt: number | null;
  conn: Connection | null;
  running: Set<string>;
  /** Tasks it committed, ever: it may hold one more than this at once (see `capacity`). */
  done: number;
  /** Results it sent for leases it does not hold; they count toward the hub's invalid-message budget. */
  refused: number;
  /** When `lastSeenAt` was last written to the volunteer table (see `saveVolunteers`). */
  savedAt: number;
  /** Input bytes of tasks committed, for throughput. */
  bytes: number;
  /** Its record (the `trust` table), as the views show it: read at hello, refreshed when it changes. */
  trust: { agreed: number; rejected: number; creditMs: number };
  /** Work it did lately, for its rate: tasks and input bytes per RATE_BUCKET_MS, oldest first. */
  recent: { at: number; done: number; bytes: number }[];
}

export interface ActiveJob {
  id: string;
  name: string;
  state: JobState;
  nReduce: number;
  taskTimeoutMs: number;
  maxAttempts: number;
  verify: VerifyMode;
  /** Lines whose `map` throws that the job may skip (`--skip-bad-records`). */
  skipBadRecords: number;
  running: number;
  /** Set when a look for pending tasks found none; cleared when a task becomes pending again. */
  drained: boolean;
  /** Bytes of each reduce partition, summed over the map outputs once the maps are done. */
  partitionBytes?: number[];
  /** Its upload is still arriving: more map tasks may come, so its barrier waits (submit-job.ts). */
  uploading: boolean;
}

/** Who ended a task's attempts badly: the identities and the addresses they came from. */
export interface Blame {
  ids: Set<string>;
  addresses: Set<string>;
}

/** Who voted on a task whose result waits for a match (README "Verification"). */
export interface Votes extends Blame {
  jobId: string;
  /** The hashes of their results: more than one, and a third volunteer must decide. */
  hashes: Set<string>;
  /** Two independent votes agree and the others lost: a result equal to theirs, from anyone, commits. */
  decided?: boolean;
  /** When the first vote came (or the master started): see `votesStale`. */
  since: number;
  /** The sweep saw it go stale and let dispatch offer it again. */
  released?: boolean;
}

/** What SQLite can rebuild after a restart (recovery.ts), plus live connections. */
export interface Memory {
  readonly volunteers: Map<string, Volunteer>;
  readonly leases: Map<string, Lease>;
  /** The running leases of each task: one, or two during a backup race. */
  readonly taskLeases: Map<number, Set<string>>;
  readonly active: Map<string, ActiveJob>;
  /** Tasks whose only running attempt passed the task timeout: they get a backup attempt. */
  readonly needBackup: Set<number>;
  /** Volunteers each task's code failed on, so a retry goes to someone else and a repeat counts once. */
  readonly failedOn: Map<number, Blame>;
  /** Volunteers each task was lost on, so that a repeat counts once toward the loss cap. */
  readonly lostOn: Map<number, Blame>;
  /** Uploaded outputs of running leases, waiting for their `task.result` (rebuilt from the store at start). */
  readonly uploads: Map<string, Upload>;
  /** Tasks with results waiting for a match: another volunteer, on another address if any, runs them. */
  readonly votedOn: Map<number, Votes>;
  /** Volunteers that lost a vote in each job: they get none of its tasks, and their results there count for nothing. */
  readonly expelled: Map<string, Set<string>>;
  /** Connected, unpaused volunteers by address; null after any change of volunteers (see `emit`). */
  addressIndex: Map<string, Volunteer[]> | null;
}

/** The open group commit: frames to send once it is durable. */
export interface Batch {
  outbox: [Connection, string][];
  cancel: () => void;
}

export type SchedulerEvent =
  | { kind: 'job'; jobId: string }
  | { kind: 'volunteers' }
  | { kind: 'commit'; jobId: string; phase: Phase; bytes: number };

export interface Context {
  readonly db: Db;
  readonly stores: Stores;
  readonly clock: Clock;
  readonly reassignAfterMs: number;
  readonly heartbeatMs: number;
  readonly commitGapMs: number;
  readonly maxMessageBytes: number | null;
  readonly blobs: BlobStore;
  readonly inlineBytes: number;
  readonly maxOutputBytes: number;
  readonly trustAfter: number;
  readonly spotCheckRate: number;
  readonly random: () => number;
  /** Blobs (names, or prefixes ending in `/`) to delete once the commit that let go of them is durable. */
  readonly trash: string[];
  readonly log: (line: string) => void;
  readonly mem: Memory;
  readonly listeners: Set<(e: SchedulerEvent) => void>;
  batch: Batch | null;
  lastCommitAt: number;
  /**
   * Until when, after a start that found jobs running, a task's voter leaves it for the volunteers
   * still reconnecting (`votedElsewhere`); -Infinity once that has passed.
   */
  reconnectUntil: number;
  dispatching: boolean;
  dispatchAgain: boolean;
  /** Rebuilds memory from the database after a group commit was rolled back; set by the façade. */
  reload: () => void;
  readonly counters: {
    committed: number;
    superseded: number;
    failed: number;
    lost: number;
    refused: number;
    assigned: number;
    invalid: number;
    voted: number;
    rejected: number;
  };
  /** Group commits made, and the milliseconds their COMMITs took (SQLite writing the WAL). */
  readonly commits: { count: number; ms: number };
}

export function createContext(db: Db, stores: Stores, opts: SchedulerOptions): Context {
  return {
    db,
    stores,
    clock: opts.clock ?? systemClock,
    reassignAfterMs: opts.reassignAfterMs ?? 10_000,
    heartbeatMs: opts.heartbeatMs ?? 2_000,
    commitGapMs: opts.commitGapMs ?? COMMIT_GAP_MS,
    maxMessageBytes: opts.maxMessageBytes ?? null,
    blobs: opts.blobs,
    inlineBytes: opts.inlineBytes ?? INLINE_BYTES,
    maxOutputBytes: opts.maxOutputBytes ?? 1024 ** 4,
    trustAfter: opts.trustAfter ?? TRUST_AFTER,
    spotCheckRate: opts.spotCheckRate ?? SPOT_CHECK_RATE,
    random: opts.random ?? Math.random,
    trash: [],
    log: opts.log ?? (() => {}),
    mem: {
      volunteers: new Map(),
      leases: new Map(),
      taskLeases: new Map(),
      active: new Map(),
      needBackup: new Set(),
      failedOn: new Map(),
      lostOn: new Map(),
      uploads: new Map(),
      votedOn: new Map(),
      expelled: new Map(),
      addressIndex: null,
    },
    listeners: new Set(),
    batch: null,
    lastCommitAt: -Infinity,
    reconnectUntil: -Infinity,
    dispatching: false,
    dispatchAgain: false,
    reload: () => {},
    counters: {
      committed: 0,
      superseded: 0,
      failed: 0,
      lost: 0,
      refused: 0,
      assigned: 0,
      invalid: 0,
      voted: 0,
      rejected: 0,
    },
    commits: { count: 0, ms: 0 },
  };
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- any transaction function's arguments
type TxFn = (...args: any[]) => unknown;
const prepared = new WeakMap<Context, Map<TxFn, Transaction<TxFn>>>();

/**
 * `fn` as a transaction of this scheduler's database, made once: `db.transaction()` compiles its
 * savepoint statements, which twice per task would cost more than the task's own statements.
 */
export function transactionOf<F extends TxFn>(ctx: Context, fn: F): Transaction<F> {
  let byFn = prepared.get(ctx);
  if (!byFn) {
    byFn = new Map();
    prepared.set(ctx, byFn);
  }
  let tx = byFn.get(fn);
  if (!tx) {
    tx = ctx.db.transaction(fn);
    byFn.set(fn, tx);
  }
  return tx as Transaction<F>;
}

/**
 * Deletes a blob (or a prefix) once no committed row refers to it: now when no group commit is open,
 * else after it commits (`drainTrash` in flush). A crash before that leaves an orphan that the next
 * start removes (server/blobs/sweep.ts).
 */
export function discard(ctx: Context, name: string): void {
  ctx.trash.push(name);
  if (!ctx.batch) setImmediate(() => drainTrash(ctx));
}

export function drainTrash(ctx: Context): void {
  if (ctx.batch || ctx.trash.length === 0) return;
  for (const name of ctx.trash.splice(0)) {
    const done = name.endsWith('/') ? ctx.blobs.deletePrefix(name) : ctx.blobs.delete(name);
    done.catch((e: unknown) => ctx.log(`could not delete ${name}: ${(e as Error).message}`));
  }
}

export function emit(ctx: Context, e: SchedulerEvent): void {
  if (e.kind === 'volunteers') ctx.mem.addressIndex = null;
  for (const l of ctx.listeners) l(e);
}
