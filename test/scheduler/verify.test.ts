/** Verification (commit.ts `judge`): votes, quorum, trust, spot checks, rejection and taking back. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  T,
  useScheduler,
  newScheduler,
  connect,
  output,
  resultOf,
  submit,
  outputTexts,
  type FakeConn,
} from './harness.js';
import { encodeMapOutput } from '../../shared/records.js';
import { isJobFinished, type VerifyMode } from '../../shared/states.js';
import type { TaskAssign } from '../../shared/protocol.js';
import type { Scheduler, Volunteer } from '../../server/scheduler/index.js';

useScheduler();

/** A volunteer of these tests: honest, or lying on the results for which `lies` says so. */
interface Vol {
  name: string;
  conn: FakeConn;
  v: Volunteer;
  answered: Set<string>;
  lies?: (n: number) => boolean;
}

function join(s: Scheduler, name: string, address = '127.0.0.1', lies?: (n: number) => boolean): Vol {
  const { conn, v } = connect(s, 1, 1, undefined, [], address);
  return { name, conn, v, answered: new Set(), lies };
}

/** Well-formed and wrong: every count 7 times what it is. */
function falsify(task: TaskAssign, out: string): string {
  if (task.phase === 'reduce') {
    return out.replace(/\t(\d+)\n/g, (_, n: string) => `\t${Number(n) * 7}\n`);
  }
  const parts = Array.from({ length: task.nReduce }, () => [] as [string, string[]][]);
  for (const line of out.split('\n').filter(Boolean)) {
    const [part, key, values] = JSON.parse(line) as [number, string, string[]];
    parts[part]!.push([key, values.flatMap((x) => Array<string>(7).fill(x))]);
  }
  return encodeMapOutput(parts);
}

/** Answers every open assignment, round after round, until the job ends or nobody has work. */
async function drive(s: Scheduler, vols: Vol[], id: string, rounds = 400) {
  for (let i = 0; i < rounds; i++) {
    if (isJobFinished(T.stores.jobs.get(id)!.state)) break;
    let acted = false;
    for (const x of vols) {
      const cancelled = new Set(x.conn.of('task.cancel').map((c) => c.lease));
      for (const t of x.conn.assigns()) {
        if (x.answered.has(t.lease) || cancelled.has(t.lease)) continue;
        x.answered.add(t.lease);
        // Each task takes 10 ms of the master's clock: what credit measures.
        T.now += 10;
        let out = await output(t);
        if (x.lies?.(x.answered.size)) out = falsify(t, out);
        s.handle(x.v, {
          type: 'task.result',
          lease: t.lease,
          output: out,
          stats: { ms: 1, recordsIn: 1, recordsOut: 1 },
        });
        acted = true;
      }
    }
    if (!acted) break;
  }
  return T.stores.jobs.get(id)!;
}

const WORDS = { a: 'x y x\n', b: 'y z\n', c: 'z z w\n', d: 'w x\n' };
const EXPECTED = 'w\t2,x\t3,y\t2,z\t3';

function words(id: string): string {
  return outputTexts(id).join('').split('\n').filter(Boolean).sort().join(',');
}

function outcomes(id: string, volunteer?: string): Record<string, number> {
  const n: Record<string, number> = {};
  for (const a of T.stores.attempts.forJob(id)) {
    if (volunteer && a.volunteer_id !== volunteer) continue;
    n[a.outcome] = (n[a.outcome] ?? 0) + 1;
  }
  return n;
}

async function job(verify: VerifyMode, inputs: Record<string, string> = WORDS) {
  return submit(inputs, { verify, reduces: 2 });
}

