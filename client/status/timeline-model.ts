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

export interface TimelineModel {
  t0: number;
  t1: number;
  rows: Row[];
  bars: Bar[];
  lanes: number;
  /** When the first reduce attempt started; Infinity before that. */
  reduceStart: number;
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

  /**
   * One row per volunteer, ordered by its first attempt. A volunteer with several threads runs
   * attempts side by side, so its row holds as many lanes as it ever ran at once; each attempt
   * takes the first lane free at its start. Running attempts end at `now`.
   */
  build(job: JobView, tasks: TaskView[], now: number): TimelineModel {
    const end = job.finishedAt ?? now;
    const byWorker = new Map<string, { task: TaskView; a: AttemptView; n: number }[]>();
    let t0 = job.createdAt;
    let t1 = end;
    let reduceStart = Infinity;
    for (const task of tasks) {
      task.attempts.forEach((a, n) => {
        const list = byWorker.get(a.worker) ?? [];
        list.push({ task, a, n });
        byWorker.set(a.worker, list);
        t0 = Math.min(t0, a.startedAt);
        t1 = Math.max(t1, a.endedAt ?? end);
        if (task.phase === 'reduce') reduceStart = Math.min(reduceStart, a.startedAt);
      });
    }
    const workers = [...byWorker.entries()]
      .map(([worker, list]) => ({ worker, list: list.sort((x, y) => x.a.startedAt - y.a.startedAt) }))
      .sort((x, y) => x.list[0]!.a.startedAt - y.list[0]!.a.startedAt);
    const rows: Row[] = [];
    const bars: Bar[] = [];
    let lane = 0;
    for (const { worker, list } of workers) {
      const laneEnds: number[] = [];
      for (const { task, a, n } of list) {
        const stop = a.endedAt ?? end;
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
    return { t0, t1: Math.max(t1, t0 + 100), rows, bars, lanes: lane, reduceStart };
  }
}
