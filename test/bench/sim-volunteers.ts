/**
 * A load-generator child process: thousands of simulated volunteers on real WebSockets to one master.
 * Forked by sim-fleet.ts and driven over IPC; it exits when its parent goes away or after a hard
 * deadline, so a crashed benchmark leaves no sockets behind.
 *
 * Two kinds of volunteer:
 * - `raw`: speaks the protocol by hand (hello, heartbeat, task.result), one socket each, and times
 *   how long the master takes to assign the next task after each result. Never reconnects.
 * - `session`: the real `VolunteerSession` (reconnect backoff with full jitter, kept leases, resent
 *   results) with an in-process executor, as the recovery benchmark needs the real policy.
 *
 * Either computes real output with the shared engine and the word-count example: on the tiny inputs
 * of the load benchmarks that costs microseconds, and the job's output can be checked against
 * `tabreduce local`.
 */
import { WebSocket } from 'ws';
import { PROTOCOL_VERSION, type MasterMessage, type TaskAssign } from '../../shared/protocol.js';
import { runTask, taskInput } from '../../shared/task-runner.js';
import { asJobModule } from '../../shared/engine.js';
import {
  TaskFailure,
  VolunteerSession,
  httpOrigin,
  readyText,
  type Executor,
  type SocketLike,
} from '../../shared/volunteer-session.js';

export interface SimStart {
  type: 'start';
  mode: 'raw' | 'session';
  /** ws://host:port/ws */
  url: string;
  count: number;
  threads: number;
  slots: number;
  /**
   * How long each task "computes" before its result goes out. Session mode: exactly this. Raw mode:
   * uniform in [0.5, 1.5] x workMs, so 10,000 volunteers offer a steady 10,000 / workMs tasks/s
   * rather than waves, and (at 5 s) no task nears the default 10 s task timeout.
   */
  workMs: number;
  /** Handshakes in flight at once while connecting (raw mode). */
  concurrency: number;
}

/** `progress` answers with counters only: cheap enough to ask every 250 ms while the master is loaded. */
export type ParentMessage = SimStart | { type: 'stats' } | { type: 'progress' } | { type: 'stop' };

export interface SimStats {
  /** Sockets that got `welcome`. */
  connected: number;
  /** Connected now. */
  open: number;
  failedToConnect: number;
  closedByMaster: Record<string, number>;
  errors: number;
  assigns: number;
  results: number;
  acks: Record<string, number>;
  cancels: number;
  errorReplies: number;
  /** Raw mode: ms from a result sent to the next task.assign on the same socket. */
  nextAssignMs: number[];
  /** Epoch ms of each socket's first task.assign. */
  firstAssignAt: number[];
  /** Epoch ms of every `task.ack committed`. */
  commitAt: number[];
  /** Epoch ms of every transition to connected (session mode: includes reconnects). */
  connectedAt: number[];
  /** Epoch ms when the connect phase of `start` finished. */
  connectDoneAt: number;
}

/** The child stops itself after this long whatever happens: every benchmark is bounded. */
const HARD_DEADLINE_MS = 6 * 60_000;

const mod = asJobModule(
  (await import(new URL('../../shared/examples/word-count.js', import.meta.url).href)) as Record<string, unknown>,
);
const stats: SimStats = {
  connected: 0,
  open: 0,
  failedToConnect: 0,
  closedByMaster: {},
  errors: 0,
  assigns: 0,
  results: 0,
  acks: {},
  cancels: 0,
  errorReplies: 0,
  nextAssignMs: [],
  firstAssignAt: [],
  commitAt: [],
  connectedAt: [],
  connectDoneAt: 0,
};
const sockets = new Set<WebSocket>();
const sessions: VolunteerSession[] = [];
const timers = new Set<ReturnType<typeof setInterval>>();

function send(m: { type: 'stats' | 'connected' | 'progress'; stats: SimStats }): void {
  process.send?.(m);
}