test('--verify all: every task commits on two matching results from two volunteers', async () => {
  const s = newScheduler();
  const id = await job('all');
  s.jobAdded(id);
  const vols = [join(s, 'h1'), join(s, 'h2')];
  const j = await drive(s, vols, id);
  assert.equal(j.state, 'succeeded');
  assert.equal(words(id), EXPECTED);
  // 4 maps and 2 reduces, each run twice, once by each.
  assert.deepEqual(outcomes(id), { succeeded: 12 });
  assert.deepEqual([j.verified, j.spot_checked, j.trusted, j.unconfirmed, j.rejected], [6, 0, 0, 0, 0]);
  for (const t of T.stores.tasks.forJob(id)) {
    const by = T.stores.attempts.forTask(t.id).map((a) => a.volunteer_id);
    assert.equal(new Set(by).size, 2, `task ${t.id} ran on both volunteers`);
  }
  // Credit: the master's time for each result that was committed or agreed with (12 results).
  const credit = vols.map((x) => T.stores.trust.get(x.v.id)!.credit_ms);
  assert.ok(credit.every((ms) => ms > 0));
  assert.equal(
    credit.reduce((a, b) => a + b),
    T.stores.attempts.forJob(id).reduce((n, a) => n + a.ended_at! - a.started_at, 0),
  );
});

test('--verify all with one volunteer waits, says for what, and finishes once a second one comes', async () => {
  const s = newScheduler();
  const id = await job('all', { a: 'x\n' });
  s.jobAdded(id);
  const one = join(s, 'h1');
  let j = await drive(s, [one], id);
  assert.equal(j.state, 'mapping');
  assert.match(s.waitingFor(id) ?? '', /1 task waits for a volunteer other than those that returned a result/);
  const two = join(s, 'h2');
  j = await drive(s, [one, two], id);
  assert.equal(j.state, 'succeeded');
  assert.equal(s.waitingFor(id), null);
  assert.equal(j.verified, 3);
});

test('--verify adaptive with one volunteer finishes, each task counted unconfirmed', async () => {
  const s = newScheduler();
  const id = await job('adaptive');
  s.jobAdded(id);
  const j = await drive(s, [join(s, 'h1')], id);
  assert.equal(j.state, 'succeeded');
  assert.equal(words(id), EXPECTED);
  assert.deepEqual(outcomes(id), { succeeded: 6 });
  assert.deepEqual([j.verified, j.unconfirmed], [0, 6]);
});

test("--verify off commits a liar's result (what verification is for)", async () => {
  const s = newScheduler();
  const id = await job('off');
  s.jobAdded(id);
  const liar = join(s, 'liar', '127.0.0.1', () => true);
  const j = await drive(s, [liar], id);
  assert.equal(j.state, 'succeeded');
  assert.notEqual(words(id), EXPECTED);
  assert.equal(T.stores.trust.get(liar.v.id), undefined, 'no record, and no credit, from unverified work');
});

test('a liar beside two honest volunteers loses every vote, loses its trust and is expelled; the output is exact', async () => {
  for (const verify of ['all', 'adaptive'] as const) {
    const s = newScheduler();
    const id = await job(verify);
    s.jobAdded(id);
    const liar = join(s, 'liar', '127.0.0.1', () => true);
    const vols = [liar, join(s, 'h1'), join(s, 'h2')];
    const j = await drive(s, vols, id);
    assert.equal(j.state, 'succeeded', verify);
    assert.equal(words(id), EXPECTED, verify);
    assert.ok((outcomes(id, liar.v.id)['rejected'] ?? 0) >= 1, verify);
    assert.equal(outcomes(id, liar.v.id)['succeeded'] ?? 0, 0, verify);
    assert.equal(T.stores.trust.get(liar.v.id)!.rejected >= 1, true, verify);
    assert.equal(T.stores.trust.get(liar.v.id)!.credit_ms, 0, `${verify}: no credit for rejected work`);
  }
});

