/**
 * A volunteer's side of the protocol, the same for a browser tab and `tabreduce volunteer`: joins,
 * heartbeats, fetches a task's input over HTTP when it did not come inside the assignment, runs
 * assigned tasks on an executor (a pool of Web Workers or worker threads), sends small outputs in
 * the result message and uploads large ones, keeps results until the master acknowledges them, and
 * reconnects with jittered backoff, announcing the leases it still holds so the master can let it
 * keep them.
 */
import { PROTOCOL_VERSION, parseMasterMessage, type MasterMessage, type TaskAssign } from './protocol.js';
import { serializeError, type SerializedError } from './errors.js';
import type { TaskStats } from './protocol.js';

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

/**
 * A task whose input is in hand: `input.text` as it came in the assignment or was fetched from
 * `input.url`, or, for an executor that `takesBytes`, `input.utf8`: the fetched bytes.
 */
export type ReadyTask = TaskAssign & {
  input: { text: string; utf8?: undefined } | { text?: undefined; utf8: Uint8Array<ArrayBuffer> };
};

/** A task's input as text, decoding it when it is in hand as bytes. */
export function readyText(task: ReadyTask): string {
  return task.input.text ?? new TextDecoder().decode(task.input.utf8);
}

/**
 * A task's output as an executor (and each worker of a pool) hands it back: what the master stores,
 * as text or as its UTF-8 bytes: a map's records (shared/records.ts), a reduce's `key<TAB>value\n`
 * lines.
 */
export interface ExecutorOutput {
  output: string | Uint8Array<ArrayBuffer>;
  stats: TaskStats;
  /** How long the task waited for a thread (a pool's answers carry it). */
  queuedMs?: number;
}

export interface Executor {
  /** Runs one task; rejects with TaskFailure. */
  run(task: ReadyTask): Promise<ExecutorOutput>;
  /**
   * Takes fetched inputs as their bytes: a tab's job workers decode them themselves, so the bytes
   * cross to them untouched instead of being decoded and encoded again on the way.
   */
  readonly takesBytes?: boolean;
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
  /** The input's size, UTF-8 bytes. */
  bytes: number;
  /**
   * `fetching`: its input is on the way from the master; `running`: in the executor (computing, or
   * waiting there for a thread); `reporting`: its output is going up, or waits for the master's ack.
   */
  status: 'fetching' | 'running' | 'reporting';
  startedAt: number;
}

export interface SessionSnapshot {
  state: ConnectionState;
  volunteerId: string | null;
  paused: boolean;
  threads: number;
  tasks: TaskInHand[];
  /** Tasks committed, and their input bytes, for this identity: the master's totals at welcome and what came since. */
  done: number;
  failed: number;
  bytesDone: number;
  lastError: string | null;
  retryInMs: number | null;
  /** Where this session's time went, per phase, summed over the tasks it reported since it started. */
  stages: { map: StageTimes; reduce: StageTimes };
}

/**
 * Milliseconds a session spent per stage of the tasks it reported (a result sent): what `npm run
 * bench -- stages` breaks a task's time into. `runMs` is the executor's, from hand-off to answer
 * (waiting for a thread behind the session's other tasks, moving the data to the job's worker and
 * back, and the job's code); `queueMs` the part waiting for a thread (a prefetched task's); and
 * `computeMs` the part inside the job's code (the result's `stats.ms`).
 */
export interface StageTimes {
  tasks: number;
  /** Getting the input by HTTP (0 for an input that came inside its assignment). */
  fetchMs: number;
  runMs: number;
  queueMs: number;
  computeMs: number;
  /** From the executor's answer to the result sent: encoding it, and uploading a large output. */
  reportMs: number;
}

export function noStageTimes(): StageTimes {
  return { tasks: 0, fetchMs: 0, runMs: 0, queueMs: 0, computeMs: 0, reportMs: 0 };
}

/** The part of the Fetch API the session uses: browsers, Web Workers and Node 18+ all have it. */
export type FetchLike = (
  url: string,
  init: {
    method: 'GET' | 'PUT';
    headers?: Record<string, string>;
    body?: string | Uint8Array<ArrayBuffer>;
    signal: AbortSignal;
  },
) => Promise<{ readonly status: number; text(): Promise<string>; arrayBuffer(): Promise<ArrayBuffer> }>;

