/**
 * The data directory fills up (a small tmpfs) or is read-only: the master refuses new work clearly,
 * keeps everything already committed, does not fail running jobs, and finishes them exactly once
 * space is back. Mounting needs root, as in CI; without it the test fails saying so.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import {
  adminCli,
  apiGet,
  cli,
  corpusFiles,
  EXAMPLES,
  localOutput,
  removeTempDirs,
  startMaster,
  startVolunteer,
  TEST_JOBS,
  tempDir,
  until,
  sleep,
} from './helpers/cluster.js';
import type { JobView } from '../shared/api.js';

const mounts: string[] = [];
after(() => {
  for (const m of mounts) execFileSync('umount', ['-l', m]);
  removeTempDirs();
});

function mountTmpfs(options: string): string {
  const dir = tempDir('tabreduce-tmpfs-');
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', dir], { stdio: 'pipe' });
  } catch (e) {
    throw new Error(
      `this test mounts a small tmpfs to fill a disk and needs root (as CI has): ${(e as Error).message}`,
    );
  }
  mounts.push(dir);
  return dir;
}

/** Writes until the file system says ENOSPC; returns the filler's path. */
function fillDisk(dir: string): string {
  const path = join(dir, 'filler');
  const fd = openSync(path, 'w');
  const chunk = Buffer.alloc(64 * 1024, 1);
  try {
    for (;;) writeSync(fd, chunk);
  } catch (e) {
    assert.equal((e as NodeJS.ErrnoException).code, 'ENOSPC');
  } finally {
    closeSync(fd);
  }
  return path;
}

test('a full disk: new jobs refused clearly, committed output kept, a running job waits and then finishes exactly', async () => {
  const disk = mountTmpfs('size=24m');
  const data = join(disk, 'data');
  mkdirSync(data);
  const m = await startMaster({ data });
  const v = startVolunteer(m.url, 1);
  const run = adminCli(m);
  const files = corpusFiles().slice(0, 2);
  try {
    const a = await run(['submit', join(EXAMPLES, 'word-count.js'), ...files, '--reduces', '2', '--wait']);
    assert.equal(a.code, 0, a.stderr);
    const aId = a.stdout.split('\n')[0]!;
    const aOut = (await run(['result', aId])).stdout;

    const slow = join(TEST_JOBS, 'slow-word-count.js');
    const args = ['--reduces', '2', '--split-size', '16KiB'];
    const c = await run(['submit', slow, ...files, ...args]);
    assert.equal(c.code, 0, c.stderr);
    const cId = c.stdout.split('\n')[0]!;
    await until(
      'some maps of the running job',
      async () => (await apiGet<JobView>(m, `/api/jobs/${cId}`)).maps.done >= 3,
    );

    const filler = fillDisk(disk);
    // A checkpointed WAL is overwritten from its start, so a job that fits in the WAL file's size
    // needs no new space and is taken even now. One larger than the whole WAL needs the disk.
    const wal = statSync(join(data, 'tabreduce.db-wal')).size;
    const big = join(tempDir(), 'big.txt');
    writeFileSync(big, 'all work and no play makes jack a dull boy\n'.repeat(Math.ceil((2 * wal + 2 ** 20) / 43)));
    const b = await run(['submit', join(EXAMPLES, 'word-count.js'), big]);
    assert.equal(b.code, 3, b.stderr);
    assert.match(b.stderr, /cannot write to its data directory \(disk full or read-only\); nothing was changed/);

    await sleep(2_000);
    const stuck = await apiGet<JobView>(m, `/api/jobs/${cId}`);
    assert.ok(stuck.state === 'mapping' || stuck.state === 'reducing', `running job is ${stuck.state}, not failed`);
    assert.equal((await run(['result', aId])).stdout, aOut, 'committed output still readable');
    assert.equal((await apiGet<JobView[]>(m, '/api/jobs')).length, 2, 'the refused job left nothing behind');

    rmSync(filler);
    const done = await run(['wait', cId], 120_000);
    assert.equal(done.code, 0, done.stderr + m.output());
    assert.equal((await run(['result', cId])).stdout, await localOutput(slow, files, args));
  } finally {
    await v.kill();
    await m.kill();
  }
  const db = new Database(join(data, 'tabreduce.db'), { readonly: true });
  assert.equal(db.pragma('integrity_check', { simple: true }), 'ok');
  db.close();
});

test('a read-only data directory is refused at start with a clear message', async () => {
  const disk = mountTmpfs('size=1m,ro');
  const r = await cli(['serve', '--port', '0', '--data', disk]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /cannot use the data directory .*: .*read-only.*pass --data with a writable directory/i);
});
