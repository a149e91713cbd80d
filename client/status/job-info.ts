/** What the page derives from a JobView, in one place so the list and the job page agree. */
import { estimateRemainingMs, type JobView, type WorkerView } from '../../shared/api.js';
import { formatDuration } from './format.js';

export function isActive(job: JobView): boolean {
  return job.state === 'queued' || job.state === 'mapping' || job.state === 'reducing';
}

export function elapsedText(job: JobView, now: number): string {
  return formatDuration(Math.max(0, (job.finishedAt ?? now) - job.createdAt));
}

export function etaText(job: JobView, now: number): string {
  const ms = estimateRemainingMs(job, now);
  if (ms !== null) return formatDuration(ms);
  return isActive(job) ? '…' : '—';
}

export type BarTone = 'running' | 'succeeded' | 'failed' | 'cancelled' | 'idle';

/**
 * The colour of a phase's bar: green when that phase is complete, red when the job failed in it,
 * grey when an admin cancelled it (a choice, not a fault).
 */
export function barTone(job: JobView, phase: 'map' | 'reduce'): BarTone {
  const part = phase === 'map' ? job.maps : job.reduces;
  if (part.total > 0 && part.done >= part.total) return 'succeeded';
  if (job.state === 'failed' || job.state === 'cancelled') return job.state;
  if ((phase === 'map' && job.state === 'mapping') || (phase === 'reduce' && job.state === 'reducing'))
    return 'running';
  return 'idle';
}

/** The first line of a failure reason; the job page shows the rest. */
export function firstLine(text: string): string {
  const nl = text.indexOf('\n');
  return nl === -1 ? text : text.slice(0, nl);
}

/**
 * Why a running job cannot move, when the page can tell: nobody to run its tasks. Null while some
 * volunteer is connected and not paused, and for a job that has ended.
 */
export function stallText(job: JobView, workers: WorkerView[], volunteerUrl: string): string | null {
  if (!isActive(job)) return null;
  const connected = workers.filter((w) => w.state !== 'disconnected');
  if (connected.length === 0) return `no volunteers connected: open ${volunteerUrl} in a browser`;
  if (connected.every((w) => w.state === 'paused')) return `every volunteer is paused: resume one at ${volunteerUrl}`;
  return null;
}
