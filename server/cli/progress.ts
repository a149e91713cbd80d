import { formatDuration } from '../../shared/units.js';
import { estimateRemainingMs, type JobView } from '../../shared/api.js';
import type { AdminTarget } from './admin-client.js';
import { MasterUnreachableError } from '../client/index.js';
import { isJobFinished } from '../../shared/states.js';

const POLL_MS = 500;
/**
 * Without a TTY, a progress line this often while volunteers are connected, and one at once when the
 * state or the number of volunteers changes. With none connected nothing moves: the hint to open
 * the volunteer page is given once instead.
 */
const PLAIN_EVERY_MS = 5_000;
/**
 * How long `wait` rides out a master that stopped answering, or that is not up yet when it starts
 * (a script that starts the master and the waiter together). The master is built to be restarted
 * (even after SIGKILL) and resumes its jobs; a restart takes a second or two, so two minutes covers
 * an operator's restart without hanging a script forever on a master that is gone.
 */
export const UNREACHABLE_GRACE_MS = 120_000;

function bar(done: number, total: number, width: number): string {
  const filled = total === 0 ? width : Math.min(width, Math.round((done / total) * width));
  return `${'█'.repeat(filled)}${'░'.repeat(width - filled)}`;
}

export function eta(job: JobView, now: number): string {
  const ms = estimateRemainingMs(job, now);
  return ms === null ? '--' : formatDuration(ms);
}

/**
 * One line of progress. Plain (not a TTY): every fact as `name value`, for logs and scripts.
 * On a TTY: bars that take the room the terminal has; parts are dropped, least useful first, so
 * the line never wraps (a wrapped line cannot be redrawn in place with `\r`).
 */
export function progressLine(job: JobView, volunteers: number, now: number, tty: boolean, columns = 80): string {
  const elapsed = formatDuration((job.finishedAt ?? now) - job.createdAt);
  if (!tty)
    return `${job.id} ${job.state} maps ${job.maps.done}/${job.maps.total} reduces ${job.reduces.done}/${job.reduces.total} elapsed ${elapsed} eta ${eta(job, now)} volunteers ${volunteers}`;
  // Stay one column short of the edge: some terminals wrap when the last column is written.
  const room = Math.max(20, columns - 1);
  const state = job.state.padEnd(9);
  // Fixed widths, so the bars do not jump about as the numbers grow.
  const maps = `${String(job.maps.done).padStart(String(job.maps.total).length)}/${job.maps.total}`;
  const reduces = `${String(job.reduces.done).padStart(String(job.reduces.total).length)}/${job.reduces.total}`;
  const time = `${elapsed.padStart(5)} eta ${eta(job, now).padStart(5)}`;
  const tails = [
    `  ${time}  ${volunteers} volunteer${volunteers === 1 ? '' : 's'}`,
    `  ${time}  ${volunteers} vol`,
    `  ${time}`,
    '',
  ];
  for (const tail of tails) {
    const free = room - `${state} map  ${maps}  reduce  ${reduces}${tail}`.length;
    if (free < 16) continue;
    // Maps usually outnumber reduces by far; their bar gets two thirds of the room, at most 30.
    const mapW = Math.min(30, Math.floor((free * 2) / 3));
    const reduceW = Math.min(15, free - mapW);
    return `${state} map ${bar(job.maps.done, job.maps.total, mapW)} ${maps}  reduce ${bar(job.reduces.done, job.reduces.total, reduceW)} ${reduces}${tail}`;
  }
  return `${state} maps ${maps} reduces ${reduces} ${time}`.replace(/ +/g, ' ').slice(0, room);
}

/** What to do about a job that waits because no volunteer is connected. */
export function noVolunteerHint(server: string, id: string): string {
  return `no volunteer is connected, so job ${id} waits: open ${server}/ in a browser to volunteer, or run \`tabreduce volunteer --server ${server}\``;
}

/**
 * Waits for a job to finish, drawing progress on stderr (a live bar on a TTY, a line every few
 * seconds otherwise). Ctrl-C stops waiting, not the job, and says how to come back. A master that
 * stops answering mid-wait (a restart) is waited for, up to UNREACHABLE_GRACE_MS; so is one that
 * has not answered yet, up to UNREACHABLE_GRACE_MS from the start.
 */
