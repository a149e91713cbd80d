/**
 * Exactly-once commit. One attempt's output is committed per task, atomically with the task's state
 * and the job's counters, in one transaction: the task moves to succeeded only from running, the
 * attempt ends only while running, and the task's other running attempts are superseded. A late,
 * duplicate or losing result changes nothing and is recorded `superseded`.
 *
 * A job with `verify` other than `off` commits a task only on two matching results from independent
 * volunteers, or on one from a trusted volunteer (README "Verification"): a result that does not yet
 * make a quorum is recorded as a vote (`voted`) and the task runs again elsewhere; votes, the
 * losers' rejection and the commit are one transaction. A volunteer that loses a vote loses its
 * trust, is expelled from the job, and every result it committed alone in an unfinished job is
 * taken back and runs again.
 */
import { createHash } from 'node:crypto';
import type { TaskResultMessage, TaskStats } from '../../shared/protocol.js';
import { addCounters, COUNTER_LIMITS, type SkippedRecord } from '../../shared/engine.js';
import type { SerializedError } from '../../shared/errors.js';
import { nextJobState, nextTaskState, type Confirm, type JobState } from '../../shared/states.js';
import type { VoteRow } from '../sql/attempt-store.js';
import { MapOutputCheck, OutputError, ReduceOutputCheck, packOffsets } from '../output-check.js';
import { blobNames } from '../blobs/blob-store.js';
import {
  discard,
  emit,
  transactionOf,
  VOTE_FACTOR,
  type ActiveJob,
  type Context,
  type Lease,
  type Volunteer,
} from './context.js';
import {
  anyOtherFor,
  dropInputs,
  dropMaps,
  expel,
  forget,
  isExpelled,
  moveJob,
  noteVote,
  noteWork,
  refreshTrust,
  votesStale,
} from './memory.js';
import { send } from './group-commit.js';

/** What became of a result, for the façade to act on. */
export type ResultOutcome =
  /**
   * Committed: `others` are running attempts now superseded, to be told to stop (the task's own, and
   * reduces of a job whose maps were reopened).
   */
  | { kind: 'committed'; others: string[]; moved: JobState | null; reopened: boolean; fail?: string }
  /** Recorded as a vote: the task runs again elsewhere. */
  | { kind: 'voted' }
  /** Votes disagree past the limit: the job's code is not deterministic, and the job should fail. */
  | { kind: 'disagree'; reason: string }
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
  hash: string;
}

