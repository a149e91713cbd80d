/**
 * Issue 14: data far larger than the master's memory goes through the blob store. Real master and
 * volunteer processes, inputs made here (never committed): an input past V8's longest string runs
 * exactly with the master's peak RSS bounded; a bad byte past 512 MiB is found at its offset; a
 * SIGKILL mid-upload or between an output's upload and its commit leaves nothing half-made, no blob
 * that is never removed, and no second commit.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createWriteStream, existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { once } from 'node:events';
import { join } from 'node:path';
import {
  adminCli,
  apiGet,
  cli,
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

function dirBytes(dir: string): number {
  if (!existsSync(dir)) return 0;
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    n += e.isDirectory() ? dirBytes(p) : statSync(p).size;
  }
  return n;
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
    assert.equal(job.maps.total, 16);
    const peak = peakRssOf(m.proc.pid!);
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
    assert.equal(r.code, 1, r.stderr);
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
  const words = Array.from({ length: 20_000 }, (_, i) => `w${i}`);
  await import('node:fs/promises').then((fs) =>
    fs.writeFile(input, `${words.slice(0, 10_000).join('\n')}\n${words.slice(10_000).join('\n')}\n`),
  );
  const job = join(ROOT, 'shared/examples/word-count.js');
  const mod = asJobModule((await import(job)) as Record<string, unknown>);
  let m = await startMaster({ data, args: ['--reassign-after', '3s'] });
  const admin = () => adminCli(m);
  const sub = await admin()(['submit', job, input, '--split-size', '80KiB', '--reduces', '2']);
  assert.equal(sub.code, 0, sub.stderr);
  const id = sub.stdout.trim();
  const raw = await openRawClient(m.url);
  raw.ws.send(
    JSON.stringify({ type: 'hello', protocol: 2, threads: 2, slots: 2, paused: false, agent: 'raw', running: [] }),
  );
  const welcome = (await raw.next('welcome')) as Extract<MasterMessage, { type: 'welcome' }>;
  await until('two assignments', () => raw.got.filter((x) => x.type === 'task.assign').length === 2);
  const [a, b] = raw.got.filter((x): x is TaskAssign => x.type === 'task.assign');
  for (const t of [a!, b!]) {
    assert.ok(t.input.url, 'an input over the inline limit is fetched by URL');
    const text = await fetch(`${m.url}${t.input.url}`).then((r) => r.text());
    const out = encodeMapOutput((await runMap(mod, t.phase === 'map' ? t.input.key : '', text, t.nReduce)).partitions);
    assert.ok(Buffer.byteLength(out) > welcome.inlineBytes);
    const put = await fetch(`${m.url}/data/${t.lease}/output`, { method: 'PUT', body: out });
    assert.equal(put.status, 200, await put.clone().text());
  }
  const mapDir = join(data, 'blobs', 'jobs', id, 'map');
  assert.equal(entries(mapDir).length, 2);
  raw.ws.terminate();
  await m.kill();

  m = await startMaster({ data, port: m.port, args: ['--reassign-after', '3s'] });
  try {
    assert.equal(entries(mapDir).length, 2, 'uploads of running attempts survive the restart');
    // The volunteer comes back holding only the first lease and reports it.
    const back = await openRawClient(m.url);
    back.ws.send(
      JSON.stringify({
        type: 'hello',
        protocol: 2,
        volunteerId: welcome.volunteerId,
        secret: welcome.secret,
        threads: 1,
        slots: 0,
        paused: false,
        agent: 'raw',
        running: [a!.lease],
      }),
    );
    const again = (await back.next('welcome')) as Extract<MasterMessage, { type: 'welcome' }>;
    assert.deepEqual(again.kept, [a!.lease]);
    back.ws.send(
      JSON.stringify({
        type: 'task.result',
        lease: a!.lease,
        uploaded: true,
        stats: { ms: 1, recordsIn: 1, recordsOut: 10_000 },
      }),
    );
    const ack = (await back.next('task.ack')) as Extract<MasterMessage, { type: 'task.ack' }>;
    assert.equal(ack.outcome, 'committed');
    // The other lease was not kept: its attempt is lost and its upload removed.
    await until('the abandoned upload to be removed', () => entries(mapDir).length === 1, 10_000);
    assert.ok(entries(mapDir)[0]!.endsWith(a!.lease));
    back.ws.terminate();
    const vol = startVolunteer(m.url, 1);
    try {
      const w = await admin()(['wait', id], 120_000);
      assert.equal(w.code, 0, w.stderr);
      const tasks = await apiGet<{ phase: string; attempts: { outcome: string }[] }[]>(m, `/api/jobs/${id}/tasks`);
      for (const t of tasks) {
        assert.equal(t.attempts.filter((x) => x.outcome === 'succeeded').length, 1, 'each task committed once');
      }
      const res = await admin()(['result', id]);
      const local = await cli(['local', job, input, '--split-size', '80KiB', '--reduces', '2']);
      assert.equal(res.stdout, local.stdout);
    } finally {
      await vol.kill();
    }
  } finally {
    await m.stop();
  }
});