test('adaptive: trust after N agreeing results, then results alone and spot checks; trust survives a restart', async () => {
  let draw = 0.99;
  const s = newScheduler({ trustAfter: 2, spotCheckRate: 0.5, random: () => draw });
  const id = await job('adaptive', { a: 'x\n', b: 'y\n', c: 'z\n', d: 'w\n', e: 'x\n', f: 'y\n' });
  s.jobAdded(id);
  const vols = [join(s, 'h1'), join(s, 'h2')];
  let j = await drive(s, vols, id);
  assert.equal(j.state, 'succeeded');
  // Two tasks earn both their trust; the rest are taken alone (the draw never picks a spot check),
  // but for one whose first result came before that and whose second after.
  assert.deepEqual([j.verified, j.spot_checked, j.trusted, j.unconfirmed], [2, 1, 5, 0]);
  // After a restart (a new scheduler over the same database) trust holds, and spot checks pick.
  draw = 0.1;
  const s2 = newScheduler({ trustAfter: 2, spotCheckRate: 0.5, random: () => draw });
  const id2 = await job('adaptive', { a: 'x\n', b: 'y\n' });
  s2.jobAdded(id2);
  const again = [
    {
      ...vols[0]!,
      ...connect(s2, 1, 1, { volunteerId: vols[0]!.v.id, secret: vols[0]!.v.secret }),
      answered: new Set<string>(),
    },
    {
      ...vols[1]!,
      ...connect(s2, 1, 1, { volunteerId: vols[1]!.v.id, secret: vols[1]!.v.secret }),
      answered: new Set<string>(),
    },
  ];
  j = await drive(s2, again, id2);
  assert.equal(j.state, 'succeeded');
  assert.equal(j.spot_checked, 4);
  assert.equal(j.verified + j.trusted + j.unconfirmed, 0);
});

test('a trusted volunteer that starts lying is caught by a spot check, and what it committed alone runs again', async () => {
  let n = 0;
  // Every third draw picks a spot check.
  const s = newScheduler({ trustAfter: 2, spotCheckRate: 0.3, random: () => (n++ % 3 === 2 ? 0 : 0.99) });
  const inputs = Object.fromEntries(Array.from({ length: 12 }, (_, i) => [`f${i}`, `w${i % 5} x\n`]));
  const id = await submit(inputs, { verify: 'adaptive', reduces: 2 });
  s.jobAdded(id);
  // Honest for its first 4 results (2 to earn trust), then lies on every one.
  const turncoat = join(s, 'turncoat', '127.0.0.2', (k) => k > 4);
  const j = await drive(s, [turncoat, join(s, 'h1', '127.0.0.3'), join(s, 'h2', '127.0.0.4')], id);
  assert.equal(j.state, 'succeeded');
  const local = new Map<string, number>();
  for (const text of Object.values(inputs))
    for (const w of text.split(/\s+/).filter(Boolean)) local.set(w, (local.get(w) ?? 0) + 1);
  assert.equal(
    words(id),
    [...local]
      .map(([k, c]) => `${k}\t${c}`)
      .sort()
      .join(','),
  );
  const mine = T.stores.attempts.forJob(id).filter((a) => a.volunteer_id === turncoat.v.id);
  const rejected = mine.filter((a) => a.outcome === 'rejected');
  assert.ok(
    rejected.some((a) => /later lost a vote/.test(a.error ?? '')),
    'a result it committed alone was taken back',
  );
  assert.ok(rejected.some((a) => /lost a vote/.test(a.error ?? '')));
  // What stands of its work was confirmed by another volunteer.
  for (const a of mine.filter((x) => x.outcome === 'succeeded')) {
    assert.match(T.stores.tasks.verification(a.task_id)!.confirm ?? '', /^(verified|spot)$/);
  }
  // Each task it had committed alone ran again, and needed two votes whoever ran it.
  for (const a of rejected.filter((x) => /later/.test(x.error ?? ''))) {
    assert.equal(T.stores.tasks.get(a.task_id)!.state, 'succeeded');
    assert.deepEqual(T.stores.tasks.verification(a.task_id), { confirm: 'verified', recheck: 1 });
  }
  assert.equal(T.stores.trust.get(turncoat.v.id)!.rejected >= 1, true);
});

