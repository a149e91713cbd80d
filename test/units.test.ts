/** Sizes as the CLI and the two pages print them. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatBytes } from '../shared/units.js';

test('formatBytes counts in binary units for the admin and in decimal units for a visitor', () => {
  assert.deepEqual(
    [1023, 1024, 15_872, 4 * 1024 ** 2, 3 * 1024 ** 3].map((n) => formatBytes(n)),
    ['1023 B', '1.0 KiB', '16 KiB', '4.0 MiB', '3.0 GiB'],
  );
  assert.deepEqual(
    [999, 1000, 15_300, 2_500_000, 3e9].map((n) => formatBytes(n, 'decimal')),
    ['999 B', '1.0 kB', '15 kB', '2.5 MB', '3.0 GB'],
  );
});
