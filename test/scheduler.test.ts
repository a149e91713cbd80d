/**
 * The scheduler against a real SQLite file, with fake sockets and a clock the test moves: the
 * 10-second rules, leases, exactly-once commit and restart recovery, without sleeping.
 */
import { test, describe, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { openDatabase, type Db } from '../server/db.js';
import { Scheduler, HARD_LIMIT_FACTOR, type Connection, type Volunteer } from '../server/scheduler.js';
import { submitJob } from '../server/submit-job.js';
import { runMap, runReduce, asJobModule, type Partition } from '../shared/engine.js';
import type { MasterMessage, TaskAssign } from '../shared/protocol.js';
import { defaultPartition } from '../shared/partition.js';
import { tempDir, removeTempDirs } from './helpers/cluster.js';

const WORDS = `
export function map(key, value, emit) { for (const w of value.split(/\\s+/)) if (w) emit(w, '1'); }
export function reduce(key, values) { return String(values.length); }
`;
const mod = asJobModule({
  map: (_k: string, v: string, emit: (k: string, v: string) => void) => {
    for (const w of v.split(/\s+/)) if (w) emit(w, '1');
  },
  reduce: (_k: string, vs: string[]) => String(vs.length),
});

class FakeConn implements Connection {
  sent: MasterMessage[] = [];
  closedWith: { code: number; reason: string } | null = null;
  send(text: string) {
    this.sent.push(JSON.parse(text) as MasterMessage);
  }
  close(code: number, reason: string) {
    this.closedWith = { code, reason };
  }
  assigns(): TaskAssign[] {
    return this.sent.filter((m): m is TaskAssign => m.type === 'task.assign');
  }
  of<T extends MasterMessage['type']>(type: T) {
    return this.sent.filter((m) => m.type === type) as Extract<MasterMessage, { type: T }>[];
  }
}

let db: Db;
let dir: string;
let now: number;
const clock = { now: () => now };

function newScheduler(): Scheduler {
  return new Scheduler(db, { clock, reassignAfterMs: 10_000, heartbeatMs: 2_000 });
}

function join_(
  s: Scheduler,
  threads = 1,
  slots = threads,
  ident?: { volunteerId: string; secret: string },
  running: string[] = [],
) {
  const conn = new FakeConn();
  const v = s.hello(conn, {
    type: 'hello',
    protocol: 1,
    threads,
    slots,
    paused: false,
    agent: 'test',
    running,
    ...(ident ?? {}),
  });
  return { conn, v };
}

async function output(task: TaskAssign): Promise<unknown> {
  if (task.phase === 'map') return (await runMap(mod, task.input.key, task.input.value, task.nReduce)).partitions;
  return (await runReduce(mod, task.input as Partition[])).text;
}

async function complete(s: Scheduler, v: Volunteer, task: TaskAssign) {
  s.handle(v, {
    type: 'task.result',
    lease: task.lease,
    output: await output(task),
    stats: { ms: 1, recordsIn: 1, recordsOut: 1 },
  });
}

async function resultOf(task: TaskAssign) {
  return { output: await output(task), stats: { ms: 1, recordsIn: 1, recordsOut: 1 } };
}

/** A result for a map task of one word, without awaiting the engine. */
function r0(task: TaskAssign) {
  const parts: Partition[] = Array.from({ length: task.nReduce }, () => []);
  if (task.phase !== 'map') throw new Error('r0 is for map tasks');
  const word = task.input.value.trim();
  parts[defaultPartition(word, task.nReduce)]!.push([word, ['1']]);
  return { output: parts, stats: { ms: 1, recordsIn: 1, recordsOut: 1 } };
}

function submit(
  inputs: Record<string, string>,
  extra: Partial<{ reduces: number; taskTimeoutMs: number; maxAttempts: number; splitSize: number }> = {},
) {
  return submitJob(
    db,
    {
      moduleName: 'words.js',
      module: WORDS,
      inputs: Object.entries(inputs).map(([name, text]) => ({ name, bytes: Buffer.from(text) })),
      reduces: extra.reduces ?? 2,
      splitSize: extra.splitSize ?? 1024,
      taskTimeoutMs: extra.taskTimeoutMs ?? 10_000,
      maxAttempts: extra.maxAttempts ?? 4,
    },
    now,
  );
}

function attemptsOf(s: Scheduler, jobId: string) {
  return s.attempts.forJob(jobId);
}

beforeEach(() => {
  dir = tempDir();
  db = openDatabase(join(dir, 'db.sqlite'));
  now = 1_000_000;
});
afterEach(() => {
  db.close();
  removeTempDirs();
});

describe('dispatch and commit', () => {
  test('a job runs maps, waits at the barrier, then reduces and succeeds with the right output', async () => {
    const s = newScheduler();
    const id = submit({ a: 'x y x\n', b: 'y z\n' });
    s.jobAdded(id);
    const { conn, v } = join_(s, 1);
    // One slot: one map at a time.
    assert.equal(conn.assigns().length, 1);
    await complete(s, v, conn.assigns()[0]!);
    assert.equal(conn.assigns().length, 2);
    assert.equal(conn.assigns()[1]!.phase, 'map');
    await complete(s, v, conn.assigns()[1]!);
    // Barrier passed: reduces now.
    assert.equal(s.jobs.get(id)!.state, 'reducing');
    for (let i = 0; i < 2; i++) await complete(s, v, conn.assigns().at(-1)!);
    const job = s.jobs.get(id)!;
    assert.equal(job.state, 'succeeded');
    assert.equal(s.outputs.all(id).join('').split('\n').filter(Boolean).sort().join(','), 'x\t2,y\t2,z\t1');
    assert.equal(conn.of('task.ack').filter((a) => a.outcome === 'committed').length, 4);
  });

  test('reduces are not handed out before every map has committed', async () => {
    const s = newScheduler();
    const id = submit({ a: 'a\n', b: 'b\n', c: 'c\n' });
    s.jobAdded(id);
    const one = join_(s, 1, 5);
    assert.deepEqual(
      one.conn.assigns().map((t) => t.phase),
      ['map', 'map', 'map'],
    );
    await complete(s, one.v, one.conn.assigns()[0]!);
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

  test('work spreads across volunteers before any gets a second task', () => {
    const s = newScheduler();
    const a = join_(s, 2);
    const b = join_(s, 2);
    const id = submit({ a: 'a\n', b: 'b\n' });
    s.jobAdded(id);
    assert.equal(a.conn.assigns().length, 1);
    assert.equal(b.conn.assigns().length, 1);
  });

  test('a duplicate result is recorded superseded and does not count twice', async () => {
    const s = newScheduler();
    const id = submit({ a: 'a b\n' }, { reduces: 1 });
    s.jobAdded(id);
    const { conn, v } = join_(s, 1);
    const t = conn.assigns()[0]!;
    await complete(s, v, t);
    await complete(s, v, t);
    const acks = conn.of('task.ack').filter((a) => a.lease === t.lease);
    assert.deepEqual(
      acks.map((a) => a.outcome),
      ['committed', 'superseded'],
    );
    assert.equal(s.jobs.get(id)!.maps_done, 1);
  });

  test('a forged lease and a lease held by another volunteer are refused and change nothing', async () => {
    const s = newScheduler();
    const id = submit({ a: 'a\n' }, { reduces: 1 });
    s.jobAdded(id);
    const owner = join_(s, 1);
    const thief = join_(s, 1);
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
      output: [],
      stats: { ms: 1, recordsIn: 0, recordsOut: 0 },
    });
    assert.deepEqual(
      thief.conn.of('task.ack').map((a) => a.outcome),
      ['refused', 'refused'],
    );
    assert.equal(s.jobs.get(id)!.maps_done, 0);
    assert.equal(s.attempts.byLease(t.lease)!.outcome, 'running');
    await complete(s, owner.v, t);
    assert.equal(s.jobs.get(id)!.maps_done, 1);
  });

  test('malformed output is refused: the attempt is lost, the volunteer dropped, the task re-run', () => {
    const s = newScheduler();
    const id = submit({ a: 'a\n' }, { reduces: 2 });
    s.jobAdded(id);
    const bad = join_(s, 1);
    const t = bad.conn.assigns()[0]!;
    // Keys out of order, and one partition instead of two.
    s.handle(bad.v, {
      type: 'task.result',
      lease: t.lease,
      output: [
        [
          ['b', ['1']],
          ['a', ['1']],
        ],
      ],
      stats: { ms: 1, recordsIn: 1, recordsOut: 1 },
    });
    assert.equal(s.attempts.byLease(t.lease)!.outcome, 'lost');
    assert.equal(bad.conn.closedWith?.code, 1008);
    assert.equal(s.jobs.get(id)!.maps_done, 0);
    s.closed(bad.v, bad.conn);
    const good = join_(s, 1);
    assert.equal(good.conn.assigns()[0]!.taskId, t.taskId);
  });
});

describe('the 10-second rules', () => {
  test('a closed volunteer keeps its task for 10 s, then the task is lost and re-run elsewhere', async () => {
    const s = newScheduler();
    const id = submit({ a: 'a\n' }, { reduces: 1 });
    s.jobAdded(id);
    const first = join_(s, 1);
    const t = first.conn.assigns()[0]!;
    s.closed(first.v, first.conn);
    const second = join_(s, 1);
    now += 9_999;
    s.handle(second.v, { type: 'heartbeat', running: [] });
    s.sweep();
    assert.equal(second.conn.assigns().length, 0, 'not reassigned before 10 s');
    now += 1;
    s.sweep();
    assert.equal(s.attempts.byLease(t.lease)!.outcome, 'lost');
    const again = second.conn.assigns()[0]!;
    assert.equal(again.taskId, t.taskId);
    assert.notEqual(again.lease, t.lease);
    // The first volunteer's late result is refused as superseded.
    await complete(s, first.v, t);
    assert.equal(s.attempts.byLease(t.lease)!.outcome, 'superseded');
    await complete(s, second.v, again);
    assert.equal(s.jobs.get(id)!.maps_done, 1);
  });

  test('a volunteer that reconnects within 10 s keeps its tasks and its result commits', async () => {
    const s = newScheduler();
    const id = submit({ a: 'a\n' }, { reduces: 1 });
    s.jobAdded(id);
    const first = join_(s, 1);
    const welcome = first.conn.of('welcome')[0]!;
    const t = first.conn.assigns()[0]!;
    s.closed(first.v, first.conn);
    now += 8_000;
    s.sweep();
    const back = join_(s, 1, 1, { volunteerId: welcome.volunteerId, secret: welcome.secret }, [t.lease]);
    assert.equal(back.v.id, first.v.id);
    assert.deepEqual(back.conn.of('welcome')[0]!.kept, [t.lease]);
    now += 5_000;
    s.sweep();
    assert.equal(s.attempts.byLease(t.lease)!.outcome, 'running');
    await complete(s, back.v, t);
    assert.equal(s.attempts.byLease(t.lease)!.outcome, 'succeeded');
  });

  test('a wrong secret does not take over another volunteer identity', () => {
    const s = newScheduler();
    const first = join_(s, 1);
    const welcome = first.conn.of('welcome')[0]!;
    const impostor = join_(s, 1, 1, { volunteerId: welcome.volunteerId, secret: 'x'.repeat(32) });
    assert.notEqual(impostor.v.id, first.v.id);
    assert.equal(first.conn.closedWith, null);
  });

  test('a volunteer silent for 10 s (socket still open) is dropped and loses its tasks', () => {
    const s = newScheduler();
    const id = submit({ a: 'a\n' }, { reduces: 1 });
    s.jobAdded(id);
    const quiet = join_(s, 1);
    const t = quiet.conn.assigns()[0]!;
    now += 6_000;
    s.handle(quiet.v, { type: 'heartbeat', running: [t.lease] });
    now += 9_000;
    s.sweep();
    assert.equal(s.attempts.byLease(t.lease)!.outcome, 'running', 'a heartbeat 9 s ago keeps it alive');
    now += 1_000;
    s.sweep();
    assert.equal(s.attempts.byLease(t.lease)!.outcome, 'lost');
    assert.equal(quiet.conn.closedWith?.code, 4000);
    assert.equal(s.tasks.get(t.taskId)!.state, 'pending');
  });

  test('a stall of the master itself is excused: its volunteers are not dropped for it', () => {
    const s = newScheduler();
    const id = submit({ a: 'a\n' }, { reduces: 1 });
    s.jobAdded(id);
    const busy = join_(s, 1);
    const t = busy.conn.assigns()[0]!;
    now += 15_000; // the master was blocked for 15 s; the heartbeats sent meanwhile are unread
    s.excuse(15_000);
    s.sweep();
    assert.equal(s.attempts.byLease(t.lease)!.outcome, 'running');
    assert.equal(busy.conn.closedWith, null);
    now += 10_000; // but silence after the stall still counts
    s.sweep();
    assert.equal(s.attempts.byLease(t.lease)!.outcome, 'lost');
  });

  test('a task past its timeout gets one backup on another volunteer; the first to finish wins', async () => {
    const s = newScheduler();
    const id = submit({ a: 'a\n' }, { reduces: 1, taskTimeoutMs: 5_000 });
    s.jobAdded(id);
    const slow = join_(s, 1);
    const t = slow.conn.assigns()[0]!;
    const spare = join_(s, 1);
    now += 4_999;
    s.sweep();
    assert.equal(spare.conn.assigns().length, 0);
    now += 1;
    s.sweep();
    const backup = spare.conn.assigns()[0]!;
    assert.equal(backup.taskId, t.taskId);
    // Heartbeats keep both alive; no third attempt however long it takes.
    for (let i = 0; i < 5; i++) {
      now += 2_000;
      s.handle(slow.v, { type: 'heartbeat', running: [t.lease] });
      s.handle(spare.v, { type: 'heartbeat', running: [backup.lease] });
      s.sweep();
    }
    assert.equal(attemptsOf(s, id).length, 2);
    await complete(s, spare.v, backup);
    assert.equal(s.attempts.byLease(backup.lease)!.outcome, 'succeeded');
    assert.equal(s.attempts.byLease(t.lease)!.outcome, 'superseded');
    assert.ok(
      slow.conn.of('task.cancel').some((c) => c.lease === t.lease),
      'the loser is told to stop',
    );
    await complete(s, slow.v, t);
    assert.equal(slow.conn.of('task.ack').at(-1)!.outcome, 'superseded');
    assert.equal(s.jobs.get(id)!.maps_done, 1);
  });

  test('the loser of a backup race is given waiting work at once', async () => {
    const s = newScheduler();
    const first = submit({ a: 'a\n', b: 'b\n' }, { reduces: 1, taskTimeoutMs: 5_000 });
    s.jobAdded(first);
    const slow = join_(s, 1);
    const t = slow.conn.assigns()[0]!;
    now += 2_000;
    const other = join_(s, 1); // its task is not yet due a backup when slow's is
    assert.equal(other.conn.assigns().length, 1);
    const spare = join_(s, 1);
    now += 3_000;
    s.handle(slow.v, { type: 'heartbeat', running: [t.lease] });
    s.handle(other.v, { type: 'heartbeat', running: [other.conn.assigns()[0]!.lease] });
    s.sweep();
    const backup = spare.conn.assigns()[0]!;
    assert.equal(backup.taskId, t.taskId);
    const second = submit({ x: 'x\n', y: 'y\n' }, { reduces: 1 });
    s.jobAdded(second);
    assert.equal(slow.conn.assigns().length, 1, 'everyone is busy');
    await complete(s, spare.v, backup);
    assert.equal(spare.conn.assigns().at(-1)!.jobId, second);
    assert.equal(slow.conn.assigns().length, 2, 'the cancelled loser takes the other waiting task');
    assert.equal(slow.conn.assigns().at(-1)!.jobId, second);
  });

  test('an attempt that never reports past the hard limit is lost even if its volunteer heartbeats', () => {
    const s = newScheduler();
    const id = submit({ a: 'a\n' }, { reduces: 1, taskTimeoutMs: 1_000 });
    s.jobAdded(id);
    const v = join_(s, 1);
    const t = v.conn.assigns()[0]!;
    const limit = 1_000 * HARD_LIMIT_FACTOR + 10_000;
    for (let waited = 0; waited < limit; waited += 1_000) {
      now += 1_000;
      s.handle(v.v, { type: 'heartbeat', running: [t.lease] });
      s.sweep();
    }
    assert.equal(s.attempts.byLease(t.lease)!.outcome, 'lost');
  });
});

describe('failures', () => {
  test('only failed attempts count toward max attempts; then the job fails naming task, input and error', () => {
    const s = newScheduler();
    const id = submit({ 'book.txt': 'a\n' }, { reduces: 1, maxAttempts: 2 });
    s.jobAdded(id);
    const fail = (who: ReturnType<typeof join_>, t: TaskAssign) =>
      s.handle(who.v, {
        type: 'task.fail',
        lease: t.lease,
        reason: 'threw',
        error: { name: 'TypeError', message: 'boom', stack: 'TypeError: boom\n    at map (job.js:1:2)' },
      });
    const a = join_(s, 1);
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
      assert.equal(s.attempts.byLease(t.lease)!.outcome, 'lost');
    }
    assert.equal(s.jobs.get(id)!.state, 'mapping');
    fail(a, a.conn.assigns().at(-1)!);
    assert.equal(s.jobs.get(id)!.state, 'mapping');
    fail(a, a.conn.assigns().at(-1)!);
    const job = s.jobs.get(id)!;
    assert.equal(job.state, 'failed');
    assert.match(job.error!, /map task 0 \(input "book\.txt"\) failed 2 times: TypeError: boom/);
    assert.match(job.error!, /at map \(job\.js:1:2\)/);
    assert.equal(s.tasks.forJob(id).filter((t) => t.state === 'cancelled').length, 1, 'the reduce is cancelled');
  });

  test('cancel stops running attempts and nothing more is handed out', () => {
    const s = newScheduler();
    const id = submit({ a: 'a\n', b: 'b\n' }, { reduces: 1 });
    s.jobAdded(id);
    const v = join_(s, 1);
    const t = v.conn.assigns()[0]!;
    assert.ok(s.endJob(id, 'cancelled', 'cancelled by an admin'));
    assert.equal(s.jobs.get(id)!.state, 'cancelled');
    assert.equal(s.attempts.byLease(t.lease)!.outcome, 'superseded');
    assert.ok(v.conn.of('task.cancel').some((c) => c.lease === t.lease));
    assert.equal(v.conn.assigns().length, 1);
    assert.equal(s.endJob(id, 'cancelled', null), false, 'cancelling twice is refused');
  });
});

