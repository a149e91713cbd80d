/** Comparison of a secret someone presents (the admin token, a volunteer's secret) with the real one. */
import { timingSafeEqual } from 'node:crypto';

/**
 * Whether `given` is `expected`, in time that does not depend on where they first differ, so response
 * times cannot reveal a secret byte by byte. An empty secret was never issued, so nothing matches it.
 */
export function safeEqual(expected: string, given: string | undefined): boolean {
  if (given === undefined || expected === '') return false;
  const a = Buffer.from(expected);
  const b = Buffer.from(given);
  // timingSafeEqual throws on unequal lengths, and strings of one length may encode to different byte
  // lengths. The early answer can leak only the length, which for the secrets the master generates
  // (32 characters each) is public anyway.
  return a.length === b.length && timingSafeEqual(a, b);
}
