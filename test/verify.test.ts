/**
 * Verification as users run it (README "Verification"): a real master and CLI, real Node volunteers
 * beside scripted ones that speak the real protocol and return well-formed wrong output (every count
 * times 7), from several loopback addresses standing for several hosts.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import {
  adminCli,
  apiGet,
  corpusFiles,
  EXAMPLES,
  localOutput,
  removeTempDirs,
  startMaster,
  startVolunteer,
  until,
  type MasterProc,
} from './helpers/cluster.js';
import { startScriptedVolunteer, type ScriptedVolunteer } from './helpers/scripted-volunteer.js';
import type { CreditBoard, JobView, TaskView, WorkerView } from '../shared/api.js';

after(removeTempDirs);

const WORD_COUNT = join(EXAMPLES, 'word-count.js');

async function connected(m: MasterProc, n: number): Promise<void> {
  await until(`${n} volunteers`, async () => {
    const workers = await apiGet<{ state: string }[]>(m, '/api/workers');
    return workers.filter((w) => w.state === 'connected').length === n;
  });
}

async function tasksOf(m: MasterProc, id: string) {
  return apiGet<TaskView[]>(m, `/api/jobs/${id}/tasks`);
}

/** Submits the word count and waits; returns the job's id and output. */
async function wordCount(m: MasterProc, files: string[], args: string[]) {
  const run = adminCli(m);
  const r = await run(['submit', WORD_COUNT, ...files, '--reduces', '3', '--split-size', '64KiB', ...args, '--wait']);
  assert.equal(r.code, 0, r.stderr);
  const id = r.stdout.split('\n')[0]!.trim();
  const out = await run(['result', id]);
  assert.equal(out.code, 0, out.stderr);
  return { id, output: out.stdout };
}

/** The attempts of one volunteer in a job, by outcome. */
function outcomesOf(tasks: TaskView[], worker: string): Record<string, number> {
  const n: Record<string, number> = {};
  for (const a of tasks.flatMap((t) => t.attempts)) if (a.worker === worker) n[a.outcome] = (n[a.outcome] ?? 0) + 1;
  return n;
}

test('beside two honest volunteers a liar is outvoted: the default and --verify all equal local; --verify off commits its lies', async () => {
  const files = corpusFiles().slice(0, 3);
  const args = ['--reduces', '3', '--split-size', '64KiB'];
  const expected = await localOutput(WORD_COUNT, files, args);
  const m = await startMaster();
  const honest = [startVolunteer(m.url, 1), startVolunteer(m.url, 1)];
  let liar: ScriptedVolunteer | null = null;
  try {
    liar = await startScriptedVolunteer(m.url, { lies: () => true });
    await connected(m, 3);
    const liarId = liar.id()!;
    const off = await wordCount(m, files, ['--verify', 'off']);
    assert.ok(outcomesOf(await tasksOf(m, off.id), liarId)['succeeded']! > 0, 'the liar committed results');
    assert.notEqual(off.output, expected, 'with --verify off its lies are in the output');
    for (const mode of [[], ['--verify', 'all']]) {
      const { id, output } = await wordCount(m, files, mode);
      assert.equal(output, expected, `${mode.join(' ') || 'default'}: output equals local`);
      const tasks = await tasksOf(m, id);
      const mine = outcomesOf(tasks, liarId);
      assert.equal(mine['succeeded'] ?? 0, 0, 'none of its results stands');
      assert.ok((mine['rejected'] ?? 0) >= 1, 'its results were rejected');
      const job = await apiGet<JobView>(m, `/api/jobs/${id}`);
      assert.equal(job.verify, mode.length ? 'all' : 'adaptive');
      assert.ok(job.verification.rejected >= 1);
      const v = job.verification;
      assert.equal(v.verified + v.spotChecked + v.trusted + v.unconfirmed, tasks.length);
      assert.equal(v.unconfirmed, 0, 'three volunteers: every task had someone to confirm it');
      const status = await adminCli(m)(['status', id]);
      assert.match(
        status.stdout,
        new RegExp(`verify\\s+${job.verify}: verified ${v.verified}, .*rejected ${v.rejected}`),
      );
    }
    // The volunteers panel and `tabreduce workers` show each one's record.
    const workers = await apiGet<WorkerView[]>(m, '/api/workers');
    const record = workers.find((w) => w.id === liarId)!.trust;
    assert.ok(record.rejected >= 1 && !record.trusted, JSON.stringify(record));
    for (const w of workers.filter((x) => x.id !== liarId)) assert.ok(w.trust.agreed > 0 && w.trust.rejected === 0);
    assert.match((await adminCli(m)(['workers'])).stdout, new RegExp(`${liarId} .* lost \\(\\d+ rejected\\)`));
    // Credit for verified work only: the honest have some, the liar none; the volunteer page shows both.
    assert.equal(workers.find((w) => w.id === liarId)!.credit, 0);
    const honestId = workers.find((x) => x.id !== liarId)!.id;
    const board = (await (await fetch(`${m.url}/credit?volunteer=${honestId}`)).json()) as CreditBoard;
    assert.ok(board.you! > 0 && board.top.length === 2, JSON.stringify(board));
    assert.ok(board.top.every((t) => t.volunteer !== liarId.slice(0, 6)));
    const none = (await (await fetch(`${m.url}/credit?volunteer=${liarId}`)).json()) as CreditBoard;
    assert.equal(none.you ?? 0, 0);
  } finally {
    await liar?.close();
    await Promise.all(honest.map((v) => v.kill()));
    await m.kill();
  }
});

