/**
 * Checkpoints the master's WAL from a worker thread. SQLite's automatic checkpoint runs inside the
 * COMMIT that crosses its threshold, on the event loop: under load it was 9% of the main thread (two
 * thirds of that in fsync) and stalled task assignment for tens of milliseconds each time (perf).
 * The master opens its database with `checkpointElsewhere` (db.ts) so that its own checkpoint only
 * runs as a safety net.
 */
import { Worker } from 'node:worker_threads';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { toError } from '../shared/errors.js';

/**
 * A checkpoint costs two fsyncs (WAL, then database file) however few pages it copies, and under
 * sustained load the writer's safety checkpoint (db.ts) copies what arrived since this thread's last
 * one. Once a second holds this thread to two fsyncs a second and that remainder to a second of
 * writes: the writer then checkpoints once per 20,000 pages, copying at most a second's worth,
 * instead of every 1,000 pages copying all of them.
 */
const INTERVAL_MS = 1_000;
/** A thread that dies at once (say, the database cannot be opened) is retried at most once a minute. */
const FIRST_RESTART_MS = 1_000;
const MAX_RESTART_MS = 60_000;

/** What the worker thread gets (see wal-checkpointer-worker.ts). */
export interface CheckpointerData {
  dbPath: string;
  intervalMs: number;
}

/** What the worker thread sends: a line for the master's log. */
export interface CheckpointerReport {
  log: string;
}

export interface CheckpointerOptions {
  log: (line: string) => void;
  intervalMs?: number;
}

export interface Checkpointer {
  /** Ends the thread (after the checkpoint in progress, if any) and resolves once it has exited. */
  stop(): Promise<void>;
}

/** The thread, compiled beside this module in `dist/`, or from source under tsx (as the tests run). */
function spawn(data: CheckpointerData): Worker {
  const compiled = new URL('./wal-checkpointer-worker.js', import.meta.url);
  if (existsSync(fileURLToPath(compiled))) return new Worker(compiled, { workerData: data });
  // A Worker inherits `--import tsx`, but on Node 20 tsx registers its loader on the main thread only,
  // so the thread registers it itself before importing the TypeScript. No execArgv: where tsx does
  // register in workers, it would be registered twice.
  const source = new URL('./wal-checkpointer-worker.ts', import.meta.url).href;
  const tsx = import.meta.resolve('tsx/esm/api');
  const boot = `import(${JSON.stringify(tsx)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(source)}); });`;
  return new Worker(boot, { eval: true, execArgv: [], workerData: data });
}

/**
 * Starts the thread. Its errors are logged and never thrown here. If it exits without being asked,
 * it is started again after a delay that doubles while it keeps dying young; meanwhile the writer's
 * own checkpoint (db.ts) keeps the WAL bounded.
 */
export function startCheckpointer(dbPath: string, opts: CheckpointerOptions): Checkpointer {
  const data: CheckpointerData = { dbPath, intervalMs: opts.intervalMs ?? INTERVAL_MS };
  let worker: Worker | null = null;
  let restartTimer: NodeJS.Timeout | undefined;
  let restartMs = FIRST_RESTART_MS;
  let stopping = false;

  function restart(why: string): void {
    opts.log(`${why}; restarting it in ${restartMs / 1000}s, the master checkpoints by itself meanwhile`);
    restartTimer = setTimeout(start, restartMs);
    restartMs = Math.min(restartMs * 2, MAX_RESTART_MS);
  }
  function start(): void {
    const startedAt = performance.now();
    let w: Worker;
    try {
      w = spawn(data);
    } catch (e) {
      restart(`the WAL checkpointer thread could not start: ${toError(e).message}`);
      return;
    }
    worker = w;
    w.on('message', (r: CheckpointerReport) => opts.log(r.log));
    w.on('error', (e) => opts.log(`the WAL checkpointer thread failed: ${toError(e).stack}`));
    w.on('exit', (code) => {
      worker = null;
      if (stopping) return;
      if (performance.now() - startedAt > MAX_RESTART_MS) restartMs = FIRST_RESTART_MS;
      restart(`the WAL checkpointer thread exited (code ${code})`);
    });
  }
  start();

  return {
    async stop() {
      stopping = true;
      clearTimeout(restartTimer);
      const w = worker;
      if (!w) return;
      await new Promise<void>((ok) => {
        w.once('exit', () => ok());
        w.postMessage('stop');
      });
    },
  };
}
