/**
 * The admin CLI as a user runs it (`node dist/server/cli.js`, real master, real Node volunteer):
 * help on every command, tables and --json, exit codes (0 ok, 1 job failed or cancelled, 2 usage or
 * input, 3 master unreachable or token refused), the errors for the usual mistakes, progress on a
 * pipe and on a real terminal (a pseudo-TTY from `script`), Ctrl-C, and a master restart mid-wait.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  CLI,
  EXAMPLES,
  adminCli,
  apiGet,
  cli,
  corpusFiles,
  localOutput,
  removeTempDirs,
  sleep,
  startMaster,
  startVolunteer,
  tempDir,
  until,
  type CliResult,
  type MasterProc,
  type VolunteerProc,
} from './helpers/cluster.js';
import { progressLine } from '../server/cli/progress.js';
import type { JobSummary, JobView, WorkerView } from '../shared/api.js';

const COMMANDS = [
  'serve',
  'submit',
  'status',
  'wait',
  'result',
  'cancel',
  'delete',
  'workers',
  'local',
  'check',
  'volunteer',
];
const WORD_COUNT = join(EXAMPLES, 'word-count.js');

let master: MasterProc;
let volunteer: VolunteerProc;
let run: (args: string[], timeoutMs?: number) => Promise<CliResult>;
let dir: string;

/** User errors are one line of advice, never a stack trace. */
function assertCleanError(r: CliResult, code: number, pattern: RegExp): void {
  assert.equal(r.code, code, `exit code; stderr: ${r.stderr}`);
  assert.match(r.stderr, pattern);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  assert.match(r.stderr, /^tabreduce: /);
}

function module(name: string, source: string): string {
  const path = join(dir, name);
  writeFileSync(path, source);
  return path;
}

/** Maps that each take `ms`: a job that stays running long enough to watch or interrupt. */
const slowMap = (ms: number) => `
export async function map(key, value, emit) {
  await new Promise((r) => setTimeout(r, ${ms}));
  emit('splits', '1');
}
export function reduce(key, values) {
  return String(values.length);
}
`;

before(async () => {
  dir = tempDir('tabreduce-cli-test-');
  master = await startMaster();
  volunteer = startVolunteer(master.url, 2);
  run = adminCli(master);
  await until('the volunteer to join', async () => (await apiGet<unknown[]>(master, '/api/workers')).length === 1);
});

after(async () => {
  await volunteer?.kill();
  await master?.stop();
  removeTempDirs();
});

describe('help', () => {
  test('every command has --help with usage and examples', async () => {
    const results = await Promise.all(COMMANDS.map((c) => cli([c, '--help'])));
    results.forEach((r, i) => {
      assert.equal(r.code, 0, `${COMMANDS[i]} --help`);
      assert.match(r.stdout, new RegExp(`^Usage: tabreduce ${COMMANDS[i]}`));
      assert.match(r.stdout, /\nExamples?:\n {2}tabreduce /, `${COMMANDS[i]} --help has examples`);
    });
  });

  test('the main help lists the commands and the exit codes; no command is a usage error', async () => {
    const help = await cli(['--help']);
    assert.equal(help.code, 0);
    for (const c of COMMANDS) assert.match(help.stdout, new RegExp(`\\n {2}${c} `));
    assert.match(help.stdout, /Exit codes: 0 success; 1 the job failed or was cancelled; 2 bad usage or input;\n3 /);
    const none = await cli([]);
    assert.equal(none.code, 2);
    assert.equal(none.stdout, help.stdout);
  });

  test('unknown commands and flags exit 2 with the usage line', async () => {
    const [cmd, flag] = await Promise.all([cli(['frobnicate']), cli(['status', '--bogus'])]);
    assertCleanError(cmd, 2, /unknown command "frobnicate"/);
    assertCleanError(flag, 2, /Unknown option '--bogus'[\s\S]*usage: tabreduce status/);
  });
});