test('two colluding liars on one address cannot outvote honest volunteers on other addresses', async () => {
  const s = newScheduler();
  const id = await job('all');
  s.jobAdded(id);
  const vols = [
    join(s, 'l1', '127.0.0.2', () => true),
    join(s, 'l2', '127.0.0.2', () => true),
    join(s, 'h1', '127.0.0.3'),
    join(s, 'h2', '127.0.0.4'),
  ];
  const j = await drive(s, vols, id);
  assert.equal(j.state, 'succeeded');
  assert.equal(words(id), EXPECTED);
  for (const l of vols.slice(0, 2)) assert.equal(outcomes(id, l.v.id)['succeeded'] ?? 0, 0, l.name);
});

test('two honest volunteers behind one address outvote a liar on another once it has voted', async () => {
  for (const verify of ['all', 'adaptive'] as const) {
    const s = newScheduler();
    const id = await job(verify);
    s.jobAdded(id);
    const liar = join(s, 'liar', '127.0.0.2', () => true);
    const j = await drive(s, [liar, join(s, 'h1'), join(s, 'h2')], id);
    assert.equal(j.state, 'succeeded', verify);
    assert.equal(words(id), EXPECTED, verify);
    assert.equal(outcomes(id, liar.v.id)['succeeded'] ?? 0, 0, verify);
  }
});

test('a vote that waits past the task timeout for another address goes to one behind its own', async () => {
  const s = newScheduler();
  const id = await job('all', { a: 'x\n' });
  s.jobAdded(id);
  const h1 = join(s, 'h1');
  const h2 = join(s, 'h2');
  // A volunteer on another address that has done work, and now never takes the task.
  const idle = join(s, 'idle', '127.0.0.9');
  idle.v.done = 5;
  idle.v.paused = false;
  idle.v.slots = 0;
  await drive(s, [h1, h2], id);
  assert.deepEqual(outcomes(id), { voted: 1 }, 'the second waits for the one on another address');
  assert.equal(T.stores.jobs.get(id)!.state, 'mapping');
  // Each task (the map, then each reduce) waits one task timeout, then goes to the other behind 127.0.0.1.
  let j = T.stores.jobs.get(id)!;
  for (let i = 0; i < 3 && j.state !== 'succeeded'; i++) {
    T.now += 10_001;
    for (const x of [h1, h2, idle]) s.seen(x.v);
    s.sweep();
    j = await drive(s, [h1, h2], id);
  }
  assert.equal(j.state, 'succeeded');
  assert.equal(words(id), 'x\t1');
});

test('a restart between two votes keeps the first, and the task commits once on the second', async () => {
  const s = newScheduler();
  const id = await job('all', { a: 'x\n' });
  s.jobAdded(id);
  const h1 = join(s, 'h1');
  const first = h1.conn.assigns()[0]!;
  s.handle(h1.v, {
    type: 'task.result',
    lease: first.lease,
    output: await output(first),
    stats: { ms: 1, recordsIn: 1, recordsOut: 1 },
  });
  assert.deepEqual(outcomes(id), { voted: 1 });
  // The master stops: a new scheduler reads the same database.
  const s2 = newScheduler();
  const back = {
    ...h1,
    ...connect(s2, 1, 1, { volunteerId: h1.v.id, secret: h1.v.secret }),
    answered: new Set<string>(),
  };
  assert.equal(back.conn.assigns().length, 0, 'the voter does not get its own task again');
  const h2 = join(s2, 'h2');
  assert.equal(h2.conn.assigns()[0]?.taskId, first.taskId);
  const j = await drive(s2, [back, h2], id);
  assert.equal(j.state, 'succeeded');
  const map = T.stores.attempts.forTask(first.taskId).map((a) => a.outcome);
  assert.deepEqual(map, ['succeeded', 'succeeded']);
  assert.equal(T.stores.jobs.get(id)!.maps_done, 1);
});

/**
 * A map voted on by `h1` (127.0.0.1) while `h2` (127.0.0.2) holds the other map, then the master
 * stops: a new scheduler reads the same database, and `h1` is the first to come back.
 */
