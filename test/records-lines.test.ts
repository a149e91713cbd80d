/**
 * `export const records = 'lines'`: `map` is called once per line, without its ending, the same in the
 * engine, in `tabreduce local` and on a Node volunteer; values the engine does not know are refused at
 * submit (with the line, also in a bundle) or when the module loads. `--skip-bad-records N` (engine
 * and `tabreduce local`) skips up to N lines whose map throws, lists them, and fails on one more.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { BadRecordError } from '../shared/engine.js';
import { join } from 'node:path';
import { JobCodeError, asJobModule, runMap, splitLines } from '../shared/engine.js';
import { checkJobModule } from '../server/module-check.js';
import { UserError } from '../shared/errors.js';
import {
  ROOT,
  adminCli,
  apiGet,
  cli,
  corpusFiles,
  localOutput,
  parseOutput,
  removeTempDirs,
  startMaster,
  startVolunteer,
  tempDir,
  until,
  type MasterProc,
  type VolunteerProc,
} from './helpers/cluster.js';

const JOB = join(ROOT, 'test/fixtures/ts-job/first-words.ts');
let master: MasterProc;
let volunteer: VolunteerProc;

before(async () => {
  master = await startMaster();
  volunteer = startVolunteer(master.url, 2);
  await until('the volunteer to join', async () => (await apiGet<unknown[]>(master, '/api/workers')).length === 1);
});

after(async () => {
  await volunteer?.kill();
  await master?.stop();
  removeTempDirs();
});

test('lines of a split: \\n and \\r\\n endings removed, a last line without one kept, blank lines kept', () => {
  const lines = (t: string) => [...splitLines(t)];
  assert.deepEqual(lines(''), []);
  assert.deepEqual(lines('a'), ['a']);
  assert.deepEqual(lines('a\n'), ['a']);
  assert.deepEqual(lines('a\r\nb\n'), ['a', 'b']);
  assert.deepEqual(lines('\n\r\n\n'), ['', '', '']);
  assert.deepEqual(lines('x\r'), ['x\r'], 'a CR without LF is not a line ending');
  assert.deepEqual(lines('é\r\n€'), ['é', '€']);
});

test("the engine calls map once per line with records = 'lines', once per split without", async () => {
  const calls: string[] = [];
  const map = (_k: string, v: string, emit: (k: string, v: string) => void) => {
    calls.push(v);
    emit('n', '1');
  };
  const reduce = (_k: string, vs: string[]) => String(vs.length);
  const lines = asJobModule({ map, reduce, records: 'lines' });
  const r = await runMap(lines, 'f.txt', 'one\r\ntwo\n\nfour', 1);
  assert.deepEqual(calls, ['one', 'two', '', 'four']);
  assert.equal(r.recordsOut, 4);
  calls.length = 0;
  await runMap(asJobModule({ map, reduce, records: 'splits' }), 'f.txt', 'one\ntwo\n', 1);
  await runMap(asJobModule({ map, reduce }), 'f.txt', 'one\ntwo\n', 1);
  assert.deepEqual(calls, ['one\ntwo\n', 'one\ntwo\n']);
  assert.throws(
    () => asJobModule({ map, reduce, records: 'words' }),
    (e: unknown) => e instanceof JobCodeError && /records = "words"; it must be 'lines' or 'splits'/.test(e.message),
  );
});

test('a records value no engine knows is refused at submit with its line, as written or as bundled', () => {
  const refused = (source: string, line: number) =>
    assert.throws(
      () => checkJobModule(source, 'job.js'),
      (e: unknown) =>
        e instanceof UserError && e.message === `job.js:${line}: records must be 'lines' or 'splits', got "words"`,
    );
  const fns = 'export function map() {}\nexport function reduce() { return ""; }\n';
  refused(`${fns}export const records = 'words';\n`, 3);
  refused(
    `var records = "words";\nfunction map() {}\nfunction reduce() { return ""; }\nexport { map, records, reduce };\n`,
    1,
  );
  assert.ok(checkJobModule(`${fns}export const records = 'lines';\n`, 'job.js').has('records'));
});

test("a records = 'lines' TypeScript job runs the same on a Node volunteer as in local, and counts every line", async () => {
  const dir = tempDir();
  const crlf = join(dir, 'crlf.txt');
  writeFileSync(crlf, 'alpha one\r\nbeta two\r\n\r\nalpha three\r\nlast');
  const inputs = [crlf, ...corpusFiles().slice(0, 2)];
  const args = ['--split-size', '64KiB', '--reduces', '3'];
  const r = await adminCli(master)(['submit', JOB, ...inputs, ...args, '--wait']);
  assert.equal(r.code, 0, r.stderr);
  const id = r.stdout.split('\n')[0]!;
  const out = await (
    await fetch(`${master.url}/api/jobs/${id}/output`, { headers: { authorization: `Bearer ${master.token}` } })
  ).text();
  assert.equal(out, await localOutput(JOB, inputs, args), 'output differs from tabreduce local');
  // Independently: the first word of every line of every input.
  const expected = new Map<string, number>();
  for (const f of inputs) {
    const lines = readFileSync(f, 'utf8').split(/\r?\n/);
    if (lines.at(-1) === '') lines.pop();
    for (const l of lines) {
      const w = /^\S*/.exec(l)![0] || '(blank)';
      expected.set(w, (expected.get(w) ?? 0) + 1);
    }
  }
  assert.deepEqual(parseOutput(out), new Map([...expected].map(([k, n]) => [k, String(n)])));
  assert.equal(parseOutput(out).get('alpha'), '2');
});