describe('errors and exit codes', () => {
  test('an unreachable master exits 3 and says how to start or find one', async () => {
    const r = await cli(['status', '--server', 'http://127.0.0.1:9', '--token', 'x']);
    assertCleanError(r, 3, /cannot reach the master at http:\/\/127\.0\.0\.1:9 .*Is it running\?/);
  });

  test('a wrong or missing token exits 3 and says where the token is', async () => {
    const wrong = await cli(['workers', '--server', master.url, '--token', 'nope']);
    // It says which token was refused and where the right one is: the path the master printed.
    assertCleanError(wrong, 3, /refused the admin token from --token\. .*"admin token:" line .*DATA\/admin-token/);
    assert.match(master.output(), new RegExp(`admin token: ${join(master.data, 'admin-token')}\n`));
    // Run where there is no ./data/admin-token to fall back on.
    const missing = await cli(['status', '--server', master.url], { cwd: dir });
    assertCleanError(missing, 3, /no admin token: pass --token, set TABREDUCE_TOKEN/);
  });

  test('an unknown job exits 2 for status, wait, result, cancel and delete', async () => {
    const commands = ['status', 'wait', 'result', 'cancel', 'delete'];
    const results = await Promise.all(commands.map((c) => run([c, 'nosuchjob'])));
    for (const r of results) assertCleanError(r, 2, /no job "nosuchjob" on http.*`tabreduce status` lists its jobs/);
  });

  test('missing files and bad modules exit 2 before anything is queued', async () => {
    const before = (await apiGet<unknown[]>(master, '/api/jobs')).length;
    const input = corpusFiles()[0]!;
    const syntax = module('syntax.js', 'export function map(key, value, emit) {\n  emit(key,\n}\n');
    const noReduce = module('no-reduce.js', 'export function map(key, value, emit) {}\n');
    const [noModule, noInput, badSyntax, missingReduce, noInputs, badSize] = await Promise.all([
      run(['submit', join(dir, 'absent.js'), input]),
      run(['submit', WORD_COUNT, join(dir, 'absent.txt')]),
      run(['submit', syntax, input]),
      run(['submit', noReduce, input]),
      run(['submit', WORD_COUNT]),
      run(['submit', WORD_COUNT, input, '--split-size', 'lots']),
    ]);
    assertCleanError(noModule, 2, /job module not found: .*absent\.js/);
    assertCleanError(noInput, 2, /input file not found: .*absent\.txt/);
    assertCleanError(badSyntax, 2, /syntax\.js:3:1: syntax error/);
    assertCleanError(missingReduce, 2, /no-reduce\.js: the module does not export "reduce"/);
    assertCleanError(noInputs, 2, /no input files/);
    assertCleanError(badSize, 2, /--split-size: "lots" is not a size/);
    assert.equal((await apiGet<unknown[]>(master, '/api/jobs')).length, before, 'nothing was queued');
  });
});

