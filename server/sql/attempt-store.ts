import type { Db } from '../db.js';
import type { AttemptOutcome } from '../../shared/states.js';
import type { SerializedError } from '../../shared/errors.js';

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
}

export interface AttemptEnd {
  lease: string;
  outcome: Exclude<AttemptOutcome, 'running'>;
  at: number;
  error?: SerializedError | null;
  ms?: number | null;
  records_in?: number | null;
  records_out?: number | null;
}

export function createAttemptStore(db: Db) {
  const insert = db.prepare(`INSERT INTO attempt (task_id, job_id, volunteer_id, address, lease, backup, started_at,
    outcome) VALUES (@task_id, @job_id, @volunteer_id, @address, @lease, @backup, @started_at, 'running')`);
  const byLease = db.prepare('SELECT * FROM attempt WHERE lease = ?');
  // Every end names the lease and only moves a running attempt: zero rows changed = stale.
  const end = db.prepare(`UPDATE attempt SET outcome = @outcome, ended_at = @at, error = @error, ms = @ms,
    records_in = @records_in, records_out = @records_out WHERE lease = @lease AND outcome = 'running'`);
  const relabel = db.prepare(`UPDATE attempt SET outcome = @outcome WHERE lease = @lease AND outcome = @from`);
  const runningForTask = db.prepare(`SELECT * FROM attempt WHERE task_id = ? AND outcome = 'running'`);
  const runningForJob = db.prepare(`SELECT * FROM attempt WHERE job_id = ? AND outcome = 'running'`);
  const allRunning = db.prepare(`SELECT * FROM attempt WHERE outcome = 'running'`);
  const forJob = db.prepare('SELECT * FROM attempt WHERE job_id = ? ORDER BY id');
  const blamedOfActiveJobs = db.prepare(`SELECT a.* FROM attempt a JOIN job j ON j.id = a.job_id
    WHERE a.outcome IN ('failed', 'lost') AND j.state IN ('queued', 'mapping', 'reducing')`);
  const forTask = db.prepare('SELECT * FROM attempt WHERE task_id = ? ORDER BY id');

  return {
    insert: (
      a: Pick<AttemptRow, 'task_id' | 'job_id' | 'volunteer_id' | 'address' | 'lease' | 'backup' | 'started_at'>,
    ) => insert.run(a),
    byLease: (lease: string) => byLease.get(lease) as AttemptRow | undefined,
    /** Ends a running attempt; false when the lease had already ended (a stale or duplicate end). */
    end: (e: AttemptEnd) =>
      end.run({ ms: null, records_in: null, records_out: null, ...e, error: e.error ? JSON.stringify(e.error) : null })
        .changes === 1,
    relabel: (lease: string, from: AttemptOutcome, outcome: AttemptOutcome) =>
      relabel.run({ lease, from, outcome }).changes === 1,
    runningForTask: (taskId: number) => runningForTask.all(taskId) as AttemptRow[],
    runningForJob: (jobId: string) => runningForJob.all(jobId) as AttemptRow[],
    allRunning: () => allRunning.all() as AttemptRow[],
    forJob: (jobId: string) => forJob.all(jobId) as AttemptRow[],
    /** Failed and lost attempts of unfinished jobs: who a retry should avoid, rebuilt after a restart. */
    blamedOfActiveJobs: () => blamedOfActiveJobs.all() as AttemptRow[],
    forTask: (taskId: number) => forTask.all(taskId) as AttemptRow[],
  };
}
export type AttemptStore = ReturnType<typeof createAttemptStore>;