test('the engine skips up to skipBadRecords throwing lines, drops their emits, and fails on one more', async () => {
  const map = (_k: string, v: string, emit: (k: string, v: string) => void) => {
    emit('seen', v);
    if (v.startsWith('bad')) throw new TypeError(`bad line ${v}`);
    emit('good', v);
  };
  const mod = asJobModule({ map, reduce: () => '', records: 'lines' });
  const text = 'a\nbad1\nb\nbad2\nc\n';
  const r = await runMap(mod, 'f.txt', text, 1, { skipBadRecords: 2, firstLine: 10 });
  assert.deepEqual(r.partitions[0], [
    ['good', ['a', 'b', 'c']],
    ['seen', ['a', 'b', 'c']],
  ]);
  assert.equal(r.recordsOut, 6);
  assert.deepEqual(
    r.skipped.map((s) => [s.line, s.text, s.error.name, s.error.message]),
    [
      [11, 'bad1', 'TypeError', 'bad line bad1'],
      [13, 'bad2', 'TypeError', 'bad line bad2'],
    ],
  );
  await assert.rejects(
    runMap(mod, 'f.txt', text, 1, { skipBadRecords: 1, firstLine: 10 }),
    (e: unknown) =>
      e instanceof BadRecordError &&
      e.message ===
        'line 13 of f.txt ("bad2") threw TypeError: bad line bad2; it is bad record 2, and --skip-bad-records allows 1',
  );
  await assert.rejects(runMap(mod, 'f.txt', text, 1), /^TypeError: bad line bad1$/m, 'no skipping by default');
});

test('local --skip-bad-records: 3 bad lines across splits are listed with file and line; a limit of 2 fails on the third', async () => {
  const job = join(ROOT, 'test/fixtures/ts-job/status-codes.ts');
  const dir = tempDir();
  const good = ['GET / 200', 'GET /a 404', 'POST /b 200', 'GET /c 500'];
  const lines: string[] = [];
  const bad = new Map([
    [40, 'garbage'],
    [2500, 'GET /x 2000'],
    [4000, ''],
  ]);
  for (let n = 1; n <= 5000; n++) lines.push(bad.get(n) ?? good[n % good.length]!);
  const log = join(dir, 'access.log');
  writeFileSync(log, lines.join('\n') + '\n');
  const other = join(dir, 'other.log');
  writeFileSync(other, 'GET / 200\n');
  const args = ['--split-size', '16KiB', '--reduces', '2'];

  const r = await cli(['local', job, log, other, ...args, '--skip-bad-records', '5']);
  assert.equal(r.code, 0, r.stderr);
  const skipped = r.stderr.split('\n').filter((l) => l.startsWith('skipped'));
  assert.deepEqual(
    skipped.map((l) => /^skipped line (\d+) of (\S+) \((".*")\): Error: not a log line/.exec(l)?.slice(1)),
    [
      ['40', 'access.log', '"garbage"'],
      ['2500', 'access.log', '"GET /x 2000"'],
      ['4000', 'access.log', '""'],
    ],
  );
  assert.match(skipped[0]!, /\(status-codes\.ts:10:\d+\)/, 'the stack in the .ts file');
  const expected = new Map<string, number>([['lines', 5001 - 3]]);
  for (const l of [...lines.filter((_, i) => !bad.has(i + 1)), 'GET / 200']) {
    const status = l.split(' ')[2]!;
    expected.set(status, (expected.get(status) ?? 0) + 1);
  }
  assert.deepEqual(parseOutput(r.stdout), new Map([...expected].map(([k, n]) => [k, String(n)])));

  const failed = await cli(['local', job, log, other, ...args, '--skip-bad-records', '2']);
  assert.equal(failed.code, 1, failed.stderr);
  assert.match(
    failed.stderr,
    /BadRecordError: line 4000 of access\.log \(""\) threw Error: not a log line: ""; it is bad record 3, and --skip-bad-records allows 2/,
  );
  assert.equal(failed.stderr.split('\n').filter((l) => l.startsWith('skipped')).length, 2);

  const none = await cli(['local', job, log, ...args]);
  assert.equal(none.code, 1);
  assert.match(none.stderr, /Error: not a log line: "garbage"/);

  const splits = await cli(['local', join(ROOT, 'test/fixtures/ts-job/job.ts'), other, '--skip-bad-records', '1']);
  assert.equal(splits.code, 2);
  assert.match(
    splits.stderr,
    /--skip-bad-records skips lines, but .*job\.ts does not declare `export const records = 'lines'`/,
  );
});
