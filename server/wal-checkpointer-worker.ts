/** The thread of wal-checkpointer.ts: its own connection, checkpointing the master's WAL on a timer. */
import Database from 'better-sqlite3';
import { parentPort, workerData } from 'node:worker_threads';
import { toError } from '../shared/errors.js';
import { isStorageError } from './storage-errors.js';
import type { CheckpointerData, CheckpointerReport } from './wal-checkpointer.js';

const { dbPath, intervalMs } = workerData as CheckpointerData;
const port = parentPort!;
const report = (r: CheckpointerReport) => port.postMessage(r);

function open(): Database.Database {
  try {
    // The master creates and migrates the database; this connection must never make an empty one.
    const conn = new Database(dbPath, { fileMustExist: true });
    // A PASSIVE checkpoint waits for nobody, but opening and reading the schema can meet a lock (another
    // connection recovering the WAL); waiting here stalls only this thread, as long as the master would.
    conn.pragma('busy_timeout = 5000');
    return conn;
  } catch (e) {
    // Thrown out of the thread, a SqliteError reaches the master as a bare `{ code }`; an Error keeps
    // its message.
    throw new Error(`cannot open ${dbPath}: ${toError(e).message}`);
  }
}

const db = open();

let failing = false;
let timer: NodeJS.Timeout | undefined;

function checkpoint(): void {
  try {
    // PASSIVE copies what it can without taking the write lock or waiting for readers, so the master's
    // transactions never wait for it; `busy` only means another checkpoint (the writer's) was running.
    db.pragma('wal_checkpoint(PASSIVE)');
    if (failing) report({ log: 'WAL checkpoints work again' });
    failing = false;
  } catch (e) {
    // A full disk fails every attempt until space is freed: say so once, not every interval.
    if (!failing) {
      const err = toError(e);
      report({ log: `WAL checkpoint failed, retrying: ${isStorageError(e) ? err.message : err.stack}` });
    }
    failing = true;
  }
  // A timeout chain rather than setInterval: a checkpoint slower than the interval does not queue more.
  timer = setTimeout(checkpoint, intervalMs);
}

// The only message is the master's stop.
port.once('message', () => {
  clearTimeout(timer);
  db.close();
  port.close();
});

timer = setTimeout(checkpoint, intervalMs);