async function voteThenRestart() {
  const s = newScheduler();
  const id = await job('adaptive', { a: 'x\n', b: 'y\n' });
  s.jobAdded(id);
  const h1 = join(s, 'h1');
  const h2 = join(s, 'h2', '127.0.0.2');
  const [a] = h1.conn.assigns();
  const [b] = h2.conn.assigns();
  s.handle(h1.v, { type: 'task.result', lease: a!.lease, ...(await resultOf(a!)) });
  assert.deepEqual(outcomes(id), { voted: 1, running: 1 });
  const s2 = newScheduler();
  const back = (x: Vol, running: string[] = []) => ({
    ...x,
    ...connect(s2, 1, 1, { volunteerId: x.v.id, secret: x.v.secret }, running, x.v.address),
    answered: new Set<string>(),
  });
  return { s2, id, a: a!, b: b!, h1: back(h1), h2: () => back(h2, [b!.lease]) };
}

test('adaptive: after a restart a voter does not get its own task back while the others may still reconnect', async () => {
  const { s2, id, a, b, h1, h2 } = await voteThenRestart();
  assert.equal(h1.conn.assigns().length, 0, 'the task waits for another volunteer');
  // Within the reassignment window the other comes back with the map it held, and confirms the first.
  T.now += 5_000;
  const other = h2();
  assert.deepEqual(other.conn.of('welcome')[0]!.kept, [b.lease]);
  other.answered.add(b.lease);
  s2.handle(other.v, { type: 'task.result', lease: b.lease, ...(await resultOf(b)) });
  const j = await drive(s2, [h1, other], id);
  assert.equal(j.state, 'succeeded');
  assert.equal(words(id), 'x\t1,y\t1');
  assert.deepEqual(
    T.stores.attempts.forTask(a.taskId).map((x) => [x.volunteer_id, x.outcome]),
    [
      [h1.v.id, 'succeeded'],
      [other.v.id, 'succeeded'],
    ],
  );
  assert.equal(j.unconfirmed, 0);
});

test('adaptive: after a restart a voter alone runs its task again once the reassignment window has passed', async () => {
  const { s2, id, a, h1 } = await voteThenRestart();
  assert.equal(h1.conn.assigns().length, 0);
  T.now += 10_001;
  s2.seen(h1.v);
  s2.sweep();
  // Nobody else came back: the job does not stall, and says the tasks rest on one volunteer.
  assert.equal(h1.conn.assigns()[0]?.taskId, a.taskId);
  const j = await drive(s2, [h1], id);
  assert.equal(j.state, 'succeeded');
  assert.deepEqual(
    T.stores.attempts.forTask(a.taskId).map((x) => x.outcome),
    ['superseded', 'succeeded'],
  );
  assert.equal(j.unconfirmed, 4);
});

test("a voter's second vote on a task, confirmed by another volunteer, is not a second agreeing vote", async () => {
  const { s2, id, a, h1, h2 } = await voteThenRestart();
  T.now += 10_001;
  s2.seen(h1.v);
  s2.sweep();
  const again = h1.conn.assigns()[0]!;
  assert.equal(again.taskId, a.taskId);
  // The other comes back late (its map is lost), while the voter runs its task again. The lost map
  // then goes back to it rather than wait for the voter, whose second result would confirm nothing.
  const other = h2();
  h1.answered.add(again.lease);
  s2.handle(h1.v, { type: 'task.result', lease: again.lease, ...(await resultOf(again)) });
  const j = await drive(s2, [h1, other], id);
  assert.equal(j.state, 'succeeded');
  const attempts = T.stores.attempts.forTask(a.taskId);
  const won = attempts.filter((x) => x.outcome === 'succeeded').map((x) => x.volunteer_id);
  assert.deepEqual(won.sort(), [h1.v.id, other.v.id].sort(), 'one succeeded attempt per volunteer');
  assert.deepEqual(
    attempts.filter((x) => x.volunteer_id === h1.v.id).map((x) => x.outcome),
    ['succeeded', 'superseded'],
  );
  // Credit for the task once: the first vote's time, not the repeat's.
  const credited = T.stores.trust.get(h1.v.id)!.credit_ms;
  const earned = T.stores.attempts
    .forJob(id)
    .filter((x) => x.volunteer_id === h1.v.id && x.outcome === 'succeeded')
    .reduce((n, x) => n + x.ended_at! - x.started_at, 0);
  assert.equal(credited, earned);
});

