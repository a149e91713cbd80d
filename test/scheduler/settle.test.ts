/** Fail or retry and the end of a job (settle.ts). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { TaskAssign } from '../../shared/protocol.js';
import { T, useScheduler, newScheduler, connect, submit } from './harness.js';

useScheduler();

test('only failed attempts count toward max attempts; then the job fails naming task, input and error', () => {
  const s = newScheduler();
  const id = submit({ 'book.txt': 'a\n' }, { reduces: 1, maxAttempts: 2 });
  s.jobAdded(id);
  const fail = (who: ReturnType<typeof connect>, t: TaskAssign) =>
    s.handle(who.v, {
      type: 'task.fail',
      lease: t.lease,
      reason: 'threw',
      error: { name: 'TypeError', message: 'boom', stack: 'TypeError: boom\n    at map (job.js:1:2)' },
    });
  const a = connect(s, 1);
  // Lost attempts do not count: lose it three times.
  for (let i = 0; i < 3; i++) {
    const t = a.conn.assigns().at(-1)!;
    s.hello(a.conn, {
      type: 'hello',
      protocol: 1,
      threads: 1,
      slots: 1,
      paused: false,
      agent: 't',
      running: [],
      volunteerId: a.v.id,
      secret: a.v.secret,
    });
    assert.equal(T.stores.attempts.byLease(t.lease)!.outcome, 'lost');
  }
  assert.equal(T.stores.jobs.get(id)!.state, 'mapping');
  fail(a, a.conn.assigns().at(-1)!);
  assert.equal(T.stores.jobs.get(id)!.state, 'mapping');
  fail(a, a.conn.assigns().at(-1)!);
  const job = T.stores.jobs.get(id)!;
  assert.equal(job.state, 'failed');
  assert.match(job.error!, /map task 0 \(input "book\.txt"\) failed 2 times: TypeError: boom/);
  assert.match(job.error!, /at map \(job\.js:1:2\)/);
  assert.equal(T.stores.tasks.forJob(id).filter((t) => t.state === 'cancelled').length, 1, 'the reduce is cancelled');
});

test('cancel stops running attempts and nothing more is handed out', () => {
  const s = newScheduler();
  const id = submit({ a: 'a\n', b: 'b\n' }, { reduces: 1 });
  s.jobAdded(id);
  const v = connect(s, 1);
  const t = v.conn.assigns()[0]!;
  assert.ok(s.endJob(id, 'cancelled', 'cancelled by an admin'));
  assert.equal(T.stores.jobs.get(id)!.state, 'cancelled');
  assert.equal(T.stores.attempts.byLease(t.lease)!.outcome, 'superseded');
  assert.ok(v.conn.of('task.cancel').some((c) => c.lease === t.lease));
  assert.equal(v.conn.assigns().length, 1);
  assert.equal(s.endJob(id, 'cancelled', null), false, 'cancelling twice is refused');
});
