/** Numbers and times as the status page shows them. */
import { formatBytes, formatDuration } from '../../shared/units.js';
import { describeError } from '../../shared/errors.js';

export { formatBytes, formatDuration };

const integer = new Intl.NumberFormat('en-US');

export function formatCount(n: number): string {
  return integer.format(n);
}

/** "3.2s ago"; a clock a little ahead of the master's never shows a negative age. */
export function formatAge(then: number, now: number): string {
  return `${formatDuration(Math.max(0, now - then))} ago`;
}

export function formatClock(ms: number): string {
  return new Date(ms).toLocaleTimeString([], { hour12: false });
}

/** Volunteer ids are 16 hex digits; eight tell them apart on one screen. */
export function shortId(id: string): string {
  return id.length > 8 ? id.slice(0, 8) : id;
}

export function percent(done: number, total: number): number {
  return total === 0 ? 0 : Math.min(100, (done / total) * 100);
}

/**
 * A module loaded from a data: URL puts its whole base64 source into every stack frame; a stack
 * reads better with the name of the job module there instead.
 */
export function tidyStack(text: string): string {
  return text.replace(/data:text\/javascript;base64,[A-Za-z0-9+/=]+/g, 'job-module.js');
}

/** An attempt's error as one block, its stack naming the job module. */
export function errorText(e: { name: string; message: string; stack?: string }): string {
  return describeError({ ...e, stack: e.stack && tidyStack(e.stack) });
}