describe('a job from submit to result', () => {
  test('submit --wait, status, workers and result: tables for people, --json for scripts', async () => {
    const inputs = corpusFiles().slice(0, 2);
    const sub = await run([
      'submit',
      WORD_COUNT,
      ...inputs,
      '--reduces',
      '3',
      '--split-size',
      '128KiB',
      '--name',
      'wc',
      '--wait',
    ]);
    assert.equal(sub.code, 0, sub.stderr);
    const id = sub.stdout.split('\n')[0]!;
    assert.match(id, /^[a-z0-9]{6,}$/, 'the job id is the first line of stdout');
    // Not a terminal: plain lines a log can keep, no bar drawing.
    assert.doesNotMatch(sub.stderr, /[\r\x1b]/);
    assert.match(
      sub.stderr,
      new RegExp(
        `^${id} (queued|mapping|reducing|succeeded) maps \\d+/\\d+ reduces \\d+/3 elapsed \\S+ eta \\S+ volunteers 1$`,
        'm',
      ),
    );
    assert.match(sub.stderr, new RegExp(`job ${id} succeeded in `));

    const [table, json, one, oneJson, workers, workersJson, result, reference] = await Promise.all([
      run(['status']),
      run(['status', '--json']),
      run(['status', id]),
      run(['status', id, '--json']),
      run(['workers']),
      run(['workers', '--json']),
      run(['result', id]),
      localOutput(WORD_COUNT, inputs, ['--reduces', '3', '--split-size', '128KiB']),
    ]);
    assert.match(table.stdout, /^ID +NAME +STATE +MAPS +REDUCES +ELAPSED +ETA +STORED +CREATED\n/);
    assert.match(table.stdout, new RegExp(`\\n${id} +wc +succeeded +(\\d+)/\\1 +3/3 `));
    const jobs = JSON.parse(json.stdout) as JobView[];
    const job = jobs.find((j) => j.id === id)!;
    assert.equal(job.state, 'succeeded');
    assert.deepEqual(job.reduces, { total: 3, done: 3 });
    assert.match(one.stdout, /^job +\S+ +wc\nstate +succeeded\n/);
    assert.match(
      one.stdout,
      /\nattempts +running 0, succeeded \d+, failed 0, lost 0, superseded 0, voted 0, rejected 0\n/,
    );
    // One volunteer: in the default mode the job finishes, and says that no task was confirmed by a second.
    const n = job.maps.total + 3;
    assert.match(
      one.stdout,
      new RegExp(
        `\\nverify +adaptive: verified 0, spot-checked 0, trusted 0, unconfirmed ${n}, rejected 0 \\(${n} tasks not independently confirmed\\)\\n`,
      ),
    );
    assert.deepEqual(job.verification, { verified: 0, spotChecked: 0, trusted: 0, unconfirmed: n, rejected: 0 });
    assert.match(one.stdout, /\ndurations +\S+ on average, \S+ at most \(succeeded attempts\)\n/);
    const detail = JSON.parse(oneJson.stdout) as JobView & { tasks: { attempts: unknown[] }[]; summary: JobSummary };
    assert.equal(detail.tasks.length, job.maps.total + 3);
    assert.equal(detail.summary.attempts.succeeded, detail.tasks.flatMap((t) => t.attempts).length);
    assert.match(
      workers.stdout,
      /^ID +STATE +THREADS +IN HAND +DONE +TRUST +CREDIT +CURRENT TASK +CONNECTED +LAST SEEN +AGENT\n[0-9a-f]{16} +connected +2 +0 +\d+ +0 agreed +\S+ /,
    );
    const list = JSON.parse(workersJson.stdout) as WorkerView[];
    assert.equal(list.length, 1);
    assert.equal(list[0]!.threads, 2);
    // Alone, it had nobody to agree with: no record either way.
    assert.deepEqual(list[0]!.trust, { agreed: 0, rejected: 0, trusted: false });
    assert.equal(result.stdout, reference);

    // --json on submit: one JSON object per line, the id first.
    const sj = await run(['submit', WORD_COUNT, inputs[0]!, '--json', '--wait']);
    assert.equal(sj.code, 0, sj.stderr);
    const [first, last] = sj.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as JobView);
    assert.deepEqual(Object.keys(first!), ['id']);
    assert.equal(last!.id, first!.id);
    assert.equal(last!.state, 'succeeded');
    const plain = await run(['submit', WORD_COUNT, inputs[0]!, '--json']);
    assert.deepEqual(Object.keys(JSON.parse(plain.stdout) as object), ['id']);
    assert.equal((await run(['wait', first!.id, '--json'])).code, 0);
  });

  test('a failing job: submit --wait exits 1 with the reason', async () => {
    const bad = module(
      'throws.js',
      "export function map() { throw new RangeError('no thanks'); }\nexport function reduce() { return ''; }\n",
    );
    const r = await run(['submit', bad, corpusFiles()[0]!, '--max-attempts', '2', '--wait']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /job \S+ failed: map task \d+ \(input "[^"]+"\) failed 2 times: RangeError: no thanks/);
    const id = r.stdout.split('\n')[0]!;
    // Both failures, newest first, counted and listed by the master.
    const status = await run(['status', id]);
    assert.match(status.stdout, /\nattempts +running 0, succeeded \d+, failed 2, /);
    assert.match(status.stdout, /\nfailed +map \d+ \(\S+\) on [0-9a-f]+: no thanks\nfailed +map \d+ .*: no thanks\n$/);
    const again = await run(['wait', id]);
    assert.equal(again.code, 1);
    const result = await run(['result', id]);
    assertCleanError(
      result,
      2,
      new RegExp(
        `job ${id} failed \\(map task \\d+ \\(input "[^"]+"\\) failed 2 times: RangeError: no thanks\\), so it has no output; \`tabreduce status ${id}\``,
      ),
    );
    assert.doesNotMatch(result.stderr, /once it succeeds|tabreduce wait/);
  });

  test('cancel: the waiter exits 1, a second cancel exits 2', async () => {
    const id = (
      await run(['submit', module('slow.js', slowMap(30_000)), corpusFiles()[0]!, '--task-timeout', '2m'])
    ).stdout.trim();
    const waiter = run(['wait', id]);
    await until('the job to start', async () => (await apiGet<JobView>(master, `/api/jobs/${id}`)).state === 'mapping');
    const c = await run(['cancel', id, '--json']);
    assert.equal(c.code, 0, c.stderr);
    assert.equal((JSON.parse(c.stdout) as JobView).state, 'cancelled');
    const w = await waiter;
    assert.equal(w.code, 1);
    assert.match(w.stderr, new RegExp(`job ${id} cancelled: cancelled by an admin`));
    assertCleanError(await run(['cancel', id]), 2, /has already been cancelled/);
    const result = await run(['result', id]);
    assertCleanError(result, 2, new RegExp(`job ${id} was cancelled \\(cancelled by an admin\\), so it has no output`));
    assert.doesNotMatch(result.stderr, /once it succeeds|tabreduce wait/);
  });
});

