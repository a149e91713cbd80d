/** `tabreduce volunteer`: a headless volunteer on worker threads, same engine and protocol as a tab. */
import { Worker } from 'node:worker_threads';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { WebSocket } from 'ws';
import {
  VolunteerSession,
  TaskFailure,
  type SessionSnapshot,
  type SocketLike,
} from '../../shared/volunteer-session.js';
import { WorkerPool, type PoolWorker } from '../../shared/worker-pool.js';
import type { SerializedError } from '../../shared/errors.js';
import type { TaskOutput } from '../../shared/task-runner.js';

function threadScript(): URL {
  const compiled = new URL('./thread.js', import.meta.url);
  if (existsSync(fileURLToPath(compiled))) return compiled;
  // Running from source (tsx): use the build, which `npm install` makes.
  return new URL('../../dist/server/volunteer/thread.js', import.meta.url);
}

function threadWorker(base: string): PoolWorker {
  const worker = new Worker(threadScript(), { workerData: { base } });
  const pending = new Map<string, { resolve: (o: TaskOutput) => void; reject: (e: unknown) => void }>();
  const crash = (message: string) => {
    for (const p of pending.values()) p.reject(new TaskFailure('crashed', { name: 'WorkerCrashed', message }));
    pending.clear();
  };
  worker.on('message', (m: { lease: string; ok: boolean; out?: TaskOutput; error?: SerializedError }) => {
    const p = pending.get(m.lease);
    if (!p) return;
    pending.delete(m.lease);
    if (m.ok) p.resolve(m.out!);
    else p.reject(new TaskFailure('threw', m.error!));
  });
  worker.on('error', (e) => crash(`the job's code crashed its worker: ${e.message}`));
  worker.on('exit', (code) => crash(`the job's worker exited (code ${code})`));
  return {
    run(task) {
      return new Promise((resolve, reject) => {
        pending.set(task.lease, { resolve, reject });
        worker.postMessage(task);
      });
    },
    terminate() {
      worker.removeAllListeners('exit');
      void worker.terminate();
    },
  };
}

export interface NodeVolunteerOptions {
  server: string;
  threads: number;
  prefetch?: number;
  log?: (line: string) => void;
  onChange?: (s: SessionSnapshot) => void;
}

export function wsUrl(server: string): string {
  const u = new URL(server);
  u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
  u.pathname = '/ws';
  u.search = '';
  return u.toString();
}

export function startNodeVolunteer(opts: NodeVolunteerOptions) {
  const pool = new WorkerPool(() => threadWorker(opts.server), opts.threads);
  let identity: { id: string; secret: string } | null = null;
  const session = new VolunteerSession({
    url: wsUrl(opts.server),
    threads: opts.threads,
    // A second task per thread waits in the pool, so a thread never idles for a round trip.
    prefetch: opts.prefetch ?? opts.threads,
    agent: `tabreduce-volunteer node/${process.versions.node}`,
    connect: (url) => new WebSocket(url, { maxPayload: 1024 ** 3 }) as unknown as SocketLike,
    executor: pool,
    identity: { load: () => identity, save: (id, secret) => (identity = { id, secret }) },
    log: opts.log,
    onChange: opts.onChange,
  });
  session.start();
  return {
    session,
    stop() {
      session.stop();
      pool.terminateAll();
    },
  };
}
