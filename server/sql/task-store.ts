import type { Db } from '../db.js';
import type { Confirm, Phase, TaskState } from '../../shared/states.js';

export interface TaskRow {
  id: number;
  job_id: string;
  phase: Phase;
  idx: number;
  state: TaskState;
  input_key: string | null;
  failures: number;
  losses: number;
}

/** Where a map task's input is: a byte range of an input blob, or (jobs from before blobs) in its row. */
export type InputSource = { blob: string; start: number; end: number } | { inline: Buffer };

const COLUMNS = 'id, job_id, phase, idx, state, input_key, failures, losses';

/** A pending task with where its input is (a job's from before blobs has `input_blob` null). */
export interface PendingTask extends TaskRow {
  input_blob: string | null;
  input_start: number | null;
  input_end: number | null;
}

/** Where a pending map task's input is, without another query when it is in a blob. */
export function pendingInput(t: TaskRow | PendingTask): InputSource | undefined {
  if (!('input_blob' in t) || t.input_blob === null) return undefined;
  return { blob: t.input_blob, start: t.input_start!, end: t.input_end! };
}

export interface NewTask {
  job_id: string;
  phase: Phase;
  idx: number;
  input_key: string | null;
  input_blob: string | null;
  input_start: number | null;
  input_end: number | null;
  /** A map's first line number in its file, for a job that skips bad records. */
  first_line?: number | null;
}

/**
 * What a task listing shows of a task. Only columns stored before `input`: once `failures` or
 * `losses` is not 0 (0 takes no bytes in a record), reading it makes SQLite walk the split's
 * overflow pages to reach it: 2.7 ms per 4 MiB map task instead of 0.01 ms.
 */
export type TaskListRow = Pick<TaskRow, 'id' | 'phase' | 'idx' | 'state' | 'input_key'>;
const LIST_COLUMNS = 'id, phase, idx, state, input_key';

