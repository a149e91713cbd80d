import type { Db } from '../db.js';

/** An identity's record (README "Verification"). */
export interface TrustRow {
  volunteer_id: string;
  /** Its results that matched another independent volunteer's. */
  agreed: number;
  /** Its results that lost a vote; one is enough to lose trust for good. */
  rejected: number;
  /** Milliseconds of its verified work (README "Verification"). */
  credit_ms: number;
  changed_at: number;
}

export function createTrustStore(db: Db) {
  const get = db.prepare('SELECT * FROM trust WHERE volunteer_id = ?');
  const agreed = db.prepare(`INSERT INTO trust (volunteer_id, agreed, changed_at) VALUES (@id, 1, @at)
    ON CONFLICT (volunteer_id) DO UPDATE SET agreed = agreed + 1, changed_at = @at`);
  const rejected = db.prepare(`INSERT INTO trust (volunteer_id, rejected, changed_at) VALUES (@id, 1, @at)
    ON CONFLICT (volunteer_id) DO UPDATE SET rejected = rejected + 1, changed_at = @at`);
  const credit = db.prepare(`INSERT INTO trust (volunteer_id, credit_ms, changed_at) VALUES (@id, max(0, @ms), @at)
    ON CONFLICT (volunteer_id) DO UPDATE SET credit_ms = max(0, credit_ms + @ms), changed_at = @at`);
  const top = db.prepare('SELECT * FROM trust WHERE credit_ms > 0 ORDER BY credit_ms DESC LIMIT ?');
  const total = db.prepare('SELECT coalesce(sum(credit_ms), 0) FROM trust').pluck();
  return {
    get: (id: string) => get.get(id) as TrustRow | undefined,
    /** Adds `ms` (negative: taken back) to an identity's credit. */
    credit: (id: string, ms: number, at: number) => credit.run({ id, ms, at }),
    /** The identities with the most credit. */
    top: (n: number) => top.all(n) as TrustRow[],
    /** Credit of all identities together, ms. */
    total: () => total.get() as number,
    agreed: (id: string, at: number) => agreed.run({ id, at }),
    rejected: (id: string, at: number) => rejected.run({ id, at }),
  };
}
export type TrustStore = ReturnType<typeof createTrustStore>;
