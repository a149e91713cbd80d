/**
 * A volunteer's side of the protocol, the same for a browser tab and `tabreduce volunteer`: joins,
 * heartbeats, runs assigned tasks on an executor (a pool of Web Workers or worker threads), keeps
 * results until the master acknowledges them, and reconnects with jittered backoff, announcing the
 * leases it still holds so the master can let it keep them.
 */
import { PROTOCOL_VERSION, parseMasterMessage, type MasterMessage, type TaskAssign } from './protocol.js';
import { serializeError, type SerializedError } from './errors.js';
import type { TaskStats } from './protocol.js';
import { partitionChars } from './engine.js';

/** The part of the WebSocket API both browsers and the `ws` package offer. */
export interface SocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
}

/** Why a task ended without output: the code threw, ran past the hard limit, or killed its worker. */
export class TaskFailure extends Error {
  override name = 'TaskFailure';
  constructor(
    readonly reason: 'threw' | 'timeout' | 'crashed' | 'too-large',
    readonly error: SerializedError,
  ) {
    super(error.message);
  }
}

export interface Executor {
  /** Runs one task; rejects with TaskFailure. */
  run(task: TaskAssign): Promise<{ outputJson: string; stats: TaskStats }>;
  /** Stops a task's code if it is running (a backup won, or the job ended). */
  cancel(lease: string): void;
  setThreads(n: number): void;
}

export type ConnectionState = 'connecting' | 'connected' | 'reconnecting' | 'stopped';

export interface TaskInHand {
  lease: string;
  jobId: string;
  jobName: string;
  phase: 'map' | 'reduce';
  index: number;
  /** Map: the input file's name; reduce: "partition N". */
  label: string;
  bytes: number;
  status: 'queued' | 'running' | 'reporting';
  startedAt: number;
}

export interface SessionSnapshot {
  state: ConnectionState;
  volunteerId: string | null;
  paused: boolean;
  threads: number;
  tasks: TaskInHand[];
  done: number;
  failed: number;
  bytesDone: number;
  lastError: string | null;
  retryInMs: number | null;
}

export interface SessionOptions {
  /** ws:// or wss:// URL of the master's /ws. */
  url: string;
  threads: number;
  /** Extra tasks to hold beyond `threads`, hiding the round trip between tasks. */
  prefetch: number;
  agent: string;
  connect: (url: string) => SocketLike;
  executor: Executor;
  /** Keeps the identity across reconnects (sessionStorage in a tab, memory in Node). */
  identity?: { load(): { id: string; secret: string } | null; save(id: string, secret: string): void };
  onChange?: (s: SessionSnapshot) => void;
  log?: (line: string) => void;
  now?: () => number;
  backoff?: { minMs: number; maxMs: number };
  startPaused?: boolean;
}

const OPEN = 1;
/** Close code the master uses when a newer connection took over this volunteer's identity. */
const REPLACED = 4001;

interface Held extends TaskInHand {
  assign: TaskAssign | null;
  /** The result frame, kept until the master acknowledges it. */
  resultFrame: string | null;
  /** A failure report: forgotten once sent, as the master sends no ack for it. */
  unacknowledged?: boolean;
}

export class VolunteerSession {
  private ws: SocketLike | null = null;
  private state: ConnectionState = 'connecting';
  private volunteerId: string | null = null;
  private secret: string | null = null;
  private heartbeatMs = 2000;
  /** The master's frame limit, from `welcome`; null when it did not say. */
  private maxMessageBytes: number | null = null;
  private heartbeatTimer: ReturnType<typeof setInterval> | null = null;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  /** Starts the backoff over once this connection has lasted (see `welcome`). */
  private stableTimer: ReturnType<typeof setTimeout> | null = null;
  private retryInMs: number | null = null;
  private attempt = 0;
  private readonly held = new Map<string, Held>();
  private paused: boolean;
  private threads: number;
  private done = 0;
  private failed = 0;
  private bytesDone = 0;
  private lastError: string | null = null;
  private readonly now: () => number;
  private readonly log: (line: string) => void;
  private stopped = false;

  constructor(private readonly opts: SessionOptions) {
    this.threads = opts.threads;
    this.paused = opts.startPaused ?? false;
    this.now = opts.now ?? (() => Date.now());
    this.log = opts.log ?? (() => {});
    const id = opts.identity?.load();
    if (id) {
      this.volunteerId = id.id;
      this.secret = id.secret;
    }
  }

  start(): void {
    this.stopped = false;
    this.open();
  }

  stop(): void {
    this.stopped = true;
    this.clearTimers();
    this.state = 'stopped';
    this.ws?.close(1000, 'volunteer stopped');
    this.ws = null;
    this.changed();
  }

