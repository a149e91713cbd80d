/**
 * Group commit: every frame volunteers send in one event-loop turn (or one `commitGapMs`) shares
 * one SQLite transaction, and the frames the master sends meanwhile are held until it is durable.
 * One commit per gap instead of two per task is what lets the master keep up with thousands of
 * results per second; holding the outbox is what makes that safe.
 */
import { isStorageError } from '../storage-errors.js';
import type { MasterMessage } from '../../shared/protocol.js';
import { drainTrash, type Connection, type Context, type Volunteer } from './context.js';

/**
 * Runs `fn` inside the current group commit, opening one if none is open. Each handler's own
 * transaction becomes a savepoint in it; `flush()` commits it at the end of the turn, or
 * `commitGapMs` after the previous commit if that is later.
 */
export function batched<T>(ctx: Context, fn: () => T): T {
  if (ctx.batch && !ctx.db.inTransaction) abandon(ctx, new Error('SQLite ended the transaction'));
  if (!ctx.batch) {
    ctx.db.exec('BEGIN IMMEDIATE');
    const commit = () => {
      try {
        flush(ctx);
      } catch {
        // abandon() has logged it and reloaded the state
      }
    };
    const wait = ctx.lastCommitAt + ctx.commitGapMs - performance.now();
    if (wait > 0) {
      const timer = setTimeout(commit, wait);
      ctx.batch = { outbox: [], cancel: () => clearTimeout(timer) };
    } else {
      const immediate = setImmediate(commit);
      ctx.batch = { outbox: [], cancel: () => clearImmediate(immediate) };
    }
  }
  try {
    return fn();
  } catch (e) {
    if (isStorageError(e)) abandon(ctx, e);
    throw e;
  }
}

/**
 * Commits the open group commit, then sends what it held back; throws when the commit failed
 * (after `abandon`). Admin requests call it first so that they read and write durable state only.
 */
export function flush(ctx: Context): void {
  const b = ctx.batch;
  if (!b) return;
  try {
    if (!ctx.db.inTransaction) throw new Error('SQLite ended the transaction');
    const t0 = performance.now();
    ctx.db.exec('COMMIT');
    ctx.commits.count++;
    ctx.commits.ms += performance.now() - t0;
  } catch (e) {
    abandon(ctx, e);
    throw e;
  }
  b.cancel();
  ctx.batch = null;
  ctx.lastCommitAt = performance.now();
  drainTrash(ctx);
  const byConn = new Map<Connection, string[]>();
  for (const [conn, text] of b.outbox) {
    const list = byConn.get(conn);
    if (list) list.push(text);
    else byConn.set(conn, [text]);
  }
  for (const [conn, texts] of byConn) deliver(ctx, conn, texts);
}

/** Runs `fn` in a group commit of its own and makes it durable before returning: for admin requests. */
export function durably<T>(ctx: Context, fn: () => T): T {
  flush(ctx);
  const result = batched(ctx, fn);
  flush(ctx);
  return result;
}

/**
 * The group commit could not be made durable (a full disk, an I/O error): roll it back, drop the
 * frames it held, and rebuild the master's state from the database as after a restart. Every
 * volunteer is disconnected and reconnects with backoff; it keeps its tasks and sends again the
 * results that were not acknowledged, so nothing is lost and nothing counts twice.
 */
function abandon(ctx: Context, e: unknown): void {
  ctx.batch?.cancel();
  ctx.batch = null;
  // The rolled-back rows still refer to what was to be deleted; what is orphaned, a start removes.
  ctx.trash.length = 0;
  if (ctx.db.inTransaction) {
    try {
      ctx.db.exec('ROLLBACK');
    } catch {
      // already rolled back by SQLite
    }
  }
  ctx.log(`could not commit (${e instanceof Error ? e.message : String(e)}); reloading state from the database`);
  for (const v of ctx.mem.volunteers.values()) v.conn?.close(1011, 'master storage error; reconnect');
  ctx.reload();
}

export function send(ctx: Context, v: Volunteer, msg: MasterMessage): void {
  sendRaw(ctx, v, JSON.stringify(msg));
}

export function sendRaw(ctx: Context, v: Volunteer, text: string): void {
  if (!v.conn) return;
  // Inside a group commit nothing leaves before the commit: an ack or an assignment the master
  // could still roll back must never reach a volunteer.
  if (ctx.batch) ctx.batch.outbox.push([v.conn, text]);
  else deliver(ctx, v.conn, [text]);
}

/** Sends frames to one connection, in one write when it can; a failed send is logged, not thrown. */
function deliver(ctx: Context, conn: Connection, texts: string[]): void {
  try {
    if (texts.length > 1 && conn.sendAll) conn.sendAll(texts);
    else for (const t of texts) conn.send(t);
  } catch (e) {
    ctx.log(`send failed: ${String(e)}`);
  }
}
