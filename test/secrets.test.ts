/** The comparison behind the admin token and volunteer secrets. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { safeEqual } from '../server/secrets.js';

test('safeEqual matches only the very secret, and never a missing or empty one', () => {
  const secret = 'f3a9c2e17b40d865';
  assert.equal(safeEqual(secret, secret), true);
  assert.equal(safeEqual(secret, `${secret.slice(0, -1)}0`), false);
  assert.equal(safeEqual(secret, secret.slice(0, -1)), false);
  assert.equal(safeEqual(secret, `${secret}0`), false);
  assert.equal(safeEqual(secret, undefined), false);
  assert.equal(safeEqual(secret, ''), false);
  assert.equal(safeEqual('', ''), false);
  // Same length in characters, not in bytes: refused rather than thrown.
  assert.equal(safeEqual('ab', 'aé'), false);
});
