/** Exactly-once commit (commit.ts) and who may act on a lease (lease-owner.ts). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { T, useScheduler, newScheduler, connect, output, complete, submit, outputTexts } from './harness.js';

useScheduler();

test('a job runs maps, waits at the barrier, then reduces and succeeds with the right output', async () => {
  const s = newScheduler();
  const id = await submit({ a: 'x y x\n', b: 'y z\n' });
  s.jobAdded(id);
  const { conn, v } = connect(s, 1);
  // One slot: one map at a time.
  assert.equal(conn.assigns().length, 1);
  await complete(s, v, conn.assigns()[0]!);
  assert.equal(conn.assigns().length, 2);
  assert.equal(conn.assigns()[1]!.phase, 'map');
  await complete(s, v, conn.assigns()[1]!);
  // Barrier passed: reduces T.now.
  assert.equal(T.stores.jobs.get(id)!.state, 'reducing');
  for (let i = 0; i < 2; i++) await complete(s, v, conn.assigns().at(-1)!);
  const job = T.stores.jobs.get(id)!;
  assert.equal(job.state, 'succeeded');
  assert.equal(outputTexts(id).join('').split('\n').filter(Boolean).sort().join(','), 'x\t2,y\t2,z\t1');
  assert.equal(conn.of('task.ack').filter((a) => a.outcome === 'committed').length, 4);
});

test('reduces are not handed out before every map has committed', async () => {
  const s = newScheduler();
  const id = await submit({ a: 'a\n', b: 'b\n', c: 'c\n' });
  s.jobAdded(id);
  const one = connect(s, 1, 5);
  // A new identity holds one task; each commit earns it one more, up to its 5 slots.
  await complete(s, one.v, one.conn.assigns()[0]!);
  assert.deepEqual(
    one.conn.assigns().map((t) => t.phase),
    ['map', 'map', 'map'],
  );
  await complete(s, one.v, one.conn.assigns()[1]!);
  assert.equal(one.conn.assigns().length, 3, 'no reduce while a map is still running');
  await complete(s, one.v, one.conn.assigns()[2]!);
  assert.deepEqual(
    one.conn
      .assigns()
      .slice(3)
      .map((t) => t.phase),
    ['reduce', 'reduce'],
  );
});

test('a duplicate result is recorded superseded and does not count twice', async () => {
  const s = newScheduler();
  const id = await submit({ a: 'a b\n' }, { reduces: 1 });
  s.jobAdded(id);
  const { conn, v } = connect(s, 1);
  const t = conn.assigns()[0]!;
  await complete(s, v, t);
  await complete(s, v, t);
  const acks = conn.of('task.ack').filter((a) => a.lease === t.lease);
  assert.deepEqual(
    acks.map((a) => a.outcome),
    ['committed', 'superseded'],
  );
  assert.equal(T.stores.jobs.get(id)!.maps_done, 1);
});

test('a forged lease and a lease held by another volunteer are refused and change nothing', async () => {
  const s = newScheduler();
  const id = await submit({ a: 'a\n' }, { reduces: 1 });
  s.jobAdded(id);
  const owner = connect(s, 1);
  const thief = connect(s, 1);
  const t = owner.conn.assigns()[0]!;
  s.handle(thief.v, {
    type: 'task.result',
    lease: t.lease,
    output: await output(t),
    stats: { ms: 1, recordsIn: 1, recordsOut: 1 },
  });
  s.handle(thief.v, {
    type: 'task.result',
    lease: 'f'.repeat(32),
    output: '',
    stats: { ms: 1, recordsIn: 0, recordsOut: 0 },
  });
  assert.deepEqual(
    thief.conn.of('task.ack').map((a) => a.outcome),
    ['refused', 'refused'],
  );
  assert.equal(T.stores.jobs.get(id)!.maps_done, 0);
  assert.equal(T.stores.attempts.byLease(t.lease)!.outcome, 'running');
  await complete(s, owner.v, t);
  assert.equal(T.stores.jobs.get(id)!.maps_done, 1);
});

test('malformed output is refused: the attempt is lost, the volunteer dropped, the task re-run', async () => {
  const s = newScheduler();
  const id = await submit({ a: 'a\n' }, { reduces: 2 });
  s.jobAdded(id);
  const bad = connect(s, 1);
  const t = bad.conn.assigns()[0]!;
  // Keys out of order.
  s.handle(bad.v, {
    type: 'task.result',
    lease: t.lease,
    output: '[0,"b",["1"]]\n[0,"a",["1"]]\n',
    stats: { ms: 1, recordsIn: 1, recordsOut: 1 },
  });
  assert.equal(T.stores.attempts.byLease(t.lease)!.outcome, 'lost');
  assert.equal(bad.conn.closedWith?.code, 1008);
  assert.equal(T.stores.jobs.get(id)!.maps_done, 0);
  s.closed(bad.v, bad.conn);
  const good = connect(s, 1);
  assert.equal(good.conn.assigns()[0]!.taskId, t.taskId);
});

test('outputs commit as records, and a record for a partition the job lacks is refused', async () => {
  const s = newScheduler();
  const id = await submit({ a: 'x y x\n' }, { reduces: 2 });
  s.jobAdded(id);
  const { conn, v } = connect(s, 1);
  const map = conn.assigns()[0]!;
  const stats = { ms: 1, recordsIn: 1, recordsOut: 3 };
  s.handle(v, { type: 'task.result', lease: map.lease, output: await output(map), stats });
  assert.equal(conn.of('task.ack')[0]!.outcome, 'committed');
  // One slot: each reduce is assigned as the one before it commits.
  for (let i = 1; i < conn.assigns().length; i++) {
    const reduce = conn.assigns()[i]!;
    s.handle(v, { type: 'task.result', lease: reduce.lease, output: await output(reduce), stats });
  }
  assert.equal(T.stores.jobs.get(id)!.state, 'succeeded');
  assert.equal(outputTexts(id).join('').split('\n').filter(Boolean).sort().join(','), 'x\t2,y\t1');

  const other = await submit({ b: 'z\n' }, { reduces: 2 });
  s.jobAdded(other);
  const t = conn.assigns().at(-1)!;
  assert.equal(t.jobId, other);
  // Partition 2 where the job has two (0 and 1).
  s.handle(v, { type: 'task.result', lease: t.lease, output: '[2,"z",["1"]]\n', stats });
  assert.equal(conn.closedWith?.code, 1008);
  assert.equal(T.stores.attempts.byLease(t.lease)!.outcome, 'lost');
});
