/**
 * The CLI as a shell uses it: piped into `head` (a reader that goes away early), writing to a full
 * disk, and pointed at paths that exist already, cannot be read or cannot be written. Each is either
 * silent with exit 0 (the reader has what it wanted) or one line with exit 2, never a stack and never
 * exit 3 (that means the master could not be reached).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, closeSync, mkdirSync, openSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  CLI,
  EXAMPLES,
  ROOT,
  adminCli,
  apiGet,
  cli,
  corpusFiles,
  removeTempDirs,
  startMaster,
  startVolunteer,
  tempDir,
  until,
  type CliResult,
  type MasterProc,
  type VolunteerProc,
} from './helpers/cluster.js';
import type { JobView } from '../shared/api.js';

const WORD_COUNT = join(EXAMPLES, 'word-count.js');

let master: MasterProc;
let volunteer: VolunteerProc;
let run: (args: string[], timeoutMs?: number) => Promise<CliResult>;
let dir: string;
/** A finished job whose output (about 1.5 MB) is far more than a pipe holds. */
let bigJob: string;
let manyKeys: string;
let input: string;

function assertCleanError(r: CliResult, pattern: RegExp): void {
  assert.equal(r.code, 2, `exit code; stderr: ${r.stderr}`);
  assert.match(r.stderr, /^tabreduce: [^\n]*\n$/, 'one line');
  assert.match(r.stderr, pattern);
}

before(async () => {
  dir = tempDir('tabreduce-cli-shell-');
  master = await startMaster();
  volunteer = startVolunteer(master.url, 2);
  run = adminCli(master);
  await until('the volunteer to join', async () => (await apiGet<unknown[]>(master, '/api/workers')).length === 1);
  manyKeys = join(dir, 'many-keys.js');
  writeFileSync(
    manyKeys,
    `export function map(key, value, emit) {
  for (let i = 0; i < 50000; i++) emit('key-' + String(i).padStart(6, '0'), 'value-of-twenty-chars');
}
export function reduce(key, values) {
  return values[0];
}
`,
  );
  input = corpusFiles()[0]!;
  const sub = await run(['submit', manyKeys, input, '--reduces', '2', '--wait']);
  assert.equal(sub.code, 0, sub.stderr);
  bigJob = sub.stdout.trim();
});

after(async () => {
  await volunteer?.kill();
  await master?.stop();
  removeTempDirs();
});

const env = () => ({ ...process.env, TABREDUCE_TOKEN: master.token, TABREDUCE_URL: master.url });

/** Every command that writes to stdout, each with what it needs. */
const commands = () => [
  ['--help'],
  ['result', '--help'],
  ['status'],
  ['status', '--json'],
  ['status', bigJob],
  ['status', bigJob, '--json'],
  ['workers'],
  ['workers', '--json'],
  ['result', bigJob],
  ['wait', bigJob, '--json'],
  ['submit', WORD_COUNT, input, '--json'],
  ['local', manyKeys, input, '--reduces', '2'],
];

