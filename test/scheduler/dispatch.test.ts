/** Fair dispatch (dispatch.ts): spreading work, retries elsewhere, leases issued in time order. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { T, useScheduler, newScheduler, connect, complete, submit } from './harness.js';

useScheduler();

test('work spreads across volunteers before any gets a second task', async () => {
  const s = newScheduler();
  const a = connect(s, 2);
  const b = connect(s, 2);
  const id = await submit({ a: 'a\n', b: 'b\n' });
  s.jobAdded(id);
  assert.equal(a.conn.assigns().length, 1);
  assert.equal(b.conn.assigns().length, 1);
});

test('the loser of a backup race is given waiting work at once', async () => {
  const s = newScheduler();
  const first = await submit({ a: 'a\n', b: 'b\n' }, { reduces: 1, taskTimeoutMs: 5_000 });
  s.jobAdded(first);
  const slow = connect(s, 1);
  const t = slow.conn.assigns()[0]!;
  T.now += 2_000;
  const other = connect(s, 1); // its task is not yet due a backup when slow's is
  assert.equal(other.conn.assigns().length, 1);
  const spare = connect(s, 1);
  T.now += 3_000;
  s.handle(slow.v, { type: 'heartbeat', running: [t.lease] });
  s.handle(other.v, { type: 'heartbeat', running: [other.conn.assigns()[0]!.lease] });
  s.sweep();
  const backup = spare.conn.assigns()[0]!;
  assert.equal(backup.taskId, t.taskId);
  const second = await submit({ x: 'x\n', y: 'y\n' }, { reduces: 1 });
  s.jobAdded(second);
  assert.equal(slow.conn.assigns().length, 1, 'everyone is busy');
  await complete(s, spare.v, backup);
  assert.equal(spare.conn.assigns().at(-1)!.jobId, second);
  assert.equal(slow.conn.assigns().length, 2, 'the cancelled loser takes the other waiting task');
  assert.equal(slow.conn.assigns().at(-1)!.jobId, second);
});

test('a task whose code failed on one volunteer is retried on another when one is free', async () => {
  const s = newScheduler();
  const id = await submit({ a: 'a\n' }, { reduces: 1 });
  s.jobAdded(id);
  const first = connect(s, 1);
  const second = connect(s, 1);
  const t = first.conn.assigns()[0]!;
  assert.equal(second.conn.assigns().length, 0);
  s.handle(first.v, { type: 'task.fail', lease: t.lease, reason: 'threw', error: { name: 'Error', message: 'x' } });
  assert.equal(first.conn.assigns().length, 1, 'not given back to the volunteer it failed on');
  assert.equal(second.conn.assigns()[0]!.taskId, t.taskId);
});

test('with no one else around, the retry runs on the same volunteer', async () => {
  const s = newScheduler();
  const id = await submit({ a: 'a\n' }, { reduces: 1 });
  s.jobAdded(id);
  const only = connect(s, 1);
  const t = only.conn.assigns()[0]!;
  s.handle(only.v, { type: 'task.fail', lease: t.lease, reason: 'threw', error: { name: 'Error', message: 'x' } });
  assert.equal(only.conn.assigns()[1]!.taskId, t.taskId);
});

test('leases are 32 hex digits, unique, and ordered by the time they were issued', async () => {
  const s = newScheduler();
  const id = await submit(Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`f${i}`, `w${i}\n`])), {
    reduces: 1,
  });
  s.jobAdded(id);
  const leases: string[] = [];
  for (let i = 0; i < 50; i++) {
    T.now += 1;
    const { conn } = connect(s, 1);
    leases.push(conn.assigns()[0]!.lease);
  }
  for (const l of leases) assert.match(l, /^[0-9a-f]{32}$/);
  assert.equal(new Set(leases).size, leases.length);
  assert.deepEqual([...leases].sort(), leases);
  assert.equal(new Set(leases.map((l) => l.slice(12))).size, leases.length, 'the random part differs');
});

test('a new identity holds one task until it has committed one, whatever threads it claims', async () => {
  const s = newScheduler();
  const id = await submit(Object.fromEntries(Array.from({ length: 8 }, (_, i) => [`f${i}`, `w${i}\n`])), {
    reduces: 1,
  });
  s.jobAdded(id);
  const greedy = connect(s, 256, 512);
  assert.equal(greedy.conn.assigns().length, 1);
  await complete(s, greedy.v, greedy.conn.assigns()[0]!);
  assert.equal(greedy.conn.assigns().length, 3, 'one commit earns one more slot: two running now');
  const honest = connect(s, 1);
  assert.equal(honest.conn.assigns().length, 1, 'a newcomer still gets work beside it');
});
