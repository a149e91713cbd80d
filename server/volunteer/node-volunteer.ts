/**
 * `tabreduce volunteer`: a headless volunteer with the same engine and protocol as a tab. Job code
 * runs in sandbox processes, one per thread, each a V8 isolate without Node APIs (sandbox-host.ts).
 */
import { fork } from 'node:child_process';
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
import type { TaskAssign } from '../../shared/protocol.js';
import type { TaskOutput } from '../../shared/task-runner.js';
import type { SandboxReply, SandboxTask } from './sandbox-host.js';

function hostScript(): string {
  const compiled = new URL('./sandbox-host.js', import.meta.url);
  if (existsSync(fileURLToPath(compiled))) return fileURLToPath(compiled);
  // Running from source (tsx): use the build, which `npm install` makes.
  return fileURLToPath(new URL('../../dist/server/volunteer/sandbox-host.js', import.meta.url));
}

/**
 * isolated-vm needs Node's own startup snapshot off (its README: V8's shared read-only heap breaks
 * when isolates in one process come from different snapshots). The flag is per process, one more
 * reason the sandbox is a child process rather than a worker thread.
 */
const SANDBOX_NODE_FLAGS = ['--no-node-snapshot'];

/** Bytes of a sandbox's stderr kept to explain a crash (V8 prints why it aborted there). */
const STDERR_TAIL = 4096;

function sandboxTask(task: TaskAssign): SandboxTask {
  const { lease, jobId, moduleUrl, phase, nReduce } = task;
  // One string crosses into the sandbox: a map's split as it came, a reduce's partitions as JSON text.
  if (task.phase === 'map')
    return { lease, jobId, moduleUrl, phase, nReduce, key: task.input.key, data: task.input.value };
  return { lease, jobId, moduleUrl, phase, nReduce, key: '', data: JSON.stringify(task.input) };
}

function sandboxWorker(base: string): PoolWorker {
  const child = fork(hostScript(), [base], {
    execArgv: SANDBOX_NODE_FLAGS,
    serialization: 'advanced',
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-STDERR_TAIL)));
  let ready = false;
  const waiting: SandboxTask[] = [];
  const pending = new Map<string, { resolve: (o: TaskOutput) => void; reject: (e: unknown) => void }>();
  const crash = (message: string) => {
    for (const p of pending.values()) p.reject(new TaskFailure('crashed', { name: 'SandboxCrashed', message }));
    pending.clear();
  };
  child.on('message', (m: SandboxReply | { type: 'ready' }) => {
    if ('type' in m) {
      ready = true;
      for (const t of waiting.splice(0)) child.send(t);
      return;
    }
    const p = pending.get(m.lease);
    if (!p) return;
    pending.delete(m.lease);
    if (m.ok) p.resolve({ outputJson: m.outputJson, stats: m.stats });
    else p.reject(new TaskFailure('threw', m.error));
  });
  child.on('error', (e) => crash(`the job's sandbox process failed: ${e.message}`));
  child.on('exit', (code, signal) => {
    // V8 says why it aborted on stderr: a fatal error (an invalid size, a heap it could not grow).
    const why = /Fatal JavaScript [^\n]*|FATAL ERROR: [^\n]*|[^\n]*out of memory[^\n]*/i.exec(stderr)?.[0];
    crash(
      `the job's sandbox process exited (${signal ?? `code ${code}`})` +
        (why ? `: ${why.trim()}` : signal === 'SIGABRT' ? ': V8 aborted, most likely out of memory' : ''),
    );
  });
  return {
    run(task) {
      return new Promise((resolve, reject) => {
        pending.set(task.lease, { resolve, reject });
        const message = sandboxTask(task);
        if (ready) child.send(message);
        else waiting.push(message);
      });
    },
    terminate() {
      child.removeAllListeners('exit');
      child.kill('SIGKILL');
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
  const pool = new WorkerPool(() => sandboxWorker(opts.server), opts.threads);
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
