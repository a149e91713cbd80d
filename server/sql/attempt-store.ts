import type { Db } from '../db.js';
import type { AttemptOutcome, Phase } from '../../shared/states.js';
import type { SerializedError } from '../../shared/errors.js';
import type { Counters, SkippedRecord } from '../../shared/engine.js';

export interface AttemptRow {
  id: number;
  task_id: number;
  job_id: string;
  volunteer_id: string;
  /** The address the volunteer connected from when it took the attempt. */
  address: string;
  lease: string;
  backup: number;
  started_at: number;
  ended_at: number | null;
  outcome: AttemptOutcome;
  error: string | null;
  ms: number | null;
  records_in: number | null;
  records_out: number | null;
  /** SHA-256 (hex) of the output it returned, as checked; null until it returned one. */
  hash: string | null;
  /** JSON {name: sum} of its `ctx.count`s; null when it counted nothing. */
  counters: string | null;
  /** JSON SkippedRecord[] of the lines it skipped; null when none. */
  skipped: string | null;
}

/** A result waiting for a match (outcome `voted`), with how long it took from assignment to result. */
export type VoteRow = Pick<AttemptRow, 'id' | 'lease' | 'volunteer_id' | 'address' | 'hash' | 'outcome'> & {
  took: number;
};

/** What a task listing shows of an attempt. */
export type AttemptListRow = Pick<
  AttemptRow,
  'task_id' | 'volunteer_id' | 'started_at' | 'ended_at' | 'outcome' | 'error' | 'backup'
>;
const LIST_COLUMNS = 'task_id, volunteer_id, started_at, ended_at, outcome, error, backup';

/** One outcome's attempts in a run of attempt ids: how many, and how long those that ended took. */
export interface OutcomeCount {
  outcome: AttemptOutcome;
  n: number;
  /** Sum and longest of ended_at - started_at over the attempts that ended. */
  ms: number;
  max_ms: number | null;
}

/** A failed attempt with the task it was for. */
export interface FailedAttemptRow extends Pick<
  AttemptRow,
  'id' | 'task_id' | 'volunteer_id' | 'started_at' | 'ended_at' | 'error'
> {
  phase: Phase;
  idx: number;
  input_key: string | null;
}

export interface AttemptEnd {
  lease: string;
  outcome: Exclude<AttemptOutcome, 'running'>;
  at: number;
  error?: SerializedError | null;
  ms?: number | null;
  records_in?: number | null;
  records_out?: number | null;
  hash?: string | null;
  counters?: Counters | null;
  skipped?: readonly SkippedRecord[] | null;
}

/** A committed attempt's skipped lines with its task, for `GET /api/jobs/:id/summary`. */
export interface SkippedRow {
  task_id: number;
  idx: number;
  input_key: string | null;
  skipped: string;
}

