/** What the page derives from a JobView, in one place so the list and the job page agree. */
import { estimateRemainingMs, type JobView } from '../../shared/api.js';
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

/** The colour of a phase's bar: green when that phase is complete, red when the job died in it. */
export function barTone(job: JobView, phase: 'map' | 'reduce'): 'running' | 'succeeded' | 'failed' | 'idle' {
  const part = phase === 'map' ? job.maps : job.reduces;
  if (part.total > 0 && part.done >= part.total) return 'succeeded';
  if (job.state === 'failed' || job.state === 'cancelled') return 'failed';
  if ((phase === 'map' && job.state === 'mapping') || (phase === 'reduce' && job.state === 'reducing'))
    return 'running';
  return 'idle';
}

/** The first line of a failure reason; the job page shows the rest. */
export function firstLine(text: string): string {
  const nl = text.indexOf('\n');
  return nl === -1 ? text : text.slice(0, nl);
}
