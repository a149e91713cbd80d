/** The 10-second rules (lease-sweeper.ts) as the scheduler applies them. */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { HARD_LIMIT_FACTOR } from '../../server/scheduler/index.js';
import type { ActiveJob, Context, Lease, Volunteer } from '../../server/scheduler/context.js';
import { clockStart, newVolunteer } from '../../server/scheduler/memory.js';
import { findDue, goneReason } from '../../server/scheduler/lease-sweeper.js';
import { T, useScheduler, newScheduler, connect, complete, submit } from './harness.js';

useScheduler();

test('a closed volunteer keeps its task for 10 s, then the task is lost and re-run elsewhere', async () => {
  const s = newScheduler();
  const id = await submit({ a: 'a\n' }, { reduces: 1 });
  s.jobAdded(id);
  const first = connect(s, 1);
  const t = first.conn.assigns()[0]!;
  s.closed(first.v, first.conn);
  const second = connect(s, 1);
  T.now += 9_999;
  s.handle(second.v, { type: 'heartbeat', running: [] });
  s.sweep();
  assert.equal(second.conn.assigns().length, 0, 'not reassigned before 10 s');
  T.now += 1;
  s.sweep();
  assert.equal(T.stores.attempts.byLease(t.lease)!.outcome, 'lost');
  const again = second.conn.assigns()[0]!;
  assert.equal(again.taskId, t.taskId);
  assert.notEqual(again.lease, t.lease);
  // The first volunteer's late result is refused as superseded.
  await complete(s, first.v, t);
  assert.equal(T.stores.attempts.byLease(t.lease)!.outcome, 'superseded');
  await complete(s, second.v, again);
  assert.equal(T.stores.jobs.get(id)!.maps_done, 1);
});

test('a volunteer silent for 10 s (socket still open) is dropped and loses its tasks', async () => {
  const s = newScheduler();
  const id = await submit({ a: 'a\n' }, { reduces: 1 });
  s.jobAdded(id);
  const quiet = connect(s, 1);
  const t = quiet.conn.assigns()[0]!;
  T.now += 6_000;
  s.handle(quiet.v, { type: 'heartbeat', running: [t.lease] });
  T.now += 9_000;
  s.sweep();
  assert.equal(T.stores.attempts.byLease(t.lease)!.outcome, 'running', 'a heartbeat 9 s ago keeps it alive');
  T.now += 1_000;
  s.sweep();
  assert.equal(T.stores.attempts.byLease(t.lease)!.outcome, 'lost');
  assert.equal(quiet.conn.closedWith?.code, 4000);
  assert.equal(T.stores.tasks.get(t.taskId)!.state, 'pending');
});

test('a stall of the master itself is excused: its volunteers are not dropped for it', async () => {
  const s = newScheduler();
  const id = await submit({ a: 'a\n' }, { reduces: 1 });
  s.jobAdded(id);
  const busy = connect(s, 1);
  const t = busy.conn.assigns()[0]!;
  T.now += 15_000; // the master was blocked for 15 s; the heartbeats sent meanwhile are unread
  s.excuse(15_000);
  s.sweep();
  assert.equal(T.stores.attempts.byLease(t.lease)!.outcome, 'running');
  assert.equal(busy.conn.closedWith, null);
  T.now += 10_000; // but silence after the stall still counts
  s.sweep();
  assert.equal(T.stores.attempts.byLease(t.lease)!.outcome, 'lost');
});

test('a task past its timeout gets one backup on another volunteer; the first to finish wins', async () => {
  const s = newScheduler();
  const id = await submit({ a: 'a\n' }, { reduces: 1, taskTimeoutMs: 5_000 });
  s.jobAdded(id);
  const slow = connect(s, 1);
  const t = slow.conn.assigns()[0]!;
  const spare = connect(s, 1);
  T.now += 4_999;
  s.sweep();
  assert.equal(spare.conn.assigns().length, 0);
  T.now += 1;
  s.sweep();
  const backup = spare.conn.assigns()[0]!;
  assert.equal(backup.taskId, t.taskId);
  // Heartbeats keep both alive; no third attempt however long it takes.
  for (let i = 0; i < 5; i++) {
    T.now += 2_000;
    s.handle(slow.v, { type: 'heartbeat', running: [t.lease] });
    s.handle(spare.v, { type: 'heartbeat', running: [backup.lease] });
    s.sweep();
  }
  assert.equal(T.stores.attempts.forJob(id).length, 2);
  await complete(s, spare.v, backup);
  assert.equal(T.stores.attempts.byLease(backup.lease)!.outcome, 'succeeded');
  assert.equal(T.stores.attempts.byLease(t.lease)!.outcome, 'superseded');
  assert.ok(
    slow.conn.of('task.cancel').some((c) => c.lease === t.lease),
    'the loser is told to stop',
  );
  await complete(s, slow.v, t);
  assert.equal(slow.conn.of('task.ack').at(-1)!.outcome, 'superseded');
  assert.equal(T.stores.jobs.get(id)!.maps_done, 1);
});

