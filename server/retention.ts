/**
 * What the master keeps, and for how long: with `serve --retain D`, a finished job is deleted (rows
 * and blobs, as `tabreduce delete` does) once it finished more than D ago; without it, jobs are kept
 * until an admin deletes them. Volunteer rows that hold nothing go after `VOLUNTEER_ROWS_KEPT_MS`
 * unseen, with or without `--retain`: every new tab, private window or cleared browser makes one,
 * so they would otherwise only ever grow.
 */
import type { Scheduler } from './scheduler/index.js';
import type { JobStore } from './sql/job-store.js';
import { formatDuration } from '../shared/units.js';

/**
 * How long the row of a volunteer that holds nothing is kept after it was last seen. It is the
 * identity's record: the tasks it committed, which let it hold more than one at once. A month is
 * longer than any pause a returning volunteer takes in practice; one that comes back later starts
 * again as a new volunteer. Independent of `--retain`, so a short job retention (minutes, in a
 * test or a demo) does not take their standing from tabs that merely closed for a while.
 */
export const VOLUNTEER_ROWS_KEPT_MS = 30 * 86_400_000;

/**
 * How often the retention runs: every tenth of the retention, so a job goes at most 10% late; but at
 * least once a minute, so a long retention still acts soon after a start, and at most once a
 * second, so a short one does not query the job table on every turn.
 */
export function retentionEveryMs(retainMs: number | null): number {
  if (retainMs === null) return 60_000;
  return Math.min(60_000, Math.max(1_000, Math.round(retainMs / 10)));
}

export interface RetentionOptions {
  /** Finished jobs are deleted this long after they finished; null keeps them until deleted. */
  retainMs: number | null;
  log: (line: string) => void;
  /** True once the master is closing: the pass stops after the job at hand. */
  stopping?: () => boolean;
  /** Whether this pass also forgets idle volunteers (a pass every second need not scan them each time). */
  volunteers?: boolean;
}

/**
 * One pass: deletes finished jobs past the retention, one at a time (each its own durable
 * transaction, then its blobs), and forgets idle volunteers. Returns the jobs deleted.
 */
export async function applyRetention(scheduler: Scheduler, jobs: JobStore, opts: RetentionOptions): Promise<number> {
  const now = scheduler.clock.now();
  let deleted = 0;
  if (opts.retainMs !== null) {
    const why = `by --retain ${formatDuration(opts.retainMs)}`;
    for (const id of jobs.finishedBefore(now - opts.retainMs)) {
      if (opts.stopping?.()) return deleted;
      const r = await scheduler.deleteJob(id, why);
      if (r.kind === 'deleted') deleted++;
    }
  }
  const forgotten = opts.volunteers === false ? 0 : scheduler.forgetVolunteers(now - VOLUNTEER_ROWS_KEPT_MS);
  if (forgotten > 0) {
    const who = forgotten === 1 ? '1 volunteer' : `${forgotten} volunteers`;
    opts.log(`forgot ${who} unseen for ${formatDuration(VOLUNTEER_ROWS_KEPT_MS)} that held no task`);
  }
  return deleted;
}
