/**
 * stdout and stderr as a shell uses them. A reader that stops early (`tabreduce result JOB | head`)
 * closes the pipe: what it did not read is not wanted, so the command stops at once, silently, with
 * exit 0. (Node ignores SIGPIPE, so the write fails with EPIPE instead of ending the process as it
 * would end `cat`; unhandled, that is a stack and an 'error' event nobody listens to.)
 */
import { fsReason } from './files.js';

/** The error a write to a closed stdout gives, directly or through a stream piped into it. */
export function isClosedPipe(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException | null)?.code;
  if (code === 'EPIPE') return true;
  return (code === 'ERR_STREAM_DESTROYED' || code === 'ERR_STREAM_PREMATURE_CLOSE') && process.stdout.destroyed;
}

/**
 * Installs the handlers once, at start. Any other write error on stdout (a full disk behind
 * `> file`) is one line and exit 2. The master (`keepRunning`) is not stopped by its log's reader
 * going away: a restarted log collector must not take the volunteers' master down with it.
 */
export function guardStdio({ keepRunning = false } = {}): void {
  process.stdout.on('error', (e) => {
    if (keepRunning) return;
    if (isClosedPipe(e)) process.exit(0);
    process.stderr.write(`tabreduce: cannot write to stdout: ${fsReason(e)}\n`);
    process.exit(2);
  });
  // With stderr gone there is nobody left to tell; the exit code still says how it went.
  process.stderr.on('error', () => {});
}
