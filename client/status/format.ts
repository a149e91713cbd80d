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

/** To the millisecond, for attempts: two of a fast job's often start within the same second. */
export function formatClockMs(ms: number): string {
  return new Date(ms).toLocaleTimeString([], {
    hour12: false,
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
    fractionalSecondDigits: 3,
  });
}

/** Volunteer ids are 16 hex digits; eight tell them apart on one screen. */
export function shortId(id: string): string {
  return id.length > 8 ? id.slice(0, 8) : id;
}

/** Names volunteers by the name each one's visitor chose, else by the start of its id. */
export function volunteerNamer(workers: readonly { id: string; name: string | null }[]): (id: string) => string {
  const names = new Map<string, string>();
  for (const w of workers) if (w.name) names.set(w.id, w.name);
  return (id) => names.get(id) ?? shortId(id);
}

export function percent(done: number, total: number): number {
  return total === 0 ? 0 : Math.min(100, (done / total) * 100);
}

/** A frame of tabreduce's own code: the tab's bundled worker (minified names) or the Node volunteer's engine. */
const PLATFORM_FRAME = /^\s+at .*(?:\/assets\/[\w.-]+\.js|tabreduce:[\w.-]+\.js):\d+:\d+\)?$/;
const FRAME = /^\s+at /;

/**
 * A stack as a job's author reads it. A module loaded from a data: URL puts its whole base64 source
 * into every frame: the job module's name stands there instead. And when the stack has frames of
 * the job's code, each run of tabreduce's own frames below them (`at B (…/assets/worker-….js:6:5200)`)
 * is one line, so the author's frames are not buried; a stack with none of the job's frames is a
 * fault of ours and is kept whole.
 */
export function tidyStack(text: string): string {
  const lines = text.replace(/data:text\/javascript;base64,[A-Za-z0-9+/=]+/g, 'job-module.js').split('\n');
  if (!lines.some((l) => FRAME.test(l) && !PLATFORM_FRAME.test(l))) return lines.join('\n');
  const out: string[] = [];
  let run = 0;
  const flush = () => {
    if (run > 0) out.push(`    at … (${run} frame${run === 1 ? '' : 's'} of tabreduce's own code)`);
    run = 0;
  };
  for (const line of lines) {
    if (PLATFORM_FRAME.test(line)) {
      run++;
    } else {
      flush();
      out.push(line);
    }
  }
  flush();
  return out.join('\n');
}

/** An attempt's error as one block, its stack naming the job module. */
export function errorText(e: { name: string; message: string; stack?: string }): string {
  return describeError({ ...e, stack: e.stack && tidyStack(e.stack) });
}