/** Checks an output that came inside its `task.result`; throws OutputError. */
function checkInline(output: string, phase: 'map' | 'reduce', nReduce: number): Checked {
  const data = Buffer.from(output, 'utf8');
  if (phase === 'map') {
    const check = new MapOutputCheck(nReduce);
    check.push(data);
    const s = check.end();
    return { blob: null, data, bytes: s.bytes, records: s.records, offsets: s.offsets, hash: s.hash };
  }
  const check = new ReduceOutputCheck();
  check.push(data);
  const s = check.end();
  return { blob: null, data, bytes: s.bytes, records: s.records, offsets: null, hash: s.hash };
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
    checked = { blob: up.blob, data: null, bytes: up.bytes, records: up.records, offsets: up.offsets, hash: up.hash };
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
  const bad = checkExtras(job, l, msg.stats);
  if (bad) {
    ctx.counters.invalid++;
    send(ctx, v, { type: 'error', message: `invalid result for ${msg.lease}: ${bad}` });
    return { kind: 'invalid', reason: bad };
  }
  checked.hash = withExtras(checked.hash, msg.stats);
  const others = [...(ctx.mem.taskLeases.get(l.taskId) ?? [])].filter((other) => other !== l.lease);
  const bytes = l.phase === 'map' ? (l.bytes ?? 0) : checked.bytes;
  const verdict: Verdict =
    job.verify === 'off' ? { kind: 'commit', confirm: null, votes: [] } : judge(ctx, job, v, l, checked.hash);
  if (verdict.kind === 'rejected') return reject(ctx, v, l, job, others.length);
  if (verdict.kind === 'vote' || verdict.kind === 'disagree') {
    const recorded = transactionOf(ctx, voteInTx).immediate(ctx, l, msg, checked, others.length, ctx.clock.now());
    if (!recorded) return supersede(ctx, v, l, 'another attempt won');
    forget(ctx, msg.lease);
    noteVote(ctx, job.id, l.taskId, { volunteerId: v.id, address: v.address, hash: checked.hash });
    ctx.counters.voted++;
    v.done++;
    noteWork(v, bytes, ctx.clock.now());
    job.drained = false;
    // Acknowledged as a commit is: a volunteer cannot tell a spot check from trust.
    send(ctx, v, { type: 'task.ack', lease: msg.lease, outcome: 'committed' });
    emit(ctx, { kind: 'job', jobId: job.id });
    if (verdict.kind === 'disagree') return { kind: 'disagree', reason: verdict.reason };
    return { kind: 'voted' };
  }
  if (verdict.kind === 'lose') {
    const fx = noEffects();
    const lost = transactionOf(ctx, loseInTx).immediate(ctx, job, l, msg, checked, others.length, ctx.clock.now(), fx);
    if (!lost) return supersede(ctx, v, l, 'another attempt won');
    forget(ctx, msg.lease);
    ctx.counters.rejected++;
    const b = ctx.mem.votedOn.get(l.taskId);
    if (b) b.decided = true;
    job.drained = false;
    const cancel = afterVerdict(ctx, fx, job);
    send(ctx, v, { type: 'task.ack', lease: msg.lease, outcome: 'superseded', reason: 'another attempt won' });
    emit(ctx, { kind: 'job', jobId: job.id });
    return { kind: 'committed', others: cancel, moved: null, reopened: true };
  }
  const fx = noEffects();
  let moved: JobState | null | undefined;
  try {
    moved = transactionOf(ctx, commitInTx).immediate(ctx, job, l, msg, checked, others, ctx.clock.now(), verdict, fx);
  } catch (e) {
    if (!(e instanceof StaleLeaseError)) throw e;
    moved = undefined;
    Object.assign(fx, noEffects());
  }
  // A committed upload is the task's now; one that lost is deleted with its lease (forget).
  if (moved !== undefined && !fx.withdrawn) ctx.mem.uploads.delete(msg.lease);
  forget(ctx, msg.lease);
  ctx.mem.failedOn.delete(l.taskId);
  if (moved === undefined) return supersede(ctx, v, l, 'another attempt won');
  const cancel = afterVerdict(ctx, fx, job);
  const reopened = fx.reopened.size > 0;
  if (fx.withdrawn) {
    ctx.counters.superseded++;
    send(ctx, v, { type: 'task.ack', lease: msg.lease, outcome: 'superseded', reason: 'its input was taken back' });
    // Its task's other attempts were superseded with the job's other reduces, and are among `cancel`.
    return { kind: 'committed', others: cancel, moved: null, reopened };
  }
  // Data the job no longer needs goes once this commit is durable: the inputs after the barrier
  // (maps never run again, unless verification takes one back), the map outputs once the job has succeeded.
  if ((moved === 'reducing' && job.verify === 'off') || moved === 'succeeded') {
    discard(ctx, blobNames.inputPrefix(l.jobId));
  }
  if (moved === 'succeeded') discard(ctx, blobNames.mapPrefix(l.jobId));
  ctx.counters.committed++;
  const fail = fx.fail ?? undefined;
  v.done++;
  v.bytes += bytes;
  noteWork(v, bytes, ctx.clock.now());
  send(ctx, v, { type: 'task.ack', lease: msg.lease, outcome: 'committed' });
  ctx.mem.votedOn.delete(l.taskId);
  if (moved) moveJob(ctx, job, moved);
  emit(ctx, { kind: 'job', jobId: job.id });
  emit(ctx, { kind: 'commit', jobId: job.id, phase: l.phase, bytes });
  return { kind: 'committed', others: [...others, ...cancel], moved, reopened, ...(fail ? { fail } : {}) };
}

/**
 * Why a result's counters or skipped lines break the protocol, or null: only a map task of a job
 * that skips bad records may report skipped lines, at most the job's limit, in ascending order.
 */
