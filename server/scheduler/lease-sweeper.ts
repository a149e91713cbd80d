/**
 * The 10-second rules, as a pure function of memory, the clock and the limits: which volunteers are
 * gone (closed, or silent, for `reassignAfterMs`: they lose their tasks), which tasks ran past their
 * timeout with one attempt (they get a backup), and which attempts never reported past the hard
 * limit (they are lost). The façade applies what is due; tests call `findDue` without SQLite.
 */
import { HARD_LIMIT_FACTOR, type Memory, type Volunteer } from './context.js';

export interface Due {
  /** Volunteers to expel; their running attempts are lost now. */
  gone: Volunteer[];
  /** Leases past the task's hard limit plus the reassignment delay: lost, and their holders told. */
  overdue: string[];
  /** Tasks whose only attempt passed the task timeout and that have no backup queued yet. */
  backups: number[];
}

type SweptMemory = Pick<Memory, 'volunteers' | 'leases' | 'taskLeases' | 'active' | 'needBackup'>;

/**
 * What is due at `now`. The leases of gone volunteers are left out of the other two lists, as they
 * are lost with their volunteer; a task that keeps one attempt after that may need a backup.
 */
export function findDue(mem: SweptMemory, now: number, reassignAfterMs: number): Due {
  const gone: Volunteer[] = [];
  const goneIds = new Set<string>();
  // Sweeps run four times a second over every volunteer and lease (10,000 of each under
  // `npm run bench -- load`): they read the indexes as they are and copy only what they act on.
  for (const v of mem.volunteers.values()) {
    if (now - (v.closedAt ?? v.lastSeenAt) >= reassignAfterMs) {
      gone.push(v);
      goneIds.add(v.id);
    }
  }
  const overdue: string[] = [];
  const backups: number[] = [];
  for (const [taskId, held] of mem.taskLeases) {
    let kept = held.size;
    if (goneIds.size > 0) for (const lease of held) if (goneIds.has(mem.leases.get(lease)!.volunteerId)) kept--;
    for (const lease of held) {
      const l = mem.leases.get(lease)!;
      if (goneIds.has(l.volunteerId)) continue;
      const job = mem.active.get(l.jobId);
      if (!job) continue;
      // The volunteer should have stopped the code at the hard limit; past that plus the
      // reassignment delay it is not reporting, so the attempt counts as lost.
      if (now - l.clockFrom >= job.taskTimeoutMs * HARD_LIMIT_FACTOR + reassignAfterMs) overdue.push(l.lease);
      if (kept === 1 && now - l.clockFrom >= job.taskTimeoutMs && !mem.needBackup.has(taskId)) backups.push(taskId);
    }
  }
  return { gone, overdue, backups };
}

/** Why a volunteer is gone, for the log and its attempts' error. */
export function goneReason(v: Volunteer, now: number): string {
  const since = v.closedAt ?? v.lastSeenAt;
  return v.conn ? `no message for ${now - since}ms` : `disconnected ${now - since}ms ago`;
}