/**
 * Real output for a task, as the sandbox of a Node volunteer would produce it, and the result frame
 * that reports it: inside the frame when it is at most `inlineBytes`, else uploaded first (the load
 * benchmarks' tiny tasks have tiny outputs; this keeps a larger run honest rather than refused).
 */
async function compute(task: TaskAssign, origin: string, inlineBytes: number): Promise<string> {
  const text = task.input.text ?? (await (await fetch(`${origin}${task.input.url}`)).text());
  const key = task.phase === 'map' ? task.input.key : '';
  const r = await runTask(mod, taskInput(task.phase, task.nReduce, key, text), () => performance.now());
  const head = `{"type":"task.result","lease":"${task.lease}","stats":${JSON.stringify(r.stats)}`;
  if (Buffer.byteLength(r.output) <= inlineBytes) return `${head},"output":${JSON.stringify(r.output)}}`;
  const res = await fetch(`${origin}/data/${task.lease}/output`, {
    method: 'PUT',
    headers: { 'content-type': 'text/plain; charset=utf-8' },
    body: r.output,
  });
  if (res.status !== 200) throw new Error(`uploading the output of ${task.lease}: HTTP ${res.status}`);
  return `${head},"uploaded":true}`;
}

function openRaw(opts: SimStart): Promise<void> {
  return new Promise((settled) => {
    const ws = new WebSocket(opts.url, { perMessageDeflate: false, maxPayload: 256 * 1024 ** 2 });
    let welcomed = false;
    let inlineBytes = 0;
    let lastResultAt = 0;
    let heartbeat: ReturnType<typeof setInterval> | null = null;
    const held = new Set<string>();
    const done = () => settled();
    ws.on('open', () => {
      ws.send(
        JSON.stringify({
          type: 'hello',
          protocol: PROTOCOL_VERSION,
          threads: opts.threads,
          slots: opts.slots,
          paused: false,
          agent: 'tabreduce-bench sim',
          running: [],
        }),
      );
    });
    ws.on('message', (data) => {
      const msg = JSON.parse(data.toString()) as MasterMessage;
      switch (msg.type) {
        case 'welcome':
          welcomed = true;
          inlineBytes = msg.inlineBytes;
          stats.connected++;
          stats.open++;
          stats.connectedAt.push(Date.now());
          sockets.add(ws);
          heartbeat = setInterval(() => {
            if (ws.readyState === ws.OPEN) ws.send(JSON.stringify({ type: 'heartbeat', running: [...held] }));
          }, msg.heartbeatMs);
          timers.add(heartbeat);
          done();
          return;
        case 'task.assign': {
          const now = Date.now();
          stats.assigns++;
          if (lastResultAt > 0) stats.nextAssignMs.push(now - lastResultAt);
          else stats.firstAssignAt.push(now);
          held.add(msg.lease);
          void compute(msg, httpOrigin(opts.url), inlineBytes).then(
            (frame) => {
              const deliver = () => {
                if (!held.has(msg.lease) || ws.readyState !== ws.OPEN) return;
                lastResultAt = Date.now();
                stats.results++;
                ws.send(frame);
              };
              if (opts.workMs > 0) setTimeout(deliver, (0.5 + Math.random()) * opts.workMs);
              else deliver();
            },
            // An input or output the master would not transfer: counted, and the task left to time out.
            () => stats.errors++,
          );
          return;
        }
        case 'task.ack':
          held.delete(msg.lease);
          stats.acks[msg.outcome] = (stats.acks[msg.outcome] ?? 0) + 1;
          if (msg.outcome === 'committed') stats.commitAt.push(Date.now());
          return;
        case 'task.cancel':
          held.delete(msg.lease);
          stats.cancels++;
          return;
        case 'error':
          stats.errorReplies++;
          return;
      }
    });
    ws.on('error', () => {
      stats.errors++;
      if (!welcomed) {
        stats.failedToConnect++;
        done();
      }
    });
    ws.on('close', (code) => {
      if (heartbeat) {
        clearInterval(heartbeat);
        timers.delete(heartbeat);
      }
      sockets.delete(ws);
      if (welcomed) {
        stats.open--;
        stats.closedByMaster[code] = (stats.closedByMaster[code] ?? 0) + 1;
      }
      done();
    });
  });
}