export interface SessionOptions {
  /** ws:// or wss:// URL of the master's /ws. */
  url: string;
  threads: number;
  /** Extra tasks to hold beyond `threads`, hiding the round trip between tasks. */
  prefetch: number;
  agent: string;
  /** The name the visitor chose, sent with hello when there is one. */
  name?: string;
  connect: (url: string) => SocketLike;
  /** Gets task inputs from the master's origin and puts outputs there; `globalThis.fetch` by default. */
  fetch?: FetchLike;
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

/**
 * Waits before each retry of a data request the master did not answer, or answered with a 5xx (it
 * may be restarting): about 8 s in all, as long as a master restart takes here. Then the task is
 * dropped, and the master gives it to someone else once its attempt times out.
 */
const DATA_RETRY_MS = [250, 500, 1_000, 2_000, 4_000];

interface Held extends TaskInHand {
  assign: TaskAssign | null;
  /** The result frame, kept until the master acknowledges it. */
  resultFrame: string | null;
  /** A failure report: forgotten once sent, as the master sends no ack for it. */
  unacknowledged?: boolean;
  /** Stops the task's input download or output upload, and the waits between their retries. */
  abort: AbortController;
  /**
   * The bytes its commit adds to `bytesDone`, counted as the master counts a volunteer's bytes (its
   * `welcome.totals`): a map's input, a reduce's output. Unset: the input's size.
   */
  counted?: number;
}

export class VolunteerSession {
  private ws: SocketLike | null = null;
  private state: ConnectionState = 'connecting';
  private volunteerId: string | null = null;
  private secret: string | null = null;
  private heartbeatMs = 2000;
  /** The master's frame limit, from `welcome`; null when it did not say. */
  private maxMessageBytes: number | null = null;
  /** Outputs up to this many UTF-8 bytes go in the result message, larger ones by PUT (`welcome`). */
  private inlineBytes = 0;
  /** The largest output the master takes (`welcome`, `serve --max-upload`). */
  private maxOutputBytes = Infinity;
  /** http(s)://host:port of the master, where task data is. */
  private readonly origin: string;
  private readonly fetch: FetchLike;
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
  private readonly stages = { map: noStageTimes(), reduce: noStageTimes() };
  private lastError: string | null = null;
  private readonly now: () => number;
  private readonly log: (line: string) => void;
  private stopped = false;
  private name: string | undefined;

