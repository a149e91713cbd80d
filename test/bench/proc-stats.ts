/**
 * CPU time and resident memory of a process from /proc, sampled in the background, so a benchmark can
 * say how busy and how big the master was during any window of its run. Linux only, like the box.
 */
import { readdirSync, readFileSync } from 'node:fs';

/** USER_HZ: /proc reports CPU time in these ticks; 100 on every Linux that Node supports. */
const TICKS_PER_SECOND = 100;

export interface ProcReading {
  /** Epoch ms of the reading. */
  t: number;
  /** User + system CPU time so far, ms. */
  cpuMs: number;
  rssBytes: number;
}

export function readProc(pid: number): ProcReading | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces; the fields we need follow its closing parenthesis.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]);
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const rss = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? NaN) * 1024;
    return { t: Date.now(), cpuMs: (ticks * 1000) / TICKS_PER_SECOND, rssBytes: rss };
  } catch {
    return null; // the process has exited
  }
}

export class ProcSampler {
  readonly samples: ProcReading[] = [];
  private readonly timer: ReturnType<typeof setInterval>;

  /**
   * With `tree`, each reading adds up the process and its live descendants: a Node volunteer's work
   * runs in its sandbox processes (one per thread).
   */
  constructor(
    readonly pid: number,
    everyMs = 200,
    private readonly tree = false,
  ) {
    this.sample();
    this.timer = setInterval(() => this.sample(), everyMs);
    this.timer.unref();
  }

  sample(): ProcReading | null {
    const r = readProc(this.pid);
    if (r && this.tree) {
      for (const child of childrenOf(this.pid)) {
        const c = readProc(child);
        if (c) {
          r.cpuMs += c.cpuMs;
          r.rssBytes += c.rssBytes;
        }
      }
    }
    if (r) this.samples.push(r);
    return r;
  }

  stop(): void {
    clearInterval(this.timer);
    this.sample();
  }

  private at(t: number): ProcReading | undefined {
    let best: ProcReading | undefined;
    for (const s of this.samples) if (!best || Math.abs(s.t - t) < Math.abs(best.t - t)) best = s;
    return best;
  }

  /** Average CPU use between two times, in % of one core (200% = both cores of this box). */
  cpuPercent(from: number, to: number): number {
    const a = this.at(from);
    const b = this.at(to);
    if (!a || !b || b.t <= a.t) return NaN;
    return ((b.cpuMs - a.cpuMs) / (b.t - a.t)) * 100;
  }

  /** CPU ms spent between two times. */
  cpuMs(from: number, to: number): number {
    const a = this.at(from);
    const b = this.at(to);
    return a && b ? b.cpuMs - a.cpuMs : NaN;
  }

  peakRss(from = 0, to = Infinity): number {
    let peak = 0;
    for (const s of this.samples) if (s.t >= from && s.t <= to) peak = Math.max(peak, s.rssBytes);
    return peak;
  }

  lastRss(): number {
    return this.samples.at(-1)?.rssBytes ?? NaN;
  }
}

/** CPU time the whole box spent busy so far (all cores, all processes), ms; from /proc/stat. */
export function readBoxBusyMs(): number {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
  // cpu user nice system idle iowait irq softirq steal ...
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  const busy = f[0]! + f[1]! + f[2]! + f[5]! + f[6]! + (f[7] ?? 0);
  return (busy * 1000) / TICKS_PER_SECOND;
}

/** Samples the box's total CPU use, to tell how much of it other programs took during a run. */
export class BoxSampler {
  readonly samples: { t: number; busyMs: number }[] = [];
  private readonly timer: ReturnType<typeof setInterval>;

  constructor(everyMs = 200) {
    this.sample();
    this.timer = setInterval(() => this.sample(), everyMs);
    this.timer.unref();
  }

  private sample(): void {
    this.samples.push({ t: Date.now(), busyMs: readBoxBusyMs() });
  }

  stop(): void {
    clearInterval(this.timer);
    this.sample();
  }

  /** Busy CPU between two times, in % of one core. */
  cpuPercent(from: number, to: number): number {
    const near = (t: number) =>
      this.samples.reduce((best, s) => (Math.abs(s.t - t) < Math.abs(best.t - t) ? s : best), this.samples[0]!);
    const a = near(from);
    const b = near(to);
    return b.t > a.t ? ((b.busyMs - a.busyMs) / (b.t - a.t)) * 100 : NaN;
  }
}

/** The pids of every descendant of `root` (children, grandchildren...), from /proc. */
export function descendants(root: number): number[] {
  const parentOf = new Map<number, number>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      parentOf.set(Number(name), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // exited while we looked
    }
  }
  const out: number[] = [];
  const frontier = [root];
  while (frontier.length > 0) {
    const p = frontier.pop()!;
    for (const [pid, ppid] of parentOf) {
      if (ppid === p) {
        out.push(pid);
        frontier.push(pid);
      }
    }
  }
  return out;
}

