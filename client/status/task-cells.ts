/** The task grid's cells: one per task, or per run of tasks in a big job, with what its tooltip says. */
import type { TaskView } from '../../shared/api.js';
import type { Phase, TaskState } from '../../shared/states.js';

/**
 * Most cells a phase shows; past that, each cell stands for a run of consecutive tasks. 2,000 cells
 * of 13 px fill ~300 px of a 1,280 px page and draw in tens of milliseconds; one button per task
 * of a 200,000-task job would be 100 times that, and 2,700 px of squares to scroll past.
 */
export const MAX_CELLS = 2_000;

export interface Cell {
  /** The task a click on the cell selects: its task, or the run's most telling one. */
  id: number;
  /** The first and last task id the cell stands for (the same for one task). */
  first: number;
  last: number;
  state: TaskState;
  /** Needed more than one attempt (in a run: any of its tasks did). */
  retried: boolean;
  label: string;
}

export interface PhaseCells {
  phase: Phase;
  cells: Cell[];
  /** Tasks per cell: 1, or the length of a run. */
  per: number;
}

/** A run's colour: the state of its most telling task, so a failure or a straggler is never hidden. */
const TELLING: readonly TaskState[] = ['failed', 'running', 'pending', 'cancelled', 'succeeded'];

export function describeTask(t: TaskView): string {
  const failures = t.attempts.filter((a) => a.outcome === 'failed').length;
  return (
    `${t.phase} ${t.index}${t.input ? ` (${t.input})` : ''}: ${t.state}` +
    `, ${t.attempts.length} attempt${t.attempts.length === 1 ? '' : 's'}${failures ? `, ${failures} failed` : ''}`
  );
}

function taskCell(t: TaskView): Cell {
  return { id: t.id, first: t.id, last: t.id, state: t.state, retried: t.attempts.length > 1, label: describeTask(t) };
}

/** One cell for `run`, tasks of one phase in index order. */
function runCell(run: TaskView[]): Cell {
  const n: Record<TaskState, number> = { pending: 0, running: 0, succeeded: 0, failed: 0, cancelled: 0 };
  let retried = 0;
  for (const t of run) {
    n[t.state]++;
    if (t.attempts.length > 1) retried++;
  }
  const state = TELLING.find((s) => n[s] > 0)!;
  const first = run[0]!;
  const last = run.at(-1)!;
  const states = TELLING.filter((s) => n[s] > 0).map((s) => `${n[s]} ${s}`);
  return {
    id: run.find((t) => t.state === state)!.id,
    first: first.id,
    last: last.id,
    state,
    retried: retried > 0,
    label:
      `${first.phase} ${first.index}–${last.index}: ${states.join(', ')}` +
      (retried ? `; ${retried} needed more than one attempt` : ''),
  };
}

/**
 * Where the reduces begin in `tasks`, which come as the API lists them (by id: maps, then reduces),
 * found in log n steps so that an unchanged list is not read task by task.
 */
function firstOfReduces(tasks: TaskView[]): number {
  let lo = 0;
  let hi = tasks.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (tasks[mid]!.phase === 'map') lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Like TimelineBuilder: unchanged cells keep their object, so a refresh redraws only what moved. A
 * run whose tasks are the very objects of the last build is not looked into again: a refresh of a
 * 200,000-task job replaces only the tasks that changed, so most runs cost a pointer compare per task.
 */
export class CellBuilder {
  private previous = new Map<number, Cell>();
  private previousTasks: TaskView[] = [];

  constructor(private readonly maxCells = MAX_CELLS) {}

  /**
   * `tasks` in the API's order: by id, so maps, then reduces. `totals`, the job's task counts, fix
   * the length of a run while the tasks are still coming in, so that each page adds cells at the
   * end instead of cutting every run anew.
   */
  build(tasks: TaskView[], totals: Record<Phase, number> = { map: 0, reduce: 0 }): PhaseCells[] {
    const next = new Map<number, Cell>();
    const out: PhaseCells[] = [];
    const before = this.previousTasks;
    const firstReduce = firstOfReduces(tasks);
    for (const [phase, start, stop] of [
      ['map', 0, firstReduce],
      ['reduce', firstReduce, tasks.length],
    ] as const) {
      if (start === stop) continue;
      const per = Math.ceil(Math.max(stop - start, totals[phase]) / this.maxCells);
      const cells: Cell[] = [];
      for (let i = start; i < stop; i += per) {
        const end = Math.min(stop, i + per);
        const old = this.previous.get(tasks[i]!.id);
        let same = old !== undefined && old.last === tasks[end - 1]!.id;
        for (let j = i; same && j < end; j++) same = tasks[j] === before[j];
        if (same) {
          cells.push(old!);
          next.set(old!.first, old!);
          continue;
        }
        const cell = per === 1 ? taskCell(tasks[i]!) : runCell(tasks.slice(i, end));
        const kept =
          old && old.state === cell.state && old.label === cell.label && old.id === cell.id && old.last === cell.last
            ? old
            : cell;
        cells.push(kept);
        next.set(kept.first, kept);
      }
      out.push({ phase, cells, per });
    }
    this.previous = next;
    this.previousTasks = tasks;
    return out;
  }
}
