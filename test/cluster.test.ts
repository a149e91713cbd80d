/**
 * The whole system as users run it: a real master process, real Node volunteer processes, the real
 * CLI; distributed output checked against `tabreduce local` and an independent count; processes
 * SIGKILLed mid-job.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import {
  adminCli,
  apiGet,
  corpusFiles,
  EXAMPLES,
  independentWordCount,
  localOutput,
  parseOutput,
  removeTempDirs,
  startMaster,
  startVolunteer,
  tempDir,
  TEST_JOBS,
  until,
  type MasterProc,
  type VolunteerProc,
} from './helpers/cluster.js';
import type { JobView, TaskView } from '../shared/api.js';

after(removeTempDirs);

const WORD_COUNT = join(EXAMPLES, 'word-count.js');

async function withCluster<T>(
  volunteers: number,
  fn: (m: MasterProc, vs: VolunteerProc[]) => Promise<T>,
  masterArgs: string[] = [],
): Promise<T> {
  const m = await startMaster({ args: masterArgs });
  const vs = Array.from({ length: volunteers }, () => startVolunteer(m.url, 1));
  try {
    return await fn(m, vs);
  } finally {
    await Promise.all(vs.map((v) => v.kill()));
    await m.kill();
  }
}

/** Waits until `n` volunteers are connected to `m`. */
async function allConnected(m: MasterProc, n: number): Promise<void> {
  await until(`${n} volunteers`, async () => {
    const workers = await apiGet<{ state: string }[]>(m, '/api/workers');
    return workers.filter((w) => w.state === 'connected').length === n;
  });
}

function firstLine(s: string): string {
  return s.split('\n')[0]!.trim();
}

async function tasksOf(m: MasterProc, id: string) {
  return apiGet<TaskView[]>(m, `/api/jobs/${id}/tasks`);
}

/**
 * Every task committed once, and no attempt is still running: with `--verify off`, one succeeded
 * attempt per task; with verification, the committed one and those that agreed with it, each from
 * another volunteer, and the job counts each task once by how it was confirmed.
 */
async function assertCommittedOnce(m: MasterProc, id: string, tasks: TaskView[]) {
  const job = await apiGet<JobView>(m, `/api/jobs/${id}`);
  for (const t of tasks) {
    const won = t.attempts.filter((a) => a.outcome === 'succeeded');
    // A voter that runs its task again (alone on the master after a restart's reassignment window)
    // does not vote twice: its repeat is superseded.
    if (job.verify === 'off') assert.equal(won.length, 1, `${t.phase} ${t.index} has ${won.length} succeeded attempts`);
    else assert.equal(new Set(won.map((a) => a.worker)).size, won.length, `${t.phase} ${t.index}: one vote each`);
    assert.ok(won.length >= 1, `${t.phase} ${t.index} has no succeeded attempt`);
    assert.equal(t.state, 'succeeded');
    assert.ok(!t.attempts.some((a) => a.outcome === 'running' || a.outcome === 'voted'), `${t.phase} ${t.index} open`);
  }
  if (job.verify !== 'off') {
    const v = job.verification;
    assert.equal(v.verified + v.spotChecked + v.trusted + v.unconfirmed, tasks.length, 'each task confirmed once');
  }
}

test('distributed word count and inverted index over the corpus with 3 volunteers equal tabreduce local', async () => {
  const files = corpusFiles();
  await withCluster(3, async (m) => {
    await allConnected(m, 3);
    const run = adminCli(m);
    for (const [module, reduces] of [
      [WORD_COUNT, '5'],
      [join(EXAMPLES, 'inverted-index.js'), '3'],
    ] as const) {
      const r = await run(['submit', module, ...files, '--reduces', reduces, '--split-size', '128KiB', '--wait']);
      assert.equal(r.code, 0, r.stderr);
      const id = firstLine(r.stdout);
      const out = await run(['result', id]);
      assert.equal(out.code, 0, out.stderr);
      const expected = await localOutput(module, files, ['--reduces', reduces, '--split-size', '128KiB']);
      assert.equal(out.stdout, expected, `${module} output equals local`);
      await assertCommittedOnce(m, id, await tasksOf(m, id));
      const job = await apiGet<JobView>(m, `/api/jobs/${id}`);
      assert.equal(job.maps.total, job.maps.done);
      const workers = new Set((await tasksOf(m, id)).flatMap((t) => t.attempts.map((a) => a.worker)));
      assert.equal(workers.size, 3, 'all three volunteers took part');
      if (module === WORD_COUNT) {
        const counts = parseOutput(out.stdout);
        const independent = independentWordCount(files);
        assert.equal(counts.size, independent.size);
        for (const [w, n] of independent) assert.equal(counts.get(w), String(n));
      }
    }
  });
});

