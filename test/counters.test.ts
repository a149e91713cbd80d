/**
 * Job counters (`ctx.count`) and bad-record skipping on a master (`submit --skip-bad-records N`):
 * counters are the sum over committed attempts only, so they equal `tabreduce local`'s with
 * volunteers SIGKILLed mid-job and backups racing; skipped lines are listed by file and line, the
 * same on Node volunteers and a browser tab, and one bad line past the limit fails the job naming it.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { JobSummary, JobView, TaskView, WorkerView } from '../shared/api.js';
import { CounterSet, JobCodeError, asJobModule, runMap, runReduce } from '../shared/engine.js';
import { LineNumberer, countNewlines, splitRanges } from '../shared/split.js';
import fc from 'fast-check';
import {
  EXAMPLES,
  TEST_JOBS,
  adminCli,
  apiGet,
  cli,
  corpusFiles,
  removeTempDirs,
  startMaster,
  startVolunteer,
  tempDir,
  until,
  type MasterProc,
  type VolunteerProc,
} from './helpers/cluster.js';
import { launchBrowser, openTab } from './helpers/browser.js';

after(removeTempDirs);

const ACCESS_LOG = join(EXAMPLES, 'access-log/job.ts');
const SLOW_COUNTING = join(TEST_JOBS, 'slow-counting.js');

/** A Common Log Format access log of `n` lines, with lines that are not requests at `bad` (1-based). */
function accessLog(n: number, bad: number[]): string {
  const lines: string[] = [];
  for (let i = 1; i <= n; i++) {
    if (bad.includes(i)) {
      lines.push(`### corrupted entry ${i} ###`);
      continue;
    }
    const status = [200, 200, 304, 404, 200, 500][i % 6]!;
    const size = status === 304 ? '-' : String(100 + ((i * 37) % 9000));
    const method = i % 11 === 0 ? 'POST' : 'GET';
    lines.push(
      `198.51.100.${(i % 250) + 1} - - [04/Dec/2026:10:${String(i % 60).padStart(2, '0')}:00 +0000] ` +
        `"${method} /page/${i % 41}?n=${i} HTTP/1.1" ${status} ${size}`,
    );
  }
  return `${lines.join('\n')}\n`;
}

/** `tabreduce local`'s output and the counters it lists on stderr. */
async function local(module: string, inputs: string[], extra: string[]) {
  const r = await cli(['local', module, ...inputs, ...extra]);
  if (r.code !== 0) throw new Error(`tabreduce local failed (${r.code}): ${r.stderr}`);
  return { output: r.stdout, counters: parseCounters(r.stderr), stderr: r.stderr };
}

/** The `counters` block `tabreduce local` and `tabreduce status JOB` print: `  NAME  N` lines after it. */
function parseCounters(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  const lines = text.split('\n');
  const at = lines.indexOf('counters');
  if (at === -1) return out;
  for (const line of lines.slice(at + 1)) {
    const m = /^ {2}(.+?) {2,}(-?\d+)$/.exec(line);
    if (!m) break;
    out[m[1]!] = Number(m[2]);
  }
  return out;
}

async function waitEnd(m: MasterProc, id: string, timeoutMs = 120_000): Promise<JobView> {
  return until(
    `job ${id} to end`,
    async () => {
      const j = await apiGet<JobView>(m, `/api/jobs/${id}`);
      return ['succeeded', 'failed', 'cancelled'].includes(j.state) ? j : undefined;
    },
    timeoutMs,
  );
}

async function submit(m: MasterProc, args: string[]): Promise<string> {
  const r = await adminCli(m)(['submit', ...args]);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.trim().split('\n')[0]!;
}

async function output(m: MasterProc, id: string): Promise<string> {
  const r = await adminCli(m)(['result', id]);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout;
}

test('ctx.count sums per task, drops a skipped line’s counts with its emits, and refuses bad names and amounts', async () => {
  const mod = asJobModule({
    records: 'lines',
    map: (_k: string, line: string, emit: (k: string, v: string) => void, ctx: CounterSet) => {
      ctx.count('lines');
      ctx.count('chars', line.length);
      if (line.startsWith('!')) throw new Error('bad line');
      emit(line, '1');
    },
    reduce: (_k: string, vs: string[], ctx: CounterSet) => {
      ctx.count('keys');
      return String(vs.length);
    },
  });
  const r = await runMap(mod, 'f', 'ab\n!x\ncd\nab\n', 1, { skipBadRecords: 1 });
  assert.deepEqual(r.counters, { chars: 6, lines: 3 }, 'the skipped line "!x" counts nothing');
  assert.deepEqual(
    r.skipped.map((s) => s.line),
    [2],
  );
  const red = await runReduce(mod, r.partitions);
  assert.deepEqual(red.counters, { keys: 2 });

  const set = new CounterSet();
  assert.throws(() => set.count(''), JobCodeError);
  assert.throws(() => set.count('x'.repeat(101)), JobCodeError);
  assert.throws(() => set.count('n', 1.5), /whole number/);
  assert.throws(() => set.count('n', Number.NaN), /whole number/);
  assert.throws(() => set.count(7 as unknown as string), JobCodeError);
  for (let i = 0; i < 100; i++) set.count(`c${i}`);
  assert.throws(() => set.count('one too many'), /at most 100 counters/);
  set.count('c0', 2 ** 34);
  assert.throws(() => set.count('c0', 2 ** 34), /passed/);
});

