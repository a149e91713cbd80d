/**
 * Migrations on real SQLite files: a new database gets every one, a second run changes nothing, and
 * a database made by an older version keeps the work of its unfinished jobs.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { migrate, openDatabase } from '../server/db.js';
import { createOutputStore } from '../server/sql/output-store.js';
import { convertLegacyMapResults } from '../server/blobs/legacy.js';
import { reduceSpans } from '../server/blobs/job-data.js';
import { decodeRecords } from '../shared/records.js';
import { ROOT, tempDir, removeTempDirs } from './helpers/cluster.js';

after(removeTempDirs);

const MIGRATIONS = join(ROOT, 'migrations');
const files = readdirSync(MIGRATIONS)
  .filter((f) => /^\d{4}_.*\.sql$/.test(f))
  .sort();

/** A database as the version that had migrations up to `version` left it. */
function databaseAt(version: number) {
  const db = new Database(join(tempDir(), 'old.db'));
  for (const f of files.filter((f) => Number(f.slice(0, 4)) <= version)) {
    db.exec(readFileSync(join(MIGRATIONS, f), 'utf8'));
  }
  db.pragma(`user_version = ${version}`);
  return db;
}

test('a new database gets every migration, and migrating again changes nothing', () => {
  const db = openDatabase(join(tempDir(), 'new.db'));
  const latest = Number(files.at(-1)!.slice(0, 4));
  assert.equal(db.pragma('user_version', { simple: true }), latest);
  assert.equal(migrate(db), latest);
  assert.equal(db.pragma('integrity_check', { simple: true }), 'ok');
  db.close();
});

test('map outputs stored one row per partition (before 0003) move to one row per map task', () => {
  const db = databaseAt(2);
  db.prepare(
    `INSERT INTO job (id, name, state, created_at, module_name, module, n_reduce, split_size,
      task_timeout_ms, max_attempts, maps_total, input_bytes)
     VALUES (?, 'wc', ?, 0, 'wc.js', '', 3, 64, 10000, 4, 3, 10)`,
  ).run('running-job', 'reducing');
  const put = db.prepare('INSERT INTO map_output (job_id, part, map_idx, data) VALUES (?, ?, ?, ?)');
  // Map 0 emitted into partitions 0 and 2, map 1 into partition 2 only, map 2 into none.
  put.run('running-job', 0, 0, JSON.stringify([['a', ['1', '1']]]));
  put.run('running-job', 2, 0, JSON.stringify([['c', ['1']]]));
  put.run('running-job', 2, 1, JSON.stringify([['c', ['é😀\t"q"']]]));
  const before = (part: number) =>
    db
      .prepare('SELECT data FROM map_output WHERE job_id = ? AND part = ? ORDER BY map_idx')
      .pluck()
      .all('running-job', part) as string[];
  const expected = [0, 1, 2].map((p) => before(p).map((t) => JSON.parse(t) as unknown));

  assert.equal(migrate(db), Number(files.at(-1)!.slice(0, 4)));
  // 0003 made them one JSONB row per map task; the master then rewrites those as records (0005).
  assert.equal(db.prepare('SELECT count(*) FROM map_result').pluck().get(), 2);
  convertLegacyMapResults(db, () => {});
  const outputs = createOutputStore(db);
  const after = [0, 1, 2].map((p) =>
    [...reduceSpans(outputs, 'running-job', p)].map((s) =>
      decodeRecords(outputs.mapSlice('running-job', s.mapIdx, s.start, s.end - s.start).toString('utf8')),
    ),
  );
  assert.deepEqual(after, expected);
  assert.deepEqual(after[1], []);
  assert.equal(
    db.prepare("SELECT count(*) FROM sqlite_schema WHERE name IN ('map_output', 'map_result')").pluck().get(),
    0,
  );
  assert.equal(db.pragma('integrity_check', { simple: true }), 'ok');
  db.close();
});

test('outputs kept as text rows (before 0005) move to output_data and count as stored bytes', () => {
  const db = databaseAt(4);
  db.prepare(
    `INSERT INTO job (id, name, state, created_at, module_name, module, n_reduce, split_size,
      task_timeout_ms, max_attempts, maps_total, input_bytes)
     VALUES ('done', 'wc', 'succeeded', 0, 'wc.js', '', 2, 64, 10000, 4, 1, 10)`,
  ).run();
  db.prepare(`INSERT INTO output (job_id, part, data) VALUES ('done', 0, 'a\t1\n'), ('done', 1, 'é\t2\n')`).run();
  migrate(db);
  const outputs = createOutputStore(db);
  assert.deepEqual(
    outputs.parts('done').map((p) => outputs.partData('done', p.part).toString('utf8')),
    ['a\t1\n', 'é\t2\n'],
  );
  assert.equal(db.prepare(`SELECT stored_bytes FROM job WHERE id = 'done'`).pluck().get(), 4 + 5);
  db.close();
});

test('a migration another process applied between the version read and the transaction is not run twice', () => {
  const path = join(tempDir(), 'raced.db');
  const db = new Database(path);
  const other = new Database(path);
  const latest = Number(files.at(-1)!.slice(0, 4));
  // The other process migrates right after this one has read user_version (0), before its first
  // transaction begins: the window two masters starting together on one file would share.
  const read = db.pragma.bind(db);
  let raced = false;
  db.pragma = ((source: string, options?: Database.PragmaOptions) => {
    const value = read(source, options);
    if (source === 'user_version' && !raced) {
      raced = true;
      assert.equal(migrate(other), latest);
    }
    return value;
  }) as typeof db.pragma;
  assert.equal(migrate(db), latest);
  assert.equal(read('user_version', { simple: true }), latest);
  assert.equal(read('integrity_check', { simple: true }), 'ok');
  other.close();
  db.close();
});
