/** The runtime-neutral pool of job workers (shared/worker-pool.ts): queueing, and what it reports of it. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WorkerPool, type PoolWorker } from '../shared/worker-pool.js';
import type { ReadyTask } from '../shared/volunteer-session.js';

function task(lease: string): ReadyTask {
  return {
    type: 'task.assign',
    lease,
    jobId: 'j',
    jobName: 'j',
    taskId: 1,
    phase: 'reduce',
    index: 0,
    nReduce: 1,
    moduleUrl: '/jobs/j/module.js',
    hardLimitMs: 10_000,
    input: { bytes: 0, text: '' },
  };
}

test('a task beyond the threads waits for a worker, and its answer says how long', async () => {
  const started: string[] = [];
  const worker = (): PoolWorker => ({
    run: (t) => {
      started.push(t.lease);
      return new Promise((resolve) =>
        setTimeout(() => resolve({ output: t.lease, stats: { ms: 1, recordsIn: 0, recordsOut: 0 } }), 60),
      );
    },
    terminate: () => {},
  });
  const pool = new WorkerPool(worker, 1);
  const first = pool.run(task('first'));
  const second = pool.run(task('second'));
  assert.deepEqual(started, ['first'], 'one thread: the second waits');
  const [a, b] = await Promise.all([first, second]);
  assert.deepEqual(started, ['first', 'second']);
  assert.ok(a.queuedMs! < 20, `the first started at once (${a.queuedMs} ms)`);
  assert.ok(b.queuedMs! >= 50, `the second waited for the first (${b.queuedMs} ms)`);
  assert.equal(b.output, 'second');
  pool.terminateAll();
});
