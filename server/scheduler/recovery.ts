/**
 * Restart: memory is rebuilt from SQLite, the truth. Every volunteer that held a running attempt is
 * treated as disconnected now: it keeps its tasks if it reconnects within `reassignAfterMs`, like a
 * tab after a network blip, and loses them to others after that (lease-sweeper.ts).
 */
import { activate, blame, expel, leaseOf, newVolunteer, noteVote, track } from './memory.js';
import type { Context } from './context.js';

export function recover(ctx: Context): void {
  const { jobs, tasks, attempts, volunteers } = ctx.stores;
  const mem = ctx.mem;
  const now = ctx.clock.now();
  for (const job of jobs.active()) activate(ctx, job);
  for (const a of attempts.allRunning()) {
    const task = tasks.get(a.task_id)!;
    if (!mem.volunteers.has(a.volunteer_id)) {
      const row = volunteers.get(a.volunteer_id);
      const v = newVolunteer(a.volunteer_id, row?.secret ?? '', row?.agent ?? '', row?.threads ?? 1, now);
      v.closedAt = now;
      v.done = row?.done ?? 0;
      mem.volunteers.set(v.id, v);
    }
    track(ctx, leaseOf(a, task));
  }
  for (const a of attempts.blamedOfActiveJobs()) {
    blame(ctx, a.outcome === 'failed' ? mem.failedOn : mem.lostOn, a.job_id, a.task_id, a.volunteer_id, a.address);
  }
  // Votes waiting for a match, and who lost one: a task keeps needing its second vote after a restart.
  for (const a of attempts.votesOfActiveJobs()) {
    const task = tasks.get(a.task_id);
    if (task)
      noteVote(ctx, task.job_id, a.task_id, { volunteerId: a.volunteer_id, address: a.address, hash: a.hash ?? '' });
  }
  for (const a of attempts.rejectedOfActiveJobs()) {
    expel(ctx, a.job_id, a.volunteer_id);
    // Votes that remain beside a rejected one won: a result equal to them, from anyone, commits.
    const b = mem.votedOn.get(a.task_id);
    if (b) b.decided = true;
  }
  if (mem.leases.size > 0) {
    ctx.log(
      `recovered ${mem.leases.size} running attempts; their volunteers have ${ctx.reassignAfterMs}ms to reconnect`,
    );
  }
}