/** `bash -c 'tabreduce ARGS | head ...'`: the CLI's exit code and stderr. */
function pipedInto(head: string, args: string[]): Promise<CliResult> {
  return new Promise((ok) => {
    const script = `"$@" | ${head} > /dev/null; exit "\${PIPESTATUS[0]}"`;
    const proc = spawn('bash', ['-c', script, 'bash', process.execPath, CLI, ...args], {
      env: env(),
      cwd: ROOT,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    proc.once('exit', (code) => ok({ code, stdout: '', stderr }));
  });
}

/** The CLI with stdout a pipe whose reader has gone before the first byte: every write fails. */
function closedStdout(args: string[]): Promise<CliResult> {
  return new Promise((ok) => {
    const proc = spawn(process.execPath, [CLI, ...args], { env: env(), cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    proc.stdout.destroy();
    let stderr = '';
    proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    proc.once('exit', (code) => ok({ code, stdout: '', stderr }));
  });
}

/** Exit 0, and on stderr only what the command says anyway: `wait` its progress and outcome. */
function assertQuiet(r: CliResult, args: string[], what: string): void {
  assert.equal(r.code, 0, `${what}: exit code; stderr: ${r.stderr}`);
  const expected = args[0] === 'wait' ? /^(\S+ succeeded maps .*\n)?job \S+ succeeded in \S+\n$/ : /^$/;
  assert.match(r.stderr, expected, what);
}

describe('a reader that stops early', () => {
  test('every command piped into head exits 0 with nothing on stderr', async () => {
    for (const head of ['head -3', 'head -c 600']) {
      // Each command in its own pipeline, all at once: none depends on another.
      const results = await Promise.all(commands().map((args) => pipedInto(head, args)));
      commands().forEach((args, i) => assertQuiet(results[i]!, args, `${args.join(' ')} | ${head}`));
    }
  });

  test('every command whose stdout is closed before it writes exits 0 with nothing on stderr', async () => {
    const results = await Promise.all(commands().map((args) => closedStdout(args)));
    commands().forEach((args, i) => assertQuiet(results[i]!, args, args.join(' ')));
  });

  test('stdout on a full disk is one line and exit 2', async () => {
    const full = openSync('/dev/full', 'w');
    try {
      const r = await new Promise<CliResult>((ok) => {
        const proc = spawn(process.execPath, [CLI, 'result', bigJob], {
          env: env(),
          stdio: ['ignore', full, 'pipe'],
        });
        let stderr = '';
        proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
        proc.once('exit', (code) => ok({ code, stdout: '', stderr }));
      });
      assertCleanError(r, /cannot write to stdout: no space left on the device/);
    } finally {
      closeSync(full);
    }
  });
});

describe('paths', () => {
  test('--out naming a file, or a directory whose part file is a directory, is one line and exit 2', async () => {
    const file = join(dir, 'existing.txt');
    writeFileSync(file, 'keep me\n');
    const blocked = join(dir, 'blocked');
    mkdirSync(join(blocked, 'part-00000'), { recursive: true });
    const [result, local, resultPart, localPart] = await Promise.all([
      run(['result', bigJob, '--out', file]),
      cli(['local', WORD_COUNT, input, '--out', file]),
      run(['result', bigJob, '--out', blocked]),
      cli(['local', WORD_COUNT, input, '--out', blocked]),
    ]);
    assertCleanError(result, /--out .*existing\.txt is a file, not a directory/);
    assertCleanError(local, /--out .*existing\.txt is a file, not a directory/);
    assertCleanError(resultPart, /cannot write .*blocked\/part-00000: it is a directory/);
    assertCleanError(localPart, /cannot write .*blocked\/part-00000: it is a directory/);
  });

  test("serve's --tls-cert and --tls-key that cannot be read are one line and exit 2", async () => {
    const [missing, directory] = await Promise.all([
      cli(['serve', '--port', '0', '--data', tempDir(), '--tls-cert', join(dir, 'no-cert.pem'), '--tls-key', input]),
      cli(['serve', '--port', '0', '--data', tempDir(), '--tls-cert', input, '--tls-key', dir]),
    ]);
    assertCleanError(missing, /cannot read --tls-cert .*no-cert\.pem: no such file or directory/);
    assertCleanError(directory, /cannot read --tls-key .*: it is a directory/);
  });

  test('a path through a file is one line and exit 2', async () => {
    const through = join(input, 'inside.txt');
    const [submit, local] = await Promise.all([
      run(['submit', WORD_COUNT, through]),
      cli(['local', WORD_COUNT, through]),
    ]);
    assertCleanError(submit, /cannot read input file .*inside\.txt: a part of the path is not a directory/);
    assertCleanError(local, /cannot read input file .*inside\.txt: a part of the path is not a directory/);
  });

  test('files that cannot be read and directories that cannot be written: one line, exit 2, nothing queued', async () => {
    // root reads and writes anything: the CLI then runs as nobody.
    const as = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {};
    const open = tempDir('tabreduce-cli-perm-');
    chmodSync(open, 0o755);
    const secret = join(open, 'secret.txt');
    writeFileSync(secret, 'not for you\n');
    chmodSync(secret, 0o600);
    const module = join(open, 'secret.js');
    writeFileSync(module, 'export function map() {}\nexport function reduce() { return ""; }\n');
    chmodSync(module, 0o600);
    const readable = join(open, 'readable.txt');
    writeFileSync(readable, 'words\n');
    chmodSync(readable, 0o644);
    const sealed = join(open, 'sealed');
    mkdirSync(sealed, { mode: 0o755 });
    chmodSync(sealed, 0o555);
    const opts = { ...as, env: { TABREDUCE_TOKEN: master.token } };
    const jobsBefore = (await apiGet<unknown[]>(master, '/api/jobs')).length;
    const [submitInput, submitModule, localInput, localOut, resultOut] = await Promise.all([
      cli(['submit', WORD_COUNT, secret, '--server', master.url], opts),
      cli(['submit', module, readable, '--server', master.url], opts),
      cli(['local', WORD_COUNT, secret], opts),
      cli(['local', WORD_COUNT, readable, '--out', join(sealed, 'out')], opts),
      cli(['result', bigJob, '--out', sealed, '--server', master.url], opts),
    ]);
    assertCleanError(submitInput, /cannot read input file .*secret\.txt: permission denied/);
    assertCleanError(submitModule, /cannot read job module .*secret\.js: permission denied/);
    assertCleanError(localInput, /cannot read input file .*secret\.txt: permission denied/);
    assertCleanError(localOut, /cannot create the --out directory .*sealed\/out: permission denied/);
    assertCleanError(resultOut, /cannot write .*sealed\/part-00000: permission denied/);
    assert.equal((await apiGet<JobView[]>(master, '/api/jobs')).length, jobsBefore, 'nothing was queued');
    assert.deepEqual(readdirSync(sealed), []);
  });
});

describe('directories as inputs', () => {
  /** Each map emits its input's name; the reduce lists them in map-task order. */
  const ORDER = `export function map(key, value, emit) {
  emit('files', key);
}
export function reduce(key, values) {
  return values.join(',');
}
`;

  test('submit and local take a directory as its files: recursive, sorted, hidden ones skipped', async () => {
    const books = join(tempDir('tabreduce-cli-dirs-'), 'books');
    const files: Record<string, string> = {
      'b.txt': 'bee\n',
      'a.txt': 'ant\n',
      'sub/c.txt': 'cat\n',
      'sub/deeper/d.txt': 'dog\n',
      '.hidden.txt': 'hidden\n',
      '.git/config': 'hidden\n',
      'sub/.e.txt': 'hidden\n',
    };
    for (const [name, text] of Object.entries(files)) {
      mkdirSync(join(books, name, '..'), { recursive: true });
      writeFileSync(join(books, name), text);
    }
    const order = join(books, '..', 'order.js');
    writeFileSync(order, ORDER);
    const extra = join(books, '..', 'extra.txt');
    writeFileSync(extra, 'eel\n');
    const expected = 'files\ta.txt,b.txt,c.txt,d.txt,extra.txt\n';

    const local = await cli(['local', order, books, extra, '--reduces', '1']);
    assert.equal(local.code, 0, local.stderr);
    assert.equal(local.stdout, expected);

    const sub = await run(['submit', order, books, extra, '--reduces', '1', '--wait']);
    assert.equal(sub.code, 0, sub.stderr);
    const id = sub.stdout.trim();
    assert.equal((await run(['result', id])).stdout, expected);
    // The master logs the submission: module, inputs and their bytes, tasks.
    assert.match(
      master.output(),
      new RegExp(`Z job ${id} submitted: order\\.js on 5 inputs of 20 B, 5 maps and 1 reduce\\n`),
    );

    const empty = join(books, '..', 'empty');
    mkdirSync(join(empty, '.only-hidden'), { recursive: true });
    writeFileSync(join(empty, '.only-hidden', 'x.txt'), 'x\n');
    assertCleanError(await run(['submit', order, empty]), /input directory .*empty holds no files/);
    assertCleanError(await cli(['local', order, empty]), /input directory .*empty holds no files/);
    writeFileSync(join(books, 'sub', 'a.txt'), 'again\n');
    assertCleanError(await cli(['local', order, books]), /two inputs have the base name "a\.txt"/);
  });
});

describe("the master's log", () => {
  test('names tasks as the pages do, and counts threads in words', async () => {
    const one = startVolunteer(master.url, 1);
    try {
      await until('the 1-thread volunteer', () => /volunteer [0-9a-f]+ connected \(1 thread\)\n/.test(master.output()));
      assert.doesNotMatch(master.output(), /\(1 threads\)/);
      assert.match(master.output(), /volunteer [0-9a-f]+ connected \(2 threads\)\n/);
      const throws = join(dir, 'throws.js');
      writeFileSync(
        throws,
        "export function map() { throw new RangeError('no thanks'); }\nexport function reduce() { return ''; }\n",
      );
      const r = await run(['submit', throws, input, '--max-attempts', '1', '--wait']);
      assert.equal(r.code, 1, r.stderr);
      const id = r.stdout.trim();
      assert.match(master.output(), new RegExp(`Z job ${id} map 0 on [0-9a-f]+: job code threw: no thanks\\n`));
      assert.doesNotMatch(master.output(), /Z task \d+ on /);
    } finally {
      await one.kill();
    }
  });
});