  constructor(private readonly opts: SessionOptions) {
    this.threads = opts.threads;
    this.name = opts.name;
    this.paused = opts.startPaused ?? false;
    this.now = opts.now ?? (() => Date.now());
    this.log = opts.log ?? (() => {});
    this.origin = httpOrigin(opts.url);
    this.fetch = opts.fetch ?? ((url, init) => fetch(url, init));
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

  /** A new name ('' for none), told to the master at once. */
  setName(name: string): void {
    this.name = name;
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
      tasks: [...this.held.values()].map(({ assign: _a, resultFrame: _r, unacknowledged: _u, abort: _c, ...t }) => t),
      done: this.done,
      failed: this.failed,
      bytesDone: this.bytesDone,
      lastError: this.lastError,
      retryInMs: this.retryInMs,
      stages: { map: { ...this.stages.map }, reduce: { ...this.stages.reduce } },
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
          ...(this.name ? { name: this.name.slice(0, 200) } : {}),
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
    this.send({
      type: 'volunteer.update',
      threads: this.threads,
      slots: this.slots(),
      paused: this.paused,
      ...(this.name === undefined ? {} : { name: this.name.slice(0, 200) }),
    });
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
        this.inlineBytes = msg.inlineBytes;
        this.maxOutputBytes = msg.maxOutputBytes;
        // The identity's totals so far: a reloaded tab goes on from them. The larger figure wins, as
        // a master that restarted has forgotten the bytes (it keeps only the count of tasks).
        if (msg.totals && Number.isSafeInteger(msg.totals.done) && Number.isFinite(msg.totals.bytes)) {
          this.done = Math.max(this.done, msg.totals.done);
          this.bytesDone = Math.max(this.bytesDone, msg.totals.bytes);
        }
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
            this.bytesDone += h.counted ?? h.bytes;
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
    h.abort.abort();
    if (h.status === 'running') this.opts.executor.cancel(lease);
  }

  private accept(task: TaskAssign): void {
    const h: Held = {
      lease: task.lease,
      jobId: task.jobId,
      jobName: task.jobName,
      phase: task.phase,
      index: task.index,
      label: task.phase === 'map' ? task.input.key : `partition ${task.index}`,
      bytes: task.input.bytes,
      status: task.input.text === undefined ? 'fetching' : 'running',
      startedAt: this.now(),
      assign: task,
      resultFrame: null,
      abort: new AbortController(),
    };
    this.held.set(task.lease, h);
    this.changed();
    this.work(task, h).catch((e: unknown) => {
      // A bug of ours rather than the job's or the network's: said, and the task handed back.
      this.log(`${describeTask(task)} stopped: ${serializeError(e).message}`);
      if (this.held.get(task.lease) === h) this.fail(task, h, new TaskFailure('crashed', serializeError(e)));
    });
  }

  /**
   * One task from assignment to report: its input fetched if it did not come inline, run, and its
   * output sent or uploaded. Each step first checks the task is still held: a `task.cancel`, a lease
   * the master did not keep over a reconnect, or a REPLACED close drops it, and then nothing is sent.
   */
  private async work(task: TaskAssign, h: Held): Promise<void> {
    const held = () => this.held.get(task.lease) === h;
    const started = this.now();
    let ready: ReadyTask;
    if (task.input.text !== undefined) {
      ready = task as ReadyTask;
    } else {
      if (task.input.url === undefined) {
        this.fail(task, h, new TaskFailure('threw', noInput(task)));
        return;
      }
      const fetched = await this.fetchInput(task, h, task.input.url);
      if (fetched === null || !held()) return;
      ready = { ...task, input: { ...task.input, ...fetched } } as ReadyTask;
      h.status = 'running';
      this.changed();
    }
    let out: ExecutorOutput;
    const handed = this.now();
    try {
      // The executor queues beyond its threads, so prefetched tasks wait there.
      out = await this.opts.executor.run(ready);
    } catch (e) {
      if (held()) this.fail(task, h, e instanceof TaskFailure ? e : new TaskFailure('threw', serializeError(e)));
      return;
    }
    if (!held()) return;
    h.assign = null;
    h.status = 'reporting';
    this.changed();
    const answered = this.now();
    await this.report(task, h, out.output, out.stats);
    // Reported: a result sent (not a failure, nor a task dropped meanwhile).
    if (!h.resultFrame?.startsWith('{"type":"task.result"')) return;
    const s = this.stages[task.phase];
    s.tasks++;
    s.fetchMs += handed - started;
    s.runMs += answered - handed;
    s.queueMs += out.queuedMs ?? 0;
    s.computeMs += out.stats.ms;
    s.reportMs += this.now() - answered;
  }

  /**
   * The task's input from the master, as text or as bytes for an executor that takes them, or null
   * when the task was dropped (here or by the master).
   */
  private async fetchInput(
    task: TaskAssign,
    h: Held,
    path: string,
  ): Promise<{ text: string } | { utf8: Uint8Array<ArrayBuffer> } | null> {
    const bytes = this.opts.executor.takesBytes === true;
    const res = await this.request(h, path, { method: 'GET' }, `the input of ${describeTask(task)}`, bytes);
    if (res === null) return null;
    if (res.status === 200) return res.utf8 ? { utf8: res.utf8 } : { text: res.body };
    // 404 or 410: the lease is over (the master gave the task to someone else), so is the task.
    if (res.status !== 404 && res.status !== 410) {
      this.log(
        `dropped ${describeTask(task)}: its input could not be fetched (HTTP ${res.status}: ${reasonIn(res.body)})`,
      );
    }
    this.drop(task.lease);
    this.changed();
    return null;
  }

  /**
   * Sends a small output inside the result message; uploads a larger one by `PUT`, then sends a
   * result saying so; fails one larger than the master takes without sending it at all.
   */
  private async report(
    task: TaskAssign,
    h: Held,
    output: string | Uint8Array<ArrayBuffer>,
    stats: TaskStats,
  ): Promise<void> {
    const head = `{"type":"task.result","lease":"${task.lease}","stats":${JSON.stringify(stats)}`;
    const length = (limit: number) => (typeof output === 'string' ? utf8Length(output, limit) : output.byteLength);
    if (task.phase === 'reduce') h.counted = length(0);
    if (length(this.inlineBytes) <= this.inlineBytes) {
      const text = typeof output === 'string' ? output : new TextDecoder().decode(output);
      const frame = `${head},"output":${JSON.stringify(text)}}`;
      // JSON escapes control characters six bytes each, so a frame of a small output could still pass
      // the master's frame limit: such an output goes up like a large one instead.
      const limit = this.maxMessageBytes;
      if (limit === null || utf8Length(frame, limit) <= limit) {
        this.sendResult(h, frame);
        return;
      }
    }
    const size = length(this.maxOutputBytes);
    if (size > this.maxOutputBytes) {
      // Uploaded, it would only be refused: reported, the job fails naming the limit and how to raise it.
      this.fail(task, h, new TaskFailure('too-large', tooLarge(task, size, this.maxOutputBytes)));
      return;
    }
    const res = await this.request(
      h,
      `/data/${task.lease}/output`,
      { method: 'PUT', headers: { 'content-type': 'text/plain; charset=utf-8' }, body: output },
      `the output of ${describeTask(task)}`,
    );
    if (res === null || this.held.get(task.lease) !== h) return;
    if (res.status === 200) {
      this.sendResult(h, `${head},"uploaded":true}`);
      return;
    }
    if (res.status === 413) {
      // Its limit is lower than it said when this volunteer joined (restarted with a new one): its words name it.
      this.fail(task, h, new TaskFailure('too-large', tooLarge(task, length(0), null, res.body)));
      return;
    }
    if (res.status === 400) {
      this.fail(task, h, new TaskFailure('threw', refused(task, res.body)));
      return;
    }
    if (res.status !== 404 && res.status !== 410) {
      this.log(
        `dropped ${describeTask(task)}: its output could not be uploaded (HTTP ${res.status}: ${reasonIn(res.body)})`,
      );
    }
    this.drop(task.lease);
    this.changed();
  }

  /** Sends a result frame and keeps it until the master acknowledges it (or re-sends it after a reconnect). */
  private sendResult(h: Held, frame: string): void {
    h.resultFrame = frame;
    this.send(frame);
    this.changed();
  }

  /**
   * One request to the master's data routes, retried after `DATA_RETRY_MS` while the master cannot
   * be reached or answers 5xx. Returns the answer (status below 500) with its body, or null when the
   * task was dropped meanwhile or the retries ran out (the task is then dropped too).
   */
  private async request(
    h: Held,
    path: string,
    init: { method: 'GET' | 'PUT'; headers?: Record<string, string>; body?: string | Uint8Array<ArrayBuffer> },
    what: string,
    binary = false,
  ): Promise<{ status: number; body: string; utf8?: Uint8Array<ArrayBuffer> } | null> {
    const url = `${this.origin}${path.startsWith('/') ? '' : '/'}${path}`;
    const signal = h.abort.signal;
    for (let attempt = 0; ; attempt++) {
      let why: string;
      try {
        const res = await this.fetch(url, { ...init, signal });
        // The body is read inside the try: a connection cut halfway through is retried like any other.
        if (binary && res.status === 200)
          return { status: 200, body: '', utf8: new Uint8Array(await res.arrayBuffer()) };
        const body = await res.text();
        if (res.status < 500) return { status: res.status, body };
        why = `HTTP ${res.status}`;
      } catch (e) {
        why = serializeError(e).message;
      }
      if (signal.aborted || this.held.get(h.lease) !== h) return null;
      const wait = DATA_RETRY_MS[attempt];
      if (wait === undefined) {
        this.log(`dropped a task: could not transfer ${what} after ${attempt + 1} tries (${why})`);
        this.drop(h.lease);
        this.changed();
        return null;
      }
      await sleep(wait, signal);
      if (signal.aborted) return null;
    }
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

/** Says which task, for log lines: "wc map 3". */
function describeTask(task: TaskAssign): string {
  return `${task.jobName} ${task.phase} ${task.index}`;
}

/** Resolves after `ms`, or at once when `signal` aborts. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done);
  });
}

/** The `error` of a data route's JSON answer, or the start of its body when it is not one. */
function reasonIn(body: string): string {
  try {
    const error = (JSON.parse(body) as { error?: unknown } | null)?.error;
    if (typeof error === 'string') return error;
  } catch {
    // Not JSON: a proxy's page, say.
  }
  return body.slice(0, 200).trim() || 'no reason given';
}

/** Why an output is too large: over `limit` as the master announced it, or refused with a 413 saying why. */
function tooLarge(task: TaskAssign, size: number, limit: number | null, masterSaid = ''): SerializedError {
  const over =
    limit === null
      ? `more than the master takes (it said: ${reasonIn(masterSaid)})`
      : `over the master's limit of ${limit} bytes`;
  const smaller =
    task.phase === 'map' ? 'a smaller --split-size, or a combine function' : 'more --reduces, or fewer keys';
  return {
    name: 'OutputTooLarge',
    message:
      `the ${task.phase} output is ${size} bytes, ${over}; raise the limit with \`tabreduce serve --max-upload\`, ` +
      `or make the task's output smaller (${smaller})`,
  };
}

function refused(task: TaskAssign, body: string): SerializedError {
  return {
    name: 'OutputRefused',
    message:
      `the master refused the ${task.phase} output as malformed: ${reasonIn(body)}. ` +
      `tabreduce's own engine never produces such output, so this volunteer is at fault, not the job's code: please report it`,
  };
}

function noInput(task: TaskAssign): SerializedError {
  return {
    name: 'ProtocolError',
    message: `the master assigned ${describeTask(task)} with neither its input nor a URL to fetch it from`,
  };
}

/** The master's HTTP origin for its ws:// or wss:// URL: the same host and port, where task data is. */
export function httpOrigin(wsUrl: string): string {
  const m = /^(wss?):\/\/([^/?#]+)/i.exec(wsUrl);
  if (!m) throw new Error(`the master's URL must start with ws:// or wss://, not ${wsUrl}`);
  return `${m[1]!.toLowerCase() === 'wss' ? 'https' : 'http'}://${m[2]}`;
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
