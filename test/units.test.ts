/** Sizes and durations as the CLI takes and the CLI and the two pages print them. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatBytes, formatDuration, parseDuration } from '../shared/units.js';

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

test('durations take days (serve --retain 7d) and print them past a day', () => {
  assert.deepEqual(
    ['500ms', '10s', '2m', '1.5h', '7d', '250'].map((t) => parseDuration(t)),
    [500, 10_000, 120_000, 5_400_000, 7 * 86_400_000, 250],
  );
  assert.throws(() => parseDuration('7 days', '--retain'), /--retain: "7 days" is not a duration/);
  assert.deepEqual(
    [1_500, 125_000, 3_660_000, 7 * 86_400_000, 30 * 86_400_000 + 5 * 3_600_000].map((ms) => formatDuration(ms)),
    ['1.5s', '2m05s', '1h01m', '7d00h', '30d05h'],
  );
});
