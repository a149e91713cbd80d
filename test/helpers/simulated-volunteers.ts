/**
 * Many volunteers from one process: each is a real WebSocket speaking the real protocol, but it
 * answers tasks after a chosen delay instead of running the job's code. For load on the master and
 * the status page (a hundred tabs cost a hundred sockets here, not a hundred browsers), and for
 * attempts of every outcome on demand: failed (reports `task.fail`), lost (drops its socket with
 * tasks in hand) and superseded (slow enough to get a backup attempt that wins).
 */
import WebSocket from 'ws';
import { PROTOCOL_VERSION, type MasterMessage, type TaskAssign } from '../../shared/protocol.js';
import { encodeMapOutput } from '../../shared/records.js';

export interface SimulatedOptions {
  /** The master's http(s) URL. */
  url: string;
  count: number;
  threads?: number;
  /** Each task takes a uniformly random time in this range, milliseconds. */
  taskMs?: [number, number];
  /** Share of tasks answered with `task.fail` (the job's code "threw"). */
  failRate?: number;
  /** Share of tasks after which the volunteer drops its socket, holding its tasks, and comes back later. */
  dropRate?: number;
  /** How long a dropped volunteer stays away, milliseconds. */
  awayMs?: number;
  /** Share of tasks that take `slowMs` instead, long enough to get a backup attempt. */
  slowRate?: number;
  slowMs?: number;
  /** Deterministic randomness, so a run can be repeated. */
  seed?: number;
}

export interface SimulatedVolunteers {
  readonly counts: { results: number; fails: number; drops: number; cancels: number };
  connected(): number;
  stop(): Promise<void>;
}

/** mulberry32: tiny, seedable, good enough for picking delays. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function startSimulatedVolunteers(opts: SimulatedOptions): SimulatedVolunteers {
  const rnd = random(opts.seed ?? 1);
  const threads = opts.threads ?? 1;
  const [minMs, maxMs] = opts.taskMs ?? [200, 800];
  const wsUrl = `${opts.url.replace(/^http/, 'ws')}/ws`;
  const counts = { results: 0, fails: 0, drops: 0, cancels: 0 };
  let stopped = false;
  const sims: Sim[] = [];

  class Sim {
    ws: WebSocket | null = null;
    id: string | undefined;
    secret: string | undefined;
    open = false;
    readonly timers = new Map<string, ReturnType<typeof setTimeout>>();
    heartbeat: ReturnType<typeof setInterval> | undefined;

    constructor(readonly n: number) {}

    connect(): void {
      if (stopped) return;
      const ws = new WebSocket(wsUrl);
      this.ws = ws;
      ws.on('open', () => {
        ws.send(
          JSON.stringify({
            type: 'hello',
            protocol: PROTOCOL_VERSION,
            ...(this.id ? { volunteerId: this.id, secret: this.secret } : {}),
            threads,
            slots: threads,
            paused: false,
            agent: `simulated volunteer ${this.n}`,
            running: [],
          }),
        );
      });
      ws.on('message', (data) => this.onMessage(JSON.parse(data.toString()) as MasterMessage));
      ws.on('close', () => this.closed());
      ws.on('error', () => {});
    }

    onMessage(msg: MasterMessage): void {
      switch (msg.type) {
        case 'welcome':
          this.id = msg.volunteerId;
          this.secret = msg.secret;
          this.open = true;
          clearInterval(this.heartbeat);
          this.heartbeat = setInterval(
            () => this.send({ type: 'heartbeat', running: [...this.timers.keys()] }),
            msg.heartbeatMs,
          );
          return;
        case 'task.assign':
          this.run(msg);
          return;
        case 'task.cancel': {
          const t = this.timers.get(msg.lease);
          if (t) counts.cancels++;
          clearTimeout(t);
          this.timers.delete(msg.lease);
          return;
        }
        default:
          return;
      }
    }

    run(task: TaskAssign): void {
      const slow = rnd() < (opts.slowRate ?? 0);
      const ms = slow ? (opts.slowMs ?? 5_000) : minMs + rnd() * (maxMs - minMs);
      const roll = rnd();
      this.timers.set(
        task.lease,
        setTimeout(() => {
          this.timers.delete(task.lease);
          if (roll < (opts.failRate ?? 0)) {
            counts.fails++;
            const error = new Error(`simulated failure in ${task.phase} ${task.index}`);
            this.send({
              type: 'task.fail',
              lease: task.lease,
              reason: 'threw',
              error: { name: error.name, message: error.message, stack: error.stack },
            });
            return;
          }
          if (roll > 1 - (opts.dropRate ?? 0)) {
            // Drop with this task still in hand: its attempt becomes lost once the master gives up.
            counts.drops++;
            this.timers.set(
              task.lease,
              setTimeout(() => {}, 0),
            );
            this.ws?.terminate();
            return;
          }
          counts.results++;
          // Outputs of a few bytes, always inline; a reduce needs only its input's size, not the input.
          const output =
            task.phase === 'map'
              ? encodeMapOutput(
                  Array.from({ length: task.nReduce }, (_, r) =>
                    r === task.index % task.nReduce ? [['word', ['1']]] : [],
                  ),
                )
              : task.input.bytes > 0
                ? 'word\t1\n'
                : '';
          this.send({
            type: 'task.result',
            lease: task.lease,
            output,
            stats: { ms, recordsIn: 1, recordsOut: task.phase === 'map' ? 1 : output.length > 0 ? 1 : 0 },
          });
        }, ms),
      );
    }

    send(msg: object): void {
      if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(msg));
    }

    closed(): void {
      this.open = false;
      clearInterval(this.heartbeat);
      for (const t of this.timers.values()) clearTimeout(t);
      this.timers.clear();
      if (!stopped) setTimeout(() => this.connect(), opts.awayMs ?? 3_000);
    }
  }

  for (let n = 0; n < opts.count; n++) {
    const s = new Sim(n);
    sims.push(s);
    s.connect();
  }

  return {
    counts,
    connected: () => sims.filter((s) => s.open).length,
    async stop() {
      stopped = true;
      await Promise.all(
        sims.map(
          (s) =>
            new Promise<void>((done) => {
              clearInterval(s.heartbeat);
              for (const t of s.timers.values()) clearTimeout(t);
              if (!s.ws || s.ws.readyState === WebSocket.CLOSED) return done();
              s.ws.once('close', () => done());
              s.ws.close();
            }),
        ),
      );
    },
  };
}
