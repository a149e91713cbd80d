import { formatDuration } from '../../shared/units.js';
import type { JobView } from '../views.js';
import { apiJson, type AdminTarget } from './admin-client.js';
import { isJobFinished } from '../states.js';

const POLL_MS = 500;
/** Without a TTY, a progress line at most this often (and on every state change). */
const PLAIN_EVERY_MS = 5_000;

function bar(done: number, total: number, width: number): string {
  const filled = total === 0 ? width : Math.round((done / total) * width);
  return `${'█'.repeat(filled)}${'░'.repeat(width - filled)}`;
}

/** Remaining time from the rate so far: maps and reduces weighted equally per task. */
export function eta(job: JobView, now: number): string {
  const total = job.maps.total + job.reduces.total;
  const done = job.maps.done + job.reduces.done;
  if (done === 0 || done >= total) return '--';
  const elapsed = now - job.createdAt;
  return formatDuration((elapsed / done) * (total - done));
}

export function progressLine(job: JobView, volunteers: number, now: number, tty: boolean): string {
  const elapsed = formatDuration((job.finishedAt ?? now) - job.createdAt);
  const maps = `maps ${job.maps.done}/${job.maps.total}`;
  const reduces = `reduces ${job.reduces.done}/${job.reduces.total}`;
  if (!tty)
    return `${job.id} ${job.state} ${maps} ${reduces} elapsed ${elapsed} eta ${eta(job, now)} volunteers ${volunteers}`;
  const width = 20;
  return (
    `${job.state.padEnd(9)} map ${bar(job.maps.done, job.maps.total, width)} ${job.maps.done}/${job.maps.total}` +
    `  reduce ${bar(job.reduces.done, job.reduces.total, 10)} ${job.reduces.done}/${job.reduces.total}` +
    `  ${elapsed} eta ${eta(job, now)}  ${volunteers} volunteer${volunteers === 1 ? '' : 's'}`
  );
}

/**
 * Waits for a job to finish, drawing progress on stderr (a live bar on a TTY, a line every few
 * seconds otherwise). Ctrl-C stops waiting, not the job, and says how to come back.
 */
export async function waitForJob(t: AdminTarget, id: string, quiet = false): Promise<JobView> {
  const tty = process.stderr.isTTY === true && !quiet;
  let lastPlain = 0;
  let lastState = '';
  const onSigint = () => {
    if (tty) process.stderr.write('\n');
    process.stderr.write(`stopped waiting; job ${id} keeps running. Reattach with: tabreduce wait ${id}\n`);
    process.exit(130);
  };
  process.once('SIGINT', onSigint);
  try {
    for (;;) {
      const job = await apiJson<JobView>(t, `/api/jobs/${encodeURIComponent(id)}`);
      const now = Date.now();
      if (!quiet) {
        let volunteers = 0;
        try {
          volunteers = (await apiJson<{ state: string }[]>(t, '/api/workers')).filter(
            (w) => w.state !== 'disconnected',
          ).length;
        } catch {
          // the count is decoration; the job state is what matters
        }
        const line = progressLine(job, volunteers, now, tty);
        if (tty) process.stderr.write(`\r\x1b[2K${line}`);
        else if (job.state !== lastState || now - lastPlain >= PLAIN_EVERY_MS) {
          process.stderr.write(`${line}\n`);
          lastPlain = now;
        }
        lastState = job.state;
      }
      if (isJobFinished(job.state)) {
        if (tty) process.stderr.write('\n');
        return job;
      }
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  } finally {
    process.removeListener('SIGINT', onSigint);
  }
}
