/** Volunteer identity (volunteers.ts): reconnecting keeps tasks, secrets, saved records. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { T, useScheduler, newScheduler, connect, complete, submit } from './harness.js';

useScheduler();

test('a volunteer that reconnects within 10 s keeps its tasks and its result commits', async () => {
  const s = newScheduler();
  const id = await submit({ a: 'a\n' }, { reduces: 1 });
  s.jobAdded(id);
  const first = connect(s, 1);
  const welcome = first.conn.of('welcome')[0]!;
  const t = first.conn.assigns()[0]!;
  s.closed(first.v, first.conn);
  T.now += 8_000;
  s.sweep();
  const back = connect(s, 1, 1, { volunteerId: welcome.volunteerId, secret: welcome.secret }, [t.lease]);
  assert.equal(back.v.id, first.v.id);
  assert.deepEqual(back.conn.of('welcome')[0]!.kept, [t.lease]);
  T.now += 5_000;
  s.sweep();
  assert.equal(T.stores.attempts.byLease(t.lease)!.outcome, 'running');
  await complete(s, back.v, t);
  assert.equal(T.stores.attempts.byLease(t.lease)!.outcome, 'succeeded');
});

test('a wrong secret does not take over another volunteer identity', async () => {
  const s = newScheduler();
  const first = connect(s, 1);
  const welcome = first.conn.of('welcome')[0]!;
  const impostor = connect(s, 1, 1, { volunteerId: welcome.volunteerId, secret: 'x'.repeat(32) });
  assert.notEqual(impostor.v.id, first.v.id);
  assert.equal(first.conn.closedWith, null);
});

test('done counts are committed with each task and survive a SIGKILL; last-seen times are saved in slices', async () => {
  let s = newScheduler();
  const id = await submit({ a: 'a\n', b: 'b\n', c: 'c\n' }, { reduces: 1 });
  s.jobAdded(id);
  const { conn, v } = connect(s, 1);
  const connectedAt = T.now;
  for (let i = 0; i < 3; i++) await complete(s, v, conn.assigns()[i]!);
  assert.equal(v.done, 3);
  assert.equal(T.stores.volunteers.get(v.id)!.done, 3, 'in the transaction of each commit');
  T.now += 5_000;
  s.seen(v);
  assert.equal(s.saveVolunteers(), 0, 'nothing is due within 30 s of the last save');
  assert.equal(T.stores.volunteers.get(v.id)!.last_seen_at, connectedAt);
  T.now += 30_000;
  s.seen(v);
  assert.equal(s.saveVolunteers(), 1);
  assert.equal(T.stores.volunteers.get(v.id)!.last_seen_at, T.now);
  // A new scheduler on the same database with no save and no close, as after a SIGKILL.
  s = newScheduler();
  const back = connect(s, 1, 1, { volunteerId: v.id, secret: v.secret });
  assert.equal(back.v.id, v.id);
  assert.equal(back.v.done, 3);
  T.now += 1_000;
  s.seen(back.v);
  s.closed(back.v, back.conn);
  assert.equal(T.stores.volunteers.get(v.id)!.last_seen_at, T.now, 'a disconnect saves at once');
});

test("a volunteer's rate: its results and their input bytes per second over the last minute", async () => {
  const s = newScheduler();
  const id = await submit({ a: 'aaaa\n', b: 'bb\n', c: 'c\n' }, { reduces: 1 });
  s.jobAdded(id);
  const { conn, v } = connect(s, 1);
  assert.deepEqual(s.rateOf(v), { tasksPerSec: 0, bytesPerSec: 0 });
  // Two maps 10 s after connecting: over those 10 s, not over a minute it has not been there.
  T.now += 10_000;
  for (let i = 0; i < 2; i++) await complete(s, v, conn.assigns()[i]!);
  assert.deepEqual(s.rateOf(v), { tasksPerSec: 0.2, bytesPerSec: 0.8 }, '"aaaa\\n" and "bb\\n": 8 bytes in 10 s');
  // Over a minute on (the window moves in 5 s steps), only what came since counts, over the minute.
  T.now += 70_000;
  await complete(s, v, conn.assigns()[2]!);
  const later = s.rateOf(v);
  assert.equal(later.tasksPerSec, 1 / 60, 'the first two fell out of the window');
  assert.equal(later.bytesPerSec, 2 / 60);
  T.now += 70_000;
  assert.deepEqual(s.rateOf(v), { tasksPerSec: 0, bytesPerSec: 0 }, 'idle for a minute: no rate');
});
