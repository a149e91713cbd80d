/** The Gantt chart's geometry in time: rows, lanes and bars from a job's tasks and attempts. */
import type { AttemptView, JobView, TaskView } from '../../shared/api.js';
import { formatDuration, shortId } from './format.js';

export interface Bar {
  key: string;
  taskId: number;
  outcome: AttemptView['outcome'];
  start: number;
  end: number;
  lane: number;
  title: string;
}

export interface Row {
  worker: string;
  firstLane: number;
  lanes: number;
}

/**
 * Most bars the chart draws. A job of 200,000 tasks would be 200,000 SVG rects, seconds to draw;
 * and while a job runs, its bars and the "now" line move every second, which repaints the whole
 * chart: 55-90 ms a second with 2,000 bars in headless Chromium on the busy 2-core box
 * (test/bench/tasks-route.ts), half that with 1,000, the size the status-page bench has always drawn.
 * Past this the chart shows the attempts that started last, which is what a live job is doing now.
 */
export const MAX_BARS = 1_000;

export interface TimelineModel {
  t0: number;
  t1: number;
  /** Where the axis counts from: the job's start, before `t0` when only the latest bars are shown. */
  origin: number;
  /** Attempts in the job; more than `bars.length` when only the latest are shown. */
  total: number;
  rows: Row[];
  bars: Bar[];
  lanes: number;
  /** When the first reduce attempt started; Infinity before that, or when that is left of `t0`. */
  reduceStart: number;
}

interface Item {
  task: TaskView;
  a: AttemptView;
  /** Which attempt of its task. */
  n: number;
}

/** The attempts a chart of `tasks` draws, by volunteer; what does not depend on the clock. */
interface Picked {
  tasks: TaskView[];
  /** The attempts drawn. */
  items: Item[];
  /** One entry per volunteer, ordered by its first drawn attempt; its attempts by start. */
  workers: { worker: string; list: Item[] }[];
  /** Attempts in the job. */
  total: number;
  /** Fewer than `total` are drawn. */
  capped: boolean;
  /** The earliest start drawn; Infinity when none. */
  firstStart: number;
  reduceStart: number;
}

/**
 * Picks the attempts to draw: all of them, or the `max` that started last. When only a few tasks
 * changed since `prev` (a refresh replaces the tasks that changed and keeps every other object),
 * the latest attempts are those of `prev` and of the changed tasks: an attempt keeps its start and
 * is never taken away, so one that was not among the latest cannot become one. That reads the
 * changed tasks, not all 200,000 (80 ms in Chromium on a busy 2-core box).
 */
function pickAttempts(tasks: TaskView[], max: number, prev: Picked | null): Picked {
  const changed = prev?.capped ? changedAt(prev.tasks, tasks) : null;
  if (!prev || !changed) return group(tasks, ...pickAll(tasks, max));
  let { total, reduceStart } = prev;
  const gone = new Set<TaskView>();
  const candidates: Item[] = [];
  for (const i of changed) {
    const was = prev.tasks[i]!;
    const task = tasks[i]!;
    gone.add(was);
    total += task.attempts.length - was.attempts.length;
    task.attempts.forEach((a, n) => {
      candidates.push({ task, a, n });
      if (task.phase === 'reduce') reduceStart = Math.min(reduceStart, a.startedAt);
    });
  }
  for (const item of prev.items) if (!gone.has(item.task)) candidates.push(item);
  candidates.sort((x, y) => y.a.startedAt - x.a.startedAt);
  return group(tasks, candidates.slice(0, max), total, true, reduceStart);
}

/** Where `next` holds other objects than `prev`, or null when that is not a few tasks' refresh. */
function changedAt(prev: TaskView[], next: TaskView[]): number[] | null {
  if (prev.length !== next.length) return null;
  const changed: number[] = [];
  const most = Math.max(100, next.length / 20);
  for (let i = 0; i < next.length; i++) {
    if (next[i] === prev[i]) continue;
    if (next[i]!.id !== prev[i]!.id || changed.length >= most) return null;
    changed.push(i);
  }
  return changed;
}

/** Every attempt, or the `max` that started last, going over all the tasks. */
function pickAll(tasks: TaskView[], max: number): [Item[], number, boolean, number] {
  let total = 0;
  let reduceStart = Infinity;
  // Indexed loops, no closures: this runs over 200,000 tasks in a big job.
  for (const task of tasks) {
    const list = task.attempts;
    total += list.length;
    if (task.phase === 'reduce')
      for (let n = 0; n < list.length; n++) reduceStart = Math.min(reduceStart, list[n]!.startedAt);
  }
  const cut = total > max ? latestStarts(tasks, total, max) : null;
  let ties = cut?.ties ?? 0;
  const items: Item[] = [];
  for (const task of tasks) {
    const list = task.attempts;
    for (let n = 0; n < list.length; n++) {
      const a = list[n]!;
      if (cut && a.startedAt <= cut.from) {
        if (a.startedAt < cut.from || ties === 0) continue;
        ties--;
      }
      items.push({ task, a, n });
    }
  }
  return [items, total, cut !== null, reduceStart];
}

