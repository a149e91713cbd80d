/**
 * Volunteer identity and presence: a socket proves an old identity with its secret (a reloaded tab
 * or a reconnect keeps its tasks), or gets a new one; closes, signs of life and stalls are noted
 * here for the lease sweeper, and last-seen times reach the volunteer table in slices.
 */
import { randomBytes } from 'node:crypto';
import { safeEqual } from '../secrets.js';
import { isStorageError } from '../storage-errors.js';
import type { HelloMessage, VolunteerMessage } from '../../shared/protocol.js';
import { toError } from '../../shared/errors.js';
import { countOf } from '../../shared/units.js';
import { cleanVolunteerName } from '../../shared/volunteer-label.js';
import { emit, type Connection, type Context, type Volunteer } from './context.js';
import { newVolunteer, refreshTrust } from './memory.js';
import { send } from './group-commit.js';

/** How often a connected volunteer's last-seen time reaches the database. */
const VOLUNTEER_SAVE_MS = 30_000;

/**
 * A socket sent a valid `hello`: attaches it to its old identity when it proves it, else to a new
 * one. Returns the leases the master gave this volunteer that it no longer has (a reloaded tab:
 * they are lost now rather than after the reassignment delay) and the ones it keeps.
 */
export function attach(
  ctx: Context,
  conn: Connection,
  msg: HelloMessage,
  address: string,
): { v: Volunteer; gone: string[]; kept: string[] } {
  const { volunteers } = ctx.mem;
  const now = ctx.clock.now();
  let v = msg.volunteerId ? volunteers.get(msg.volunteerId) : undefined;
  if (v && !safeEqual(v.secret, msg.secret)) v = undefined;
  if (!v && msg.volunteerId && msg.secret) {
    const row = ctx.stores.volunteers.get(msg.volunteerId);
    if (row && safeEqual(row.secret, msg.secret)) {
      v = newVolunteer(row.id, row.secret, row.agent, row.threads, now);
      v.done = row.done;
      volunteers.set(v.id, v);
    }
  }
  if (!v) {
    v = newVolunteer(randomBytes(8).toString('hex'), randomBytes(16).toString('hex'), msg.agent, msg.threads, now);
    volunteers.set(v.id, v);
  } else if (v.conn && v.conn !== conn) {
    v.conn.close(4001, 'replaced by a newer connection');
  }
  v.conn = conn;
  v.address = address;
  refreshTrust(ctx, v.id);
  v.closedAt = null;
  v.lastSeenAt = now;
  v.agent = msg.agent;
  v.name = cleanVolunteerName(msg.name ?? '');
  v.threads = msg.threads;
  v.slots = msg.slots;
  v.paused = msg.paused;
  ctx.stores.volunteers.upsert({
    id: v.id,
    secret: v.secret,
    agent: v.agent,
    connected_at: v.connectedAt,
    last_seen_at: now,
    threads: v.threads,
  });
  const held = new Set(msg.running);
  const gone = [...v.running].filter((l) => !held.has(l));
  const kept = msg.running.filter((l) => v.running.has(l));
  return { v, gone, kept };
}

/** Tells an attached volunteer who it is and which of its tasks it keeps. */
export function welcome(ctx: Context, v: Volunteer, kept: string[]): void {
  send(ctx, v, {
    type: 'welcome',
    volunteerId: v.id,
    secret: v.secret,
    heartbeatMs: ctx.heartbeatMs,
    kept,
    ...(ctx.maxMessageBytes === null ? {} : { maxMessageBytes: ctx.maxMessageBytes }),
    inlineBytes: ctx.inlineBytes,
    maxOutputBytes: ctx.maxOutputBytes,
    totals: { done: v.done, bytes: v.bytes },
  });
  ctx.log(
    `volunteer ${v.id} connected (${countOf(v.threads, 'thread')}${kept.length ? `, kept ${countOf(kept.length, 'task')}` : ''})`,
  );
  emit(ctx, { kind: 'volunteers' });
}

/** The volunteer changed its threads, slots or pause. */
export function update(ctx: Context, v: Volunteer, msg: Extract<VolunteerMessage, { type: 'volunteer.update' }>): void {
  v.threads = msg.threads;
  v.slots = msg.slots;
  v.paused = msg.paused;
  if (msg.name !== undefined) v.name = cleanVolunteerName(msg.name);
  emit(ctx, { kind: 'volunteers' });
}

export function closed(ctx: Context, v: Volunteer, conn: Connection): void {
  if (v.conn !== conn) return;
  v.conn = null;
  v.closedAt = ctx.clock.now();
  saveVolunteer(ctx, v);
  ctx.log(
    `volunteer ${v.id} disconnected${v.running.size ? `; ${countOf(v.running.size, 'task')} wait ${ctx.reassignAfterMs}ms for it` : ''}`,
  );
  emit(ctx, { kind: 'volunteers' });
}

/** Any frame from a volunteer counts as a sign of life. */
export function seen(ctx: Context, v: Volunteer): void {
  v.lastSeenAt = ctx.clock.now();
}

/**
 * Drops a volunteer at once (it broke the protocol, or went silent): its socket is closed and it is
 * forgotten. Returns the leases it held, which the caller settles as lost now rather than after the
 * reassignment delay.
 */
export function detach(ctx: Context, v: Volunteer, code: number, reason: string): string[] {
  const conn = v.conn;
  v.conn = null;
  conn?.close(code, reason);
  saveVolunteer(ctx, v);
  ctx.mem.volunteers.delete(v.id);
  return [...v.running];
}

/**
 * Forgives `ms` of silence: the master itself was stalled that long, so messages volunteers sent
 * meanwhile have not been read yet. Without it one long stall would expel every volunteer.
 */
export function excuse(ctx: Context, ms: number): void {
  const now = ctx.clock.now();
  for (const v of ctx.mem.volunteers.values()) {
    if (v.closedAt !== null) v.closedAt = Math.min(now, v.closedAt + ms);
    else v.lastSeenAt = Math.min(now, v.lastSeenAt + ms);
  }
}

/**
 * Writes volunteers' last-seen times, which the master keeps in memory, to the volunteer table:
 * those not written for `VOLUNTEER_SAVE_MS`, at most `max` of them (all with `Infinity`, at
 * shutdown). Every 5 s for everyone, that was 2,000 updates a second under 10,000 volunteers and
 * a stall each time; in slices it is 400 small updates a second and no stall. The time is a record
 * only: the 10-second rules run on the master's memory, and after a restart on the restart time.
 */
export function saveVolunteers(ctx: Context, max: number): number {
  const now = ctx.clock.now();
  let saved = 0;
  ctx.stores.transaction(() => {
    for (const v of ctx.mem.volunteers.values()) {
      if (saved >= max) break;
      if (max !== Infinity && now - v.savedAt < VOLUNTEER_SAVE_MS) continue;
      saveVolunteer(ctx, v);
      saved++;
    }
  });
  return saved;
}

/**
 * Best effort: it runs when sockets close, where a throw would take the master down, and a full
 * disk must not. What it writes is a record; the next save catches up once there is space.
 */
function saveVolunteer(ctx: Context, v: Volunteer): void {
  v.savedAt = ctx.clock.now();
  try {
    ctx.stores.volunteers.seen(v.id, v.lastSeenAt);
  } catch (e) {
    if (!isStorageError(e)) throw e;
    ctx.log(`could not save volunteer ${v.id}: ${toError(e).message}`);
  }
}
