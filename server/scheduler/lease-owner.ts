/**
 * Who may act on a lease. A result or failure names its lease; only the volunteer it was given to
 * may end it, and only while it runs. A forged or foreign lease is refused; a late one (its
 * volunteer was declared lost, or another attempt won) is answered `superseded`. Either way nothing
 * changes, and the sender hears why.
 */
import type { AttemptRow } from '../sql/attempt-store.js';
import type { Context, Lease, Volunteer } from './context.js';
import { leaseOf, track } from './memory.js';
import { send } from './group-commit.js';

/** Looks a lease up for `v` in the database; answers and returns undefined when `v` may not act on it. */
export function ownLease(ctx: Context, v: Volunteer, lease: string): AttemptRow | undefined {
  const a = ctx.stores.attempts.byLease(lease);
  if (!a) {
    refuse(ctx, v, lease, 'unknown lease');
    return undefined;
  }
  if (a.volunteer_id !== v.id) {
    refuse(ctx, v, lease, 'this lease belongs to another volunteer');
    return undefined;
  }
  if (a.outcome !== 'running') {
    if (a.outcome === 'lost') ctx.stores.attempts.relabel(lease, 'lost', 'superseded');
    ctx.counters.superseded++;
    send(ctx, v, { type: 'task.ack', lease, outcome: 'superseded', reason: `attempt already ${a.outcome}` });
    return undefined;
  }
  return a;
}

/**
 * The lease `v` may commit under, from memory (where every running attempt is) when it is there;
 * otherwise the database says why not and `v` is answered. Memory and database disagreeing would
 * be a bug: then the database wins and memory takes the lease back.
 */
export function heldLease(ctx: Context, v: Volunteer, lease: string): Lease | undefined {
  const l = ctx.mem.leases.get(lease);
  if (l && l.volunteerId === v.id) return l;
  const a = ownLease(ctx, v, lease);
  if (!a) return undefined;
  const task = ctx.stores.tasks.get(a.task_id)!;
  ctx.log(`lease ${lease} was running in the database but not in memory; taking it back`);
  const back = leaseOf(a, task);
  track(ctx, back);
  return back;
}

function refuse(ctx: Context, v: Volunteer, lease: string, reason: string): void {
  ctx.counters.refused++;
  v.refused++;
  send(ctx, v, { type: 'task.ack', lease, outcome: 'refused', reason });
}
