/**
 * Issue 14: data far larger than the master's memory goes through the blob store. Real master and
 * volunteer processes, inputs made here (never committed): an input past V8's longest string runs
 * exactly with the master's peak RSS bounded; a bad byte past 512 MiB is found at its offset; a
 * SIGKILL mid-upload or between an output's upload and its commit leaves nothing half-made, no blob
 * that is never removed, and no second commit.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createWriteStream, existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import { join } from 'node:path';
import {
  adminCli,
  apiGet,
  cli,
  dirBytes,
  removeTempDirs,
  startMaster,
  startVolunteer,
  tempDir,
  until,
  TEST_JOBS,
  ROOT,
} from './helpers/cluster.js';
import { openRawClient } from './helpers/raw-volunteer.js';
import type { JobView } from '../shared/api.js';
import type { MasterMessage, TaskAssign } from '../shared/protocol.js';
import { encodeMapOutput } from '../shared/records.js';
import { runMap, asJobModule } from '../shared/engine.js';

after(removeTempDirs);

const MIB = 1024 ** 2;
const JOB = join(TEST_JOBS, 'line-lengths.js');

/** A file of `bytes` (rounded up to whole blocks) of lines of every length 0..199, and its expected output. */
async function linesFile(
  bytes: number,
  badAt: number | null = null,
): Promise<{ file: string; expected: Map<string, number> }> {
  const lines: string[] = [];
  for (let len = 0; len < 200; len++) lines.push('é'.repeat(len >> 2) + 'x'.repeat(len - 2 * (len >> 2)));
  const block = Buffer.from(lines.map((l) => `${l}\n`).join(''));
  const blocks = Math.ceil(bytes / block.length);
  const file = join(tempDir('tabreduce-big-input-'), 'lines.txt');
  const out = createWriteStream(file);
  const bad = badAt === null ? -1 : Math.floor(badAt / block.length);
  for (let i = 0; i < blocks; i++) {
    let b = block;
    if (i === bad) {
      b = Buffer.from(block);
      b[badAt! - i * block.length] = 0xff;
    }
    if (!out.write(b)) await once(out, 'drain');
  }
  out.end();
  await once(out, 'finish');
  const expected = new Map<string, number>();
  for (const l of lines) {
    const k = String(l.length % 50);
    expected.set(k, (expected.get(k) ?? 0) + blocks);
  }
  return { file, expected };
}

function peakRssOf(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)![1]) * 1024;
}

function entries(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir) : [];
}

test('a 1 GiB input (longer than any V8 string) runs exactly, and the master stays under 300 MiB', async () => {
  const { file, expected } = await linesFile(1024 * MIB);
  const m = await startMaster();
  const vols = [startVolunteer(m.url, 1), startVolunteer(m.url, 1)];
  try {
    const admin = adminCli(m);
    const sub = await admin(['submit', JOB, file, '--split-size', '64MiB', '--reduces', '3', '--wait'], 600_000);
    assert.equal(sub.code, 0, sub.stderr);
    const id = sub.stdout.trim().split('\n')[0]!;
    const res = await admin(['result', id], 120_000);
    assert.equal(res.code, 0, res.stderr);
    const got = new Map(
      res.stdout
        .trim()
        .split('\n')
        .map((l) => l.split('\t') as [string, string])
        .map(([k, v]) => [k, Number(v)]),
    );
    assert.deepEqual(got, expected);
    const job = await apiGet<JobView>(m, `/api/jobs/${id}`);
    assert.ok(job.maps.total >= Math.ceil(statSync(file).size / (64 * MIB)), `${job.maps.total} map tasks`);
    const peak = peakRssOf(m.proc.pid!);
    process.stderr.write(`# master peak RSS over the 1 GiB job: ${(peak / MIB).toFixed(0)} MiB\n`);
    assert.ok(peak < 300 * MIB, `the master's peak RSS was ${(peak / MIB).toFixed(0)} MiB`);
    // The inputs and map outputs went once the job succeeded; the output stays until deleted.
    const blobs = join(m.data, 'blobs', 'jobs', id);
    await until(
      'the inputs and map outputs to be removed',
      () => entries(join(blobs, 'input')).length === 0 && entries(join(blobs, 'map')).length === 0,
      10_000,
    );
  } finally {
    for (const v of vols) await v.kill();
    await m.stop();
  }
});

test('a bad byte 600 MB into an input is refused with its offset, and the upload leaves nothing', async () => {
  const badAt = 600_000_123;
  const { file } = await linesFile(620 * MIB, badAt);
  const m = await startMaster();
  try {
    const r = await adminCli(m)(['submit', JOB, file], 300_000);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, new RegExp(`lines\\.txt is not valid UTF-8 \\(bad byte near offset ${badAt}\\)`));
    assert.deepEqual(await apiGet<JobView[]>(m, '/api/jobs'), []);
    assert.deepEqual(entries(join(m.data, 'blobs', 'jobs')), []);
    assert.deepEqual(entries(join(m.data, 'blobs', 'tmp')), []);
  } finally {
    await m.stop();
  }
});

test('a master SIGKILLed mid-upload restarts with no half job and no leftover bytes', async () => {
  const { file } = await linesFile(512 * MIB);
  const data = tempDir();
  let m = await startMaster({ data });
  const upload = adminCli(m)(['submit', JOB, file], 120_000);
  await until('part of the upload to be on disk', () => dirBytes(join(data, 'blobs', 'tmp')) > 32 * MIB, 60_000, 20);
  await m.kill();
  const r = await upload;
  assert.notEqual(r.code, 0, 'the interrupted submit fails');
  m = await startMaster({ data, port: m.port });
  try {
    assert.deepEqual(await apiGet<JobView[]>(m, '/api/jobs'), []);
    assert.equal(dirBytes(join(data, 'blobs')), 0, 'no bytes of the upload are left');
  } finally {
    await m.stop();
  }
});

