/** The task grid's cells: one per task, with what its tooltip says. */
import type { TaskView } from '../../shared/api.js';

export interface Cell {
  id: number;
  state: TaskView['state'];
  /** Needed more than one attempt. */
  retried: boolean;
  label: string;
}

export function describeTask(t: TaskView): string {
  const failures = t.attempts.filter((a) => a.outcome === 'failed').length;
  return (
    `${t.phase} ${t.index}${t.input ? ` (${t.input})` : ''}: ${t.state}` +
    `, ${t.attempts.length} attempt${t.attempts.length === 1 ? '' : 's'}${failures ? `, ${failures} failed` : ''}`
  );
}

/** Like TimelineBuilder: unchanged cells keep their object, so a refresh redraws only what moved. */
export class CellBuilder {
  private previous = new Map<number, Cell>();

  build(tasks: TaskView[]): { phase: 'map' | 'reduce'; cells: Cell[] }[] {
    const out = { map: [] as Cell[], reduce: [] as Cell[] };
    const next = new Map<number, Cell>();
    for (const t of tasks) {
      const cell: Cell = { id: t.id, state: t.state, retried: t.attempts.length > 1, label: describeTask(t) };
      const old = this.previous.get(t.id);
      const kept = old && old.state === cell.state && old.label === cell.label ? old : cell;
      out[t.phase].push(kept);
      next.set(t.id, kept);
    }
    this.previous = next;
    return (['map', 'reduce'] as const)
      .map((phase) => ({ phase, cells: out[phase] }))
      .filter((p) => p.cells.length > 0);
  }
}