function group(tasks: TaskView[], items: Item[], total: number, capped: boolean, reduceStart: number): Picked {
  const byWorker = new Map<string, Item[]>();
  let firstStart = Infinity;
  for (const item of items) {
    const mine = byWorker.get(item.a.worker);
    if (mine) mine.push(item);
    else byWorker.set(item.a.worker, [item]);
    firstStart = Math.min(firstStart, item.a.startedAt);
  }
  const workers = [...byWorker.entries()]
    .map(([worker, list]) => ({ worker, list: list.sort((x, y) => x.a.startedAt - y.a.startedAt) }))
    .sort((x, y) => x.list[0]!.a.startedAt - y.list[0]!.a.startedAt);
  return { tasks, items, workers, total, capped, firstStart, reduceStart };
}

function sameBar(a: Bar, b: Bar): boolean {
  return a.outcome === b.outcome && a.start === b.start && a.end === b.end && a.lane === b.lane && a.title === b.title;
}

/**
 * Builds the model again on every refresh, but hands back the previous Bar object for every bar
 * that did not change. A refresh brings new objects for all 1,000 attempts of a big job; with the
 * old objects the each-block skips all but the bars that moved (the bench measures the effect).
 */
export class TimelineBuilder {
  private previous = new Map<string, Bar>();
  private picked: Picked | null = null;

  constructor(private readonly maxBars = MAX_BARS) {}

  /**
   * One row per volunteer, ordered by its first attempt. A volunteer with several threads runs
   * attempts side by side, so its row holds as many lanes as it ever ran at once; each attempt
   * takes the first lane free at its start. Running attempts end at `now`. Past `maxBars`
   * attempts, only the `maxBars` that started last are drawn.
   */
  build(job: JobView, tasks: TaskView[], now: number): TimelineModel {
    const end = job.finishedAt ?? now;
    // Which attempts to draw depends on the tasks alone: chosen again when they change (a
    // refresh), not every second with `now`.
    if (this.picked?.tasks !== tasks) this.picked = pickAttempts(tasks, this.maxBars, this.picked);
    const { workers, total, capped, firstStart } = this.picked;
    let reduceStart = this.picked.reduceStart;
    let t0 = capped ? firstStart : Math.min(job.createdAt, firstStart);
    let t1 = end;
    const rows: Row[] = [];
    const bars: Bar[] = [];
    let lane = 0;
    for (const { worker, list } of workers) {
      const laneEnds: number[] = [];
      for (const { task, a, n } of list) {
        const stop = a.endedAt ?? end;
        t1 = Math.max(t1, stop);
        let l = laneEnds.findIndex((e) => e <= a.startedAt);
        if (l === -1) l = laneEnds.push(stop) - 1;
        else laneEnds[l] = stop;
        const what = `${task.phase} ${task.index}${task.input ? ` (${task.input})` : ''}`;
        const why = a.error && a.outcome !== 'succeeded' ? `\n${a.error.name}: ${a.error.message}` : '';
        const bar: Bar = {
          key: `${task.id}:${n}`,
          taskId: task.id,
          outcome: a.outcome,
          start: a.startedAt,
          end: stop,
          lane: lane + l,
          title:
            `${what}, attempt ${n + 1}${a.backup ? ' (backup)' : ''}\n` +
            `${a.outcome} after ${formatDuration(stop - a.startedAt)} on ${shortId(worker)}${why}`,
        };
        const old = this.previous.get(bar.key);
        bars.push(old && sameBar(old, bar) ? old : bar);
      }
      rows.push({ worker, firstLane: lane, lanes: laneEnds.length });
      lane += laneEnds.length;
    }
    this.previous = new Map(bars.map((b) => [b.key, b]));
    if (t0 === Infinity) t0 = job.createdAt;
    const origin = Math.min(t0, job.createdAt);
    if (reduceStart < t0) reduceStart = Infinity;
    return { t0, t1: Math.max(t1, t0 + 100), origin, total, rows, bars, lanes: lane, reduceStart };
  }
}

/**
 * The start time of the `keep`th latest of `total` attempts, and how many attempts that started
 * then make the `keep` (others may share the time).
 */
function latestStarts(tasks: TaskView[], total: number, keep: number): { from: number; ties: number } {
  const starts = new Float64Array(total);
  let i = 0;
  for (const task of tasks) for (const a of task.attempts) starts[i++] = a.startedAt;
  const from = nthSmallest(starts, total - keep);
  let later = 0;
  for (let j = 0; j < total; j++) if (starts[j]! > from) later++;
  return { from, ties: keep - later };
}

/**
 * The `k`th smallest value (from 0) of `xs`, which it reorders: Hoare's selection, linear on
 * average (200,000 starts in ~3 ms, where sorting them took 15 to 60 ms).
 */
function nthSmallest(xs: Float64Array, k: number): number {
  let lo = 0;
  let hi = xs.length - 1;
  while (lo < hi) {
    const pivot = xs[(lo + hi) >>> 1]!;
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (xs[i]! < pivot) i++;
      while (xs[j]! > pivot) j--;
      if (i <= j) {
        const t = xs[i]!;
        xs[i] = xs[j]!;
        xs[j] = t;
        i++;
        j--;
      }
    }
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else return xs[k]!;
  }
  return xs[k]!;
}