test('each split’s first line number is found from any chunking of its file', () => {
  fc.assert(
    fc.property(
      fc.array(fc.constantFrom('a', 'b', '\n', 'é'), { maxLength: 300 }),
      fc.integer({ min: 1, max: 40 }),
      fc.array(fc.integer({ min: 1, max: 50 }), { minLength: 1, maxLength: 20 }),
      (chars, splitSize, cuts) => {
        const bytes = new TextEncoder().encode(chars.join(''));
        const splits = splitRanges(bytes, splitSize);
        const numberer = new LineNumberer(splits);
        for (let at = 0, i = 0; at < bytes.length; i++) {
          const n = cuts[i % cuts.length]!;
          numberer.push(bytes.subarray(at, at + n));
          at += n;
        }
        numberer.end();
        for (const s of splits) assert.equal(s.firstLine, countNewlines(bytes, 0, s.start) + 1);
      },
    ),
  );
});

test('skipped lines on Node volunteers: 3 poison lines pass with --skip-bad-records 5 and are listed; with 2 the job fails naming the third', async () => {
  const dir = tempDir();
  const log = join(dir, 'access.log');
  const bad = [150, 1600, 3900];
  writeFileSync(log, accessLog(4000, bad));
  const args = ['--reduces', '3', '--split-size', '16KiB'];
  const ref = await local(ACCESS_LOG, [log], [...args, '--skip-bad-records', '5']);
  assert.equal(ref.counters['requests'], 4000 - bad.length);
  assert.equal((await cli(['local', ACCESS_LOG, log, ...args])).code, 1, 'without skipping, a bad line fails the run');

  const m = await startMaster();
  const vols: VolunteerProc[] = [startVolunteer(m.url, 1), startVolunteer(m.url, 1)];
  try {
    const ok = await submit(m, [ACCESS_LOG, log, ...args, '--skip-bad-records', '5']);
    const job = await waitEnd(m, ok);
    assert.equal(job.state, 'succeeded', job.error ?? '');
    assert.ok(job.maps.total >= 15, `the log makes many map tasks (${job.maps.total})`);
    assert.equal(await output(m, ok), ref.output);
    assert.deepEqual(job.counters, ref.counters);
    assert.equal(job.skipped, 3);
    assert.equal(job.skipBadRecords, 5);
    const summary = await apiGet<JobSummary>(m, `/api/jobs/${ok}/summary`);
    assert.deepEqual(
      summary.skipped.map((s) => [s.input, s.line, s.text, s.error.name, s.error.message]),
      bad.map((line) => [
        'access.log',
        line,
        `### corrupted entry ${line} ###`,
        'SyntaxError',
        'not a Common Log Format request',
      ]),
    );
    assert.match(summary.skipped[0]!.error.stack ?? '', /job\.ts:\d+/, "the stack names the author's file");
    const status = await adminCli(m)(['status', ok]);
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /skipped +3 of at most 5 bad lines/);
    for (const line of bad) assert.match(status.stdout, new RegExp(`line ${line} of access\\.log \\("### corrupted`));
    assert.deepEqual(parseCounters(status.stdout), ref.counters, 'status lists the counters as local does');
    const metrics = await (await fetch(`${m.url}/metrics`)).text();
    assert.match(metrics, /# TYPE tabreduce_job_counter gauge/);

    const strict = await submit(m, [ACCESS_LOG, log, ...args, '--skip-bad-records', '2']);
    const failed = await waitEnd(m, strict);
    assert.equal(failed.state, 'failed');
    assert.match(
      failed.error ?? '',
      /line 3900 of access\.log \("### corrupted entry 3900 ###"\) threw SyntaxError: not a Common Log Format request; it is bad record 3, and --skip-bad-records allows 2/,
    );
    const localStrict = await cli(['local', ACCESS_LOG, log, ...args, '--skip-bad-records', '2']);
    assert.equal(localStrict.code, 1);
    assert.match(localStrict.stderr, /line 3900 of access\.log .*it is bad record 3, and --skip-bad-records allows 2/);

    const notLines = await adminCli(m)(['submit', join(EXAMPLES, 'word-count.js'), log, '--skip-bad-records', '2']);
    assert.equal(notLines.code, 2);
    assert.match(notLines.stderr, /does not declare `export const records = 'lines'`/);
    const tooMany = await adminCli(m)(['submit', ACCESS_LOG, log, '--skip-bad-records', '1001']);
    assert.equal(tooMany.code, 2);
    assert.match(tooMany.stderr, /skip bad records must be a whole number from 0 to 1000/);
  } finally {
    for (const v of vols) await v.kill();
    await m.stop();
  }
});