function checkExtras(job: ActiveJob, l: Lease, stats: TaskStats): string | null {
  const skipped = stats.skipped;
  if (!skipped || skipped.length === 0) return null;
  if (l.phase !== 'map' || job.skipBadRecords === 0) return 'skipped lines from a task that may skip none';
  if (skipped.length > job.skipBadRecords) return `${skipped.length} skipped lines, more than the job allows`;
  for (let i = 1; i < skipped.length; i++) {
    if (skipped[i]!.line <= skipped[i - 1]!.line) return 'skipped lines are not in ascending order';
  }
  return null;
}

/**
 * The hash a result is voted on: its output's, and, when it counted or skipped anything, its
 * counters and the numbers of the lines it skipped (not their errors' text, which differs between
 * browsers). Two volunteers agree only if all of it is equal.
 */
function withExtras(hash: string, stats: TaskStats): string {
  const counters = stats.counters && Object.keys(stats.counters).length > 0 ? stats.counters : null;
  const lines = stats.skipped && stats.skipped.length > 0 ? stats.skipped.map((r) => r.line) : null;
  if (!counters && !lines) return hash;
  const extras = JSON.stringify([counters ? addCounters({}, counters) : null, lines]);
  return createHash('sha256').update(hash).update('\n').update(extras).digest('hex');
}

/** Answers a result that lost: its attempt is recorded superseded. */
function supersede(ctx: Context, v: Volunteer, l: Lease, reason: string): ResultOutcome {
  forget(ctx, l.lease);
  ctx.counters.superseded++;
  ctx.stores.attempts.end({ lease: l.lease, outcome: 'superseded', at: ctx.clock.now(), error: SUPERSEDED });
  send(ctx, v, { type: 'task.ack', lease: l.lease, outcome: 'superseded', reason });
  return { kind: 'superseded' };
}

/** What verification decided of a result (`judge`). */
type Verdict =
  /** Commit it; `votes` are the task's earlier votes, to be marked as agreeing or losing. */
  | { kind: 'commit'; confirm: Confirm | null; votes: VoteRow[] }
  | { kind: 'vote' }
  | { kind: 'disagree'; reason: string }
  /** Its volunteer lost a vote in this job: the result counts for nothing. */
  | { kind: 'rejected' }
  /** Two earlier independent votes agree on another output: this one lost. */
  | { kind: 'lose' };

/** What a commit did beyond its task, for memory to follow once it is done. */
interface Effects {
  /** Running attempts the commit superseded (reduces of a job whose maps were reopened). */
  cancel: string[];
  /** Jobs with tasks that run again, with the phase each is now in. */
  reopened: Map<string, JobState>;
  /** Volunteers whose results lost the vote. */
  losers: Set<string>;
  /** Blobs of taken-back outputs. */
  blobs: string[];
  /** The result itself was not committed: its job went back to mapping. */
  withdrawn: boolean;
  /** Volunteers whose record changed. */
  trust: Set<string>;
  /** The commit put the job past a limit (bad records, counters): it is to fail with this reason. */
  fail: string | null;
}

function noEffects(): Effects {
  return {
    cancel: [],
    reopened: new Map(),
    losers: new Set(),
    blobs: [],
    withdrawn: false,
    trust: new Set(),
    fail: null,
  };
}

export function isTrusted(ctx: Context, volunteerId: string): boolean {
  const t = ctx.stores.trust.get(volunteerId);
  return t !== undefined && t.rejected === 0 && t.agreed >= ctx.trustAfter;
}

/**
 * Decides what a result of a verified job does: commit alone (a trusted volunteer not picked for a
 * spot check, or in `adaptive` mode nobody else to ask), commit on a match from an independent
 * volunteer (another identity, on another address while someone on one could vote), or wait as a
 * vote.
 */
