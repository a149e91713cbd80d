/** The transition functions of shared/states.ts, every state against every event. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  JOB_STATES,
  nextJobState,
  nextTaskState,
  TASK_STATES,
  type JobEvent,
  type JobState,
  type TaskEvent,
} from '../shared/states.js';

test('task state transitions: terminal states absorb everything but a reopen; settle retries or fails', () => {
  const events: TaskEvent[] = [
    { type: 'assign' },
    { type: 'commit' },
    { type: 'cancel' },
    { type: 'settle', othersRunning: 0, failures: 1, maxAttempts: 4, losses: 11, maxLosses: 12 },
    { type: 'settle', othersRunning: 1, failures: 4, maxAttempts: 4, losses: 0, maxLosses: 12 },
    { type: 'settle', othersRunning: 0, failures: 4, maxAttempts: 4, losses: 0, maxLosses: 12 },
    { type: 'settle', othersRunning: 0, failures: 0, maxAttempts: 4, losses: 12, maxLosses: 12 },
    { type: 'settle', othersRunning: 1, failures: 0, maxAttempts: 4, losses: 12, maxLosses: 12 },
    { type: 'vote', othersRunning: 0 },
    { type: 'vote', othersRunning: 1 },
    { type: 'reopen' },
  ];
  const expected: Record<string, string[]> = {
    pending: [
      ...['running', 'pending', 'cancelled', 'pending', 'pending', 'pending', 'pending', 'pending'],
      ...['pending', 'pending', 'pending'],
    ],
    running: [
      ...['running', 'succeeded', 'cancelled', 'pending', 'running', 'failed', 'failed', 'running'],
      ...['pending', 'running', 'running'],
    ],
    // Only verification takes a committed output back.
    succeeded: [...Array<string>(10).fill('succeeded'), 'pending'],
    failed: Array(11).fill('failed'),
    cancelled: Array(11).fill('cancelled'),
  };
  for (const state of TASK_STATES) {
    assert.deepEqual(
      events.map((e) => nextTaskState(state, e)),
      expected[state],
      `from ${state}`,
    );
  }
});

test('job state transitions: each phase advances on its own event only; finished states absorb everything', () => {
  // Typed as a full record, so a new state or event fails to compile until its row or column is here.
  const expected: Record<JobState, Record<JobEvent['type'], JobState>> = {
    queued: {
      start: 'mapping',
      'maps-done': 'queued',
      'reduces-done': 'queued',
      fail: 'failed',
      'maps-reopened': 'queued',
      cancel: 'cancelled',
    },
    mapping: {
      start: 'mapping',
      'maps-done': 'reducing',
      'reduces-done': 'mapping',
      fail: 'failed',
      'maps-reopened': 'mapping',
      cancel: 'cancelled',
    },
    reducing: {
      start: 'reducing',
      'maps-done': 'reducing',
      'reduces-done': 'succeeded',
      fail: 'failed',
      'maps-reopened': 'mapping',
      cancel: 'cancelled',
    },
    succeeded: {
      start: 'succeeded',
      'maps-done': 'succeeded',
      'reduces-done': 'succeeded',
      fail: 'succeeded',
      'maps-reopened': 'succeeded',
      cancel: 'succeeded',
    },
    failed: {
      start: 'failed',
      'maps-done': 'failed',
      'reduces-done': 'failed',
      fail: 'failed',
      'maps-reopened': 'failed',
      cancel: 'failed',
    },
    cancelled: {
      start: 'cancelled',
      'maps-done': 'cancelled',
      'reduces-done': 'cancelled',
      fail: 'cancelled',
      'maps-reopened': 'cancelled',
      cancel: 'cancelled',
    },
  };
  assert.deepEqual(Object.keys(expected), [...JOB_STATES]);
  for (const state of JOB_STATES) {
    for (const [type, next] of Object.entries(expected[state])) {
      assert.equal(nextJobState(state, { type } as JobEvent), next, `${state} on ${type}`);
    }
  }
});
