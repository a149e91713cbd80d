/** Restart (recovery.ts): a new scheduler on the same database resumes. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { T, useScheduler, newScheduler, connect, complete, submit, outputTexts } from './harness.js';

useScheduler();

test('a new scheduler on the same database resumes: held tasks wait 10 s for their volunteer', async () => {
  let s = newScheduler();
  const id = await submit({ a: 'a b\n', b: 'c\n' }, { reduces: 1 });
  s.jobAdded(id);
  const v = connect(s, 2);
  const welcome = v.conn.of('welcome')[0]!;
  const [t1] = v.conn.assigns();
  await complete(s, v.v, t1!);
  const t2 = v.conn.assigns()[1];
  // The master dies here; t2 is still running on the volunteer.
  T.now += 3_000;
  s = newScheduler();
  const back = connect(s, 2, 2, { volunteerId: welcome.volunteerId, secret: welcome.secret }, [t2!.lease]);
  assert.deepEqual(back.conn.of('welcome')[0]!.kept, [t2!.lease]);
  await complete(s, back.v, t2!);
  const reduce = back.conn.assigns().find((t) => t.phase === 'reduce')!;
  await complete(s, back.v, reduce);
  assert.equal(T.stores.jobs.get(id)!.state, 'succeeded');
  assert.equal(outputTexts(id).join(''), 'a\t1\nb\t1\nc\t1\n');
});

test('after a restart, tasks of volunteers that never come back are reassigned after 10 s', async () => {
  let s = newScheduler();
  const id = await submit({ a: 'a\n' }, { reduces: 1 });
  s.jobAdded(id);
  const v = connect(s, 1);
  const t = v.conn.assigns()[0]!;
  s = newScheduler();
  const other = connect(s, 1);
  assert.equal(other.conn.assigns().length, 0);
  T.now += 10_000;
  s.handle(other.v, { type: 'heartbeat', running: [] });
  s.sweep();
  assert.equal(T.stores.attempts.byLease(t.lease)!.outcome, 'lost');
  assert.equal(other.conn.assigns()[0]!.taskId, t.taskId);
});
