/**
 * Counters and skipped lines at commit (commit.ts): they are part of a result's vote, the job's sums
 * are the committed results' only, and a volunteer may report skipped lines only as the job allows.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { T, useScheduler, newScheduler, connect, output, submit, type FakeConn } from './harness.js';
import { isJobFinished } from '../../shared/states.js';
import type { TaskAssign, TaskStats } from '../../shared/protocol.js';
import type { Scheduler, Volunteer } from '../../server/scheduler/index.js';

useScheduler();

interface Vol {
  conn: FakeConn;
  v: Volunteer;
  answered: Set<string>;
  /** The counters it reports for a task, its `n`th result. */
  counters: (t: TaskAssign, n: number) => Record<string, number>;
}

function join(s: Scheduler, address: string, counters: Vol['counters']): Vol {
  const { conn, v } = connect(s, 1, 1, undefined, [], address);
  return { conn, v, answered: new Set(), counters };
}

/** The honest count: one `tasks` per task, and its phase. */
const honest = (t: TaskAssign) => ({ tasks: 1, [t.phase]: 1 });

async function drive(s: Scheduler, vols: Vol[], id: string) {
  for (let i = 0; i < 400 && !isJobFinished(T.stores.jobs.get(id)!.state); i++) {
    let acted = false;
    for (const x of vols) {
      for (const t of x.conn.assigns()) {
        if (x.answered.has(t.lease)) continue;
        x.answered.add(t.lease);
        T.now += 10;
        const stats: TaskStats = { ms: 1, recordsIn: 1, recordsOut: 1, counters: x.counters(t, x.answered.size) };
        s.handle(x.v, { type: 'task.result', lease: t.lease, output: await output(t), stats });
        acted = true;
      }
    }
    if (!acted) break;
  }
  return T.stores.jobs.get(id)!;
}

const WORDS = { a: 'x y x\n', b: 'y z\n', c: 'z z w\n', d: 'w x\n' };

test('a volunteer that lies about its counters alone loses the vote, and the job counts only committed results', async () => {
  const s = newScheduler();
  const id = await submit(WORDS, { verify: 'all', reduces: 2 });
  s.jobAdded(id);
  const liar = join(s, '127.0.0.2', (t) => ({ tasks: 7, [t.phase]: 7 }));
  const vols = [liar, join(s, '127.0.0.3', honest), join(s, '127.0.0.4', honest)];
  const j = await drive(s, vols, id);
  assert.equal(j.state, 'succeeded', j.error ?? '');
  assert.deepEqual(JSON.parse(j.counters), { map: 4, reduce: 2, tasks: 6 });
  const liars = T.stores.attempts.forJob(id).filter((a) => a.volunteer_id === liar.v.id);
  assert.ok(liars.length > 0, 'the liar ran tasks');
  assert.ok(
    liars.every((a) => a.outcome === 'rejected' || a.outcome === 'superseded'),
    `none of its results agreed or committed: ${liars.map((a) => a.outcome).join(', ')}`,
  );
  assert.ok(j.rejected > 0);
});

test('a trusted volunteer caught lying about counters has what it committed alone taken back, counts and all', async () => {
  let n = 0;
  // Every third draw picks a spot check.
  const s = newScheduler({ trustAfter: 2, spotCheckRate: 0.3, random: () => (n++ % 3 === 2 ? 0 : 0.99) });
  const inputs = Object.fromEntries(Array.from({ length: 12 }, (_, i) => [`f${i}`, `w${i % 5} x\n`]));
  const id = await submit(inputs, { verify: 'adaptive', reduces: 2 });
  s.jobAdded(id);
  // Honest for its first 4 results (2 to earn trust), then it counts 7 for 1.
  const turncoat = join(s, '127.0.0.2', (t, k) => (k > 4 ? { tasks: 7, [t.phase]: 7 } : honest(t)));
  const j = await drive(s, [turncoat, join(s, '127.0.0.3', honest), join(s, '127.0.0.4', honest)], id);
  assert.equal(j.state, 'succeeded', j.error ?? '');
  const takenBack = T.stores.attempts
    .forJob(id)
    .filter((a) => a.volunteer_id === turncoat.v.id && /later lost a vote/.test(a.error ?? ''));
  assert.ok(takenBack.length > 0, 'a result it committed alone (with honest counts) was taken back');
  assert.deepEqual(JSON.parse(j.counters), { map: 12, reduce: 2, tasks: 14 }, 'each task counted once');
});

test('with --verify off every result commits alone, and the job sums the committed ones', async () => {
  const s = newScheduler();
  const id = await submit(WORDS, { verify: 'off', reduces: 2 });
  s.jobAdded(id);
  const j = await drive(s, [join(s, '127.0.0.2', honest)], id);
  assert.equal(j.state, 'succeeded');
  assert.deepEqual(JSON.parse(j.counters), { map: 4, reduce: 2, tasks: 6 });
});

test('skipped lines from a job that skips none are a protocol violation: the volunteer is dropped', async () => {
  const s = newScheduler();
  const id = await submit({ a: 'x\n' }, { verify: 'off', reduces: 1 });
  s.jobAdded(id);
  const { conn, v } = connect(s, 1, 1, undefined, [], '127.0.0.2');
  const [t] = conn.assigns();
  const skipped = [{ line: 1, text: 'x', error: { name: 'Error', message: 'no' } }];
  s.handle(v, {
    type: 'task.result',
    lease: t!.lease,
    output: await output(t!),
    stats: { ms: 1, recordsIn: 1, recordsOut: 1, skipped },
  });
  assert.match(
    conn
      .of('error')
      .map((e) => e.message)
      .join('\n'),
    /skipped lines from a task that may skip none/,
  );
  assert.notEqual(conn.closedWith, null, 'the volunteer was dropped');
  assert.equal(T.stores.jobs.get(id)!.skipped, 0);
  assert.equal(T.stores.jobs.get(id)!.maps_done, 0);
});