test('a volunteer SIGKILLed mid-task: its attempt is lost and the task re-runs elsewhere after the delay', async () => {
  const files = corpusFiles().slice(0, 3);
  await withCluster(
    2,
    async (m, [a]) => {
      const run = adminCli(m);
      const sub = await run([
        'submit',
        join(TEST_JOBS, 'slow-word-count.js'),
        ...files,
        '--split-size',
        '32KiB',
        '--reduces',
        '2',
      ]);
      assert.equal(sub.code, 0, sub.stderr);
      const id = firstLine(sub.stdout);
      // Kill volunteer a while it holds a task.
      const aId = await until('volunteer a to connect', () => /connected as ([0-9a-f]+)/.exec(a!.output())?.[1]);
      await until('a running attempt on volunteer a', async () =>
        (await tasksOf(m, id)).some((t) => t.attempts.some((x) => x.outcome === 'running' && x.worker === aId)),
      );
      const killedAt = Date.now();
      await a!.kill('SIGKILL');
      const done = await run(['wait', id], 180_000);
      assert.equal(done.code, 0, done.stderr);
      const tasks = await tasksOf(m, id);
      await assertCommittedOnce(m, id, tasks);
      const lost = tasks.flatMap((t) => t.attempts.filter((x) => x.outcome === 'lost').map((x) => ({ t, x })));
      assert.ok(lost.length >= 1, 'the killed volunteer had at least one attempt marked lost');
      assert.ok(
        lost.every(({ x }) => x.worker === aId),
        'only the killed volunteer lost attempts',
      );
      for (const { t, x } of lost) {
        const retry = t.attempts.find((y) => y.startedAt > x.startedAt && y.outcome === 'succeeded');
        assert.ok(retry, `${t.phase} ${t.index} re-ran`);
        assert.notEqual(retry.worker, x.worker);
        // Reassigned only once the volunteer had been gone for --reassign-after (3 s here).
        assert.ok(retry.startedAt - killedAt >= 2_900, `re-run ${retry.startedAt - killedAt}ms after the kill`);
      }
      assert.equal(
        (await run(['result', id])).stdout,
        await localOutput(join(TEST_JOBS, 'slow-word-count.js'), files, ['--reduces', '2', '--split-size', '32KiB']),
      );
    },
    ['--reassign-after', '3s'],
  );
});