function judge(ctx: Context, job: ActiveJob, v: Volunteer, l: Lease, hash: string): Verdict {
  if (isExpelled(ctx, job.id, v.id)) return { kind: 'rejected' };
  const votes = ctx.stores.attempts.votes(l.taskId).filter((x) => !isExpelled(ctx, job.id, x.volunteer_id));
  const recheck = ctx.stores.tasks.verification(l.taskId)?.recheck === 1;
  const adaptive = job.verify === 'adaptive' && !recheck;
  // A spot check needs someone to check: alone, a trusted volunteer's result is simply taken.
  if (
    votes.length === 0 &&
    adaptive &&
    isTrusted(ctx, v.id) &&
    (ctx.random() >= ctx.spotCheckRate || !anyOtherFor(ctx, job.id, l.taskId, v))
  ) {
    return { kind: 'commit', confirm: 'trusted', votes };
  }
  // Whether someone on an address other than `a` could still vote.
  const stale = votesStale(ctx, job, l.taskId);
  const elsewhereThan = (a: string) => !stale && anyOtherFor(ctx, job.id, l.taskId, v, (b) => b === a);
  const elsewhere = elsewhereThan(v.address);
  const independent = (x: VoteRow) => x.volunteer_id !== v.id && (x.address !== v.address || !elsewhere);
  const agree = votes.filter((x) => x.hash === hash && independent(x));
  if (agree.length > 0) {
    const spot = adaptive && [v.id, ...agree.map((x) => x.volunteer_id)].some((id) => isTrusted(ctx, id));
    return { kind: 'commit', confirm: spot ? 'spot' : 'verified', votes };
  }
  // Two earlier votes may agree, independent now that the volunteers that could vote have: then
  // this result lost, and the next one equal to theirs commits.
  const pair = (x: VoteRow, y: VoteRow) =>
    x.volunteer_id !== y.volunteer_id && (x.address !== y.address || !elsewhereThan(x.address));
  if (votes.some((x, i) => x.hash !== hash && votes.slice(i + 1).some((y) => y.hash === x.hash && pair(x, y)))) {
    return { kind: 'lose' };
  }
  const disagree = votes.some((x) => x.hash !== hash);
  if (votes.length + 1 >= job.maxAttempts * VOTE_FACTOR) {
    const task = ctx.stores.tasks.get(l.taskId);
    const name = task ? `${task.phase} task ${task.idx}` : `task ${l.taskId}`;
    return {
      kind: 'disagree',
      reason:
        `${name}: ${votes.length + 1} results from different volunteers, no two of them independent and equal; ` +
        "the job's output is not deterministic (submit it with --verify off), or most of its volunteers lie",
    };
  }
  if (job.verify === 'adaptive' && !disagree && !anyOtherFor(ctx, job.id, l.taskId, v))
    return { kind: 'commit', confirm: 'unconfirmed', votes };
  return { kind: 'vote' };
}

/** Answers a result from a volunteer expelled from the job: recorded rejected, and the task runs again. */
function reject(ctx: Context, v: Volunteer, l: Lease, job: ActiveJob, othersRunning: number): ResultOutcome {
  forget(ctx, l.lease);
  ctx.counters.rejected++;
  const { attempts, jobs, tasks } = ctx.stores;
  ctx.stores.transaction(() => {
    if (!attempts.end({ lease: l.lease, outcome: 'rejected', at: ctx.clock.now(), error: EXPELLED })) return;
    jobs.addRejected(job.id);
    tasks.move(l.taskId, 'running', nextTaskState('running', { type: 'vote', othersRunning }));
  });
  job.drained = false;
  send(ctx, v, { type: 'task.ack', lease: l.lease, outcome: 'superseded', reason: 'another attempt won' });
  emit(ctx, { kind: 'job', jobId: job.id });
  return { kind: 'superseded' };
}

const EXPELLED: SerializedError = { name: 'Rejected', message: 'its volunteer lost a vote in this job' };
const LOST_VOTE: SerializedError = { name: 'Rejected', message: 'its result lost a vote' };
const TAKEN_BACK: SerializedError = { name: 'Rejected', message: 'its volunteer later lost a vote' };
const REOPENED: SerializedError = { name: 'Superseded', message: 'a map output it read was taken back' };

/** Records a result as a vote and lets the task run again elsewhere; false when the attempt had ended. */
function voteInTx(
  ctx: Context,
  l: Lease,
  msg: TaskResultMessage,
  checked: Checked,
  othersRunning: number,
  now: number,
) {
  const { tasks, attempts, volunteers } = ctx.stores;
  if (tasks.get(l.taskId)?.state !== 'running') return false;
  const ended = attempts.end({
    lease: l.lease,
    outcome: 'voted',
    at: now,
    ms: msg.stats.ms,
    records_in: msg.stats.recordsIn,
    records_out: l.phase === 'reduce' ? checked.records : msg.stats.recordsOut,
    hash: checked.hash,
    counters: msg.stats.counters ?? null,
    skipped: msg.stats.skipped ?? null,
  });
  if (!ended) return false;
  volunteers.done(l.volunteerId);
  tasks.move(l.taskId, 'running', nextTaskState('running', { type: 'vote', othersRunning }));
  return true;
}

