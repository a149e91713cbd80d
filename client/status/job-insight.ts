/**
 * What a job's page says about where its time went, from the tasks it already holds: per phase,
 * when it ran and how long its committed attempts took (min, median, p90, max); the stragglers by
 * name; and per volunteer, its share of the work and its rate. Two passes over the attempts and a
 * sort of the durations: 70-145 ms for 200,000 tasks in Node on the busy 2-core test box, so the page
 * works it out again at most every few seconds while a job runs (job-insight.svelte).
 */
import type { TaskView } from '../../shared/api.js';
import type { Phase } from '../../shared/states.js';

export interface Durations {
  min: number;
  p50: number;
  p90: number;
  max: number;
}

export interface PhaseInsight {
  phase: Phase;
  /** Tasks of the phase that committed. */
  committed: number;
  tasks: number;
  /** The first attempt's start; null before any. */
  startedAt: number | null;
  /** The last commit once every task of the phase committed; null until then. */
  endedAt: number | null;
  /** Of committed attempts, from assignment to result; null before the first. */
  durations: Durations | null;
}

export interface Straggler {
  taskId: number;
  phase: Phase;
  index: number;
  worker: string;
  ms: number;
  /** Still running: its time is counted up to now. */
  running: boolean;
}

export interface VolunteerShare {
  worker: string;
  /** Attempts it committed. */
  committed: number;
  /** Attempts that ended otherwise on it (failed, lost, superseded...). */
  other: number;
  /** Time its attempts ran, summed (several threads count several times). */
  busyMs: number;
  /** Committed attempts per second from its first start to its last end (or now while it works). */
  perSecond: number;
}

export interface JobInsight {
  phases: PhaseInsight[];
  /** From the last map commit to the first reduce start; null until both happened. */
  barrierMs: number | null;
  /** The slowest attempts that took more than STRAGGLER_FACTOR × their phase's median, slowest first. */
  stragglers: Straggler[];
  /** How many attempts are stragglers in all; `stragglers` names the first SHOW_STRAGGLERS. */
  stragglerCount: number;
  /** Volunteers by committed attempts, most first. */
  volunteers: VolunteerShare[];
}

/** A straggler took more than this many times its phase's median… */
export const STRAGGLER_FACTOR = 2;
/** …and at least this much longer: a 4 ms task that took 9 ms is not worth naming. */
export const STRAGGLER_MIN_EXTRA_MS = 500;
export const SHOW_STRAGGLERS = 5;

/** The value below which a fraction `q` of the sorted `xs` lie (nearest rank). */
function quantile(xs: Float64Array, q: number): number {
  return xs[Math.min(xs.length - 1, Math.max(0, Math.ceil(q * xs.length) - 1))]!;
}

function durationsOf(xs: number[]): Durations | null {
  if (xs.length === 0) return null;
  const sorted = Float64Array.from(xs).sort();
  return { min: sorted[0]!, p50: quantile(sorted, 0.5), p90: quantile(sorted, 0.9), max: sorted[sorted.length - 1]! };
}

export function jobInsight(tasks: readonly TaskView[], now: number): JobInsight {
  const perPhase = {
    map: { tasks: 0, committed: 0, start: Infinity, lastCommit: -Infinity, ms: [] as number[] },
    reduce: { tasks: 0, committed: 0, start: Infinity, lastCommit: -Infinity, ms: [] as number[] },
  };
  const workers = new Map<string, { committed: number; other: number; busyMs: number; first: number; last: number }>();
  for (const t of tasks) {
    const p = perPhase[t.phase];
    p.tasks++;
    for (const a of t.attempts) {
      p.start = Math.min(p.start, a.startedAt);
      const end = a.endedAt ?? now;
      let w = workers.get(a.worker);
      if (!w) workers.set(a.worker, (w = { committed: 0, other: 0, busyMs: 0, first: Infinity, last: -Infinity }));
      w.busyMs += Math.max(0, end - a.startedAt);
      w.first = Math.min(w.first, a.startedAt);
      w.last = Math.max(w.last, end);
      if (a.outcome === 'succeeded' && a.endedAt !== null) {
        p.committed++;
        p.lastCommit = Math.max(p.lastCommit, a.endedAt);
        p.ms.push(a.endedAt - a.startedAt);
        w.committed++;
      } else if (a.outcome !== 'running') {
        w.other++;
      }
    }
  }
  const phases: PhaseInsight[] = (['map', 'reduce'] as const).map((phase) => {
    const p = perPhase[phase];
    return {
      phase,
      committed: p.committed,
      tasks: p.tasks,
      startedAt: Number.isFinite(p.start) ? p.start : null,
      endedAt: p.tasks > 0 && p.committed === p.tasks ? p.lastCommit : null,
      durations: durationsOf(p.ms),
    };
  });
  const [maps, reduces] = phases as [PhaseInsight, PhaseInsight];
  const barrierMs = maps.endedAt !== null && reduces.startedAt !== null ? reduces.startedAt - maps.endedAt : null;

  const stragglers: Straggler[] = [];
  for (const t of tasks) {
    const median = phases[t.phase === 'map' ? 0 : 1]!.durations?.p50;
    if (median === undefined) continue;
    const over = Math.max(median * STRAGGLER_FACTOR, median + STRAGGLER_MIN_EXTRA_MS);
    for (const a of t.attempts) {
      if (a.outcome !== 'succeeded' && a.outcome !== 'running') continue;
      const ms = (a.endedAt ?? now) - a.startedAt;
      if (ms > over) {
        stragglers.push({
          taskId: t.id,
          phase: t.phase,
          index: t.index,
          worker: a.worker,
          ms,
          running: a.endedAt === null,
        });
      }
    }
  }
  stragglers.sort((a, b) => b.ms - a.ms || a.taskId - b.taskId);

  const volunteers: VolunteerShare[] = [...workers].map(([worker, w]) => ({
    worker,
    committed: w.committed,
    other: w.other,
    busyMs: w.busyMs,
    perSecond: w.last > w.first ? (w.committed * 1000) / (w.last - w.first) : 0,
  }));
  volunteers.sort((a, b) => b.committed - a.committed || a.worker.localeCompare(b.worker));
  return {
    phases,
    barrierMs,
    stragglers: stragglers.slice(0, SHOW_STRAGGLERS),
    stragglerCount: stragglers.length,
    volunteers,
  };
}