test('counters equal local’s with volunteers SIGKILLed mid-job and backups racing', async () => {
  const files = corpusFiles().slice(0, 3);
  const args = ['--reduces', '4', '--split-size', '48KiB'];
  const ref = await local(SLOW_COUNTING, files, args);
  assert.ok(ref.counters['words']! > 100_000 && ref.counters['keys']! > 1000, JSON.stringify(ref.counters));

  const m = await startMaster({ args: ['--reassign-after', '2s', '--heartbeat', '500ms'] });
  const vols: VolunteerProc[] = [startVolunteer(m.url, 2), startVolunteer(m.url, 1), startVolunteer(m.url, 1)];
  try {
    // A short task timeout: some slow maps get backup attempts, and the two race to commit.
    const id = await submit(m, [SLOW_COUNTING, ...files, ...args, '--task-timeout', '400ms', '--max-attempts', '20']);
    await until('some maps to commit', async () => (await apiGet<JobView>(m, `/api/jobs/${id}`)).maps.done >= 5);
    // Each victim is killed while the master counts tasks in its hands.
    const victims: string[] = [];
    for (const [at, threads] of [
      [0, 2],
      [1, 1],
    ] as const) {
      const v = vols[at]!;
      const vid = /connected as ([0-9a-f]+)/.exec(v.output())?.[1];
      assert.ok(vid, `volunteer ${at} said its id: ${v.output()}`);
      await until(`volunteer ${vid} to hold a task`, async () =>
        (await apiGet<WorkerView[]>(m, '/api/workers')).some((w) => w.id === vid && w.running > 0),
      );
      await v.kill('SIGKILL');
      victims.push(vid);
      vols.push(startVolunteer(m.url, threads));
    }
    const job = await waitEnd(m, id, 180_000);
    assert.equal(job.state, 'succeeded', job.error ?? '');
    assert.equal(await output(m, id), ref.output);
    assert.deepEqual(job.counters, ref.counters);
    // What the victims held ended without a commit: lost, or superseded by a backup that won.
    const cut = (await apiGet<TaskView[]>(m, `/api/jobs/${id}/tasks`))
      .flatMap((t) => t.attempts)
      .filter((a) => victims.includes(a.worker) && (a.outcome === 'lost' || a.outcome === 'superseded'));
    assert.ok(cut.length > 0, 'the killed volunteers had attempts in hand that never committed');
    const summary = await apiGet<JobSummary>(m, `/api/jobs/${id}/summary`);
    assert.ok(
      summary.attempts.superseded > 0,
      `backups raced, and the losers were superseded: ${JSON.stringify(summary.attempts)}`,
    );
  } finally {
    for (const v of vols) await v.kill();
    await m.stop();
  }
});

test('a browser tab reports the same counters and skipped lines as local, and the job page shows them', async () => {
  const dir = tempDir();
  const log = join(dir, 'tab.log');
  const bad = [7, 333, 1200];
  writeFileSync(log, accessLog(1500, bad));
  const args = ['--reduces', '2', '--split-size', '32KiB'];
  const ref = await local(ACCESS_LOG, [log], [...args, '--skip-bad-records', '3']);
  const m = await startMaster();
  const browser = await launchBrowser();
  try {
    const context = await browser.newContext();
    await openTab(context, m);
    const id = await submit(m, [ACCESS_LOG, log, ...args, '--skip-bad-records', '3']);
    const job = await waitEnd(m, id);
    assert.equal(job.state, 'succeeded', job.error ?? '');
    assert.equal(await output(m, id), ref.output);
    assert.deepEqual(job.counters, ref.counters);
    const summary = await apiGet<JobSummary>(m, `/api/jobs/${id}/summary`);
    assert.deepEqual(
      summary.skipped.map((s) => [s.input, s.line, s.error.message]),
      bad.map((line) => ['tab.log', line, 'not a Common Log Format request']),
    );

    // The job page: its counters beside its records, and a panel of the lines it skipped.
    const admin = await browser.newContext();
    await admin.addInitScript((token) => localStorage.setItem('tabreduce.adminToken', token), m.token);
    const page = await admin.newPage();
    await page.goto(`${m.url}/status#/jobs/${id}`);
    const counters = page.locator('dd.counters');
    await counters.waitFor();
    assert.match(
      await counters.innerText(),
      new RegExp(`requests\\s+${ref.counters['requests']!.toLocaleString('en-US')}`),
    );
    const panel = page.getByRole('region', { name: 'Skipped lines' });
    await panel.getByText('tab.log:1200').waitFor();
    const text = await panel.innerText();
    assert.match(text, /3 of at most 3/);
    for (const line of bad) assert.match(text, new RegExp(`tab\\.log:${line}\\b`));
    assert.match(text, /SyntaxError: not a Common Log Format request/);
  } finally {
    await browser.close();
    await m.stop();
  }
});