/**
 * Settles a commit's earlier votes: those equal to it agreed (their volunteers earn trust), the
 * others lost when a quorum decided (their volunteers lose trust, and what they committed alone in
 * unfinished jobs is taken back), or were merely passed over when one result was taken alone.
 */
function settleVotes(
  ctx: Context,
  job: ActiveJob,
  v: Volunteer,
  hash: string,
  verdict: Verdict,
  fx: Effects,
  now: number,
) {
  if (verdict.kind !== 'commit' || verdict.confirm === null) return;
  const { attempts, trust, jobs } = ctx.stores;
  const quorum = verdict.confirm === 'verified' || verdict.confirm === 'spot';
  const agreed = new Set<string>();
  // Who has a result that stands: a volunteer's repeat of its own result is not a second vote.
  const counted = new Set([v.id]);
  for (const x of verdict.votes) {
    if (x.hash === hash && counted.has(x.volunteer_id)) {
      // It ran the task again (alone on the master after all, or it came back too late).
      attempts.relabel(x.lease, 'voted', 'superseded');
    } else if (x.hash === hash) {
      counted.add(x.volunteer_id);
      attempts.relabel(x.lease, 'voted', 'succeeded');
      // Credit for a result that agreed with the committed one (its own is credited with the commit).
      addCredit(ctx, fx, x.volunteer_id, x.took, now);
      if (quorum) agreed.add(x.volunteer_id);
    } else if (quorum) {
      attempts.relabel(x.lease, 'voted', 'rejected');
      attempts.setError(x.lease, LOST_VOTE);
      jobs.addRejected(job.id);
      trust.rejected(x.volunteer_id, now);
      fx.losers.add(x.volunteer_id);
      fx.trust.add(x.volunteer_id);
    } else {
      attempts.relabel(x.lease, 'voted', 'superseded');
    }
  }
  if (quorum) agreed.add(v.id);
  for (const id of agreed) {
    trust.agreed(id, now);
    fx.trust.add(id);
  }
  for (const loser of fx.losers) distrust(ctx, job, loser, fx);
}

/** Credit (README "Verification"): the master's own measure of the work, never the volunteer's word. */
function addCredit(ctx: Context, fx: Effects, volunteerId: string, ms: number, now: number): void {
  if (!(ms !== 0 && Number.isFinite(ms))) return;
  ctx.stores.trust.credit(volunteerId, ms, now);
  fx.trust.add(volunteerId);
}

/** A volunteer lost a vote: its waiting votes in the job count for nothing, and what it committed alone runs again. */
function distrust(ctx: Context, job: ActiveJob, loser: string, fx: Effects): void {
  const { attempts } = ctx.stores;
  for (const lease of attempts.votedOfVolunteer(job.id, loser)) attempts.relabel(lease, 'voted', 'superseded');
  for (const aj of ctx.mem.active.values()) {
    for (const a of attempts.committedAlone(aj.id, loser)) {
      takeBack(ctx, aj, a.task_id, a.lease, a.records_out, true, fx);
      addCredit(ctx, fx, loser, -a.took, ctx.clock.now());
    }
  }
}

/**
 * Records a result that lost to two earlier independent votes for another output: rejected, its
 * volunteer distrusted. The task runs again, and the next result equal to the winners commits.
 * False when the attempt had ended.
 */
function loseInTx(
  ctx: Context,
  job: ActiveJob,
  l: Lease,
  msg: TaskResultMessage,
  checked: Checked,
  othersRunning: number,
  now: number,
  fx: Effects,
): boolean {
  const { tasks, attempts, jobs, trust } = ctx.stores;
  if (tasks.get(l.taskId)?.state !== 'running') return false;
  const ended = attempts.end({
    lease: l.lease,
    outcome: 'rejected',
    at: now,
    error: LOST_VOTE,
    ms: msg.stats.ms,
    hash: checked.hash,
  });
  if (!ended) return false;
  jobs.addRejected(job.id);
  trust.rejected(l.volunteerId, now);
  fx.losers.add(l.volunteerId);
  fx.trust.add(l.volunteerId);
  distrust(ctx, job, l.volunteerId, fx);
  tasks.move(l.taskId, 'running', nextTaskState('running', { type: 'vote', othersRunning }));
  return true;
}

