import Database from 'better-sqlite3';
import { closeSync, openSync, readSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { UserError } from '../shared/errors.js';

/** The master's hold on its data directory, released by `release()` or by the process ending. */
export interface DataLock {
  path: string;
  release(): void;
}

/** Where SQLite keeps `user_version` in a database file: 4 bytes, big-endian (the file format). */
const USER_VERSION_OFFSET = 60;

/**
 * Takes `DATA/lock` for the master's lifetime, or refuses with a UserError naming the lock and its
 * holder: two masters on one directory would each expel the other's volunteers.
 *
 * The lock is SQLite's own: with `locking_mode = EXCLUSIVE` the first write takes an exclusive lock
 * on the file and keeps it until the connection closes. It is an OS file lock (fcntl), so the
 * kernel drops it when the process ends, SIGKILL included: no stale lock blocks the next start, as
 * a pid file would. That write records the holder's pid as the file's `user_version`, where a
 * refused process reads it straight from the file (SQLite cannot read a database locked this way).
 */
export function lockDataDir(data: string): DataLock {
  const path = resolve(join(data, 'lock'));
  // No busy timeout: a lock that is held stays held for a master's lifetime, so waiting is useless.
  const db = new Database(path, { timeout: 0 });
  try {
    db.pragma('locking_mode = EXCLUSIVE');
    db.pragma(`user_version = ${process.pid}`);
  } catch (e) {
    db.close();
    if ((e as { code?: unknown }).code !== 'SQLITE_BUSY') throw e;
    const pid = readHolderPid(path);
    throw new UserError(
      `the data directory ${resolve(data)} is in use by another master${pid ? ` (pid ${pid})` : ''}, which holds its lock ${path}; stop that master, or pass another --data`,
    );
  }
  return { path, release: () => db.close() };
}

/** The pid the lock's holder wrote, or null when the file does not say (yet). */
function readHolderPid(path: string): number | null {
  let fd: number | undefined;
  try {
    fd = openSync(path, 'r');
    const buf = Buffer.alloc(4);
    if (readSync(fd, buf, 0, 4, USER_VERSION_OFFSET) < 4) return null;
    return buf.readUInt32BE(0) || null;
  } catch {
    return null;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
