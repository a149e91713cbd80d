/** Every state a job, task or attempt can be in, as frozen lists plus their union types. */
export const JOB_STATES = Object.freeze(['queued', 'mapping', 'reducing', 'succeeded', 'failed', 'cancelled'] as const);
export type JobState = (typeof JOB_STATES)[number];

export const TASK_STATES = Object.freeze(['pending', 'running', 'succeeded', 'failed', 'cancelled'] as const);
export type TaskState = (typeof TASK_STATES)[number];

/**
 * `voted`: its result waits for another volunteer's to match it (README "Verification"); it becomes
 * `succeeded` when one does, `rejected` when another result wins the vote.
 */
export const ATTEMPT_OUTCOMES = Object.freeze([
  'running',
  'succeeded',
  'failed',
  'lost',
  'superseded',
  'voted',
  'rejected',
] as const);
export type AttemptOutcome = (typeof ATTEMPT_OUTCOMES)[number];

export type Phase = 'map' | 'reduce';

/** How a job's results are checked: not at all, by two volunteers each, or two until trust is earned. */
export const VERIFY_MODES = Object.freeze(['off', 'adaptive', 'all'] as const);
export type VerifyMode = (typeof VERIFY_MODES)[number];

/**
 * How a committed task's output was confirmed: `verified` by two independent volunteers, `spot` a
 * trusted volunteer's result that a spot check agreed with, `trusted` a trusted volunteer's result
 * alone, `unconfirmed` one result for want of a second volunteer.
 */
export type Confirm = 'verified' | 'spot' | 'trusted' | 'unconfirmed';

export function isJobFinished(state: JobState): boolean {
  return state === 'succeeded' || state === 'failed' || state === 'cancelled';
}

/**
 * What can happen to a task. `settle` is an attempt ending without a result (failed or lost); `vote`
 * a result recorded while the task waits for another that matches it; `reopen` a committed output
 * taken back because it came from a volunteer that later lost a vote.
 */
export type TaskEvent =
  | { type: 'assign' }
  | { type: 'commit' }
  | { type: 'vote'; othersRunning: number }
  | { type: 'reopen' }
  | { type: 'settle'; othersRunning: number; failures: number; maxAttempts: number; losses: number; maxLosses: number }
  | { type: 'cancel' };

/**
 * The one place that decides a task's next state. Terminal states absorb every event but one: a
 * late result or a lost volunteer can never reopen a committed, failed or cancelled task; only
 * verification reopens a committed one, whose output it has found to rest on a liar's word.
 */
export function nextTaskState(state: TaskState, event: TaskEvent): TaskState {
  if (event.type === 'reopen') return state === 'succeeded' ? 'pending' : state;
  if (state === 'succeeded' || state === 'failed' || state === 'cancelled') return state;
  switch (event.type) {
    case 'assign':
      return 'running';
    case 'commit':
      return state === 'running' ? 'succeeded' : state;
    case 'vote':
      return state === 'running' && event.othersRunning === 0 ? 'pending' : state;
    case 'settle':
      if (state !== 'running' || event.othersRunning > 0) return state;
      return event.failures >= event.maxAttempts || event.losses >= event.maxLosses ? 'failed' : 'pending';
    case 'cancel':
      return 'cancelled';
  }
}

/**
 * What can happen to a job. `start` is its first assignment, `maps-done` the barrier (every map
 * committed), `reduces-done` its last reduce committed; `fail` and `cancel` end it early;
 * `maps-reopened` takes the barrier back (a map output came from a volunteer that lost a vote).
 */
export type JobEvent =
  | { type: 'start' }
  | { type: 'maps-done' }
  | { type: 'reduces-done' }
  | { type: 'fail' }
  | { type: 'cancel' }
  | { type: 'maps-reopened' };

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
    case 'maps-reopened':
      return state === 'reducing' ? 'mapping' : state;
    case 'fail':
      return 'failed';
    case 'cancel':
      return 'cancelled';
  }
}