test("a task held beyond the volunteer's threads starts its timeout when a thread is due to free", async () => {
  const s = newScheduler();
  const id = await submit({ a: 'a\n', b: 'b\n', c: 'c\n' }, { reduces: 1, taskTimeoutMs: 5_000 });
  s.jobAdded(id);
  // One thread and one task of prefetch: once it has shown work, it holds two tasks, one waiting.
  const v = connect(s, 1, 2);
  await complete(s, v.v, v.conn.assigns()[0]!);
  const [running, queued] = v.conn.assigns().slice(1);
  assert.ok(running && queued, 'two tasks held at once');
  // Two new volunteers: each takes one task until it has shown work.
  const spares = [connect(s, 1), connect(s, 1)];
  const backups = () => spares.flatMap((p) => p.conn.assigns().map((t) => t.taskId));
  const keepAlive = () => {
    s.handle(v.v, { type: 'heartbeat', running: [running.lease, queued.lease] });
    for (const p of spares) s.handle(p.v, { type: 'heartbeat', running: p.conn.assigns().map((t) => t.lease) });
  };
  T.now += 5_000;
  keepAlive();
  s.sweep();
  assert.deepEqual(backups(), [running.taskId], 'only the task a thread took is past its timeout');
  T.now += 4_999;
  keepAlive();
  s.sweep();
  assert.equal(backups().length, 1, 'the waiting task has had less than its timeout since a thread was due');
  T.now += 1;
  keepAlive();
  s.sweep();
  assert.deepEqual(
    backups(),
    [running.taskId, queued.taskId],
    'one timeout after the thread was due, the waiting task gets its backup too',
  );
  assert.equal(T.stores.jobs.get(id)!.maps_done, 1);
});

test('an attempt that never reports past the hard limit is lost even if its volunteer heartbeats', async () => {
  const s = newScheduler();
  const id = await submit({ a: 'a\n' }, { reduces: 1, taskTimeoutMs: 1_000 });
  s.jobAdded(id);
  const v = connect(s, 1);
  const t = v.conn.assigns()[0]!;
  const limit = 1_000 * HARD_LIMIT_FACTOR + 10_000;
  for (let waited = 0; waited < limit; waited += 1_000) {
    T.now += 1_000;
    s.handle(v.v, { type: 'heartbeat', running: [t.lease] });
    s.sweep();
  }
  assert.equal(T.stores.attempts.byLease(t.lease)!.outcome, 'lost');
});

