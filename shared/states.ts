/** Every state a job, task or attempt can be in, as frozen lists plus their union types. */
export const JOB_STATES = Object.freeze(['queued', 'mapping', 'reducing', 'succeeded', 'failed', 'cancelled'] as const);
export type JobState = (typeof JOB_STATES)[number];

export const TASK_STATES = Object.freeze(['pending', 'running', 'succeeded', 'failed', 'cancelled'] as const);
export type TaskState = (typeof TASK_STATES)[number];

export const ATTEMPT_OUTCOMES = Object.freeze(['running', 'succeeded', 'failed', 'lost', 'superseded'] as const);
export type AttemptOutcome = (typeof ATTEMPT_OUTCOMES)[number];

export type Phase = 'map' | 'reduce';

export function isJobFinished(state: JobState): boolean {
  return state === 'succeeded' || state === 'failed' || state === 'cancelled';
}

/** What can happen to a task. `settle` is an attempt ending without a result (failed or lost). */
export type TaskEvent =
  | { type: 'assign' }
  | { type: 'commit' }
  | { type: 'settle'; othersRunning: number; failures: number; maxAttempts: number; losses: number; maxLosses: number }
  | { type: 'cancel' };

/**
 * The one place that decides a task's next state. Terminal states absorb every event: a late
 * result or a lost volunteer can never reopen a committed, failed or cancelled task.
 */
export function nextTaskState(state: TaskState, event: TaskEvent): TaskState {
  if (state === 'succeeded' || state === 'failed' || state === 'cancelled') return state;
  switch (event.type) {
    case 'assign':
      return 'running';
    case 'commit':
      return state === 'running' ? 'succeeded' : state;
    case 'settle':
      if (state !== 'running' || event.othersRunning > 0) return state;
      return event.failures >= event.maxAttempts || event.losses >= event.maxLosses ? 'failed' : 'pending';
    case 'cancel':
      return 'cancelled';
  }
}

/**
 * What can happen to a job. `start` is its first assignment, `maps-done` the barrier (every map
 * committed), `reduces-done` its last reduce committed; `fail` and `cancel` end it early.
 */
export type JobEvent =
  { type: 'start' } | { type: 'maps-done' } | { type: 'reduces-done' } | { type: 'fail' } | { type: 'cancel' };

/**
 * The one place that decides a job's next state; every job transition in the master goes through
 * it. Finished states absorb every event, and an event that does not fit the phase (a barrier while
 * queued, the last reduce while mapping) leaves the state as it is.
 */
export function nextJobState(state: JobState, event: JobEvent): JobState {
  if (isJobFinished(state)) return state;
  switch (event.type) {
    case 'start':
      return state === 'queued' ? 'mapping' : state;
    case 'maps-done':
      return state === 'mapping' ? 'reducing' : state;
    case 'reduces-done':
      return state === 'reducing' ? 'succeeded' : state;
    case 'fail':
      return 'failed';
    case 'cancel':
      return 'cancelled';
  }
}