export function createTaskStore(db: Db) {
  const insertRow = db.prepare(`INSERT INTO task (job_id, phase, idx, state, input_key, input_blob, input_start,
    input_end, first_line) VALUES (@job_id, @phase, @idx, 'pending', @input_key, @input_blob, @input_start, @input_end,
    @first_line)`);
  const firstLine = db.prepare('SELECT first_line FROM task WHERE id = ?').pluck();
  const get = db.prepare(`SELECT ${COLUMNS} FROM task WHERE id = ?`);
  const input = db.prepare('SELECT input_blob, input_start, input_end, input FROM task WHERE id = ?');
  // A pending task is read with where its input is, in the step that picks it: it is about to be sent.
  const nextPending = db.prepare(`SELECT ${COLUMNS}, input_blob, input_start, input_end FROM task
    WHERE job_id = @job_id AND phase = @phase AND state = 'pending' ORDER BY idx LIMIT 1`);
  const nextPendingAfter = db.prepare(`SELECT ${COLUMNS}, input_blob, input_start, input_end FROM task
    WHERE job_id = @job_id AND phase = @phase AND state = 'pending' AND idx > @idx ORDER BY idx LIMIT 1`);
  const setState = db.prepare('UPDATE task SET state = @state WHERE id = @id AND state = @from');
  const addFailure = db.prepare('UPDATE task SET failures = failures + 1 WHERE id = ? RETURNING failures').pluck();
  const addLoss = db.prepare('UPDATE task SET losses = losses + 1 WHERE id = ? RETURNING losses').pluck();
  const cancelOpen = db.prepare(`UPDATE task SET state = 'cancelled'
    WHERE job_id = ? AND state IN ('pending', 'running')`);
  const forJob = db.prepare(`SELECT ${COLUMNS} FROM task WHERE job_id = ? ORDER BY phase, idx`);
  const dropInputs = db.prepare(
    `UPDATE task SET input = NULL WHERE job_id = ? AND phase = 'map' AND input IS NOT NULL`,
  );
  // A job's tasks are inserted in one transaction, maps then reduces, each in index order
  // (submit-job.ts), so its ids run from its first map to its last reduce: two lookups in the
  // (job_id, phase, idx) index. min(id) would read all of the job's index entries (22 ms at 200,000).
  const idRange = db.prepare(`SELECT
    (SELECT id FROM task WHERE job_id = @job ORDER BY phase, idx LIMIT 1) AS first,
    (SELECT id FROM task WHERE job_id = @job ORDER BY phase DESC, idx DESC LIMIT 1) AS last`);
  // `+job_id` keeps SQLite on the rowid range: by the job_id index it would sort all the job's
  // tasks for every page.
  const listPage = db.prepare(`SELECT ${LIST_COLUMNS} FROM task
    WHERE id > @after AND id <= @last AND +job_id = @job ORDER BY id LIMIT @limit`);
  const listIds = db.prepare(`SELECT ${LIST_COLUMNS} FROM task
    WHERE id IN (SELECT value FROM json_each(@ids)) AND +job_id = @job ORDER BY id`);
  // Columns after `input`: read only for tasks of verified jobs, at their commit.
  const verification = db.prepare('SELECT confirm, recheck FROM task WHERE id = ?');
  const setConfirm = db.prepare('UPDATE task SET confirm = @confirm WHERE id = @id');
  const reopen = db.prepare(`UPDATE task SET state = 'pending', confirm = NULL, recheck = max(recheck, @recheck)
    WHERE id = @id AND state = 'succeeded'`);
  const committedOfPhase = db.prepare(`SELECT id, confirm FROM task WHERE job_id = @job AND phase = @phase
    AND state = 'succeeded'`);
  const cancelledIn = db
    .prepare(`SELECT id FROM task WHERE id BETWEEN @from AND @to AND +job_id = @job AND state = 'cancelled'`)
    .pluck();

  return {
    /** A map's first line number in its file, for a job that skips bad records; else null. */
    firstLine: (id: number) => (firstLine.get(id) as number | null | undefined) ?? null,
    insert: (t: NewTask) => insertRow.run({ first_line: null, ...t }),
    get: (id: number) => get.get(id) as TaskRow | undefined,
    /** A map task's input; null for a reduce task. */
    input: (id: number): InputSource | null => {
      const r = input.get(id) as
        | { input_blob: string | null; input_start: number | null; input_end: number | null; input: Buffer | null }
        | undefined;
      if (!r) return null;
      if (r.input_blob !== null) return { blob: r.input_blob, start: r.input_start!, end: r.input_end! };
      return r.input ? { inline: r.input } : null;
    },
    nextPending: (jobId: string, phase: Phase) => nextPending.get({ job_id: jobId, phase }) as PendingTask | undefined,
    nextPendingAfter: (jobId: string, phase: Phase, idx: number) =>
      nextPendingAfter.get({ job_id: jobId, phase, idx }) as PendingTask | undefined,
    /** Moves a task from `from` to `state`; false when it was no longer in `from`. */
    move: (id: number, from: TaskState, state: TaskState) => {
      if (from === state) return true;
      return setState.run({ id, from, state }).changes === 1;
    },
    addFailure: (id: number) => addFailure.get(id) as number,
    addLoss: (id: number) => addLoss.get(id) as number,
    cancelOpen: (jobId: string) => cancelOpen.run(jobId).changes,
    forJob: (jobId: string) => forJob.all(jobId) as TaskRow[],
    dropInputs: (jobId: string) => dropInputs.run(jobId),
    /** The first and last task id of a job (null for both when it has no tasks). */
    idRange: (jobId: string) => idRange.get({ job: jobId }) as { first: number | null; last: number | null },
    /** Up to `limit` of the job's tasks with ids in (after, last], in id order. */
    listPage: (jobId: string, after: number, last: number, limit: number) =>
      listPage.all({ job: jobId, after, last, limit }) as TaskListRow[],
    /** The job's tasks among `ids`, in id order. */
    listIds: (jobId: string, ids: number[]) => listIds.all({ job: jobId, ids: JSON.stringify(ids) }) as TaskListRow[],
    verification: (id: number) => verification.get(id) as { confirm: Confirm | null; recheck: number } | undefined,
    setConfirm: (id: number, confirm: Confirm | null) => setConfirm.run({ id, confirm }),
    /** A committed task runs again (with `recheck`, on two votes); false when it was not committed. */
    reopen: (id: number, recheck: boolean) => reopen.run({ id, recheck: recheck ? 1 : 0 }).changes === 1,
    /** The job's committed tasks of one phase, with how they were confirmed. */
    committedOfPhase: (jobId: string, phase: Phase) =>
      committedOfPhase.all({ job: jobId, phase }) as { id: number; confirm: Confirm | null }[],
    /** Ids of the job's cancelled tasks with ids in [from, to]. */
    cancelledIn: (jobId: string, from: number, to: number) => cancelledIn.all({ job: jobId, from, to }) as number[],
  };
}
export type TaskStore = ReturnType<typeof createTaskStore>;
