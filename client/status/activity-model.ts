/**
 * The whole of a big job at a glance, where the timeline can only draw its latest attempts: per
 * volunteer and per slice of the job's time, how much of the slice its attempts ran, by outcome.
 * Each attempt adds its overlap to the slices it spans, so the work is one pass over the attempts
 * plus the cells (200,000 attempts on 100 volunteers: a few tens of ms).
 */
import type { TaskView } from '../../shared/api.js';
import type { AttemptOutcome } from '../../shared/states.js';

/** Outcomes drawn, in the order a cell's colour is chosen when two have the same time. */
export const ACTIVITY_OUTCOMES = ['failed', 'lost', 'running', 'superseded', 'succeeded'] as const;
type Drawn = (typeof ACTIVITY_OUTCOMES)[number];
const INDEX: Partial<Record<AttemptOutcome, number>> = Object.fromEntries(ACTIVITY_OUTCOMES.map((o, i) => [o, i]));

export interface ActivityRow {
  /** A volunteer's id, or null for the row that sums every volunteer past the first `rows - 1`. */
  worker: string | null;
  /** How many volunteers the row stands for. */
  volunteers: number;
  /** Attempt time per slice and outcome: `ms[slice * ACTIVITY_OUTCOMES.length + outcome]`. */
  ms: Float64Array;
  /** Its busiest slice's attempt time, for scaling the row's shades. */
  peakMs: number;
  busyMs: number;
}

export interface Activity {
  t0: number;
  t1: number;
  slices: number;
  sliceMs: number;
  rows: ActivityRow[];
  attempts: number;
}

/**
 * `slices` slices of [t0, t1]; one row per volunteer, busiest first, the volunteers past `maxRows - 1`
 * summed in a last row. Running attempts run to `now`.
 */
export function activity(
  tasks: readonly TaskView[],
  t0: number,
  t1: number,
  now: number,
  slices: number,
  maxRows: number,
): Activity {
  const span = Math.max(1, t1 - t0);
  const sliceMs = span / slices;
  const k = ACTIVITY_OUTCOMES.length;
  const byWorker = new Map<string, { ms: Float64Array; busy: number }>();
  let attempts = 0;
  for (const t of tasks) {
    const list = t.attempts;
    for (let n = 0; n < list.length; n++) {
      const a = list[n]!;
      attempts++;
      const o = INDEX[a.outcome];
      if (o === undefined) continue;
      let w = byWorker.get(a.worker);
      if (!w) byWorker.set(a.worker, (w = { ms: new Float64Array(slices * k), busy: 0 }));
      const from = Math.max(t0, a.startedAt);
      const to = Math.min(t1, a.endedAt ?? now);
      if (to <= from) continue;
      w.busy += to - from;
      const first = Math.min(slices - 1, Math.floor((from - t0) / sliceMs));
      const last = Math.min(slices - 1, Math.floor((to - t0) / sliceMs));
      for (let s = first; s <= last; s++) {
        const lo = t0 + s * sliceMs;
        const overlap = Math.min(to, lo + sliceMs) - Math.max(from, lo);
        if (overlap > 0) w.ms[s * k + o]! += overlap;
      }
    }
  }
  const sorted = [...byWorker].sort((a, b) => b[1].busy - a[1].busy || (a[0] < b[0] ? -1 : 1));
  const own = sorted.length > maxRows ? sorted.slice(0, maxRows - 1) : sorted;
  const rows: ActivityRow[] = own.map(([worker, w]) => row(worker, 1, w.ms, w.busy, k));
  if (own.length < sorted.length) {
    const sum = new Float64Array(slices * k);
    let busy = 0;
    for (const [, w] of sorted.slice(own.length)) {
      for (let i = 0; i < sum.length; i++) sum[i]! += w.ms[i]!;
      busy += w.busy;
    }
    rows.push(row(null, sorted.length - own.length, sum, busy, k));
  }
  return { t0, t1, slices, sliceMs, rows, attempts };
}

function row(worker: string | null, volunteers: number, ms: Float64Array, busyMs: number, k: number): ActivityRow {
  let peakMs = 0;
  for (let s = 0; s < ms.length / k; s++) {
    let cell = 0;
    for (let o = 0; o < k; o++) cell += ms[s * k + o]!;
    peakMs = Math.max(peakMs, cell);
  }
  return { worker, volunteers, ms, peakMs, busyMs };
}

/** A cell's colour (the outcome with the most time in it) and its time in all, or null when idle. */
export function cellOf(r: ActivityRow, slice: number): { outcome: Drawn; ms: number } | null {
  const k = ACTIVITY_OUTCOMES.length;
  let best = -1;
  let total = 0;
  for (let o = 0; o < k; o++) {
    const v = r.ms[slice * k + o]!;
    total += v;
    if (v > 0 && (best === -1 || v > r.ms[slice * k + best]!)) best = o;
  }
  return best === -1 ? null : { outcome: ACTIVITY_OUTCOMES[best]!, ms: total };
}
