import type { Db } from '../db.js';

/** An identity's record (README "Verification"). */
export interface TrustRow {
  volunteer_id: string;
  /** Its results that matched another independent volunteer's. */
  agreed: number;
  /** Its results that lost a vote; one is enough to lose trust for good. */
  rejected: number;
  changed_at: number;
}

export function createTrustStore(db: Db) {
  const get = db.prepare('SELECT * FROM trust WHERE volunteer_id = ?');
  const agreed = db.prepare(`INSERT INTO trust (volunteer_id, agreed, changed_at) VALUES (@id, 1, @at)
    ON CONFLICT (volunteer_id) DO UPDATE SET agreed = agreed + 1, changed_at = @at`);
  const rejected = db.prepare(`INSERT INTO trust (volunteer_id, rejected, changed_at) VALUES (@id, 1, @at)
    ON CONFLICT (volunteer_id) DO UPDATE SET rejected = rejected + 1, changed_at = @at`);
  return {
    get: (id: string) => get.get(id) as TrustRow | undefined,
    agreed: (id: string, at: number) => agreed.run({ id, at }),
    rejected: (id: string, at: number) => rejected.run({ id, at }),
  };
}
export type TrustStore = ReturnType<typeof createTrustStore>;