test('a hung task gets a backup attempt after the task timeout; only one output is committed', async () => {
  const dir = tempDir();
  const module = join(dir, 'hang-once.js');
  writeFileSync(join(dir, 'a.txt'), 'alpha beta alpha\n');
  writeFileSync(join(dir, 'b.txt'), 'beta gamma\n');
  await withCluster(2, async (m) => {
    // The first attempt of map 0 starts before DEADLINE and hangs; the backup starts after it and
    // runs. The deadline is set once both volunteers are connected, however long a busy box took.
    await allConnected(m, 2);
    writeFileSync(
      module,
      `const DEADLINE = ${Date.now() + 2_500};
export async function map(key, value, emit) {
  if (key === 'a.txt' && Date.now() < DEADLINE) await new Promise((r) => setTimeout(r, 60000));
  for (const w of value.split(/\\s+/)) if (w) emit(w, '1');
}
export function reduce(key, values) { return String(values.length); }
`,
    );
    const run = adminCli(m);
    const r = await run([
      'submit',
      module,
      join(dir, 'a.txt'),
      join(dir, 'b.txt'),
      '--reduces',
      '1',
      '--task-timeout',
      '3s',
      // It counts attempts: each task runs once but for the backup.
      '--verify',
      'off',
      '--wait',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const id = firstLine(r.stdout);
    const tasks = await tasksOf(m, id);
    await assertCommittedOnce(m, id, tasks);
    const map0 = tasks.find((t) => t.phase === 'map' && t.input === 'a.txt')!;
    assert.equal(map0.attempts.length, 2, 'one backup attempt');
    const [first, backup] = map0.attempts;
    assert.equal(first!.outcome, 'superseded');
    assert.equal(backup!.outcome, 'succeeded');
    assert.equal(backup!.backup, true);
    assert.notEqual(backup!.worker, first!.worker);
    assert.ok(backup!.startedAt - first!.startedAt >= 3_000, 'backup only after the task timeout');
    assert.equal((await run(['result', id])).stdout, 'alpha\t2\nbeta\t2\ngamma\t1\n');
  });
});

test('code that throws is retried on other volunteers, then the job fails and submit --wait exits 1 with message and stack', async () => {
  await withCluster(3, async (m) => {
    // Retries go elsewhere only when someone else is there: wait for all three, however slow the box.
    await allConnected(m, 3);
    const run = adminCli(m);
    const r = await run(['submit', join(TEST_JOBS, 'throws.js'), corpusFiles()[0]!, '--max-attempts', '3', '--wait']);
    assert.equal(r.code, 1, r.stderr);
    assert.match(
      r.stderr,
      /failed: map task 0 \(input "pg-being_ernest\.txt"\) failed 3 times: RangeError: cannot parse record in pg-being_ernest\.txt/,
    );
    assert.match(r.stderr, /\n\s+at (Module\.)?map \(throws\.js:3:9\)/, "the stack names the author's file and line");
    assert.equal(r.stderr.match(/RangeError: cannot parse/g)!.length, 1, 'the error line is shown once');
    const id = firstLine(r.stdout);
    const job = await apiGet<JobView>(m, `/api/jobs/${id}`);
    assert.equal(job.state, 'failed');
    const attempts = (await tasksOf(m, id)).flatMap((t) => t.attempts.filter((a) => a.outcome === 'failed'));
    assert.equal(attempts.length, 3);
    assert.equal(new Set(attempts.map((a) => a.worker)).size, 3, 'each retry ran on another volunteer');
    const status = await run(['status', id]);
    assert.match(status.stdout, /state\s+failed/);
    assert.match(status.stdout, /RangeError: cannot parse record/);
  });
});

for (const phase of ['mapping', 'reducing'] as const) {
  test(`the master SIGKILLed while ${phase} and restarted on the same data: output exact, nothing twice`, async () => {
    const files = corpusFiles();
    const module = join(TEST_JOBS, 'slow-word-count.js');
    const args = ['--reduces', '6', '--split-size', '96KiB'];
    const expected = localOutput(module, files, args);
    let m = await startMaster();
    const data = m.data;
    const port = m.port;
    const vs = [startVolunteer(m.url, 2), startVolunteer(m.url, 2)];
    try {
      const sub = await adminCli(m)(['submit', module, ...files, ...args]);
      assert.equal(sub.code, 0, sub.stderr);
      const id = firstLine(sub.stdout);
      await until(
        `job ${phase}`,
        async () => {
          const j = await apiGet<JobView>(m, `/api/jobs/${id}`);
          return phase === 'mapping'
            ? j.maps.done >= 5 && j.maps.done < j.maps.total
            : j.reduces.done >= 1 && j.state === 'reducing';
        },
        120_000,
        20,
      );
      await m.kill();
      // Down for a moment: volunteers finish what they hold and keep the results.
      await new Promise((r) => setTimeout(r, 700));
      m = await startMaster({ data, port });
      const done = await adminCli(m)(['wait', id], 180_000);
      assert.equal(done.code, 0, done.stderr + m.output());
      assert.equal((await adminCli(m)(['result', id])).stdout, await expected);
      const tasks = await tasksOf(m, id);
      await assertCommittedOnce(m, id, tasks);
      const job = await apiGet<JobView>(m, `/api/jobs/${id}`);
      assert.equal(job.maps.done, job.maps.total);
      assert.equal(job.reduces.done, 6);
    } finally {
      await Promise.all(vs.map((v) => v.kill()));
      await m.kill();
    }
    const db = new Database(join(data, 'tabreduce.db'), { readonly: true });
    assert.equal(db.pragma('integrity_check', { simple: true }), 'ok');
    db.close();
  });
}