test('a volunteer honest until trusted, then lying, is caught by a spot check, and what it committed alone runs again', async (t) => {
  const files = corpusFiles().slice(0, 5);
  const args = ['--reduces', '3', '--split-size', '32KiB'];
  const expected = await localOutput(WORD_COUNT, files, args);
  const m = await startMaster({ args: ['--trust-after', '2', '--spot-check', '0.5'] });
  const honest = [startVolunteer(m.url, 1), startVolunteer(m.url, 1)];
  let turncoat: ScriptedVolunteer | null = null;
  try {
    await connected(m, 2);
    // Honest for its first 10 results: trusted after 2, then half its results are taken alone.
    turncoat = await startScriptedVolunteer(m.url, { lies: (n) => n > 10 });
    await connected(m, 3);
    const { id, output } = await wordCount(m, files, args.slice(2));
    assert.equal(output, expected);
    assert.ok(turncoat.results() > 10, `it lied (${turncoat.results()} results)`);
    const db = new Database(join(m.data, 'tabreduce.db'), { readonly: true });
    try {
      const mine = db
        .prepare(
          `SELECT a.outcome, a.error, t.state, t.confirm, t.recheck FROM attempt a JOIN task t ON t.id = a.task_id
           WHERE a.job_id = ? AND a.volunteer_id = ?`,
        )
        .all(id, turncoat.id()) as {
        outcome: string;
        error: string | null;
        state: string;
        confirm: string;
        recheck: number;
      }[];
      assert.ok(
        mine.some((a) => a.outcome === 'rejected' && /its result lost a vote/.test(a.error ?? '')),
        'caught',
      );
      // Whether any of its trusted results committed alone before the lie was caught depends on the
      // race (its results may all have been spot-checked or second votes); whichever did were taken
      // back and confirmed again, and none of its results stands alone now.
      const takenBack = mine.filter((a) => /later lost a vote/.test(a.error ?? ''));
      t.diagnostic(`${takenBack.length} results it had committed alone were taken back`);
      for (const a of takenBack) assert.deepEqual([a.state, a.confirm, a.recheck], ['succeeded', 'verified', 1]);
      for (const a of mine.filter((x) => x.outcome === 'succeeded')) assert.match(a.confirm, /^(verified|spot)$/);
      const trust = db.prepare('SELECT rejected FROM trust WHERE volunteer_id = ?').get(turncoat.id()) as {
        rejected: number;
      };
      assert.ok(trust.rejected >= 1);
    } finally {
      db.close();
    }
  } finally {
    await turncoat?.close();
    await Promise.all(honest.map((v) => v.kill()));
    await m.kill();
  }
});