/** A CLI process to interact with while it runs: its output so far, and its exit. */
function spawnCli(command: string, args: string[], env: Record<string, string> = {}) {
  const proc = spawn(command, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  proc.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((r) => proc.once('exit', (c) => r(c)));
  return { proc, exited, stdout: () => stdout, stderr: () => stderr };
}

// With no volunteer, a job stays queued for as long as a test needs to watch the waiter; a
// volunteer started later finishes it. No test here depends on how fast anything runs.
describe('waiting', () => {
  let helper: VolunteerProc | null = null;
  before(() => volunteer.kill());
  after(() => helper?.kill());

  const queuedJob = async () => {
    const r = await run(['submit', WORD_COUNT, corpusFiles()[0]!, '--reduces', '2']);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout.trim();
  };

  test('Ctrl-C stops waiting, not the job, and says how to reattach', async () => {
    const id = await queuedJob();
    const w = spawnCli(process.execPath, [CLI, 'wait', id, '--server', master.url], { TABREDUCE_TOKEN: master.token });
    await until('a progress line', () => w.stderr().includes(`${id} queued`), 30_000, 50);
    w.proc.kill('SIGINT');
    assert.equal(await w.exited, 130);
    assert.match(
      w.stderr(),
      new RegExp(`stopped waiting; job ${id} keeps running\. Reattach with: tabreduce wait ${id}\n$`),
    );
    assert.equal((await apiGet<JobView>(master, `/api/jobs/${id}`)).state, 'queued');
    assert.equal((await run(['cancel', id])).code, 0);
  });

  test('with no volunteer connected, waiting says once to open the volunteer page, not "volunteers 0" on repeat', async () => {
    const w = spawnCli(
      process.execPath,
      [CLI, 'submit', WORD_COUNT, corpusFiles()[0]!, '--reduces', '2', '--wait', '--server', master.url],
      { TABREDUCE_TOKEN: master.token },
    );
    const hint = `no volunteer is connected, so job \\S+ waits: open ${master.url}/ in a browser to volunteer, or run \`tabreduce volunteer --server ${master.url}\``;
    await until('the hint', () => new RegExp(hint).test(w.stderr()), 30_000, 50);
    // Plain progress was a line every 5 s; with nobody to run the job, nothing is worth repeating.
    await sleep(6_000);
    assert.equal(w.stderr().match(new RegExp(hint, 'g'))?.length, 1, w.stderr());
    assert.equal(w.stderr().match(/ volunteers 0$/gm)?.length, 1, w.stderr());
    helper = startVolunteer(master.url, 2);
    assert.equal(await w.exited, 0, w.stderr());
    assert.match(w.stderr(), / volunteers 1\n/);
    await helper.kill();
    helper = null;
  });

  test('on a terminal: a bar redrawn in place, fitted to the width, cursor restored', async () => {
    const probe = spawnSync('script', ['--version']);
    assert.equal(probe.error, undefined, 'this test needs util-linux `script`: apt-get install -y bsdutils');
    const id = await queuedJob();
    // `script` gives the CLI a real pseudo-terminal, 72 columns wide.
    const w = spawnCli(
      'script',
      ['-qec', `stty cols 72; ${process.execPath} ${CLI} wait ${id} --server ${master.url}`, '/dev/null'],
      {
        TABREDUCE_TOKEN: master.token,
      },
    );
    await until('two frames of the bar', () => w.stdout().split('\r\x1b[2K').length > 2, 30_000, 50);
    helper = startVolunteer(master.url, 2);
    assert.equal(await w.exited, 0, w.stdout());
    await helper.kill();
    helper = null;
    const out = w.stdout();
    assert.ok(out.startsWith('\x1b[?25l'), 'the cursor is hidden while drawing');
    assert.match(out, /\x1b\[\?25h/, 'and shown again');
    const frames = out
      .split('\r\x1b[2K')
      .slice(1)
      .map((f) => f.replace(/\x1b\[\?25[hl]|\r?\n.*$/gs, ''));
    for (const f of frames) assert.ok(f.length <= 71, `a frame fits 72 columns: ${JSON.stringify(f)}`);
    assert.match(frames[0]!, /^queued +map ░+ +0\/\d+ +reduce ░+ +0\/2 /);
    assert.match(frames.at(-1)!, /^succeeded map █+ +(\d+)\/\1 +reduce █+ +2\/2 /);
    assert.match(out, new RegExp(`job ${id} succeeded in `));
  });

  test('wait rides out a master restart', async () => {
    const id = await queuedJob();
    const w = spawnCli(process.execPath, [CLI, 'wait', id, '--server', master.url], { TABREDUCE_TOKEN: master.token });
    await until('a progress line', () => w.stderr().includes(`${id} queued`), 30_000, 50);
    const { port, data } = master;
    await master.kill();
    await until('the waiter to notice', () => w.stderr().includes('master unreachable'), 30_000, 50);
    master = await startMaster({ port, data });
    run = adminCli(master);
    helper = startVolunteer(master.url, 2);
    assert.equal(await w.exited, 0, w.stderr());
    assert.match(
      w.stderr(),
      new RegExp(`master unreachable for \\S+; still waiting for job ${id} \\(Ctrl-C to stop\\)\\n`),
    );
    assert.match(w.stderr(), new RegExp(`job ${id} succeeded in `));
  });

  test('wait started before the master is up waits for it, then follows the job to the end', async () => {
    await helper?.kill();
    helper = null;
    const id = await queuedJob();
    const { port, data, url, token } = master;
    await master.kill();
    const w = spawnCli(process.execPath, [CLI, 'wait', id, '--server', url], { TABREDUCE_TOKEN: token });
    await until('the waiter to say it waits', () => w.stderr().includes('waiting for the master'), 30_000, 50);
    await sleep(3_000);
    assert.equal(w.proc.exitCode, null, 'still waiting after 3 s');
    master = await startMaster({ port, data });
    run = adminCli(master);
    helper = startVolunteer(master.url, 2);
    assert.equal(await w.exited, 0, w.stderr());
    assert.match(
      w.stderr(),
      new RegExp(
        `^waiting for the master at ${url} to answer \\(\\S+ so far, up to 2m00s\\); job ${id} \\(Ctrl-C to stop\\)\\n`,
      ),
    );
    assert.match(w.stderr(), new RegExp(`job ${id} succeeded in `));
  });

  test('progress lines fit any width and keep the facts that matter', () => {
    const now = 1_000_000;
    const job = {
      id: 'j',
      state: 'mapping',
      createdAt: now - 6_000,
      finishedAt: null,
      maps: { total: 1000, done: 500 },
      reduces: { total: 10, done: 0 },
    } as unknown as JobView;
    for (let columns = 40; columns <= 200; columns++) {
      const line = progressLine(job, 3, now, true, columns);
      assert.ok(line.length < columns, `${columns} columns: ${line}`);
      assert.match(line, /^mapping +maps? /);
      assert.match(line, /500\/1000/);
    }
    // Half the maps in 6 s: the other half and the 10 reduces take 6.1 s more at that rate.
    assert.equal(
      progressLine(job, 3, now, true, 120),
      'mapping   map ███████████████░░░░░░░░░░░░░░░  500/1000  reduce ░░░░░░░░░░░░░░░  0/10   6.0s eta  6.1s  3 volunteers',
    );
    assert.equal(
      progressLine(job, 1, now, false),
      'j mapping maps 500/1000 reduces 0/10 elapsed 6.0s eta 6.1s volunteers 1',
    );
  });
});
