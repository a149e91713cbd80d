import type { ThroughputSample } from '../../shared/api.js';

/** Samples kept for the throughput plot: the master keeps ten minutes, so do we. */
export const KEEP_THROUGHPUT_MS = 10 * 60_000;

/**
 * The master sends its whole window when the stream opens, then only the seconds that changed;
 * a sample for a second already held replaces it.
 */
export function mergeSamples(held: ThroughputSample[], fresh: ThroughputSample[]): ThroughputSample[] {
  if (fresh.length === 0) return held;
  const byT = new Map(held.map((s) => [s.t, s]));
  for (const s of fresh) byT.set(s.t, s);
  const cutoff = Math.max(...byT.keys()) - KEEP_THROUGHPUT_MS;
  return [...byT.values()].filter((s) => s.t >= cutoff).sort((a, b) => a.t - b.t);
}