test('two colluding liars on one address cannot outvote honest volunteers on two others', async () => {
  const files = corpusFiles().slice(0, 2);
  const args = ['--reduces', '3', '--split-size', '64KiB'];
  const expected = await localOutput(WORD_COUNT, files, args);
  const m = await startMaster();
  const vols: ScriptedVolunteer[] = [];
  try {
    for (const [address, lies] of [
      ['127.0.0.2', true],
      ['127.0.0.2', true],
      ['127.0.0.3', false],
      ['127.0.0.4', false],
    ] as const) {
      vols.push(await startScriptedVolunteer(m.url, { address, lies: () => lies }));
    }
    await connected(m, 4);
    for (const mode of [[], ['--verify', 'all']]) {
      const { id, output } = await wordCount(m, files, mode);
      assert.equal(output, expected, mode.join(' ') || 'default');
      const tasks = await tasksOf(m, id);
      for (const l of vols.slice(0, 2)) assert.equal(outcomesOf(tasks, l.id()!)['succeeded'] ?? 0, 0);
    }
  } finally {
    await Promise.all(vols.map((v) => v.close()));
    await m.kill();
  }
});

test('the master SIGKILLed between the two votes of a task: after the restart it needs its second vote and commits once', async () => {
  const files = corpusFiles().slice(0, 1);
  const args = ['--reduces', '1', '--split-size', '1MiB'];
  const expected = await localOutput(WORD_COUNT, files, args);
  let m = await startMaster();
  const { data, port } = m;
  const vols: ScriptedVolunteer[] = [];
  try {
    vols.push(await startScriptedVolunteer(m.url));
    const sub = await adminCli(m)(['submit', WORD_COUNT, ...files, ...args, '--verify', 'all']);
    assert.equal(sub.code, 0, sub.stderr);
    const id = sub.stdout.trim();
    await until('the first vote', async () =>
      (await tasksOf(m, id)).some((t) => t.attempts.some((a) => a.outcome === 'voted')),
    );
    const waiting = await apiGet<JobView>(m, `/api/jobs/${id}`);
    assert.match(waiting.waiting ?? '', /1 task waits for a volunteer other than those that returned a result/);
    await m.kill();
    m = await startMaster({ data, port });
    const [map] = await tasksOf(m, id);
    assert.deepEqual(
      map!.attempts.map((a) => a.outcome),
      ['voted'],
      'the vote survived; the task waits for its second',
    );
    assert.equal(map!.state, 'pending');
    // Two new volunteers (the first does not come back): one gives the map its second vote, both the reduce its two.
    vols.push(await startScriptedVolunteer(m.url), await startScriptedVolunteer(m.url));
    const done = await adminCli(m)(['wait', id], 120_000);
    assert.equal(done.code, 0, done.stderr + m.output());
    assert.equal((await adminCli(m)(['result', id])).stdout, expected);
    const tasks = await tasksOf(m, id);
    const first = tasks.find((t) => t.phase === 'map')!;
    assert.deepEqual(
      first.attempts.map((a) => a.outcome),
      ['succeeded', 'succeeded'],
    );
    assert.notEqual(first.attempts[0]!.worker, first.attempts[1]!.worker);
    const job = await apiGet<JobView>(m, `/api/jobs/${id}`);
    assert.deepEqual([job.maps.done, job.reduces.done, job.verification.verified], [1, 1, 2]);
  } finally {
    await Promise.all(vols.map((v) => v.close()));
    await m.kill();
  }
});
