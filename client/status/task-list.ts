/**
 * A job's tasks as the job page holds them (issue 14). A job may have 210,000 tasks, 41 MB of JSON:
 * the page reads them once, a page at a time, then asks only for the tasks that changed since its
 * last answer (`changedSince`) and puts them in place by id. What the page shows of all of them
 * (attempts by outcome, the tasks with failures) is kept up to date as tasks come and change,
 * instead of being counted again over every task at each refresh.
 */
import { TASKS_HEADERS, TASKS_PAGE_LIMIT, type TaskView } from '../../shared/api.js';
import type { AttemptOutcome, TaskState } from '../../shared/states.js';

/** What one answer of `GET /api/jobs/:id/tasks` brings. */
export interface TasksAnswer {
  tasks: TaskView[];
  /** `X-Next-After`: the `after` of the next page, or null on the last one. */
  nextAfter: number | null;
  /** `X-Next-Changed-Since`: the `changedSince` of the next refresh. */
  nextChangedSince: number | null;
}

export function readTasksAnswer(tasks: TaskView[], headers: Headers): TasksAnswer {
  const num = (name: string) => {
    const v = headers.get(name);
    return v === null || v === '' || !Number.isFinite(Number(v)) ? null : Number(v);
  };
  return { tasks, nextAfter: num(TASKS_HEADERS.nextAfter), nextChangedSince: num(TASKS_HEADERS.nextChangedSince) };
}

export type OutcomeCounts = Record<AttemptOutcome, number>;
export type StateCounts = Record<TaskState, number>;

const noOutcomes = (): OutcomeCounts => ({
  running: 0,
  succeeded: 0,
  failed: 0,
  lost: 0,
  superseded: 0,
  voted: 0,
  rejected: 0,
});
const noStates = (): StateCounts => ({ pending: 0, running: 0, succeeded: 0, failed: 0, cancelled: 0 });

function hasFailure(t: TaskView): boolean {
  return t.attempts.some((a) => a.outcome === 'failed');
}

export class TaskList {
  /**
   * Every task so far, in id order. Pages are appended in place; a refresh that changes anything
   * replaces the array, so that views holding it see a new one. Hand views `snapshot()`.
   */
  tasks: TaskView[] = [];
  /** Where each task is in `tasks`, by id. */
  private at = new Map<number, number>();
  /** The `after` of the next page while loading; null once every page is in. */
  private after: number | null = 0;
  /** The `changedSince` of the next refresh: set by the first page, moved on by every refresh. */
  private since: number | null = null;
  private outcomes = noOutcomes();
  private states = noStates();
  /** Ids of the tasks with a failed attempt. */
  private failing = new Set<number>();

  get loaded(): boolean {
    return this.after === null;
  }

  /** The path of the next request: the next page while loading, else what changed. */
  nextPath(jobId: string): string {
    const base = `/api/jobs/${encodeURIComponent(jobId)}/tasks`;
    if (this.after !== null) return `${base}?after=${this.after}&limit=${TASKS_PAGE_LIMIT}`;
    return this.since === null ? base : `${base}?changedSince=${this.since}`;
  }

  /** Takes the answer to the request `nextPath` named. */
  take(answer: TasksAnswer): void {
    if (this.after === null) {
      this.merge(answer.tasks);
      // Without the header (an older master) every refresh is the whole list, as it used to be.
      this.since = answer.nextChangedSince;
      return;
    }
    // Changes made while the pages load are caught by the first refresh, from the first page on.
    if (this.after === 0) this.since = answer.nextChangedSince;
    this.append(answer.tasks);
    this.after = answer.nextAfter;
  }

  /** The tasks so far, for views, which must not see the list grow under them while pages come in. */
  snapshot(): TaskView[] {
    return this.loaded ? this.tasks : this.tasks.slice();
  }

  get(id: number): TaskView | undefined {
    const i = this.at.get(id);
    return i === undefined ? undefined : this.tasks[i];
  }

  /** Attempts by outcome over every task so far (a copy). */
  counts(): OutcomeCounts {
    return { ...this.outcomes };
  }

  /** Tasks by state over every task so far (a copy). */
  stateCounts(): StateCounts {
    return { ...this.states };
  }

  /** The tasks with a failed attempt, in id order. */
  failed(): TaskView[] {
    return [...this.failing].sort((a, b) => a - b).map((id) => this.get(id)!);
  }

  private append(page: TaskView[]): void {
    // The pages of a 200,000-task job are 42 appends: grow one array, not a copy per page.
    const list = this.tasks;
    for (const t of page) {
      if (this.at.has(t.id)) return this.rebuild(list, page);
      this.at.set(t.id, list.length);
      list.push(t);
      this.count(t, 1);
    }
  }

  /** Puts each changed task in place of the one with its id; a task not seen before is added. */
  private merge(changed: TaskView[]): void {
    if (changed.length === 0) return;
    const next = this.tasks.slice();
    const added: TaskView[] = [];
    for (const t of changed) {
      const i = this.at.get(t.id);
      if (i === undefined) {
        added.push(t);
        continue;
      }
      this.count(next[i]!, -1);
      this.count(t, 1);
      next[i] = t;
    }
    if (added.length > 0) return this.rebuild(next, added);
    this.tasks = next;
  }

  /** `base` with `extra` merged in by id, in id order, and everything counted again. */
  private rebuild(base: TaskView[], extra: TaskView[]): void {
    const byId = new Map(base.map((t) => [t.id, t]));
    for (const t of extra) byId.set(t.id, t);
    this.tasks = [...byId.values()].sort((a, b) => a.id - b.id);
    this.at = new Map(this.tasks.map((t, i) => [t.id, i]));
    this.outcomes = noOutcomes();
    this.states = noStates();
    this.failing.clear();
    for (const t of this.tasks) this.count(t, 1);
  }

  private count(t: TaskView, sign: 1 | -1): void {
    this.states[t.state] += sign;
    for (const a of t.attempts) this.outcomes[a.outcome] += sign;
    if (sign === 1 && hasFailure(t)) this.failing.add(t.id);
    else if (sign === -1) this.failing.delete(t.id);
  }
}
