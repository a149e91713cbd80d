import type { Db } from '../db.js';
import type { Confirm, JobState, VerifyMode } from '../../shared/states.js';
import { addCounters, type Counters } from '../../shared/engine.js';

export interface JobRow {
  id: string;
  name: string;
  state: JobState;
  created_at: number;
  finished_at: number | null;
  module_name: string;
  module: string;
  n_reduce: number;
  split_size: number;
  task_timeout_ms: number;
  max_attempts: number;
  maps_total: number;
  maps_done: number;
  reduces_done: number;
  input_bytes: number;
  records_in: number;
  records_out: number;
  error: string | null;
  /** Bytes of the job's data kept (inputs, map outputs, output). */
  stored_bytes: number;
  verify: VerifyMode;
  /** Committed tasks by how their output was confirmed (task.confirm), and attempts that lost a vote. */
  verified: number;
  spot_checked: number;
  trusted: number;
  unconfirmed: number;
  rejected: number;
  /** Lines whose `map` throws that the job may skip (`--skip-bad-records`). */
  skip_bad_records: number;
  /** JSON {name: sum} of its committed attempts' counters, names ascending. */
  counters: string;
  /** Lines its committed map attempts skipped. */
  skipped: number;
  /** 1 while its upload is still arriving (its maps run, its reduces wait); see submit-job.ts. */
  uploading: number;
}

export type NewJob = Omit<
  JobRow,
  | 'maps_done'
  | 'reduces_done'
  | 'records_in'
  | 'records_out'
  | 'finished_at'
  | 'error'
  | 'verified'
  | 'spot_checked'
  | 'trusted'
  | 'unconfirmed'
  | 'rejected'
  | 'counters'
  | 'skipped'
  | 'uploading'
>;

/** The job column that counts each way of confirming a task. */
const CONFIRM_COLUMN: Record<Confirm, string> = {
  verified: 'verified',
  spot: 'spot_checked',
  trusted: 'trusted',
  unconfirmed: 'unconfirmed',
};

/** Everything but the module source, for listings. */
const COLUMNS = `id, name, state, created_at, finished_at, module_name, '' AS module, n_reduce, split_size,
  task_timeout_ms, max_attempts, maps_total, maps_done, reduces_done, input_bytes, records_in, records_out, error,
  stored_bytes, verify, verified, spot_checked, trusted, unconfirmed, rejected, skip_bad_records, counters, skipped, uploading`;