describe('group commit', () => {
  test('frames handled in one batch commit together, and nothing is sent before the commit', async () => {
    const s = newScheduler();
    const id = submit({ a: 'a\n', b: 'b\n' }, { reduces: 1 });
    s.jobAdded(id);
    const { conn, v } = s.batched(() => join_(s, 1));
    assert.equal(conn.sent.length, 0, 'welcome and assignment wait for the commit');
    const reader = openDatabase(join(dir, 'db.sqlite'));
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
    const id = submit({ a: 'a\n' }, { reduces: 1 });
    s.jobAdded(id);
    const { conn, v } = join_(s, 1);
    const t = conn.assigns()[0]!;
    const sentBefore = conn.sent.length;
    const r = await resultOf(t);
    const exec = db.exec.bind(db);
    let failed = false;
    db.exec = ((sql: string) => {
      if (sql === 'COMMIT' && !failed) {
        failed = true;
        throw Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' });
      }
      return exec(sql);
    }) as typeof db.exec;
    s.batched(() => s.handle(v, { type: 'task.result', lease: t.lease, ...r }));
    assert.throws(() => s.flush(), /disk is full/);
    assert.equal(conn.sent.length, sentBefore, 'the ack was never sent');
    assert.equal(conn.closedWith?.code, 1011);
    assert.equal(s.attempts.byLease(t.lease)!.outcome, 'running', 'the commit was rolled back');
    assert.equal(s.jobs.get(id)!.maps_done, 0);
    // The volunteer comes back as after a restart, keeps its task and sends its result again.
    const back = join_(s, 1, 1, { volunteerId: v.id, secret: v.secret }, [t.lease]);
    assert.equal(back.v.id, v.id);
    s.batched(() => s.handle(back.v, { type: 'task.result', lease: t.lease, ...r }));
    s.flush();
    assert.equal(back.conn.of('task.ack')[0]!.outcome, 'committed');
    assert.equal(s.jobs.get(id)!.maps_done, 1);
  });
});