/**
 * Takes a committed task's output back: the task runs again (with `recheck`, two votes whatever
 * the trust of who runs it). A map taken back after the barrier takes the barrier back too: every
 * reduce read it, so every reduce runs again.
 */
function takeBack(
  ctx: Context,
  aj: ActiveJob,
  taskId: number,
  lease: string | null,
  records: number | null,
  recheck: boolean,
  fx: Effects,
): void {
  const { tasks, attempts, jobs, outputs } = ctx.stores;
  const task = tasks.get(taskId);
  const before = task && tasks.verification(taskId);
  if (!task || !before || !tasks.reopen(taskId, recheck)) return;
  if (before.confirm) jobs.addConfirmed(aj.id, before.confirm, -1);
  const committed = lease ?? attempts.committedOf(taskId)?.lease;
  if (committed) {
    const x = attempts.extras(committed);
    if (x.counters || x.skipped.length > 0) jobs.addExtras(aj.id, x.counters, x.skipped.length, -1);
  }
  if (lease && attempts.relabel(lease, 'succeeded', 'rejected')) {
    attempts.setError(lease, TAKEN_BACK);
    jobs.addRejected(aj.id);
  }
  const state = fx.reopened.get(aj.id) ?? jobs.get(aj.id)?.state ?? aj.state;
  fx.reopened.set(aj.id, state);
  if (task.phase === 'reduce') {
    const gone = outputs.dropPart(aj.id, task.idx);
    if (gone) jobs.addStored(aj.id, -gone.bytes);
    if (gone?.blob) fx.blobs.push(gone.blob);
    jobs.reduceUndone(aj.id, records ?? 0);
    return;
  }
  const gone = outputs.dropMap(aj.id, task.idx);
  if (gone) jobs.addStored(aj.id, -gone.bytes);
  if (gone?.blob) fx.blobs.push(gone.blob);
  jobs.mapUndone(aj.id, records ?? 0);
  const back = nextJobState(state, { type: 'maps-reopened' });
  if (back === state || !jobs.advance(aj.id, state, back)) return;
  fx.reopened.set(aj.id, back);
  const now = ctx.clock.now();
  for (const a of attempts.runningForJob(aj.id)) {
    if (a.task_id === taskId) continue;
    if (attempts.end({ lease: a.lease, outcome: 'superseded', at: now, error: REOPENED })) fx.cancel.push(a.lease);
    tasks.move(a.task_id, 'running', 'pending');
  }
  for (const r of tasks.committedOfPhase(aj.id, 'reduce')) {
    const c = attempts.committedOf(r.id);
    takeBack(ctx, aj, r.id, null, c?.records_out ?? null, false, fx);
    if (c) attempts.relabel(c.lease, 'succeeded', 'superseded');
  }
  for (const lease of attempts.votedOfJobPhase(aj.id, 'reduce')) attempts.relabel(lease, 'voted', 'superseded');
}