describe('findDue, a pure function of memory, the clock and the limits', () => {
  const REASSIGN = 10_000;
  const at = 1_000_000;

  function volunteer(id: string, state: { lastSeenAt?: number; closedAt?: number | null }): Volunteer {
    const v = newVolunteer(id, 's', 'test', 1, at);
    v.conn = state.closedAt == null ? { send() {}, close() {} } : null;
    v.closedAt = state.closedAt ?? null;
    v.lastSeenAt = state.lastSeenAt ?? at;
    return v;
  }

  /** Memory with the given volunteers, and leases `[lease, taskId, volunteerId, startedAt]` of one job. */
  function memory(volunteers: Volunteer[], leases: [string, number, string, number][], taskTimeoutMs = 5_000) {
    const mem = {
      volunteers: new Map(volunteers.map((v) => [v.id, v])),
      leases: new Map<string, Lease>(),
      taskLeases: new Map<number, Set<string>>(),
      active: new Map<string, ActiveJob>([
        [
          'job',
          {
            id: 'job',
            name: 'job',
            state: 'mapping',
            nReduce: 1,
            taskTimeoutMs,
            maxAttempts: 4,
            verify: 'off',
            skipBadRecords: 0,
            running: leases.length,
            drained: false,
            uploading: false,
          },
        ],
      ]),
      needBackup: new Set<number>(),
    };
    for (const [lease, taskId, volunteerId, startedAt] of leases) {
      mem.leases.set(lease, {
        lease,
        taskId,
        jobId: 'job',
        volunteerId,
        phase: 'map',
        index: taskId,
        startedAt,
        clockFrom: startedAt,
        backup: false,
        bytes: null,
      });
      const held = mem.taskLeases.get(taskId) ?? new Set<string>();
      held.add(lease);
      mem.taskLeases.set(taskId, held);
      mem.volunteers.get(volunteerId)?.running.add(lease);
    }
    return mem;
  }

  test('a volunteer is gone 10 s after its close or its last message, not a millisecond before', async () => {
    const mem = memory(
      [
        volunteer('closed', { closedAt: at - REASSIGN }),
        volunteer('closed-late', { closedAt: at - REASSIGN + 1 }),
        volunteer('silent', { lastSeenAt: at - REASSIGN }),
        volunteer('talking', { lastSeenAt: at - REASSIGN + 1 }),
      ],
      [],
    );
    const due = findDue(mem, at, REASSIGN);
    assert.deepEqual(due.gone.map((v) => v.id).sort(), ['closed', 'silent']);
    assert.equal(
      goneReason(
        due.gone.find((v) => v.id === 'silent')!,
        at,
      ),
      'no message for 10000ms',
    );
    assert.equal(
      goneReason(
        due.gone.find((v) => v.id === 'closed')!,
        at,
      ),
      'disconnected 10000ms ago',
    );
  });

  test('a lone attempt past the task timeout is due a backup once; a racing pair is not', async () => {
    const mem = memory(
      [volunteer('a', {}), volunteer('b', {})],
      [
        ['lone', 1, 'a', at - 5_000],
        ['young', 2, 'a', at - 4_999],
        ['race1', 3, 'a', at - 6_000],
        ['race2', 3, 'b', at - 1_000],
      ],
    );
    assert.deepEqual(findDue(mem, at, REASSIGN).backups, [1]);
    mem.needBackup.add(1);
    assert.deepEqual(findDue(mem, at, REASSIGN).backups, [], 'a backup already queued is not queued again');
  });

  test('an attempt past the hard limit plus the reassignment delay is overdue, even with a live volunteer', async () => {
    const limit = 5_000 * HARD_LIMIT_FACTOR + REASSIGN;
    const mem = memory(
      [volunteer('a', {})],
      [
        ['over', 1, 'a', at - limit],
        ['under', 2, 'a', at - limit + 1],
      ],
    );
    const due = findDue(mem, at, REASSIGN);
    assert.deepEqual(due.overdue, ['over']);
    assert.deepEqual(due.gone, []);
  });

  test('the leases of a gone volunteer are lost with it, and the attempt left alone may need a backup', async () => {
    const mem = memory(
      [volunteer('gone', { closedAt: at - REASSIGN }), volunteer('alive', {})],
      [
        ['gone-lease', 1, 'gone', at - 60_000],
        ['alive-lease', 1, 'alive', at - 5_000],
      ],
    );
    const due = findDue(mem, at, REASSIGN);
    assert.deepEqual(
      due.gone.map((v) => v.id),
      ['gone'],
    );
    assert.deepEqual(due.overdue, [], "the gone volunteer's lease is not also overdue");
    assert.deepEqual(due.backups, [1], 'the surviving attempt runs alone past its timeout');
  });

  test('a task beyond the threads is timed from when a thread is due, and never from later than one timeout on', () => {
    const hour = 3_600_000;
    const busy = volunteer('busy', {});
    // One thread, running a task of a job whose timeout is an hour, started 1 s ago.
    const mem = memory([busy], [['l1', 1, 'busy', at - 1_000]], hour);
    const ctx = { mem } as unknown as Context;
    assert.equal(clockStart(ctx, busy, hour, at), at - 1_000 + hour, 'a task of the same job: when the thread is due');
    // A task of a job with a 5 s timeout would wait an hour: claiming a queue cannot hold it untimed that long.
    assert.equal(clockStart(ctx, busy, 5_000, at), at + 5_000);
    busy.threads = 2;
    assert.equal(clockStart(ctx, busy, hour, at), at, 'a free thread takes it now');
  });

  test('attempts of jobs that are no longer active are left alone', async () => {
    const mem = memory([volunteer('a', {})], [['old', 1, 'a', at - 1_000_000]]);
    mem.active.clear();
    const due = findDue(mem, at, REASSIGN);
    assert.deepEqual([due.overdue, due.backups], [[], []]);
  });
});