test('SIGKILL between an output upload and its commit: the upload is kept for its lease, committed once, and an abandoned one is removed', async () => {
  const data = tempDir();
  const input = join(tempDir(), 'words.txt');
  // Two splits of ~100 KB: each map output is over the inline limit and goes up by PUT.
  const letters = (i: number): string =>
    (i < 26 ? '' : letters(Math.floor(i / 26) - 1)) + String.fromCharCode(97 + (i % 26));
  const words = Array.from({ length: 20_000 }, (_, i) => `word${letters(i)}`);
  writeFileSync(input, `${words.slice(0, 10_000).join('\n')}\n${words.slice(10_000).join('\n')}\n`);
  const job = join(ROOT, 'shared/examples/word-count.js');
  const mod = asJobModule((await import(job)) as Record<string, unknown>);
  const args = ['--reassign-after', '3s'];
  let m = await startMaster({ data, args });
  const masters = [m];
  const raws: Awaited<ReturnType<typeof openRawClient>>[] = [];
  try {
    const sub = await adminCli(m)(['submit', job, input, '--split-size', '80KiB', '--reduces', '2']);
    assert.equal(sub.code, 0, sub.stderr);
    const id = sub.stdout.trim();
    // Two volunteers (a new identity holds one task at a time), each takes a map task and uploads
    // its output, and neither reports it before the master dies.
    const held: { welcome: Extract<MasterMessage, { type: 'welcome' }>; task: TaskAssign }[] = [];
    for (let i = 0; i < 2; i++) {
      const raw = await openRawClient(m.url);
      raws.push(raw);
      raw.ws.send(hello({ threads: 1, slots: 1 }));
      const welcome = (await raw.next('welcome')) as Extract<MasterMessage, { type: 'welcome' }>;
      const task = (await raw.next('task.assign')) as TaskAssign;
      assert.equal(task.phase, 'map');
      assert.ok(task.input.url, 'an input over the inline limit is fetched by URL');
      const text = await fetch(`${m.url}${task.input.url}`).then((r) => r.text());
      const key = task.phase === 'map' ? task.input.key : '';
      const out = encodeMapOutput((await runMap(mod, key, text, task.nReduce)).partitions);
      assert.ok(Buffer.byteLength(out) > welcome.inlineBytes);
      const put = await fetch(`${m.url}/data/${task.lease}/output`, { method: 'PUT', body: out });
      assert.equal(put.status, 200, await put.clone().text());
      held.push({ welcome, task });
    }
    const [a, b] = held as [(typeof held)[0], (typeof held)[0]];
    const mapDir = join(data, 'blobs', 'jobs', id, 'map');
    assert.equal(entries(mapDir).length, 2);
    for (const raw of raws) raw.ws.terminate();
    await m.kill();

    m = await startMaster({ data, port: m.port, args });
    masters.push(m);
    assert.equal(entries(mapDir).length, 2, 'uploads of running attempts survive the restart');
    // The first volunteer comes back within the reassignment window and reports its upload.
    const back = await openRawClient(m.url);
    raws.push(back);
    back.ws.send(
      hello({
        volunteerId: a.welcome.volunteerId,
        secret: a.welcome.secret,
        threads: 1,
        slots: 0,
        running: [a.task.lease],
      }),
    );
    const again = (await back.next('welcome')) as Extract<MasterMessage, { type: 'welcome' }>;
    assert.deepEqual(again.kept, [a.task.lease]);
    back.ws.send(
      JSON.stringify({
        type: 'task.result',
        lease: a.task.lease,
        uploaded: true,
        stats: { ms: 1, recordsIn: 1, recordsOut: 10_000 },
      }),
    );
    const ack = (await back.next('task.ack')) as Extract<MasterMessage, { type: 'task.ack' }>;
    assert.equal(ack.outcome, 'committed');
    // The second never comes back: after the window its attempt is lost and its upload removed.
    await until('the abandoned upload to be removed', () => entries(mapDir).length === 1, 20_000);
    assert.ok(entries(mapDir)[0]!.endsWith(a.task.lease));
    assert.equal(
      (await apiGet<{ id: number; attempts: { outcome: string }[] }[]>(m, `/api/jobs/${id}/tasks`))
        .find((t) => t.id === b.task.taskId)!
        .attempts.map((x) => x.outcome)
        .join(),
      'lost',
    );
    back.ws.terminate();
    const vol = startVolunteer(m.url, 1);
    try {
      const w = await adminCli(m)(['wait', id], 120_000);
      assert.equal(w.code, 0, w.stderr);
      const tasks = await apiGet<{ attempts: { outcome: string }[] }[]>(m, `/api/jobs/${id}/tasks`);
      for (const t of tasks) {
        assert.equal(t.attempts.filter((x) => x.outcome === 'succeeded').length, 1, 'each task committed once');
      }
      const res = await adminCli(m)(['result', id]);
      const local = await cli(['local', job, input, '--split-size', '80KiB', '--reduces', '2']);
      assert.equal(res.stdout, local.stdout);
    } finally {
      await vol.kill();
    }
  } finally {
    for (const raw of raws) raw.ws.terminate();
    for (const x of masters) if (x.proc.exitCode === null && x.proc.signalCode === null) await x.kill();
  }
});

function hello(extra: object): string {
  return JSON.stringify({ type: 'hello', protocol: 2, paused: false, agent: 'raw', running: [], ...extra });
}
