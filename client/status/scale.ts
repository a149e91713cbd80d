/** Axis arithmetic for the page's two SVG charts (the throughput plot and the timeline). */

/** The smallest 1, 2 or 5 × 10^n at or above `x`, so axis labels are round numbers. */
export function niceCeil(x: number): number {
  if (!(x > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(x));
  for (const m of [1, 2, 5, 10]) if (m * p >= x * (1 - 1e-9)) return m * p;
  return 10 * p;
}

/** A step in milliseconds that puts about `count` ticks across `spanMs`. */
export function timeStep(spanMs: number, count: number): number {
  const steps = [
    10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 15_000, 30_000, 60_000, 120_000, 300_000, 600_000, 900_000,
    1_800_000, 3_600_000,
  ];
  const raw = spanMs / Math.max(1, count);
  return steps.find((s) => s >= raw) ?? 3_600_000 * Math.ceil(raw / 3_600_000);
}

/** "0s", "1m30s", "250ms": labels for offsets from the start of a job. */
export function offsetLabel(ms: number, step: number): string {
  if (step < 100) return `${Math.round(ms)}ms`;
  if (step < 1000) return `${(ms / 1000).toFixed(1)}s`;
  const s = Math.round(ms / 1000);
  if (s < 60 || step < 60_000) return s < 60 ? `${s}s` : `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  const m = Math.round(s / 60);
  return m < 60 ? `${m}m` : `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

/**
 * A span at least 5% longer than `ms`, from 1, 1.5, 2, 3, 5 or 7.5 × 10^n: a live axis that has
 * room to grow and so is redrawn only when the job outgrows it, leaving at most 40% of it empty.
 */
export function roomySpan(ms: number): number {
  const need = Math.max(100, ms * 1.05);
  const p = 10 ** Math.floor(Math.log10(need));
  for (const m of [1, 1.5, 2, 3, 5, 7.5, 10]) if (m * p >= need) return m * p;
  return 10 * p;
}
