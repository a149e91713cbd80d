/**
 * A job's task list a page at a time (issue 14). A job may hold 210,000 tasks; built in one go, its
 * list held the master's event loop for 4.6 s (41 MB of JSON, `test/bench/tasks-route.ts`). Here
 * it is read in keyset pages by task id, and the reader yields to the event loop between pages.
 * Which tasks changed since a time is found from their attempts, a run of attempt ids at a time.
 */
import type { Stores } from './sql/index.js';
import type { JobRow } from './sql/job-store.js';
import type { TaskView } from '../shared/api.js';
import { taskViews } from './views.js';

/**
 * Tasks read per query. A page of 1,000 tasks with their attempts takes ~4 ms to read and turn into
 * JSON on a 2-core box (2,000 took 9 ms): the event loop is never held much longer than that.
 */
export const PAGE_TASKS = 1_000;

/** Attempt (or task) ids scanned per query when looking for changes: ~2.5 ms per run of 10,000. */
export const ID_RUN = 10_000;

/** Lets the event loop answer others (a heartbeat, `/healthz`) before the next page. */
export const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

export interface TaskSelection {
  /** Only tasks with ids above this. */
  after: number;
  /** At most this many tasks; null for all. */
  limit: number | null;
  /** Only these tasks (ids ascending), or null for all of the job's. */
  ids: number[] | null;
}

/**
 * Reads the selected tasks of a job in id order, one page per `next()`. Each page is read when it
 * is asked for, so a long listing shows each task as it was when its page was read.
 */
export class TaskPager {
  /** The id of the last task read: the `after` of what follows. */
  after: number;
  private left: number;
  private readonly last: number;
  private pos = 0;

  constructor(
    private readonly stores: Stores,
    private readonly jobId: string,
    private readonly sel: TaskSelection,
  ) {
    this.after = sel.after;
    this.left = sel.limit ?? Infinity;
    this.last = sel.ids ? (sel.ids.at(-1) ?? 0) : (stores.tasks.idRange(jobId).last ?? 0);
    if (sel.ids) this.pos = firstAbove(sel.ids, sel.after);
  }

  /** Whether tasks remain after those read so far (beyond `limit` when it cut the list short). */
  get more(): boolean {
    return this.sel.ids ? this.pos < this.sel.ids.length : this.after < this.last;
  }

  /** The next page, or null once the selection or its limit is exhausted. */
  next(): TaskView[] | null {
    const want = Math.min(PAGE_TASKS, this.left);
    if (want === 0 || !this.more) return null;
    const { tasks, attempts } = this.stores;
    let page: TaskView[];
    if (this.sel.ids) {
      const ids = this.sel.ids.slice(this.pos, this.pos + want);
      this.pos += ids.length;
      page = taskViews(tasks.listIds(this.jobId, ids), attempts.forTaskIds(this.jobId, ids));
      this.after = ids.at(-1)!;
    } else {
      const rows = tasks.listPage(this.jobId, this.after, this.last, want);
      if (rows.length === 0) {
        this.after = this.last;
        return null;
      }
      page = taskViews(rows, attempts.forTaskRange(this.jobId, rows[0]!.id, rows.at(-1)!.id));
      this.after = rows.at(-1)!.id;
    }
    this.left -= page.length;
    return page;
  }
}

/** The index of the first id above `after` in ascending `ids`. */
function firstAbove(ids: number[], after: number): number {
  let lo = 0;
  let hi = ids.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (ids[mid]! <= after) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Ids (ascending) of the job's tasks that changed at or after `since`: those with an attempt that
 * started or ended then, and, when the job ended then, its cancelled tasks (cancelling or failing a
 * job cancels its open tasks without touching an attempt). Reads one run of ids per event-loop
 * turn, calling `beforeRead` after each pause. Misses nothing that changed before the call.
 */
export async function changedTaskIds(
  stores: Stores,
  job: JobRow,
  since: number,
  beforeRead: () => void,
): Promise<number[]> {
  const ids = new Set<number>();
  const runs = async (
    range: { first: number | null; last: number | null },
    read: (from: number, to: number) => number[],
  ) => {
    if (range.first === null || range.last === null) return;
    for (let from = range.first; from <= range.last; from += ID_RUN) {
      if (from !== range.first) {
        await nextTurn();
        beforeRead();
      }
      for (const id of read(from, Math.min(range.last, from + ID_RUN - 1))) ids.add(id);
    }
  };
  await runs(stores.attempts.idRange(job.id), (from, to) => stores.attempts.changedIn(job.id, from, to, since));
  if (job.finished_at !== null && job.finished_at >= since) {
    await runs(stores.tasks.idRange(job.id), (from, to) => stores.tasks.cancelledIn(job.id, from, to));
  }
  return [...ids].sort((a, b) => a - b);
}
