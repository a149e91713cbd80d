import Database from 'better-sqlite3';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export type Db = Database.Database;

/** `migrations/` beside `server/`, whether running from source or from `dist/`. */
function migrationsDir(): string {
  const here = fileURLToPath(new URL('.', import.meta.url));
  for (const up of ['../migrations/', '../../migrations/']) {
    const dir = new URL(up, `file://${here}`);
    try {
      readdirSync(dir);
      return fileURLToPath(dir);
    } catch {
      // try the next layout
    }
  }
  throw new Error(`migrations/ not found near ${here}`);
}

/**
 * Applies `migrations/NNNN_*.sql` above `PRAGMA user_version`, each in its own transaction that also
 * bumps `user_version`, so a crash mid-migration leaves the previous version intact. The version is
 * read again inside each (immediate, so write-locked) transaction: another process that migrated
 * the same file since the first read has already done the work, and it is not done twice.
 */
export function migrate(db: Db): number {
  const dir = migrationsDir();
  const files = readdirSync(dir)
    .filter((f) => /^\d{4}_.*\.sql$/.test(f))
    .sort();
  const readVersion = () => db.pragma('user_version', { simple: true }) as number;
  let version = readVersion();
  for (const file of files) {
    const n = Number(file.slice(0, 4));
    if (n <= version) continue;
    const sql = readFileSync(`${dir}/${file}`, 'utf8');
    version = db
      .transaction(() => {
        const current = readVersion();
        if (current >= n) return current;
        db.exec(sql);
        db.pragma(`user_version = ${n}`);
        return n;
      })
      .immediate();
  }
  return version;
}

/**
 * With the WAL checkpointed by another thread (wal-checkpointer.ts), the writer checkpoints only past
 * this many pages: 20,000 pages of 4 KiB is an 80 MB WAL, 20 times the default 1,000. It is not 0
 * (off) for two reasons. If the checkpointer dies, the WAL must still be checkpointed and restarted
 * by someone. And the WAL restarts from its beginning only when a write transaction starts on a
 * fully checkpointed WAL; under sustained load the next group commit has begun before another
 * thread's checkpoint can finish, so it is the writer's checkpoint at this size that restarts it,
 * and that checkpoint copies only the pages the checkpointer has not yet copied.
 */
const WRITER_CHECKPOINT_PAGES = 20_000;

export interface OpenOptions {
  /** Another connection checkpoints the WAL: the writer's own checkpoint is only a safety net. */
  checkpointElsewhere?: boolean;
}

export function openDatabase(path: string, opts: OpenOptions = {}): Db {
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  if (opts.checkpointElsewhere) db.pragma(`wal_autocheckpoint = ${WRITER_CHECKPOINT_PAGES}`);
  // WAL + NORMAL survives a SIGKILL of the master with every committed transaction intact (the WAL is
  // written before COMMIT returns); only an OS crash or power cut can lose the last commits. FULL
  // would fsync each task commit and cap dispatch at the disk's fsync rate.
  db.pragma('synchronous = NORMAL');
  db.pragma('busy_timeout = 5000');
  // Each handler's transaction is a savepoint inside the group commit (scheduler.ts `batched`), and a
  // savepoint journals every page it touches first. On disk that journal was a temp file created,
  // written and deleted per group: 10% of the master's CPU under `npm run bench -- load` (perf).
  db.pragma('temp_store = MEMORY');
  db.pragma('foreign_keys = ON');
  migrate(db);
  return db;
}