  setPaused(paused: boolean): void {
    this.paused = paused;
    this.sendUpdate();
  }

  setThreads(n: number): void {
    this.threads = Math.max(1, Math.min(256, Math.floor(n)));
    this.opts.executor.setThreads(this.threads);
    this.sendUpdate();
  }

  snapshot(): SessionSnapshot {
    return {
      state: this.state,
      volunteerId: this.volunteerId,
      paused: this.paused,
      threads: this.threads,
      tasks: [...this.held.values()].map(({ assign: _a, resultFrame: _r, unacknowledged: _u, ...t }) => t),
      done: this.done,
      failed: this.failed,
      bytesDone: this.bytesDone,
      lastError: this.lastError,
      retryInMs: this.retryInMs,
    };
  }

  private slots(): number {
    return this.paused ? 0 : this.threads + this.opts.prefetch;
  }

  private changed(): void {
    this.opts.onChange?.(this.snapshot());
  }

  private clearTimers(): void {
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.stableTimer) clearTimeout(this.stableTimer);
    this.heartbeatTimer = null;
    this.retryTimer = null;
    this.stableTimer = null;
  }

  private open(): void {
    this.clearTimers();
    this.retryInMs = null;
    let ws: SocketLike;
    try {
      ws = this.opts.connect(this.opts.url);
    } catch (e) {
      this.lastError = serializeError(e).message;
      this.scheduleReconnect();
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      ws.send(
        JSON.stringify({
          type: 'hello',
          protocol: PROTOCOL_VERSION,
          ...(this.volunteerId && this.secret ? { volunteerId: this.volunteerId, secret: this.secret } : {}),
          threads: this.threads,
          slots: this.slots(),
          paused: this.paused,
          agent: this.opts.agent.slice(0, 300),
          running: [...this.held.keys()].slice(0, 1024),
        }),
      );
    };
    ws.onmessage = (ev) => {
      if (typeof ev.data !== 'string') return;
      const parsed = parseMasterMessage(ev.data);
      if (!parsed.ok) {
        this.log(`ignored a message from the master: ${parsed.error}`);
        return;
      }
      this.receive(parsed.msg);
    };
    ws.onerror = () => {
      this.lastError = 'cannot reach the master';
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
      if (this.stableTimer) clearTimeout(this.stableTimer);
      this.heartbeatTimer = null;
      this.stableTimer = null;
      if (ev.reason) this.lastError = `master closed the connection: ${ev.reason}`;
      if (ev.code === REPLACED) {
        // Another tab took this identity (browsers copy sessionStorage into a duplicated tab): the
        // tasks went with it, and this tab joins again as a new volunteer.
        this.volunteerId = null;
        this.secret = null;
        for (const lease of [...this.held.keys()]) this.drop(lease);
      }
      if (!this.stopped) this.scheduleReconnect();
    };
  }

  private backoff(): { minMs: number; maxMs: number } {
    return this.opts.backoff ?? { minMs: 500, maxMs: 10_000 };
  }

  /** Exponential backoff with full jitter, so a restarted master is not hit by every volunteer at once. */
  private scheduleReconnect(): void {
    this.state = 'reconnecting';
    const { minMs, maxMs } = this.backoff();
    const cap = Math.min(maxMs, minMs * 2 ** this.attempt);
    this.attempt++;
    this.retryInMs = Math.round(minMs / 2 + Math.random() * (cap - minMs / 2));
    this.retryTimer = setTimeout(() => this.open(), this.retryInMs);
    this.changed();
  }

  private send(msg: object | string): boolean {
    if (!this.ws || this.ws.readyState !== OPEN || this.state !== 'connected') return false;
    this.ws.send(typeof msg === 'string' ? msg : JSON.stringify(msg));
    return true;
  }

  private sendUpdate(): void {
    this.send({ type: 'volunteer.update', threads: this.threads, slots: this.slots(), paused: this.paused });
    this.changed();
  }

  private receive(msg: MasterMessage): void {
    switch (msg.type) {
      case 'welcome': {
        this.state = 'connected';
        // A welcome alone does not start the backoff over: a master that welcomes and drops at once
        // (storage full, a proxy's rule) would get over two reconnects a second for ever. A connection
        // that lasted the longest wait (maxMs: 10 s, five heartbeats, in Node; 5 s in a tab) costs
        // the master no more hellos than waiting out the cap does, so then the backoff starts over;
        // so it does after an acknowledged result, which shows the master is doing real work.
        if (this.stableTimer) clearTimeout(this.stableTimer);
        this.stableTimer = setTimeout(() => (this.attempt = 0), this.backoff().maxMs);
        this.lastError = null;
        this.volunteerId = msg.volunteerId;
        this.secret = msg.secret;
        this.opts.identity?.save(msg.volunteerId, msg.secret);
        this.heartbeatMs = msg.heartbeatMs;
        this.maxMessageBytes = msg.maxMessageBytes ?? null;
        const kept = new Set(msg.kept);
        for (const lease of [...this.held.keys()]) if (!kept.has(lease)) this.drop(lease);
        // Results finished while disconnected go out now.
        for (const h of [...this.held.values()]) {
          if (h.resultFrame && this.send(h.resultFrame) && h.unacknowledged) this.held.delete(h.lease);
        }
        this.heartbeatTimer = setInterval(
          () => this.send({ type: 'heartbeat', running: [...this.held.keys()].slice(0, 1024) }),
          this.heartbeatMs,
        );
        this.log(`connected as ${msg.volunteerId}${msg.kept.length ? `, kept ${msg.kept.length} tasks` : ''}`);
        this.changed();
        return;
      }
      case 'task.assign':
        this.accept(msg);
        return;
      case 'task.cancel':
        this.drop(msg.lease);
        this.changed();
        return;
      case 'task.ack': {
        this.attempt = 0;
        const h = this.held.get(msg.lease);
        if (h) {
          this.held.delete(msg.lease);
          if (msg.outcome === 'committed') {
            this.done++;
            this.bytesDone += h.bytes;
          }
        }
        if (msg.outcome === 'refused') this.log(`result refused: ${msg.reason ?? ''}`);
        this.changed();
        return;
      }
      case 'error':
        this.lastError = msg.message;
        this.log(`master says: ${msg.message}`);
        this.changed();
        return;
    }
  }

  private drop(lease: string): void {
    const h = this.held.get(lease);
    if (!h) return;
    this.held.delete(lease);
    if (h.status === 'running') this.opts.executor.cancel(lease);
  }

  private accept(task: TaskAssign): void {
    const bytes = task.phase === 'map' ? task.input.value.length : partitionChars(task.input);
    const h: Held = {
      lease: task.lease,
      jobId: task.jobId,
      jobName: task.jobName,
      phase: task.phase,
      index: task.index,
      label: task.phase === 'map' ? task.input.key : `partition ${task.index}`,
      bytes,
      status: 'running',
      startedAt: this.now(),
      assign: task,
      resultFrame: null,
    };
    this.held.set(task.lease, h);
    this.changed();
    // The executor queues beyond its threads, so prefetched tasks wait there.
    this.opts.executor.run(task).then(
      (r) => {
        if (this.held.get(task.lease) !== h) return;
        const frame = `{"type":"task.result","lease":"${task.lease}","stats":${JSON.stringify(r.stats)},"output":${r.outputJson}}`;
        const size = this.maxMessageBytes === null ? 0 : utf8Length(frame, this.maxMessageBytes);
        if (this.maxMessageBytes !== null && size > this.maxMessageBytes) {
          // Sent, it would close the socket and come back forever; reported, the job fails naming the limit.
          const limit = this.maxMessageBytes;
          this.fail(task, h, new TaskFailure('too-large', tooLarge(task, size, limit)));
          return;
        }
        h.assign = null;
        h.status = 'reporting';
        h.resultFrame = frame;
        this.send(h.resultFrame);
        this.changed();
      },
      (e: unknown) => {
        if (this.held.get(task.lease) !== h) return;
        this.fail(task, h, e instanceof TaskFailure ? e : new TaskFailure('threw', serializeError(e)));
      },
    );
  }

  private fail(task: TaskAssign, h: Held, f: TaskFailure): void {
    this.failed++;
    this.lastError = `${task.jobName} ${task.phase} ${task.index}: ${f.error.message}`;
    const frame = JSON.stringify({ type: 'task.fail', lease: task.lease, reason: f.reason, error: f.error });
    // The master does not acknowledge failures; one that cannot be sent now goes out on reconnect.
    if (this.send(frame)) {
      this.held.delete(task.lease);
    } else {
      h.assign = null;
      h.status = 'reporting';
      h.resultFrame = frame;
      h.unacknowledged = true;
    }
    this.changed();
  }
}

function tooLarge(task: TaskAssign, size: number, limit: number): SerializedError {
  return {
    name: 'OutputTooLarge',
    message:
      `the ${task.phase} output is ${size} bytes as a message, over the master's limit of ${limit} bytes; ` +
      `raise it with \`tabreduce serve --max-message\`, or make the task's output smaller (a smaller --split-size, or a combine function)`,
  };
}

/**
 * The UTF-8 length of `text` when it may exceed `limit`; a string of at most limit / 3 UTF-16 units
 * cannot, and is not counted (its UTF-16 length is returned, which is no more than `limit`).
 */
export function utf8Length(text: string, limit: number): number {
  if (text.length * 3 <= limit) return text.length;
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}