test('a task lost on a volunteer goes to another behind its address when the only one elsewhere is an expelled liar', async () => {
  const s = newScheduler();
  const inputs = Object.fromEntries(Array.from({ length: 8 }, (_, i) => [`f${i}`, `w${i % 3} x\n`]));
  const id = await submit(inputs, { verify: 'adaptive', reduces: 1 });
  s.jobAdded(id);
  const liar = join(s, 'liar', '127.0.0.2', () => true);
  // h1 takes a map and never answers.
  const h1 = join(s, 'h1');
  const held = h1.conn.assigns()[0]!;
  const vols = [liar, join(s, 'h2'), join(s, 'h3')];
  // The liar loses a vote and is expelled from the job, while the others work.
  await drive(s, vols, id);
  assert.ok((outcomes(id, liar.v.id)['rejected'] ?? 0) >= 1);
  // h1 goes away: its map is lost there, on an address the other two share.
  s.closed(h1.v, h1.conn);
  T.now += 10_001;
  for (const x of vols) s.seen(x.v);
  s.sweep();
  assert.equal(T.stores.attempts.forTask(held.taskId)[0]!.outcome, 'lost');
  const j = await drive(s, vols, id);
  assert.equal(j.state, 'succeeded', 'the lost map does not wait for the expelled liar');
  assert.equal(outcomes(id, liar.v.id)['succeeded'] ?? 0, 0);
});

test("a voter expelled from a job leaves its tasks' votes: the one it shared does not look agreed", async () => {
  const s = newScheduler();
  const id = await submit({ a: 'x\n', b: 'y\n', c: 'z\n', d: 'w\n' }, { verify: 'adaptive', reduces: 1 });
  s.jobAdded(id);
  let lying = false;
  const turncoat = join(s, 'turncoat', '127.0.0.3', () => lying);
  const answer = async (x: Vol) => {
    const t = x.conn.assigns().find((y) => !x.answered.has(y.lease))!;
    x.answered.add(t.lease);
    let out = await output(t);
    if (x.lies?.(0)) out = falsify(t, out);
    s.handle(x.v, { type: 'task.result', lease: t.lease, output: out, stats: { ms: 1, recordsIn: 1, recordsOut: 1 } });
    return t;
  };
  // The turncoat votes on map a honestly, h1 votes on b and then takes a for its second vote, and holds it.
  const h1 = join(s, 'h1');
  const a = await answer(turncoat);
  await answer(h1);
  assert.equal(h1.conn.assigns()[1]!.taskId, a.taskId);
  // The turncoat lies on c, and two honest volunteers outvote it: it is expelled, its vote on a void.
  lying = true;
  await answer(turncoat);
  const h2 = join(s, 'h2');
  await answer(h2);
  const h3 = join(s, 'h3');
  await answer(h3);
  assert.equal(outcomes(id, turncoat.v.id)['rejected'], 1);
  assert.equal(T.stores.attempts.forTask(a.taskId)[0]!.outcome, 'superseded');
  // h1's result on a is a first vote; a task timeout later h1 must not run a again as if two agreed.
  await answer(h1);
  T.now += 10_001;
  for (const x of [turncoat, h1, h2, h3]) s.seen(x.v);
  s.sweep();
  const j = await drive(s, [turncoat, h1, h2, h3], id);
  assert.equal(j.state, 'succeeded');
  const onA = T.stores.attempts.forTask(a.taskId);
  assert.deepEqual(
    onA.filter((x) => x.volunteer_id === h1.v.id).map((x) => x.outcome),
    ['succeeded'],
    'h1 ran a once',
  );
  assert.equal(onA.filter((x) => x.outcome === 'succeeded').length, 2, 'a confirmed by another volunteer');
  assert.equal(j.unconfirmed, 0);
});
