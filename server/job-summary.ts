/**
 * `GET /api/jobs/:id/summary`: a job's attempts counted by outcome, its newest failures and how long
 * its attempts took, added up in SQL a run of attempt ids at a time instead of loading every attempt
 * (202,000 attempts: 125 ms of SQL, cut into runs of a few ms so the event loop turns in between).
 */
import type { Stores } from './sql/index.js';
import type { FailedAttemptRow } from './sql/attempt-store.js';
import type { JobSummary } from '../shared/api.js';
import type { SkippedRecord } from '../shared/engine.js';
import { ATTEMPT_OUTCOMES, type AttemptOutcome } from '../shared/states.js';
import { failedAttemptView } from './views.js';
import { ID_RUN, nextTurn } from './task-pages.js';

/** Enough failures to see a pattern; the task list has all of them. */
export const RECENT_FAILURES = 10;

/** Newest end first; the later attempt first among those that ended at once. */
function newestFirst(a: FailedAttemptRow, b: FailedAttemptRow): number {
  return (b.ended_at ?? 0) - (a.ended_at ?? 0) || b.id - a.id;
}

export async function summarizeJob(stores: Stores, jobId: string, beforeRead: () => void): Promise<JobSummary> {
  const attempts = Object.fromEntries(ATTEMPT_OUTCOMES.map((o) => [o, 0])) as Record<AttemptOutcome, number>;
  let failures: FailedAttemptRow[] = [];
  let succeededMs = 0;
  let maxMs = 0;
  const { first, last } = stores.attempts.idRange(jobId);
  if (first !== null && last !== null) {
    for (let from = first; from <= last; from += ID_RUN) {
      if (from !== first) {
        await nextTurn();
        beforeRead();
      }
      const to = Math.min(last, from + ID_RUN - 1);
      let failed = 0;
      for (const c of stores.attempts.outcomesIn(jobId, from, to)) {
        attempts[c.outcome] += c.n;
        if (c.outcome === 'failed') failed = c.n;
        if (c.outcome === 'succeeded') {
          succeededMs += c.ms;
          maxMs = Math.max(maxMs, c.max_ms ?? 0);
        }
      }
      if (failed > 0) {
        failures = [...failures, ...stores.attempts.failuresIn(jobId, from, to, RECENT_FAILURES)]
          .sort(newestFirst)
          .slice(0, RECENT_FAILURES);
      }
    }
  }
  return {
    attempts,
    recentFailures: failures.map(failedAttemptView),
    durations: attempts.succeeded > 0 ? { meanMs: succeededMs / attempts.succeeded, maxMs } : null,
    skipped: stores.attempts.skippedOfJob(jobId).flatMap((t) =>
      (JSON.parse(t.skipped) as SkippedRecord[]).map((r) => ({
        taskId: t.task_id,
        index: t.idx,
        input: t.input_key ?? '',
        line: r.line,
        text: r.text,
        error: r.error,
      })),
    ),
  };
}
