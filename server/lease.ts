/**
 * Lease tokens: 32 hex digits, as the protocol requires. The first 12 are the time of issue in
 * milliseconds, the other 20 are 80 bits from the CSPRNG. Time first keeps the `lease` index
 * append-only: with purely random tokens each new attempt landed on a random page of that index,
 * and the COMMIT wrote one more scattered page to the WAL per task. 80 random bits still leave
 * a forger one chance in 10^24 per guess.
 */
import { randomFillSync } from 'node:crypto';

const RANDOM_BYTES = 10;
/** One CSPRNG call per 400 leases instead of one each. */
const pool = Buffer.alloc(RANDOM_BYTES * 400);
let used = pool.length;

export function newLease(now: number): string {
  if (used + RANDOM_BYTES > pool.length) {
    randomFillSync(pool);
    used = 0;
  }
  const random = pool.toString('hex', used, used + RANDOM_BYTES);
  used += RANDOM_BYTES;
  return Math.max(0, Math.floor(now)).toString(16).padStart(12, '0').slice(-12) + random;
}
