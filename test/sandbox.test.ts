/**
 * Job code on a Node volunteer runs in a sandbox (server/volunteer/sandbox-host.ts): a V8 isolate
 * without Node APIs, in a process of its own per thread. Real master, real `tabreduce volunteer`,
 * real CLI. Every escape the probe job tries is shown to work under `tabreduce local` (plain Node,
 * the control) and to be blocked on the volunteer, by its output and by the side effects that did
 * not happen: no request reached the server on 127.0.0.2, no file was written. Then the limits: a
 * runaway, a job that allocates without end and one that makes V8 abort each fail with a clear
 * error, and the volunteer goes on with the next job.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  EXAMPLES,
  TEST_JOBS,
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
  type CliResult,
  type MasterProc,
  type VolunteerProc,
} from './helpers/cluster.js';
import type { JobView, TaskView, WorkerView } from '../shared/api.js';

let master: MasterProc;
let volunteer: VolunteerProc;
let run: (args: string[], timeoutMs?: number) => Promise<CliResult>;
let dir: string;
/** Another host for job code to reach: loopback, but not the master's address. */
let outside: Server;
let outsideUrl: string;
const outsideRequests: string[] = [];

const ESCAPE = join(TEST_JOBS, 'escape.js');
const PROBES = [
  'child_process',
  'fetch',
  'net',
  'process.binding',
  'read via Function import()',
  'read via constructor escape',
  'read via eval import()',
  'read via process.getBuiltinModule',
  'read via require',
  'write',
];

before(async () => {
  dir = tempDir('tabreduce-sandbox-test-');
  outside = createServer((req, res) => {
    outsideRequests.push(req.url ?? '');
    res.end('reached the outside host\n');
  });
  await new Promise<void>((ok) => outside.listen(0, '127.0.0.2', ok));
  outsideUrl = `http://127.0.0.2:${(outside.address() as { port: number }).port}`;
  master = await startMaster();
  volunteer = startVolunteer(master.url, 1);
  run = adminCli(master);
  await until('the volunteer to join', async () => (await apiGet<unknown[]>(master, '/api/workers')).length === 1);
});

after(async () => {
  await volunteer?.kill();
  await master?.stop();
  outside?.close();
  removeTempDirs();
});

function targets(name: string, who: string): { file: string; written: string } {
  const written = join(dir, `written-by-${who}`);
  const port = new URL(outsideUrl).port;
  const file = join(dir, name);
  writeFileSync(
    file,
    [
      `read ${join(master.data, 'admin-token')}`,
      `write ${written}`,
      'exec',
      `http ${outsideUrl}/fetch-from-${who}`,
      `tcp 127.0.0.2 ${port}`,
    ].join('\n') + '\n',
  );
  return { file, written };
}

function firstLine(s: string): string {
  return s.split('\n')[0]!.trim();
}

async function failedAttempts(id: string) {
  const tasks = await apiGet<TaskView[]>(master, `/api/jobs/${id}/tasks`);
  return tasks.flatMap((t) => t.attempts.filter((a) => a.outcome === 'failed'));
}