export async function waitForJob(t: AdminTarget, id: string, quiet = false): Promise<JobView> {
  const out = process.stderr;
  const tty = out.isTTY === true && !quiet;
  let lastPlain = 0;
  let lastState = '';
  /** The state and volunteer count the last plain line gave: a change is worth a line at once. */
  let lastFacts = '';
  /** Whether the hint to open the volunteer page was given since the last volunteer left. */
  let hinted = false;
  const startedAt = Date.now();
  let unreachableSince: number | null = null;
  let drawn = false;
  /** Ends a drawn bar with a newline, so what follows (an error, the outcome) starts clean. */
  const endLine = () => {
    if (tty && drawn) out.write('\n');
    drawn = false;
  };
  const onSigint = () => {
    // On a terminal the line holds the bar or the echoed ^C: start a fresh one either way.
    if (tty) out.write('\n\x1b[?25h');
    drawn = false;
    out.write(`stopped waiting; job ${id} keeps running. Reattach with: tabreduce wait ${id}\n`);
    process.exit(130);
  };
  process.once('SIGINT', onSigint);
  // The bar redraws twice a second; a blinking cursor at its end only flickers. It comes back
  // however the process ends, a closed stdout's exit included.
  const showCursor = () => out.write('\x1b[?25h');
  if (tty) {
    out.write('\x1b[?25l');
    process.once('exit', showCursor);
  }
  try {
    for (;;) {
      let job: JobView;
      try {
        job = await t.client.job(id);
      } catch (e) {
        if (!(e instanceof MasterUnreachableError)) throw e;
        const reached = lastState !== '';
        const first = unreachableSince === null;
        unreachableSince ??= reached ? Date.now() : startedAt;
        const unreachableFor = Date.now() - unreachableSince;
        if (unreachableFor > UNREACHABLE_GRACE_MS) throw e;
        const line = reached
          ? `master unreachable for ${formatDuration(unreachableFor)}; still waiting for job ${id} (Ctrl-C to stop)`
          : `waiting for the master at ${t.server} to answer (${formatDuration(unreachableFor)} so far, up to ${formatDuration(UNREACHABLE_GRACE_MS)}); job ${id} (Ctrl-C to stop)`;
        if (tty) {
          out.write(`\r\x1b[2K${line.slice(0, (out.columns ?? 80) - 1)}`);
          drawn = true;
        } else if (first || Date.now() - lastPlain >= PLAIN_EVERY_MS) {
          out.write(`${line}\n`);
          lastPlain = Date.now();
        }
        await new Promise((r) => setTimeout(r, POLL_MS * 2));
        continue;
      }
      unreachableSince = null;
      const now = Date.now();
      if (!quiet) {
        let volunteers: number | null = null;
        try {
          volunteers = (await t.client.workers()).filter((w) => w.state !== 'disconnected').length;
        } catch {
          // the count is decoration; the job state is what matters
        }
        // With nobody to run it the job only waits: say once what to do, not "volunteers 0" forever.
        if (volunteers === 0 && !hinted && !isJobFinished(job.state)) {
          out.write(`${drawn ? '\r\x1b[2K' : ''}${noVolunteerHint(t.server, id)}\n`);
          drawn = false;
          hinted = true;
        } else if (volunteers !== null && volunteers > 0) {
          hinted = false;
        }
        const line = progressLine(job, volunteers ?? 0, now, tty, out.columns ?? 80);
        const facts = `${job.state} ${volunteers}`;
        if (tty) {
          out.write(`\r\x1b[2K${line}`);
          drawn = true;
        } else if (facts !== lastFacts || (volunteers !== 0 && now - lastPlain >= PLAIN_EVERY_MS)) {
          out.write(`${line}\n`);
          lastPlain = now;
          lastFacts = facts;
        }
      }
      lastState = job.state;
      if (isJobFinished(job.state)) return job;
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  } finally {
    endLine();
    if (tty) {
      process.removeListener('exit', showCursor);
      showCursor();
    }
    process.removeListener('SIGINT', onSigint);
  }
}
