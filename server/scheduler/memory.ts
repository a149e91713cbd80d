/**
 * The master's memory of running work: volunteers, running leases (by lease, by task, on their
 * volunteer and their job) and active jobs. All of it but live sockets can be rebuilt from SQLite
 * (recovery.ts); these functions keep its indexes in step with each other.
 */
import type { AttemptRow } from '../sql/attempt-store.js';
import type { JobRow } from '../sql/job-store.js';
import type { TaskRow } from '../sql/task-store.js';
import type { JobState } from '../../shared/states.js';
import { discard, emit, type ActiveJob, type Blame, type Context, type Lease, type Volunteer } from './context.js';

export function newVolunteer(
  id: string,
  secret: string,
  agent: string,
  threads: number,
  now: number,
  address = '',
): Volunteer {
  return {
    id,
    secret,
    address,
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
    refused: 0,
    savedAt: now,
    bytes: 0,
    trust: { agreed: 0, rejected: 0, creditMs: 0 },
    recent: [],
  };
}

/** A volunteer's rate is its work over the last RATE_WINDOW_MS, counted in buckets of RATE_BUCKET_MS. */
export const RATE_WINDOW_MS = 60_000;
const RATE_BUCKET_MS = 5_000;

/** Counts one result of `v` (committed, or a vote) and the input bytes it covered. */
export function noteWork(v: Volunteer, bytes: number, now: number): void {
  const at = now - (now % RATE_BUCKET_MS);
  const last = v.recent.at(-1);
  if (last && last.at === at) {
    last.done++;
    last.bytes += bytes;
  } else {
    v.recent.push({ at, done: 1, bytes });
    while (v.recent.length > 0 && v.recent[0]!.at <= now - RATE_WINDOW_MS - RATE_BUCKET_MS) v.recent.shift();
  }
}

/**
 * Tasks and input bytes per second over the last minute, or over the time since it connected when
 * that is shorter (at least one bucket, so a first result is not a burst of thousands a second).
 */
export function rateOf(v: Volunteer, now: number): { tasksPerSec: number; bytesPerSec: number } {
  const from = now - RATE_WINDOW_MS;
  let done = 0;
  let bytes = 0;
  for (const b of v.recent) {
    if (b.at + RATE_BUCKET_MS <= from) continue;
    done += b.done;
    bytes += b.bytes;
  }
  const span = Math.max(RATE_BUCKET_MS, Math.min(RATE_WINDOW_MS, now - v.connectedAt));
  return { tasksPerSec: (done * 1000) / span, bytesPerSec: (bytes * 1000) / span };
}

/**
 * Tasks a volunteer may hold at once: the slots it claims, but no more than one beyond the tasks it
 * has ever committed. A new identity costs nothing to make, so it holds one task until it has shown
 * work; an honest tab doubles its share every task-length (1, 2, 4, 8…) until it reaches its claim.
 */
export function capacity(v: Volunteer): number {
  return Math.min(v.slots, 1 + v.done);
}

/** The threads a volunteer has shown by its work, not the ones it claims: dispatch weighs by these. */
export function shownThreads(v: Volunteer): number {
  return Math.max(1, Math.min(v.threads, 1 + v.done));
}

/**
 * When the timeout of a task given to `v` now starts counting. A volunteer runs as many tasks as it
 * has threads and holds the rest (its prefetch) until one of them ends, so a task beyond its threads
 * is timed from when its first running task is due to end, not from now: slow tasks behind a short
 * prefetch queue get no needless backups. Never more than one timeout from now, so a volunteer
 * claiming a long queue cannot hold a task untimed for long.
 */
export function clockStart(ctx: Context, v: Volunteer, timeoutMs: number, now: number): number {
  if (v.running.size < v.threads) return now;
  let firstDue = Infinity;
  for (const lease of v.running) {
    const l = ctx.mem.leases.get(lease);
    const job = l && ctx.mem.active.get(l.jobId);
    if (l && job) firstDue = Math.min(firstDue, l.clockFrom + job.taskTimeoutMs);
  }
  return Math.min(now + timeoutMs, Math.max(now, firstDue));
}