async function volunteerStillWorks(): Promise<void> {
  const workers = await apiGet<WorkerView[]>(master, '/api/workers');
  assert.equal(workers.length, 1, 'the volunteer is still connected');
  const wc = join(EXAMPLES, 'word-count.js');
  const files = corpusFiles().slice(0, 2);
  const r = await run(['submit', wc, ...files, '--reduces', '2', '--wait']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal((await run(['result', firstLine(r.stdout)])).stdout, await localOutput(wc, files, ['--reduces', '2']));
  assert.equal(
    (await apiGet<WorkerView[]>(master, '/api/workers'))[0]!.id,
    workers[0]!.id,
    'the same volunteer ran it',
  );
}

test('the escape probes reach the file system, processes and the network under tabreduce local (the control)', async () => {
  const { file, written } = targets('control.txt', 'local');
  const out = parseOutput(await localOutput(ESCAPE, [file], ['--reduces', '1']));
  assert.deepEqual([...out.keys()].sort(), PROBES);
  for (const [probe, result] of out) assert.match(result, /^reached /, `${probe} under tabreduce local`);
  assert.ok(existsSync(written), 'the control wrote its file');
  assert.ok(outsideRequests.includes('/fetch-from-local'), 'the control fetched from the outside host');
  assert.ok(outsideRequests.includes('/tcp'), 'the control connected to the outside host');
});

test('on a Node volunteer the same probes reach nothing: no file read or written, no process, no request out', async () => {
  const { file, written } = targets('volunteer.txt', 'volunteer');
  const seen = outsideRequests.length;
  const r = await run(['submit', ESCAPE, file, '--reduces', '1', '--wait']);
  assert.equal(r.code, 0, r.stderr);
  const out = parseOutput((await run(['result', firstLine(r.stdout)])).stdout);
  assert.deepEqual([...out.keys()].sort(), PROBES);
  for (const [probe, result] of out) {
    // Refused at once by the sandbox, not merely slow to answer.
    assert.match(result, /^blocked (Error: Not supported|ReferenceError: )/, `${probe} on the volunteer`);
  }
  assert.ok(!existsSync(written), 'no file was written');
  // Give a request that got out time to arrive before saying none did.
  await new Promise((r) => setTimeout(r, 500));
  assert.deepEqual(outsideRequests.slice(seen), [], 'the outside host heard nothing');
});

test('timers, queueMicrotask, TextEncoder and TextDecoder work in the sandbox, async map and reduce too', async () => {
  const unicode = join(dir, 'unicode.txt');
  writeFileSync(unicode, 'Ærøskøbing naïve café Ünïcödé 東京 straße ÆRØSKØBING\nçà et là, déjà vu\n');
  const job = join(TEST_JOBS, 'portable.js');
  const files = [corpusFiles()[0]!, unicode];
  const args = ['--reduces', '3', '--split-size', '32KiB'];
  const r = await run(['submit', job, ...files, ...args, '--wait']);
  assert.equal(r.code, 0, r.stderr);
  const out = (await run(['result', firstLine(r.stdout)])).stdout;
  assert.equal(out, await localOutput(job, files, args));
  const parsed = parseOutput(out);
  assert.equal(parsed.get('ærøskøbing'), '2 26', 'a non-ASCII key, hashed through TextEncoder, met its twin');
  assert.ok(!parsed.has('cancelled timer fired'));
});

test('runaway code is stopped at its hard limit; the volunteer goes on', async () => {
  const r = await run([
    'submit',
    join(TEST_JOBS, 'runaway.js'),
    corpusFiles()[0]!,
    '--task-timeout',
    '1s',
    '--max-attempts',
    '1',
    '--wait',
  ]);
  assert.equal(r.code, 1, r.stderr);
  const [attempt] = await failedAttempts(firstLine(r.stdout));
  assert.equal(attempt?.error?.name, 'TimeoutError');
  assert.match(attempt!.error!.message, /still running after 3\.0s/);
  await volunteerStillWorks();
});

test('code that allocates without end meets the memory limit; the volunteer goes on', async () => {
  const hog = join(dir, 'hog.js');
  writeFileSync(
    hog,
    'export function map() {\n  const keep = [];\n  for (;;) keep.push(new Array(1e6).fill(1.5));\n}\nexport function reduce() {\n  return "";\n}\n',
  );
  const r = await run(['submit', hog, corpusFiles()[0]!, '--max-attempts', '1', '--wait']);
  assert.equal(r.code, 1, r.stderr);
  const [attempt] = await failedAttempts(firstLine(r.stdout));
  assert.equal(attempt?.error?.name, 'MemoryLimitError');
  assert.match(attempt!.error!.message, /used more than 1024 MiB, its sandbox's memory limit/);
  await volunteerStillWorks();
});

test('code that makes V8 itself abort ends only its sandbox process; the attempt fails and the volunteer goes on', async () => {
  const crasher = join(dir, 'crasher.js');
  // An array past V8's largest size is a fatal error of the whole process, whatever the heap limit.
  writeFileSync(
    crasher,
    'export function map() {\n  const a = [];\n  for (let i = 0; ; i++) a.push(i);\n}\nexport function reduce() {\n  return "";\n}\n',
  );
  const r = await run(['submit', crasher, corpusFiles()[0]!, '--max-attempts', '1', '--wait']);
  assert.equal(r.code, 1, r.stderr);
  const [attempt] = await failedAttempts(firstLine(r.stdout));
  assert.equal(attempt?.error?.name, 'SandboxCrashed');
  assert.match(attempt!.error!.message, /the job's sandbox process exited \(SIG\w+\): Fatal JavaScript invalid size/);
  await volunteerStillWorks();
});

test("two jobs at once on one volunteer: one job's changed built-ins never reach the other", async () => {
  const wc = join(EXAMPLES, 'word-count.js');
  const polluter = join(TEST_JOBS, 'polluter.js');
  const files = corpusFiles();
  const args = ['--split-size', '128KiB', '--reduces', '2'];
  const [a, b] = await Promise.all([
    run(['submit', polluter, ...files, ...args]),
    run(['submit', wc, ...files, ...args]),
  ]);
  const [ida, idb] = [firstLine(a.stdout), firstLine(b.stdout)];
  for (const id of [ida, idb]) {
    const w = await cli(['wait', id, '--server', master.url], { env: { TABREDUCE_TOKEN: master.token } });
    assert.equal(w.code, 0, w.stderr);
    assert.equal((await apiGet<JobView>(master, `/api/jobs/${id}`)).state, 'succeeded');
  }
  const out = (await run(['result', idb])).stdout;
  assert.ok(!out.includes('POLLUTED BY ANOTHER JOB'), 'word count ran in a realm the other job had changed');
  assert.equal(out, await localOutput(wc, files, args));
});