describe('group commit pacing', () => {
  test('an idle master commits at the end of the turn; a busy one at most every commitGapMs', async () => {
    const s = new Scheduler(db, { clock, commitGapMs: 200 });
    const id = submit({ a: 'a\n', b: 'b\n', c: 'c\n' }, { reduces: 1 });
    s.jobAdded(id);
    const { conn, v } = s.batched(() => join_(s, 1));
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

  test('leases are 32 hex digits, unique, and ordered by the time they were issued', () => {
    const s = newScheduler();
    const id = submit(Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`f${i}`, `w${i}\n`])), {
      reduces: 1,
    });
    s.jobAdded(id);
    const leases: string[] = [];
    for (let i = 0; i < 50; i++) {
      now += 1;
      const { conn } = join_(s, 1);
      leases.push(conn.assigns()[0]!.lease);
    }
    for (const l of leases) assert.match(l, /^[0-9a-f]{32}$/);
    assert.equal(new Set(leases).size, leases.length);
    assert.deepEqual([...leases].sort(), leases);
    assert.equal(new Set(leases.map((l) => l.slice(12))).size, leases.length, 'the random part differs');
  });
});

describe('volunteer records', () => {
  test('done counts are committed with each task and survive a SIGKILL; last-seen times are saved in slices', async () => {
    let s = newScheduler();
    const id = submit({ a: 'a\n', b: 'b\n', c: 'c\n' }, { reduces: 1 });
    s.jobAdded(id);
    const { conn, v } = join_(s, 1);
    const connectedAt = now;
    for (let i = 0; i < 3; i++) await complete(s, v, conn.assigns()[i]!);
    assert.equal(v.done, 3);
    assert.equal(s.volunteerRows.get(v.id)!.done, 3, 'in the transaction of each commit');
    now += 5_000;
    s.seen(v);
    assert.equal(s.saveVolunteers(), 0, 'nothing is due within 30 s of the last save');
    assert.equal(s.volunteerRows.get(v.id)!.last_seen_at, connectedAt);
    now += 30_000;
    s.seen(v);
    assert.equal(s.saveVolunteers(), 1);
    assert.equal(s.volunteerRows.get(v.id)!.last_seen_at, now);
    // A new scheduler on the same database with no save and no close, as after a SIGKILL.
    s = newScheduler();
    const back = join_(s, 1, 1, { volunteerId: v.id, secret: v.secret });
    assert.equal(back.v.id, v.id);
    assert.equal(back.v.done, 3);
    now += 1_000;
    s.seen(back.v);
    s.closed(back.v, back.conn);
    assert.equal(s.volunteerRows.get(v.id)!.last_seen_at, now, 'a disconnect saves at once');
  });
});