export function createJobStore(db: Db) {
  const insert = db.prepare(`INSERT INTO job (id, name, state, created_at, module_name, module, n_reduce,
    split_size, task_timeout_ms, max_attempts, maps_total, input_bytes, stored_bytes, verify, skip_bad_records,
    ready, uploading)
    VALUES (@id, @name, @state, @created_at, @module_name, @module, @n_reduce, @split_size,
    @task_timeout_ms, @max_attempts, @maps_total, @input_bytes, @stored_bytes, @verify, @skip_bad_records,
    @ready, @uploading)`);
  const ready = db.prepare('UPDATE job SET ready = 1 WHERE id = ?');
  const unready = db.prepare('SELECT id FROM job WHERE ready = 0').pluck();
  const abandoned = db.prepare('SELECT id FROM job WHERE uploading = 1').pluck();
  const addMaps = db.prepare(`UPDATE job SET maps_total = maps_total + @maps, input_bytes = input_bytes + @bytes,
    stored_bytes = stored_bytes + @bytes WHERE id = @id`);
  const uploaded = db.prepare(`UPDATE job SET uploading = 0 WHERE id = ? RETURNING maps_done, maps_total`);
  const remove = db.prepare('DELETE FROM job WHERE id = ?');
  const stored = db.prepare('UPDATE job SET stored_bytes = max(0, stored_bytes + @by) WHERE id = @id');
  const ids = db.prepare('SELECT id FROM job').pluck();
  const finishedBefore = db
    .prepare(`SELECT id FROM job WHERE state IN ('succeeded', 'failed', 'cancelled') AND finished_at < ?`)
    .pluck();
  const get = db.prepare(`SELECT ${COLUMNS} FROM job WHERE id = ? AND ready = 1`);
  const list = db.prepare(`SELECT ${COLUMNS} FROM job WHERE ready = 1 ORDER BY created_at DESC, rowid DESC LIMIT ?`);
  const active = db.prepare(
    `SELECT ${COLUMNS} FROM job WHERE state IN ('queued', 'mapping', 'reducing') AND ready = 1 ORDER BY created_at, rowid`,
  );
  const moduleOf = db.prepare('SELECT module FROM job WHERE id = ?').pluck();
  const setState = db.prepare('UPDATE job SET state = @state WHERE id = @id AND state = @from');
  const finish = db.prepare(`UPDATE job SET state = @state, finished_at = @at, error = @error
    WHERE id = @id AND state IN ('queued', 'mapping', 'reducing')`);
  const mapDone = db.prepare(`UPDATE job SET maps_done = maps_done + 1, records_in = records_in + @records
    WHERE id = @id RETURNING maps_done, maps_total`);
  const countByState = db.prepare('SELECT state, count(*) AS n FROM job WHERE ready = 1 GROUP BY state');
  const storedTotal = db.prepare('SELECT coalesce(sum(stored_bytes), 0) FROM job').pluck();
  const reduceDone = db.prepare(`UPDATE job SET reduces_done = reduces_done + 1,
    records_out = records_out + @records WHERE id = @id RETURNING reduces_done, n_reduce`);
  const confirmed = Object.fromEntries(
    Object.entries(CONFIRM_COLUMN).map(([k, col]) => [
      k,
      db.prepare(`UPDATE job SET ${col} = max(0, ${col} + @by) WHERE id = @id`),
    ]),
  ) as Record<Confirm, ReturnType<Db['prepare']>>;
  const rejected = db.prepare('UPDATE job SET rejected = rejected + @by WHERE id = @id');
  // A committed task that runs again (its output came from a volunteer that lost a vote).
  const mapUndone = db.prepare(`UPDATE job SET maps_done = maps_done - 1,
    records_in = max(0, records_in - @records) WHERE id = @id`);
  const reduceUndone = db.prepare(`UPDATE job SET reduces_done = reduces_done - 1,
    records_out = max(0, records_out - @records) WHERE id = @id`);

  const extrasOf = db.prepare('SELECT counters, skipped FROM job WHERE id = ?');
  const setExtras = db.prepare('UPDATE job SET counters = @counters, skipped = @skipped WHERE id = @id');

  return {
    /**
     * Adds a committed attempt's counters and skipped lines to the job's (sign -1: takes back those
     * of a commit taken back); returns the job's skipped lines and counter names now. Run inside the commit's transaction.
     */
    addExtras: (id: string, counters: Counters | null, skipped: number, sign: 1 | -1 = 1) => {
      const row = extrasOf.get(id) as { counters: string; skipped: number } | undefined;
      if (!row) return { skipped: 0, names: 0 };
      const total = Math.max(0, row.skipped + sign * skipped);
      const sum = addCounters(JSON.parse(row.counters) as Counters, counters ?? {}, sign);
      setExtras.run({ id, counters: JSON.stringify(sum), skipped: total });
      return { skipped: total, names: Object.keys(sum).length };
    },
    /**
     * Inserts a job: hidden (and deleted by a restart) until `ready`, or, while its upload arrives,
     * shown and running its maps (and deleted by a restart until `uploaded`).
     */
    insert: (job: NewJob, opts: { uploading: boolean } = { uploading: false }) =>
      insert.run({ ...job, ready: opts.uploading ? 1 : 0, uploading: opts.uploading ? 1 : 0 }),
    /** Counts map tasks added to an uploading job, and their input's bytes. */
    addMaps: (id: string, maps: number, bytes: number) => addMaps.run({ id, maps, bytes }),
    /** The upload of a job has ended: its map count is final. */
    uploaded: (id: string) => uploaded.get(id) as { maps_done: number; maps_total: number } | undefined,
    /** Jobs whose upload was still arriving when the master stopped. */
    abandonedUploads: () => abandoned.all() as string[],
    ready: (id: string) => ready.run(id),
    /** Jobs whose submit never finished inserting them (the master stopped mid-submit). */
    unready: () => unready.all() as string[],
    /** Deletes a job's rows: tasks, attempts and data rows go with it (ON DELETE CASCADE). */
    remove: (id: string) => remove.run(id).changes === 1,
    /** Counts `by` bytes (negative: freed) in the job's stored data. */
    addStored: (id: string, by: number) => stored.run({ id, by }),
    ids: () => ids.all() as string[],
    finishedBefore: (at: number) => finishedBefore.all(at) as string[],
    get: (id: string) => get.get(id) as JobRow | undefined,
    list: (limit = 1000) => list.all(limit) as JobRow[],
    active: () => active.all() as JobRow[],
    module: (id: string) => moduleOf.get(id) as string | undefined,
    /** Moves a job on from `from`; false when it was no longer there. */
    advance: (id: string, from: JobState, state: JobState) => setState.run({ id, from, state }).changes === 1,
    /** Ends an unfinished job; false when it had already ended. */
    finish: (id: string, state: 'succeeded' | 'failed' | 'cancelled', at: number, error: string | null = null) =>
      finish.run({ id, state, at, error }).changes === 1,
    mapDone: (id: string, records: number) => mapDone.get({ id, records }) as { maps_done: number; maps_total: number },
    reduceDone: (id: string, records: number) =>
      reduceDone.get({ id, records }) as { reduces_done: number; n_reduce: number },
    /** Counts `by` (-1: reopened) tasks committed with confirmation `how`. */
    addConfirmed: (id: string, how: Confirm, by = 1) => confirmed[how].run({ id, by }),
    addRejected: (id: string, by = 1) => rejected.run({ id, by }),
    /** Takes back a map commit: the task runs again. */
    mapUndone: (id: string, records: number) => mapUndone.run({ id, records }),
    /** Takes back a reduce commit: the task runs again. */
    reduceUndone: (id: string, records: number) => reduceUndone.run({ id, records }),
    /** How many jobs are in each state, for `/metrics`; states with no job are absent. */
    countByState: () => new Map((countByState.all() as { state: JobState; n: number }[]).map((r) => [r.state, r.n])),
    /** Bytes kept for all jobs together (`stored_bytes`), for `/metrics`. */
    storedTotal: () => storedTotal.get() as number,
  };
}
export type JobStore = ReturnType<typeof createJobStore>;