/** Opens `count` raw volunteers, `concurrency` handshakes at a time. */
async function startRaw(opts: SimStart): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < opts.count) {
      next++;
      await openRaw(opts);
    }
  };
  await Promise.all(Array.from({ length: Math.min(opts.concurrency, opts.count) }, lane));
}

/**
 * Runs one task at a time (threads 1, like a one-worker tab) after `workMs` of "computing"; tasks
 * prefetched beyond that wait their turn, as they do in the real WorkerPool.
 */
function serialExecutor(opts: SimStart): Executor {
  let tail: Promise<unknown> = Promise.resolve();
  const cancelled = new Set<string>();
  return {
    run(task) {
      const result = tail.then(async () => {
        if (cancelled.delete(task.lease)) throw new TaskFailure('crashed', { name: 'Cancelled', message: 'cancelled' });
        await new Promise((r) => setTimeout(r, opts.workMs));
        stats.assigns++;
        const key = task.phase === 'map' ? task.input.key : '';
        return runTask(mod, taskInput(task.phase, task.nReduce, key, readyText(task)), () => performance.now());
      });
      tail = result.catch(() => undefined);
      return result;
    },
    cancel: (lease) => {
      cancelled.add(lease);
      stats.cancels++;
    },
    setThreads: () => {},
  };
}

function startSessions(opts: SimStart): void {
  for (let i = 0; i < opts.count; i++) {
    let identity: { id: string; secret: string } | null = null;
    let last = 'connecting';
    let done = 0;
    const session = new VolunteerSession({
      url: opts.url,
      threads: opts.threads,
      prefetch: Math.max(0, opts.slots - opts.threads),
      agent: 'tabreduce-bench session',
      connect: (url) => new WebSocket(url, { perMessageDeflate: false }) as unknown as SocketLike,
      executor: serialExecutor(opts),
      identity: { load: () => identity, save: (id, secret) => (identity = { id, secret }) },
      onChange: (s) => {
        if (s.state !== last) {
          if (s.state === 'connected') {
            stats.connectedAt.push(Date.now());
            stats.connected++;
          }
          last = s.state;
        }
        while (done < s.done) {
          done++;
          stats.commitAt.push(Date.now());
          stats.acks['committed'] = (stats.acks['committed'] ?? 0) + 1;
        }
      },
    });
    sessions.push(session);
    session.start();
  }
}

function snapshot(): SimStats {
  const s = { ...stats };
  if (sessions.length > 0) s.open = sessions.filter((x) => x.snapshot().state === 'connected').length;
  return s;
}

function stopAll(): void {
  for (const t of timers) clearInterval(t);
  for (const ws of sockets) ws.terminate();
  for (const s of sessions) s.stop();
}

process.on('message', (m: ParentMessage) => {
  if (m.type === 'start') {
    if (m.mode === 'raw') {
      void startRaw(m).then(() => {
        stats.connectDoneAt = Date.now();
        send({ type: 'connected', stats: snapshot() });
      });
    } else {
      startSessions(m);
      stats.connectDoneAt = Date.now();
      send({ type: 'connected', stats: snapshot() });
    }
  } else if (m.type === 'stats') {
    send({ type: 'stats', stats: snapshot() });
  } else if (m.type === 'progress') {
    const s = snapshot();
    send({ type: 'progress', stats: { ...s, nextAssignMs: [], firstAssignAt: [], commitAt: [], connectedAt: [] } });
  } else if (m.type === 'stop') {
    stopAll();
    setTimeout(() => process.exit(0), 200);
  }
});
process.on('disconnect', () => {
  stopAll();
  process.exit(0);
});
setTimeout(() => {
  stopAll();
  process.exit(3);
}, HARD_DEADLINE_MS).unref();
