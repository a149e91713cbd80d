/**
 * The parent's side of the simulated volunteers: splits N volunteers over a few load-generator
 * processes (sim-volunteers.ts), starts them, and gathers their statistics. Several processes because
 * one Node thread handling 10,000 sockets would itself become the bottleneck being measured.
 */
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { forkBench, sleep } from './bench-kit.js';
import { ProcSampler } from './proc-stats.js';
import type { ParentMessage, SimStart, SimStats } from './sim-volunteers.js';

export interface FleetOptions {
  mode: 'raw' | 'session';
  /** The master's http:// URL. */
  url: string;
  volunteers: number;
  processes: number;
  threads?: number;
  slots?: number;
  workMs?: number;
  concurrency?: number;
}

export class SimFleet {
  readonly children: ChildProcess[] = [];
  readonly samplers: ProcSampler[] = [];

  private constructor(private readonly opts: FleetOptions) {}

  /** Forks the load generators and connects every volunteer; resolves when all tried once. */
  static async start(opts: FleetOptions): Promise<{ fleet: SimFleet; connectMs: number }> {
    const fleet = new SimFleet(opts);
    const ws = new URL(opts.url);
    ws.protocol = ws.protocol === 'https:' ? 'wss:' : 'ws:';
    ws.pathname = '/ws';
    const started = Date.now();
    const per = Math.ceil(opts.volunteers / opts.processes);
    const waits: Promise<unknown>[] = [];
    for (let i = 0; i < opts.processes; i++) {
      const count = Math.min(per, opts.volunteers - i * per);
      if (count <= 0) break;
      const child = forkBench('sim-volunteers.ts');
      fleet.children.push(child);
      fleet.samplers.push(new ProcSampler(child.pid!));
      const start: SimStart = {
        type: 'start',
        mode: opts.mode,
        url: ws.toString(),
        count,
        threads: opts.threads ?? 1,
        slots: opts.slots ?? 1,
        workMs: opts.workMs ?? 0,
        concurrency: opts.concurrency ?? 50,
      };
      waits.push(fleet.request(child, start, 'connected', 180_000));
    }
    await Promise.all(waits);
    return { fleet, connectMs: Date.now() - started };
  }

  private request(child: ChildProcess, msg: ParentMessage, reply: string, timeoutMs: number): Promise<SimStats> {
    return new Promise((ok, fail) => {
      const done = () => {
        clearTimeout(timer);
        child.off('message', onMessage);
        child.off('exit', onExit);
      };
      const timer = setTimeout(() => {
        done();
        fail(new Error(`load generator ${child.pid} did not answer ${msg.type} within ${timeoutMs} ms`));
      }, timeoutMs);
      const onMessage = (m: { type: string; stats: SimStats }) => {
        if (m.type !== reply) return;
        done();
        ok(m.stats);
      };
      const onExit = (code: number | null) => {
        done();
        fail(new Error(`load generator ${child.pid} exited with ${code}`));
      };
      child.on('message', onMessage);
      child.on('exit', onExit);
      child.send(msg);
    });
  }

  /** Every load generator's statistics, merged. */
  async stats(): Promise<SimStats> {
    const all = await Promise.all(this.children.map((c) => this.request(c, { type: 'stats' }, 'stats', 30_000)));
    return mergeStats(all);
  }

  /** Counters only (no samples): cheap to poll while the master is busy. */
  async progress(): Promise<SimStats> {
    const all = await Promise.all(this.children.map((c) => this.request(c, { type: 'progress' }, 'progress', 30_000)));
    return mergeStats(all);
  }

  /** CPU of all load generators between two times, % of one core. */
  cpuPercent(from: number, to: number): number {
    return this.samplers.reduce((n, s) => n + s.cpuPercent(from, to), 0);
  }

  async stop(): Promise<void> {
    for (const s of this.samplers) s.stop();
    for (const c of this.children) if (c.connected) c.send({ type: 'stop' } satisfies ParentMessage);
    const deadline = Date.now() + 3_000;
    while (this.children.some((c) => c.exitCode === null && c.signalCode === null) && Date.now() < deadline) {
      await sleep(50);
    }
    for (const c of this.children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  }
}

function mergeCounts(a: Record<string, number>, b: Record<string, number>): Record<string, number> {
  const out = { ...a };
  for (const [k, v] of Object.entries(b)) out[k] = (out[k] ?? 0) + v;
  return out;
}

export function mergeStats(all: SimStats[]): SimStats {
  return all.reduce((a, b) => ({
    connected: a.connected + b.connected,
    open: a.open + b.open,
    failedToConnect: a.failedToConnect + b.failedToConnect,
    closedByMaster: mergeCounts(a.closedByMaster, b.closedByMaster),
    errors: a.errors + b.errors,
    assigns: a.assigns + b.assigns,
    results: a.results + b.results,
    acks: mergeCounts(a.acks, b.acks),
    cancels: a.cancels + b.cancels,
    errorReplies: a.errorReplies + b.errorReplies,
    nextAssignMs: a.nextAssignMs.concat(b.nextAssignMs),
    firstAssignAt: a.firstAssignAt.concat(b.firstAssignAt),
    commitAt: a.commitAt.concat(b.commitAt),
    connectedAt: a.connectedAt.concat(b.connectedAt),
    connectDoneAt: Math.max(a.connectDoneAt, b.connectDoneAt),
  }));
}

/** The open-files limit this process's children inherit (the master holds one descriptor per socket). */
export function openFilesLimit(): string {
  const m = /Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/.exec(readFileSync('/proc/self/limits', 'utf8'));
  return m ? `${m[1]} (hard ${m[2]})` : 'unknown';
}
