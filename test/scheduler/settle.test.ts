/** Fail or retry and the end of a job (settle.ts). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { TaskAssign } from '../../shared/protocol.js';
import { T, useScheduler, newScheduler, connect, connectFrom, complete, failTask, submit } from './harness.js';

useScheduler();

test('only failed attempts count toward max attempts; then the job fails naming task, input and error', async () => {
  const s = newScheduler();
  const id = await submit({ 'book.txt': 'a\n' }, { reduces: 1, maxAttempts: 2 });
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
      protocol: 2,
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

test('cancel stops running attempts and nothing more is handed out', async () => {
  const s = newScheduler();
  const id = await submit({ a: 'a\n', b: 'b\n' }, { reduces: 1 });
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

test('forged failures from many identities on one address do not fail a job that a volunteer elsewhere can run', async () => {
  const s = newScheduler();
  const id = await submit({ a: 'a\n', b: 'b\n' }, { reduces: 1, maxAttempts: 2 });
  s.jobAdded(id);
  const honest = connectFrom(s, '10.0.0.1');
  const liars = Array.from({ length: 4 }, () => connectFrom(s, '10.0.0.2'));
  const first = liars.find((l) => l.conn.assigns().length > 0)!;
  const b = first.conn.assigns()[0]!;
  failTask(s, first.v, b);
  // Its own identity and every other identity on its address are passed over while the honest
  // volunteer, busy with task a, can still take task b.
  for (const l of liars) assert.equal(l.conn.assigns().length, l === first ? 1 : 0);
  assert.equal(T.stores.tasks.get(b.taskId)!.failures, 1);
  await complete(s, honest.v, honest.conn.assigns()[0]!);
  const retry = honest.conn.assigns()[1]!;
  assert.equal(retry.taskId, b.taskId);
  await complete(s, honest.v, retry);
  // The reduce may go to a liar first; its failure counts once and the honest volunteer runs it.
  for (let i = 0; i < 8 && T.stores.jobs.get(id)!.state === 'reducing'; i++) {
    for (const who of [honest, ...liars]) {
      const t = who.conn
        .assigns()
        .find((a) => a.phase === 'reduce' && T.stores.attempts.byLease(a.lease)!.outcome === 'running');
      if (!t) continue;
      if (who === honest) await complete(s, who.v, t);
      else failTask(s, who.v, t);
    }
  }
  assert.equal(T.stores.jobs.get(id)!.state, 'succeeded');
});

test('a volunteer that fails the same task again counts once while another volunteer could take it', async () => {
  const s = newScheduler();
  const id = await submit({ a: 'a\n' }, { reduces: 1, maxAttempts: 2 });
  s.jobAdded(id);
  const liar = connect(s, 1);
  const t = liar.conn.assigns()[0]!;
  const other = connect(s, 1); // idle, but it could run the task
  other.v.paused = true; // paused volunteers cannot, so the repeat counts
  failTask(s, liar.v, t);
  const again = liar.conn.assigns()[1]!;
  assert.equal(again.taskId, t.taskId, 'no one else can take it, so it comes back');
  other.v.paused = false;
  failTask(s, liar.v, again);
  assert.equal(T.stores.tasks.get(t.taskId)!.failures, 1, 'the repeat did not count: the other volunteer can decide');
  assert.equal(T.stores.jobs.get(id)!.state, 'mapping');
});

test('a task lost 3 x max-attempts times fails as could not be delivered or returned, with its history', async () => {
  const s = newScheduler();
  const id = await submit({ 'big.txt': 'a\n' }, { reduces: 1, maxAttempts: 1 });
  s.jobAdded(id);
  const v = connect(s, 1);
  // Alone, a volunteer's losses count: a tab that crashes on the task, reloads and takes it again.
  for (let i = 0; i < 3; i++) {
    assert.equal(T.stores.jobs.get(id)!.state, 'mapping');
    connect(s, 1, 1, { volunteerId: v.v.id, secret: v.v.secret });
  }
  const job = T.stores.jobs.get(id)!;
  assert.equal(job.state, 'failed');
  assert.match(job.error!, /^map task 0 \(input "big\.txt"\) could not be delivered or returned: .*lost 3 times/);
  assert.match(
    job.error!,
    new RegExp(`lost on volunteer ${v.v.id} \\(127\\.0\\.0\\.1\\): volunteer reconnected without this task`),
  );
});

test("a reduce's records out are counted from its output, not taken from the volunteer", async () => {
  const s = newScheduler();
  const id = await submit({ a: 'x y\n' }, { reduces: 1 });
  s.jobAdded(id);
  const { conn, v } = connect(s, 1);
  await complete(s, v, conn.assigns()[0]!);
  const reduce = conn.assigns()[1]!;
  s.handle(v, {
    type: 'task.result',
    lease: reduce.lease,
    output: 'x\t1\ny\t1\n',
    stats: { ms: 1, recordsIn: 2, recordsOut: 2_000_000_000 },
  });
  assert.equal(T.stores.jobs.get(id)!.records_out, 2);
});