/** The live descendants of `pid`, from each of its threads' children lists (no scan of all of /proc). */
function childrenOf(pid: number): number[] {
  const out: number[] = [];
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const list = readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim();
      for (const child of list ? list.split(' ').map(Number) : []) out.push(child, ...childrenOf(child));
    }
  } catch {
    // exited while we looked
  }
  return out;
}

/** CPU ms used so far by all of `pids` still alive. */
export function cpuMsOf(pids: number[]): number {
  return pids.reduce((n, pid) => n + (readProc(pid)?.cpuMs ?? 0), 0);
}

/**
 * The kernel's TCP counters that show a master too busy to accept: connections dropped because the
 * listen queue was full, and SYNs the clients had to resend (each resend waits 1, 2, 4... s).
 * System-wide, so read them before and after a run and report the difference.
 */
export function readTcpCounters(): { listenOverflows: number; synRetrans: number } {
  const lines = readFileSync('/proc/net/netstat', 'utf8').split('\n');
  const i = lines.findIndex((l) => l.startsWith('TcpExt:'));
  const names = lines[i]!.split(/\s+/);
  const values = lines[i + 1]!.split(/\s+/).map(Number);
  const get = (n: string) => values[names.indexOf(n)] ?? NaN;
  return { listenOverflows: get('ListenOverflows'), synRetrans: get('TCPSynRetrans') };
}

/** One thread's name (its `comm`, at most 15 characters) and CPU ms so far. */
export function readThreads(pid: number): { tid: number; name: string; cpuMs: number }[] {
  const out: { tid: number; name: string; cpuMs: number }[] = [];
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out; // the process has exited
  }
  for (const tid of tids) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const open = stat.indexOf('(');
      const close = stat.lastIndexOf(')');
      const fields = stat.slice(close + 2).split(' ');
      const ticks = Number(fields[11]) + Number(fields[12]);
      out.push({ tid: Number(tid), name: stat.slice(open + 1, close), cpuMs: (ticks * 1000) / TICKS_PER_SECOND });
    } catch {
      // the thread ended while we looked
    }
  }
  return out;
}

/**
 * The CPU of every thread of some processes, sampled in the background, so a benchmark can say how
 * much CPU one thread (a tab's job worker) used up to a moment it learns only afterwards. A thread
 * that ends keeps its last reading.
 */
export class ThreadSampler {
  private readonly series = new Map<number, { name: string; points: { t: number; cpuMs: number }[] }>();
  private readonly timer: ReturnType<typeof setInterval>;

  constructor(
    private readonly pids: () => number[],
    everyMs = 100,
  ) {
    this.sample();
    this.timer = setInterval(() => this.sample(), everyMs);
    this.timer.unref();
  }

  private sample(): void {
    const t = Date.now();
    for (const pid of this.pids()) {
      for (const th of readThreads(pid)) {
        let s = this.series.get(th.tid);
        if (!s) this.series.set(th.tid, (s = { name: th.name, points: [] }));
        s.points.push({ t, cpuMs: th.cpuMs });
      }
    }
  }

  stop(): void {
    this.sample();
    clearInterval(this.timer);
  }

  /** CPU between `from` and `to` (epoch ms) by thread name, summed over the threads of each name. */
  byName(from: number, to: number): Map<string, number> {
    const out = new Map<string, number>();
    for (const s of this.series.values()) {
      out.set(s.name, (out.get(s.name) ?? 0) + cpuAt(s.points, to) - cpuAt(s.points, from));
    }
    return out;
  }

  /** The thread named `name` that used the most CPU between `from` and `to` (epoch ms), and how much. */
  busiest(name: string, from: number, to: number): { tid: number; cpuMs: number } | null {
    let best: { tid: number; cpuMs: number } | null = null;
    for (const [tid, s] of this.series) {
      if (s.name !== name) continue;
      const cpuMs = cpuAt(s.points, to) - cpuAt(s.points, from);
      if (!best || cpuMs > best.cpuMs) best = { tid, cpuMs };
    }
    return best;
  }
}

/** A thread's CPU at `t`, interpolated between its readings (0 before its first). */
function cpuAt(points: { t: number; cpuMs: number }[], t: number): number {
  if (points.length === 0 || t < points[0]!.t) return 0;
  for (let i = 1; i < points.length; i++) {
    const a = points[i - 1]!;
    const b = points[i]!;
    if (t <= b.t) return a.cpuMs + ((b.cpuMs - a.cpuMs) * (t - a.t)) / Math.max(1, b.t - a.t);
  }
  return points[points.length - 1]!.cpuMs;
}
