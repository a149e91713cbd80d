/**
 * One vertical scale for both lines of the throughput chart. With an axis each, each line filled
 * the height on its own: a burst of many small tasks and a burst of a few big ones drew the same
 * two peaks. Here bytes are drawn in tasks of the window's mean size, so a line is as high as the
 * work it stands for, the two lines meet where tasks are of the usual size, and the data line
 * stands above the tasks line where tasks are bigger than usual.
 */
import { niceCeil } from './scale.js';

export interface SharedScale {
  /** Tasks per second at the top of the plot (a round number). */
  top: number;
  /** Bytes that weigh as much as one task: the mean input size in the window (1 when nothing ran). */
  bytesPerTask: number;
  /** False when the window has no task with data, so `bytesPerTask` is no measurement. */
  measured: boolean;
}

export function sharedScale(tasks: ArrayLike<number>, bytes: ArrayLike<number>): SharedScale {
  let sumTasks = 0;
  let sumBytes = 0;
  let peakTasks = 0;
  let peakBytes = 0;
  for (let i = 0; i < tasks.length; i++) {
    sumTasks += tasks[i]!;
    sumBytes += bytes[i]!;
    peakTasks = Math.max(peakTasks, tasks[i]!);
    peakBytes = Math.max(peakBytes, bytes[i]!);
  }
  const measured = sumTasks > 0 && sumBytes > 0;
  const bytesPerTask = measured ? sumBytes / sumTasks : 1;
  return { top: niceCeil(Math.max(1, peakTasks, peakBytes / bytesPerTask)), bytesPerTask, measured };
}

/** The height of a value as a share of the plot: tasks per second, or bytes per second. */
export function shareOf(s: SharedScale, v: number, kind: 'tasks' | 'bytes'): number {
  return (kind === 'tasks' ? v : v / s.bytesPerTask) / s.top;
}
