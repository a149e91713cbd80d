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
  readyText,
  TaskFailure,
  type ReadyTask,
  type SessionSnapshot,
  type SocketLike,
} from '../../shared/volunteer-session.js';
import { WorkerPool, type PoolWorker } from '../../shared/worker-pool.js';
import { loadWithRetries, skipOptionsOf, type TaskOutput } from '../../shared/task-runner.js';
import { serializeError } from '../../shared/errors.js';
import type { FromSandbox, SandboxTask, ToSandbox } from './sandbox-protocol.js';

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

function sandboxTask(task: ReadyTask): SandboxTask {
  const { lease, jobId, moduleUrl, phase, nReduce } = task;
  // One string crosses into the sandbox as it came: a map's split, a reduce's records text.
  const key = task.phase === 'map' ? task.input.key : '';
  const skip = skipOptionsOf(task);
  return {
    type: 'task',
    lease,
    jobId,
    moduleUrl,
    phase,
    nReduce,
    key,
    data: readyText(task),
    skipBadRecords: skip?.skipBadRecords ?? 0,
    firstLine: skip?.firstLine ?? 1,
  };
}

/** Gives a job module's text and full URL for its path on the master. */
export type ModuleSource = (moduleUrl: string) => Promise<{ url: string; source: string }>;

/**
 * Job modules fetched from the master by the volunteer, trusted code, once per job for all its
 * sandboxes; a failed fetch is forgotten so the next task tries again.
 */
export function moduleSource(base: string): ModuleSource {
  const cache = new Map<string, Promise<{ url: string; source: string }>>();
  const load = async (url: string) => {
    // A failed fetch (TypeError) is retried: the master may be restarting.
    const res = await loadWithRetries(() => fetch(url));
    if (!res.ok) throw new Error(`could not load the job module from ${new URL(url).pathname}: HTTP ${res.status}`);
    return { url, source: await res.text() };
  };
  return (moduleUrl) => {
    let p = cache.get(moduleUrl);
    if (!p) {
      p = load(new URL(moduleUrl, base).href);
      p.catch(() => cache.delete(moduleUrl));
      cache.set(moduleUrl, p);
      // A volunteer may serve many jobs over a day; keep the newest few.
      if (cache.size > 16) cache.delete(cache.keys().next().value!);
    }
    return p;
  };
}

/**
 * A PoolWorker whose tasks run in a new sandbox process, which gets job modules from `source`.
 * `cannotStart` hears why, if the process ends before it is ready: no job could run there.
 */
export function sandboxWorker(source: ModuleSource, cannotStart: (why: string) => void = () => {}): PoolWorker {
  const child = fork(hostScript(), [], {
    execArgv: SANDBOX_NODE_FLAGS,
    // V8's serializer copies strings as they are: a 4 MiB split crosses and comes back in 11 ms of
    // CPU instead of 47 ms as JSON, for 50 µs more on a 1 KiB task (measured on this 2-core box).
    serialization: 'advanced',
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
  });
  const send = (m: ToSandbox) => {
    if (child.connected) child.send(m);
  };
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-STDERR_TAIL)));
  let ready = false;
  const waiting: SandboxTask[] = [];
  const pending = new Map<string, { resolve: (o: TaskOutput) => void; reject: (e: unknown) => void }>();
  const crash = (message: string) => {
    for (const p of pending.values()) p.reject(new TaskFailure('crashed', { name: 'SandboxCrashed', message }));
    pending.clear();
  };
  child.on('message', (m: FromSandbox) => {
    if (m.type === 'ready') {
      ready = true;
      for (const t of waiting.splice(0)) send(t);
    } else if (m.type === 'source.get') {
      source(m.moduleUrl).then(
        ({ url, source }) => send({ type: 'source', id: m.id, ok: true, url, source }),
        (e: unknown) => send({ type: 'source', id: m.id, ok: false, error: serializeError(e) }),
      );
    } else {
      const p = pending.get(m.lease);
      if (!p) return;
      pending.delete(m.lease);
      if (m.ok) p.resolve({ output: m.output, stats: m.stats });
      else p.reject(new TaskFailure('threw', m.error));
    }
  });
  child.on('error', (e) => crash(`the job's sandbox process failed: ${e.message}`));
  child.on('exit', (code, signal) => {
    if (!ready)
      cannotStart(`exit ${signal ?? code}: ${stderr.trim().split('\n').slice(-6).join('\n') || 'no message'}`);
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
        if (ready) send(message);
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
  // A sandbox takes about 0.3 s to start (a Node process without its snapshot, then isolated-vm),
  // seconds on a loaded box: one per thread starts once the volunteer has joined (not before, so
  // joining is not slowed), rather than at the first task. Later ones (after a runaway was stopped)
  // start when needed.
  const source = moduleSource(opts.server);
  const ready: PoolWorker[] = [];
  let started = false;
  // A sandbox that dies before it is ready (isolated-vm built for another Node, say) means no job
  // can run here: taking tasks would only fail them. Say why and stop.
  const cannotStart = (why: string) => {
    if (session.snapshot().state === 'stopped') return;
    (opts.log ?? console.error)(
      `cannot start the job sandbox, so not volunteering (after a Node upgrade, run npm rebuild isolated-vm):\n${why}`,
    );
    process.exitCode = 1;
    stop();
  };
  const sandbox = () => sandboxWorker(source, cannotStart);
  const pool = new WorkerPool(() => ready.shift() ?? sandbox(), opts.threads);
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
    onChange: (snapshot) => {
      if (snapshot.state === 'connected' && !started) {
        started = true;
        for (let i = pool.size(); i < opts.threads; i++) ready.push(sandbox());
      }
      opts.onChange?.(snapshot);
    },
  });
  const stop = () => {
    session.stop();
    pool.terminateAll();
    for (const worker of ready.splice(0)) worker.terminate();
  };
  session.start();
  return { session, stop };
}
