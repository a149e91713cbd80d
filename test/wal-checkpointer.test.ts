/**
 * The WAL checkpointer thread (server/wal-checkpointer.ts), against a database opened as the master
 * opens it, with the writer's own checkpoint raised out of the way: the thread copies the WAL into
 * the database file so that the WAL restarts instead of growing, never makes the writer wait, stops
 * when told, and is restarted when it dies.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { openDatabase, type Db } from '../server/db.js';
import { startCheckpointer } from '../server/wal-checkpointer.js';
import { removeTempDirs, tempDir, until } from './helpers/cluster.js';

after(removeTempDirs);

const PAGE = 4096;
/** Rows of 3,000 bytes: one a page, so a round is ROWS pages of WAL. */
const ROWS = 100;
const ROUNDS = 20;
const ROUND = ROWS * PAGE;
/** Short, so that a test takes seconds; the gap between rounds leaves time for a few checkpoints. */
const INTERVAL_MS = 25;
const GAP_MS = 100;

const size = (file: string) => statSync(file).size;

function open(): { db: Db; path: string; wal: string } {
  const path = join(tempDir(), 'db.sqlite');
  const db = openDatabase(path, { checkpointElsewhere: true });
  // A lock the thread held against the writer would now fail the write with SQLITE_BUSY, not delay it.
  db.pragma('busy_timeout = 0');
  db.exec('CREATE TABLE filler (id INTEGER PRIMARY KEY, pad BLOB NOT NULL)');
  return { db, path, wal: `${path}-wal` };
}

async function writeRounds(db: Db, rounds: number): Promise<void> {
  const insert = db.prepare('INSERT INTO filler (pad) VALUES (?)');
  const pad = Buffer.alloc(3000, 1);
  const round = db.transaction(() => {
    for (let i = 0; i < ROWS; i++) insert.run(pad);
  });
  for (let r = 0; r < rounds; r++) {
    round.immediate();
    await sleep(GAP_MS);
  }
}

test('without the checkpointer, the raised autocheckpoint leaves the WAL growing', async () => {
  const { db, path, wal } = open();
  const dbSize = size(path);
  await writeRounds(db, ROUNDS);
  assert.ok(size(wal) >= ROUNDS * ROUND, `WAL ${size(wal)} bytes after ${ROUNDS} rounds of ${ROUND}`);
  assert.equal(size(path), dbSize, 'nothing was copied into the database file');
  db.close();
});

test('the checkpointer copies the WAL into the database, so the WAL stays bounded; stop() ends it', async (t) => {
  const { db, path, wal } = open();
  const log: string[] = [];
  const checkpointer = startCheckpointer(path, { log: (l) => log.push(l), intervalMs: INTERVAL_MS });
  t.after(() => checkpointer.stop());
  // The thread takes a moment to start (more from source, where tsx compiles it).
  const start = size(path);
  await writeRounds(db, 1);
  await until('the first checkpoint', () => size(path) >= start + ROUND, 5_000, 10);

  const before = size(path);
  await writeRounds(db, ROUNDS);
  const dbGrowth = size(path) - before;
  assert.ok(dbGrowth >= (ROUNDS - 1) * ROUND, `the database file grew by ${dbGrowth} bytes, not ~${ROUNDS * ROUND}`);
  // The WAL restarts from its beginning at the first write after a checkpoint that copied all of it.
  assert.ok(size(wal) <= (ROUNDS / 4) * ROUND, `WAL ${size(wal)} bytes after ${ROUNDS} rounds of ${ROUND}`);

  await checkpointer.stop();
  const stopped = size(path);
  await writeRounds(db, 5);
  assert.equal(size(path), stopped, 'nothing is copied after stop()');
  assert.ok(size(wal) >= 5 * ROUND, `WAL ${size(wal)} bytes: it grows again`);
  assert.deepEqual(log, []);
  db.close();
});

test('the writer never waits for it: no SQLITE_BUSY with busy_timeout 0 against a checkpoint every millisecond', async (t) => {
  const { db, path } = open();
  const log: string[] = [];
  const checkpointer = startCheckpointer(path, { log: (l) => log.push(l), intervalMs: 1 });
  t.after(() => checkpointer.stop());
  const insert = db.prepare('INSERT INTO filler (pad) VALUES (?)');
  const one = db.transaction(() => insert.run(Buffer.alloc(3000, 2)));
  const start = size(path);
  await writeRounds(db, 1);
  await until('the first checkpoint', () => size(path) > start, 5_000, 10);
  const before = size(path);
  for (let i = 0; i < 3_000; i++) {
    one.immediate();
    if (i % 50 === 0) await sleep(0);
  }
  assert.ok(size(path) > before, 'the thread checkpointed during the commits');
  await checkpointer.stop();
  assert.deepEqual(log, []);
  db.close();
});

test('a thread that dies is logged and restarted, and the caller never sees the error', async (t) => {
  const path = join(tempDir(), 'db.sqlite');
  const log: string[] = [];
  // No database there yet: the thread refuses to create one and dies.
  const checkpointer = startCheckpointer(path, { log: (l) => log.push(l), intervalMs: INTERVAL_MS });
  t.after(() => checkpointer.stop());
  await until('the restart to be scheduled', () => log.some((l) => /exited/.test(l)), 5_000, 10);
  assert.match(log[0]!, /^the WAL checkpointer thread failed: Error: cannot open .*: unable to open database file/);
  assert.match(log[1]!, /^the WAL checkpointer thread exited \(code 1\); restarting it in 1s/);

  const db = openDatabase(path, { checkpointElsewhere: true });
  db.exec('CREATE TABLE filler (id INTEGER PRIMARY KEY, pad BLOB NOT NULL)');
  const start = size(path);
  await writeRounds(db, 1);
  await until('a checkpoint by the restarted thread', () => size(path) >= start + ROUND, 5_000, 10);
  await checkpointer.stop();
  assert.equal(log.length, 2, log.join('\n'));
  db.close();
});
