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
  const save = db.prepare('UPDATE volunteer SET last_seen_at = @at, done = @done WHERE id = @id');

  return {
    upsert: (v: Omit<VolunteerRow, 'done'>) => upsert.run(v),
    get: (id: string) => get.get(id) as VolunteerRow | undefined,
    /** Records when a volunteer was last heard from and how many tasks it has committed. */
    save: (id: string, at: number, done: number) => save.run({ id, at, done }),
  };
}
export type VolunteerStore = ReturnType<typeof createVolunteerStore>;