/** Memory follows what a commit did beyond its task; returns the attempts to tell to stop. */
function afterVerdict(ctx: Context, fx: Effects, job: ActiveJob): string[] {
  for (const id of fx.trust) refreshTrust(ctx, id);
  for (const loser of fx.losers) {
    expel(ctx, job.id, loser);
    ctx.log(`volunteer ${loser} lost a vote in job ${job.id}: expelled from it, and its trust is gone`);
  }
  for (const [jobId, state] of fx.reopened) {
    const aj = ctx.mem.active.get(jobId);
    if (!aj) continue;
    aj.drained = false;
    if (aj.state !== state) {
      aj.state = state;
      aj.partitionBytes = undefined;
      for (const [taskId, b] of ctx.mem.votedOn) if (b.jobId === jobId) ctx.mem.votedOn.delete(taskId);
    }
    emit(ctx, { kind: 'job', jobId });
  }
  for (const blob of fx.blobs) discard(ctx, blob);
  return fx.cancel;
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
  verdict: Verdict,
  fx: Effects,
): JobState | null | undefined {
  const { tasks, attempts, jobs, outputs, volunteers } = ctx.stores;
  if (tasks.get(l.taskId)?.state !== 'running') return undefined;
  settleVotes(ctx, job, ctx.mem.volunteers.get(l.volunteerId)!, checked.hash, verdict, fx, now);
  // A reduce whose job went back to mapping read an output that was taken back: it commits nothing.
  // (Taking the barrier back superseded its attempt with the job's other running reduces.)
  if (l.phase === 'reduce' && fx.reopened.get(job.id) === 'mapping') {
    const at = fx.cancel.indexOf(l.lease);
    if (at === -1) throw new StaleLeaseError(l.lease);
    fx.cancel.splice(at, 1);
    fx.withdrawn = true;
    return null;
  }
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
    hash: checked.hash,
    counters: msg.stats.counters ?? null,
    skipped: msg.stats.skipped ?? null,
  });
  if (!ended) throw new StaleLeaseError(l.lease);
  fx.fail = addExtras(ctx, job, l.jobId, msg.stats);
  volunteers.done(l.volunteerId);
  if (job.verify !== 'off') addCredit(ctx, fx, l.volunteerId, now - l.startedAt, now);
  if (verdict.kind === 'commit' && verdict.confirm) {
    tasks.setConfirm(l.taskId, verdict.confirm);
    jobs.addConfirmed(job.id, verdict.confirm);
  }
  for (const other of others) attempts.end({ lease: other, outcome: 'superseded', at: now, error: SUPERSEDED });
  const state = fx.reopened.get(job.id) ?? job.state;
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
    if (c.maps_done < c.maps_total || fx.fail || job.uploading) return null;
    const next = nextJobState(state, { type: 'maps-done' });
    if (next === state || !jobs.advance(l.jobId, state, next)) return null;
    // A verified job keeps its inputs until it ends: a map taken back after the barrier runs again.
    if (job.verify === 'off') dropInputs(ctx, l.jobId);
    return next;
  }
  outputs.put({ job_id: l.jobId, part: l.index, blob: checked.blob, data: checked.data, bytes: checked.bytes });
  jobs.addStored(l.jobId, checked.bytes);
  const c = jobs.reduceDone(l.jobId, recordsOut);
  if (c.reduces_done < c.n_reduce || fx.fail) return null;
  const next = nextJobState(state, { type: 'reduces-done' });
  if (next !== 'succeeded') return null;
  jobs.finish(l.jobId, next, now);
  if (job.verify !== 'off') dropInputs(ctx, l.jobId);
  dropMaps(ctx, l.jobId);
  return next;
}

/**
 * Adds a committed result's counters and skipped lines to its job's, in the commit's transaction;
 * returns why the job must now fail (more skipped lines than it allows, more counter names than a
 * job may have), or null.
 */
function addExtras(ctx: Context, job: ActiveJob, jobId: string, stats: TaskStats): string | null {
  const skipped = stats.skipped?.length ?? 0;
  if (!stats.counters && skipped === 0) return null;
  const { jobs, attempts } = ctx.stores;
  const now = jobs.addExtras(jobId, stats.counters ?? null, skipped);
  if (now.names > COUNTER_LIMITS.names) {
    return `the job counted more than ${COUNTER_LIMITS.names} counter names; ctx.count takes a fixed set of names, not one per record`;
  }
  if (now.skipped <= job.skipBadRecords) return null;
  // The first bad line past the limit, in input order, among those committed.
  const all = attempts
    .skippedOfJob(jobId)
    .flatMap((t) => (JSON.parse(t.skipped) as SkippedRecord[]).map((r) => ({ ...r, key: t.input_key ?? '' })));
  const r = all[job.skipBadRecords];
  if (!r) return `more lines were skipped than --skip-bad-records allows (${job.skipBadRecords})`;
  return (
    `line ${r.line} of ${r.key} (${JSON.stringify(r.text)}) threw ${r.error.name}: ${r.error.message}; ` +
    `it is bad record ${job.skipBadRecords + 1}, and --skip-bad-records allows ${job.skipBadRecords}`
  );
}

/** The attempt ended (superseded or lost) between the task's move and its own end: undo the commit. */
class StaleLeaseError extends Error {
  constructor(lease: string) {
    super(`lease ${lease} is no longer running`);
    this.name = 'StaleLeaseError';
  }
}
