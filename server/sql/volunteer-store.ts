import type { Db } from '../db.js';

export interface VolunteerRow {
  id: string;
  secret: string;
  agent: string;
  connected_at: number;
  last_seen_at: number;
  threads: number;
  done: number;
}

export function createVolunteerStore(db: Db) {
  const upsert = db.prepare(`INSERT INTO volunteer (id, secret, agent, connected_at, last_seen_at, threads)
    VALUES (@id, @secret, @agent, @connected_at, @last_seen_at, @threads)
    ON CONFLICT (id) DO UPDATE SET agent = @agent, last_seen_at = @last_seen_at, threads = @threads`);
  const get = db.prepare('SELECT * FROM volunteer WHERE id = ?');
  const seen = db.prepare('UPDATE volunteer SET last_seen_at = ? WHERE id = ?');
  const done = db.prepare('UPDATE volunteer SET done = done + 1 WHERE id = ?');
  // The running attempts are few and indexed (attempt_running), so the subquery is read once.
  const idleSince = db
    .prepare(
      `SELECT id FROM volunteer WHERE last_seen_at < ?
       AND id NOT IN (SELECT volunteer_id FROM attempt WHERE outcome = 'running')`,
    )
    .pluck();
  const remove = db.prepare('DELETE FROM volunteer WHERE id = ?');

  return {
    upsert: (v: Omit<VolunteerRow, 'done'>) => upsert.run(v),
    get: (id: string) => get.get(id) as VolunteerRow | undefined,
    seen: (id: string, at: number) => seen.run(at, id),
    /** Counts one more committed task, in the transaction that commits it. */
    done: (id: string) => done.run(id),
    /** Volunteers last seen before `at` that hold no running attempt. */
    idleSince: (at: number) => idleSince.all(at) as string[],
    remove: (id: string) => remove.run(id).changes === 1,
  };
}
export type VolunteerStore = ReturnType<typeof createVolunteerStore>;