describe('restart', () => {
  test('a new scheduler on the same database resumes: held tasks wait 10 s for their volunteer', async () => {
    let s = newScheduler();
    const id = submit({ a: 'a b\n', b: 'c\n' }, { reduces: 1 });
    s.jobAdded(id);
    const v = join_(s, 2);
    const welcome = v.conn.of('welcome')[0]!;
    const [t1, t2] = v.conn.assigns();
    await complete(s, v.v, t1!);
    // The master dies here; t2 is still running on the volunteer.
    now += 3_000;
    s = newScheduler();
    const back = join_(s, 2, 2, { volunteerId: welcome.volunteerId, secret: welcome.secret }, [t2!.lease]);
    assert.deepEqual(back.conn.of('welcome')[0]!.kept, [t2!.lease]);
    await complete(s, back.v, t2!);
    const reduce = back.conn.assigns().find((t) => t.phase === 'reduce')!;
    await complete(s, back.v, reduce);
    assert.equal(s.jobs.get(id)!.state, 'succeeded');
    assert.equal(s.outputs.all(id).join(''), 'a\t1\nb\t1\nc\t1\n');
  });

  test('after a restart, tasks of volunteers that never come back are reassigned after 10 s', () => {
    let s = newScheduler();
    const id = submit({ a: 'a\n' }, { reduces: 1 });
    s.jobAdded(id);
    const v = join_(s, 1);
    const t = v.conn.assigns()[0]!;
    s = newScheduler();
    const other = join_(s, 1);
    assert.equal(other.conn.assigns().length, 0);
    now += 10_000;
    s.handle(other.v, { type: 'heartbeat', running: [] });
    s.sweep();
    assert.equal(s.attempts.byLease(t.lease)!.outcome, 'lost');
    assert.equal(other.conn.assigns()[0]!.taskId, t.taskId);
  });
});

describe('retries', () => {
  test('a task whose code failed on one volunteer is retried on another when one is free', () => {
    const s = newScheduler();
    const id = submit({ a: 'a\n' }, { reduces: 1 });
    s.jobAdded(id);
    const first = join_(s, 1);
    const second = join_(s, 1);
    const t = first.conn.assigns()[0]!;
    assert.equal(second.conn.assigns().length, 0);
    s.handle(first.v, { type: 'task.fail', lease: t.lease, reason: 'threw', error: { name: 'Error', message: 'x' } });
    assert.equal(first.conn.assigns().length, 1, 'not given back to the volunteer it failed on');
    assert.equal(second.conn.assigns()[0]!.taskId, t.taskId);
  });

  test('with no one else around, the retry runs on the same volunteer', () => {
    const s = newScheduler();
    const id = submit({ a: 'a\n' }, { reduces: 1 });
    s.jobAdded(id);
    const only = join_(s, 1);
    const t = only.conn.assigns()[0]!;
    s.handle(only.v, { type: 'task.fail', lease: t.lease, reason: 'threw', error: { name: 'Error', message: 'x' } });
    assert.equal(only.conn.assigns()[1]!.taskId, t.taskId);
  });
});