export function createAttemptStore(db: Db) {
  const insert = db.prepare(`INSERT INTO attempt (task_id, job_id, volunteer_id, address, lease, backup, started_at,
    outcome) VALUES (@task_id, @job_id, @volunteer_id, @address, @lease, @backup, @started_at, 'running')`);
  const byLease = db.prepare('SELECT * FROM attempt WHERE lease = ?');
  // Every end names the lease and only moves a running attempt: zero rows changed = stale.
  const end = db.prepare(`UPDATE attempt SET outcome = @outcome, ended_at = @at, error = @error, ms = @ms,
    records_in = @records_in, records_out = @records_out, hash = @hash, counters = @counters, skipped = @skipped
    WHERE lease = @lease AND outcome = 'running'`);
  const extras = db.prepare('SELECT counters, skipped FROM attempt WHERE lease = ?');
  // The committed attempt of each map task that skipped lines: one per task (its commit's lease).
  const skippedOfJob = db.prepare(`SELECT a.task_id, t.idx, t.input_key, a.skipped FROM attempt a
    JOIN task t ON t.id = a.task_id
    WHERE a.job_id = ? AND a.skipped IS NOT NULL AND a.outcome = 'succeeded' AND t.state = 'succeeded'
    GROUP BY a.task_id ORDER BY t.idx`);
  const votes = db.prepare(`SELECT id, lease, volunteer_id, address, hash, outcome, ended_at - started_at AS took
    FROM attempt
    WHERE task_id = ? AND outcome = 'voted' ORDER BY id`);
  const votesOfActiveJobs = db.prepare(`SELECT a.task_id, a.volunteer_id, a.address, a.hash FROM attempt a
    JOIN job j ON j.id = a.job_id WHERE a.outcome = 'voted' AND j.state IN ('queued', 'mapping', 'reducing')`);
  const rejectedOfActiveJobs = db.prepare(`SELECT a.job_id, a.volunteer_id, a.task_id FROM attempt a
    JOIN job j ON j.id = a.job_id WHERE a.outcome = 'rejected' AND j.state IN ('queued', 'mapping', 'reducing')`);
  const committedAlone = db.prepare(`SELECT a.lease, a.task_id, a.records_out, a.ended_at - a.started_at AS took
    FROM attempt a
    JOIN task t ON t.id = a.task_id WHERE a.job_id = @job AND a.volunteer_id = @volunteer
    AND a.outcome = 'succeeded' AND t.state = 'succeeded' AND t.confirm IN ('trusted', 'unconfirmed')`);
  const committedOf = db.prepare(`SELECT lease, records_out FROM attempt WHERE task_id = ? AND outcome = 'succeeded'
    ORDER BY ended_at DESC, id DESC LIMIT 1`);
  const setError = db.prepare('UPDATE attempt SET error = @error WHERE lease = @lease');
  const votedOfJobPhase = db
    .prepare(
      `SELECT a.lease FROM attempt a JOIN task t ON t.id = a.task_id
      WHERE a.job_id = @job AND a.outcome = 'voted' AND t.phase = @phase`,
    )
    .pluck();
  const votedOfVolunteer = db
    .prepare(`SELECT lease FROM attempt WHERE job_id = @job AND volunteer_id = @volunteer AND outcome = 'voted'`)
    .pluck();
  const relabel = db.prepare(`UPDATE attempt SET outcome = @outcome WHERE lease = @lease AND outcome = @from`);
  const runningForTask = db.prepare(`SELECT * FROM attempt WHERE task_id = ? AND outcome = 'running'`);
  const runningForJob = db.prepare(`SELECT * FROM attempt WHERE job_id = ? AND outcome = 'running'`);
  const allRunning = db.prepare(`SELECT * FROM attempt WHERE outcome = 'running'`);
  const forJob = db.prepare('SELECT * FROM attempt WHERE job_id = ? ORDER BY id');
  const blamedOfActiveJobs = db.prepare(`SELECT a.* FROM attempt a JOIN job j ON j.id = a.job_id
    WHERE a.outcome IN ('failed', 'lost') AND j.state IN ('queued', 'mapping', 'reducing')`);
  const forTask = db.prepare('SELECT * FROM attempt WHERE task_id = ? ORDER BY id');
  // The attempts of a page of tasks, by the task_id index; `+job_id` keeps SQLite off the job_id
  // index, which would read every attempt of the job for each page.
  const forTaskRange = db.prepare(`SELECT ${LIST_COLUMNS} FROM attempt
    WHERE task_id BETWEEN @from AND @to AND +job_id = @job ORDER BY task_id, id`);
  const forTaskIds = db.prepare(`SELECT ${LIST_COLUMNS} FROM attempt
    WHERE task_id IN (SELECT value FROM json_each(@ids)) AND +job_id = @job ORDER BY task_id, id`);
  // Queries over a whole job's attempts go through its attempt ids a run at a time, so that the
  // master can answer others in between; each run is a range of the (job_id, id) index.
  const idRange = db.prepare(`SELECT (SELECT min(id) FROM attempt WHERE job_id = @job) AS first,
    (SELECT max(id) FROM attempt WHERE job_id = @job) AS last`);
  // An attempt changes when it starts and when it ends: its last change is ended_at, else started_at.
  const changedIn = db
    .prepare(
      `SELECT task_id FROM attempt WHERE job_id = @job AND id BETWEEN @from AND @to
      AND coalesce(ended_at, started_at) >= @since`,
    )
    .pluck();
  const outcomesIn = db.prepare(`SELECT outcome, count(*) AS n, total(ended_at - started_at) AS ms,
    max(ended_at - started_at) AS max_ms FROM attempt WHERE job_id = @job AND id BETWEEN @from AND @to
    GROUP BY outcome`);
  const failuresIn = db.prepare(`SELECT a.id, a.task_id, a.volunteer_id, a.started_at, a.ended_at, a.error,
    t.phase, t.idx, t.input_key FROM attempt a JOIN task t ON t.id = a.task_id
    WHERE a.job_id = @job AND a.id BETWEEN @from AND @to AND a.outcome = 'failed'
    ORDER BY a.ended_at DESC, a.id DESC LIMIT @limit`);

  return {
    insert: (
      a: Pick<AttemptRow, 'task_id' | 'job_id' | 'volunteer_id' | 'address' | 'lease' | 'backup' | 'started_at'>,
    ) => insert.run(a),
    byLease: (lease: string) => byLease.get(lease) as AttemptRow | undefined,
    /** Ends a running attempt; false when the lease had already ended (a stale or duplicate end). */
    end: (e: AttemptEnd) =>
      end.run({
        ms: null,
        records_in: null,
        records_out: null,
        hash: null,
        ...e,
        error: e.error ? JSON.stringify(e.error) : null,
        counters: e.counters && Object.keys(e.counters).length > 0 ? JSON.stringify(e.counters) : null,
        skipped: e.skipped && e.skipped.length > 0 ? JSON.stringify(e.skipped) : null,
      }).changes === 1,
    /** An attempt's counters and skipped lines, parsed; empty when it had none. */
    extras: (lease: string): { counters: Counters | null; skipped: SkippedRecord[] } => {
      const r = extras.get(lease) as Pick<AttemptRow, 'counters' | 'skipped'> | undefined;
      return {
        counters: r?.counters ? (JSON.parse(r.counters) as Counters) : null,
        skipped: r?.skipped ? (JSON.parse(r.skipped) as SkippedRecord[]) : [],
      };
    },
    /** The lines a job's committed map tasks skipped, by task, tasks in index order. */
    skippedOfJob: (jobId: string) => skippedOfJob.all(jobId) as SkippedRow[],
    /** A task's results waiting for a match, oldest first. */
    votes: (taskId: number) => votes.all(taskId) as VoteRow[],
    /** Votes of unfinished jobs: who voted on what, rebuilt after a restart. */
    votesOfActiveJobs: () =>
      votesOfActiveJobs.all() as Pick<AttemptRow, 'task_id' | 'volunteer_id' | 'address' | 'hash'>[],
    /** Who lost a vote in an unfinished job: expelled from it, rebuilt after a restart. */
    rejectedOfActiveJobs: () => rejectedOfActiveJobs.all() as Pick<AttemptRow, 'job_id' | 'volunteer_id' | 'task_id'>[],
    /** A volunteer's committed results in a job that rest on its word alone. */
    committedAlone: (jobId: string, volunteerId: string) =>
      committedAlone.all({ job: jobId, volunteer: volunteerId }) as (Pick<
        AttemptRow,
        'lease' | 'task_id' | 'records_out'
      > & { took: number })[],
    /** The attempt whose result a committed task holds. */
    committedOf: (taskId: number) => committedOf.get(taskId) as Pick<AttemptRow, 'lease' | 'records_out'> | undefined,
    setError: (lease: string, error: SerializedError) => setError.run({ lease, error: JSON.stringify(error) }),
    /** A job's votes waiting for a match on tasks of one phase. */
    votedOfJobPhase: (jobId: string, phase: Phase) => votedOfJobPhase.all({ job: jobId, phase }) as string[],
    /** A volunteer's results in a job still waiting for a match. */
    votedOfVolunteer: (jobId: string, volunteerId: string) =>
      votedOfVolunteer.all({ job: jobId, volunteer: volunteerId }) as string[],
    relabel: (lease: string, from: AttemptOutcome, outcome: AttemptOutcome) =>
      relabel.run({ lease, from, outcome }).changes === 1,
    runningForTask: (taskId: number) => runningForTask.all(taskId) as AttemptRow[],
    runningForJob: (jobId: string) => runningForJob.all(jobId) as AttemptRow[],
    allRunning: () => allRunning.all() as AttemptRow[],
    forJob: (jobId: string) => forJob.all(jobId) as AttemptRow[],
    /** Failed and lost attempts of unfinished jobs: who a retry should avoid, rebuilt after a restart. */
    blamedOfActiveJobs: () => blamedOfActiveJobs.all() as AttemptRow[],
    forTask: (taskId: number) => forTask.all(taskId) as AttemptRow[],
    /** The job's attempts at tasks with ids in [from, to], by task id, then in the order they began. */
    forTaskRange: (jobId: string, from: number, to: number) =>
      forTaskRange.all({ job: jobId, from, to }) as AttemptListRow[],
    /** The job's attempts at the tasks `taskIds`, by task id, then in the order they began. */
    forTaskIds: (jobId: string, taskIds: number[]) =>
      forTaskIds.all({ job: jobId, ids: JSON.stringify(taskIds) }) as AttemptListRow[],
    /** The first and last attempt id of a job (null for both before its first attempt). */
    idRange: (jobId: string) => idRange.get({ job: jobId }) as { first: number | null; last: number | null },
    /** Task ids (repeated per attempt) whose attempts with ids in [from, to] changed at or after `since`. */
    changedIn: (jobId: string, from: number, to: number, since: number) =>
      changedIn.all({ job: jobId, from, to, since }) as number[],
    /** The attempts with ids in [from, to], counted by outcome. */
    outcomesIn: (jobId: string, from: number, to: number) => outcomesIn.all({ job: jobId, from, to }) as OutcomeCount[],
    /** The `limit` failed attempts with ids in [from, to] that ended last, newest first. */
    failuresIn: (jobId: string, from: number, to: number, limit: number) =>
      failuresIn.all({ job: jobId, from, to, limit }) as FailedAttemptRow[],
  };
}
export type AttemptStore = ReturnType<typeof createAttemptStore>;