/** Tasks a volunteer can take now: none while disconnected or paused. */
export function freeSlots(v: Volunteer): number {
  if (!v.conn || v.paused) return 0;
  return capacity(v) - v.running.size;
}

export function activate(ctx: Context, job: JobRow): void {
  ctx.mem.active.set(job.id, {
    id: job.id,
    name: job.name,
    state: job.state,
    nReduce: job.n_reduce,
    taskTimeoutMs: job.task_timeout_ms,
    maxAttempts: job.max_attempts,
    verify: job.verify,
    skipBadRecords: job.skip_bad_records,
    running: 0,
    drained: false,
    uploading: job.uploading === 1,
  });
}

/** A job changed phase: its pending work is new, and a finished one leaves the active set. */
export function moveJob(ctx: Context, job: ActiveJob, state: JobState): void {
  job.state = state;
  job.drained = false;
  if (state === 'succeeded') {
    ctx.mem.active.delete(job.id);
    ctx.mem.expelled.delete(job.id);
    for (const [taskId, b] of ctx.mem.votedOn) if (b.jobId === job.id) ctx.mem.votedOn.delete(taskId);
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
    clockFrom: a.started_at,
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
  // An output uploaded under a lease that ended without committing it is nobody's.
  const upload = mem.uploads.get(lease);
  if (upload) {
    mem.uploads.delete(lease);
    discard(ctx, upload.blob);
  }
  return true;
}

/**
 * Records that a task's attempt failed (or was lost) on a volunteer, and says whether it counts
 * toward the task's limit: a first one from an identity does; a repeat from the same identity
 * counts only when no other identity could take the task. Identities are free to make, so what
 * keeps one party from spending a task's attempts is `betterElsewhere`: after a failure or a loss
 * the task goes to another address while one is there. A job with a single volunteer, or all its
 * volunteers behind one address, still fails when its code does; and volunteers that take a task
 * and never answer cannot stop honest failures from counting (an earlier rule, which discounted a
 * second identity on an address while any other address was connected, let vanishing attackers on
 * a third address keep a failing job running for ever in the hostile soak).
 */
export function blame(
  ctx: Context,
  on: Map<number, Blame>,
  jobId: string,
  taskId: number,
  volunteerId: string,
  address: string,
) {
  let b = on.get(taskId);
  if (!b) {
    b = { ids: new Set(), addresses: new Set() };
    on.set(taskId, b);
  }
  const repeat = b.ids.has(volunteerId);
  b.ids.add(volunteerId);
  b.addresses.add(address);
  if (!repeat) return true;
  for (const u of ctx.mem.volunteers.values()) {
    if (u.id !== volunteerId && !b.ids.has(u.id) && couldTake(ctx, jobId, u)) return false;
  }
  return true;
}

/**
 * Whether `u` could take a task of `jobId` now: connected, not paused, and not expelled from the
 * job (a task that waited for an expelled volunteer would wait for good).
 */
function couldTake(ctx: Context, jobId: string, u: Volunteer): boolean {
  return u.conn !== null && !u.paused && !isExpelled(ctx, jobId, u.id);
}

/**
 * Whether task `taskId` of `jobId`, which failed or was lost on `v`'s identity or address, is better
 * run by someone else who could take it now: after `v` itself, by any other identity; after another
 * identity on `v`'s address, by a volunteer on an address the task has not ended badly on.
 *
 * A voter on the task counts as someone else after a failure, so that identities behind one
 * address cannot spend a task's attempts by failing it in turn while an honest voter waits on
 * another. After losses alone it does not: its second result would confirm nothing, and it leaves
 * the task to others, so a lost task would wait for it for good; the task goes back instead.
 */
export function betterElsewhere(
  ctx: Context,
  jobId: string,
  taskId: number,
  failed: Blame | undefined,
  lost: Blame | undefined,
  v: Volunteer,
): boolean {
  const blames = [failed, lost];
  const ids = (id: string) => blames.some((b) => b?.ids.has(id));
  const addresses = (a: string) => blames.some((b) => b?.addresses.has(a));
  const byId = ids(v.id);
  if (!byId && !addresses(v.address)) return false;
  const afterFailure = failed !== undefined && (failed.ids.has(v.id) || failed.addresses.has(v.address));
  const voters = afterFailure ? undefined : ctx.mem.votedOn.get(taskId)?.ids;
  for (const u of ctx.mem.volunteers.values()) {
    if (u === v || ids(u.id) || voters?.has(u.id) || !couldTake(ctx, jobId, u)) continue;
    if (byId || !addresses(u.address)) return true;
  }
  return false;
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
  mem.lostOn.clear();
  mem.votedOn.clear();
  mem.expelled.clear();
  mem.addressIndex = null;
}

/** Notes a result recorded as a vote on a task. */
export function noteVote(
  ctx: Context,
  jobId: string,
  taskId: number,
  vote: { volunteerId: string; address: string; hash: string },
): void {
  let b = ctx.mem.votedOn.get(taskId);
  if (!b) {
    b = { jobId, ids: new Set(), addresses: new Set(), hashes: new Set(), since: ctx.clock.now() };
    ctx.mem.votedOn.set(taskId, b);
  }
  b.ids.add(vote.volunteerId);
  b.addresses.add(vote.address);
  b.hashes.add(vote.hash);
}

/** Reads a volunteer's record into memory, for the views. */
export function refreshTrust(ctx: Context, volunteerId: string): void {
  const v = ctx.mem.volunteers.get(volunteerId);
  const row = v && ctx.stores.trust.get(volunteerId);
  if (v) v.trust = { agreed: row?.agreed ?? 0, rejected: row?.rejected ?? 0, creditMs: row?.credit_ms ?? 0 };
}

export function isExpelled(ctx: Context, jobId: string, volunteerId: string): boolean {
  return ctx.mem.expelled.get(jobId)?.has(volunteerId) ?? false;
}

/**
 * Expels a volunteer from a job. Its waiting votes there count for nothing (commit.ts relabels them
 * `superseded`): the tasks it voted on are told again from the votes that remain, or else forgotten.
 * Left as they were, a task with its vote and an honest one of the same hash looked like two that
 * agree and waited, and the honest voter ran it again and again (`votedElsewhere`).
 */
export function expel(ctx: Context, jobId: string, volunteerId: string): void {
  const set = ctx.mem.expelled.get(jobId);
  if (set?.has(volunteerId)) return;
  if (set) set.add(volunteerId);
  else ctx.mem.expelled.set(jobId, new Set([volunteerId]));
  for (const [taskId, b] of ctx.mem.votedOn) {
    if (b.jobId !== jobId || !b.ids.has(volunteerId)) continue;
    const left = ctx.stores.attempts.votes(taskId).filter((x) => !isExpelled(ctx, jobId, x.volunteer_id));
    if (left.length === 0) {
      ctx.mem.votedOn.delete(taskId);
      continue;
    }
    for (const key of ['ids', 'addresses', 'hashes'] as const) b[key].clear();
    for (const x of left) {
      b.ids.add(x.volunteer_id);
      b.addresses.add(x.address);
      b.hashes.add(x.hash ?? '');
    }
  }
}

/**
 * Connected, unpaused volunteers by address, built once per change of volunteers: the checks below
 * run for every result and every look at a task with votes, and a scan of 10,000 volunteers each
 * time would cost the master more than the task.
 */
function byAddress(ctx: Context): Map<string, Volunteer[]> {
  let index = ctx.mem.addressIndex;
  if (!index) {
    index = new Map();
    for (const u of ctx.mem.volunteers.values()) {
      if (!u.conn || u.paused) continue;
      const list = index.get(u.address);
      if (list) list.push(u);
      else index.set(u.address, [u]);
    }
    ctx.mem.addressIndex = index;
  }
  return index;
}

/**
 * Whether anyone but `v` could give task `taskId` of `jobId` a result now (connected, not paused,
 * not expelled, not a voter on it); with `avoid`, anyone on an address it does not name that has
 * done work. Volunteers that never return a result (the hostile soak's vanishers and flooders on
 * addresses of their own) would otherwise keep two honest volunteers behind one address from ever
 * confirming each other.
 */
export function anyOtherFor(
  ctx: Context,
  jobId: string,
  taskId: number,
  v: Volunteer | null,
  avoid?: (address: string) => boolean,
): boolean {
  const voters = ctx.mem.votedOn.get(taskId)?.ids;
  for (const [address, list] of byAddress(ctx)) {
    if (avoid?.(address)) continue;
    for (const u of list) {
      if (u === v || !u.conn || u.paused || voters?.has(u.id) || isExpelled(ctx, jobId, u.id)) continue;
      if (!avoid || u.done > 0) return true;
    }
  }
  return false;
}

/**
 * Whether a task's votes have waited longer than the job's task timeout for a volunteer on another
 * address: then a volunteer on a voter's address may run it, and two identities behind one address
 * count as independent. Someone on another address that never takes the task (busy for ever, or
 * hostile) must not hold it up for good.
 */
export function votesStale(ctx: Context, job: ActiveJob, taskId: number): boolean {
  const b = ctx.mem.votedOn.get(taskId);
  return b !== undefined && ctx.clock.now() - b.since > job.taskTimeoutMs;
}

/**
 * Whether a task with votes waiting is better run by someone other than `v`. After `v` itself
 * voted: always in `all` mode, or when the votes disagree (its second result proves nothing), and
 * in `adaptive` mode while anyone else could (alone, it commits the task unconfirmed) or, after a
 * start, may yet reconnect (`reconnectUntil`). After a vote from `v`'s address: while someone on a
 * fresh address could.
 */
export function votedElsewhere(ctx: Context, job: ActiveJob, taskId: number, v: Volunteer): boolean {
  const b = ctx.mem.votedOn.get(taskId);
  if (!b) return false;
  const byId = b.ids.has(v.id);
  const stale = votesStale(ctx, job, taskId);
  // Two identities agree but for their address, and waited: one of them runs it again to commit it.
  if (byId && stale && b.ids.size >= 2 && b.hashes.size === 1) return false;
  if (byId && !b.decided && (job.verify === 'all' || b.hashes.size > 1)) return true;
  if (!byId && (stale || !b.addresses.has(v.address))) return false;
  if (byId) return ctx.clock.now() < ctx.reconnectUntil || anyOtherFor(ctx, job.id, taskId, v);
  return anyOtherFor(ctx, job.id, taskId, v, (a) => b.addresses.has(a));
}

/** The running attempts of one volunteer, for the views. */
export function currentTasks(ctx: Context, v: Volunteer): Lease[] {
  return [...v.running].map((l) => ctx.mem.leases.get(l)).filter((l): l is Lease => l !== undefined);
}

/** The rows of a job's inputs, once no map task will run again (their blobs go after the commit). */
export function dropInputs(ctx: Context, jobId: string): void {
  const { jobs, tasks } = ctx.stores;
  const job = jobs.get(jobId);
  tasks.dropInputs(jobId);
  if (job) jobs.addStored(jobId, -job.input_bytes);
}

/** The rows of a job's map outputs, once no reduce task will run again. */
export function dropMaps(ctx: Context, jobId: string): void {
  const { jobs, outputs } = ctx.stores;
  jobs.addStored(jobId, -outputs.mapBytes(jobId));
  outputs.dropMaps(jobId);
}
