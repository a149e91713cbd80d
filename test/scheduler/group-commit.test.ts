/** Group commit (group-commit.ts): batched transactions, the held outbox, pacing, rollback. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openDatabase } from '../../server/db.js';
import { join } from 'node:path';
import { T, useScheduler, newScheduler, connect, resultOf, r0, submit, failNextCommit } from './harness.js';

useScheduler();

test('frames handled in one batch commit together, and nothing is sent before the commit', async () => {
  const s = newScheduler();
  const id = await submit({ a: 'a\n', b: 'b\n' }, { reduces: 1 });
  s.jobAdded(id);
  const { conn, v } = s.batched(() => connect(s, 1));
  assert.equal(conn.sent.length, 0, 'welcome and assignment wait for the commit');
  const reader = openDatabase(join(T.dir, 'db.sqlite'));
  try {
    const running = () => reader.prepare("SELECT count(*) AS n FROM attempt WHERE outcome = 'running'").get();
    assert.deepEqual(running(), { n: 0 }, 'another connection sees nothing before the commit');
    s.flush();
    assert.deepEqual(running(), { n: 1 });
    assert.deepEqual(
      conn.sent.map((m) => m.type),
      ['welcome', 'task.assign'],
    );
    const first = conn.assigns()[0]!;
    const r = await resultOf(first);
    s.batched(() => s.handle(v, { type: 'task.result', lease: first.lease, ...r }));
    assert.equal(conn.of('task.ack').length, 0);
    s.flush();
    assert.equal(conn.of('task.ack')[0]!.outcome, 'committed');
    assert.equal(conn.assigns().length, 2, 'the next task went out with the ack');
  } finally {
    reader.close();
  }
});

test('a commit that fails is rolled back whole: nothing held back is sent, the state is reloaded', async () => {
  const s = newScheduler();
  const id = await submit({ a: 'a\n' }, { reduces: 1 });
  s.jobAdded(id);
  const { conn, v } = connect(s, 1);
  const t = conn.assigns()[0]!;
  const sentBefore = conn.sent.length;
  const r = await resultOf(t);
  failNextCommit();
  s.batched(() => s.handle(v, { type: 'task.result', lease: t.lease, ...r }));
  assert.throws(() => s.flush(), /disk is full/);
  assert.equal(conn.sent.length, sentBefore, 'the ack was never sent');
  assert.equal(conn.closedWith?.code, 1011);
  assert.equal(T.stores.attempts.byLease(t.lease)!.outcome, 'running', 'the commit was rolled back');
  assert.equal(T.stores.jobs.get(id)!.maps_done, 0);
  // The volunteer comes back as after a restart, keeps its task and sends its result again.
  const back = connect(s, 1, 1, { volunteerId: v.id, secret: v.secret }, [t.lease]);
  assert.equal(back.v.id, v.id);
  s.batched(() => s.handle(back.v, { type: 'task.result', lease: t.lease, ...r }));
  s.flush();
  assert.equal(back.conn.of('task.ack')[0]!.outcome, 'committed');
  assert.equal(T.stores.jobs.get(id)!.maps_done, 1);
});

test('an idle master commits at the end of the turn; a busy one at most every commitGapMs', async () => {
  const s = newScheduler({ commitGapMs: 200 });
  const id = await submit({ a: 'a\n', b: 'b\n', c: 'c\n' }, { reduces: 1 });
  s.jobAdded(id);
  const { conn, v } = s.batched(() => connect(s, 1));
  await new Promise((r) => setImmediate(r));
  assert.equal(s.commits.count, 1, 'the first group committed at the end of its turn');
  assert.equal(conn.assigns().length, 1);
  const first = conn.assigns()[0]!;
  const committedAt = performance.now();
  s.batched(() => s.handle(v, { type: 'task.result', lease: first.lease, ...r0(first) }));
  await new Promise((r) => setImmediate(r));
  assert.equal(s.commits.count, 1, 'the next group waits for the gap');
  assert.equal(conn.of('task.ack').length, 0, 'and so does its ack');
  await new Promise((r) => setTimeout(r, 250));
  assert.equal(s.commits.count, 2);
  assert.ok(performance.now() - committedAt >= 200);
  assert.equal(conn.of('task.ack')[0]!.outcome, 'committed');
  // An admin request does not wait for the gap: it commits what is open first.
  const second = conn.assigns()[1]!;
  s.batched(() => s.handle(v, { type: 'task.result', lease: second.lease, ...r0(second) }));
  s.flush();
  assert.equal(s.commits.count, 3);
  assert.equal(conn.of('task.ack').length, 2);
  await new Promise((r) => setTimeout(r, 250));
  assert.equal(s.commits.count, 3, 'the timer of a group flushed early commits nothing more');
});
