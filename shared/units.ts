import { UserError } from './errors.js';

const DURATION = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?$/;
const DURATION_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** "10s", "500ms", "2m", "7d", or a bare number of milliseconds → milliseconds. */
export function parseDuration(text: string, what = 'duration'): number {
  const m = DURATION.exec(text.trim());
  if (!m) throw new UserError(`${what}: "${text}" is not a duration (examples: 500ms, 10s, 2m)`);
  const ms = Number(m[1]) * DURATION_MS[m[2] ?? 'ms']!;
  if (!Number.isFinite(ms) || ms <= 0) throw new UserError(`${what}: must be more than zero`);
  return Math.round(ms);
}

const SIZE = /^(\d+(?:\.\d+)?)\s*(B|KiB|MiB|GiB|KB|MB|GB|K|M|G)?$/i;
const SIZE_BYTES: Record<string, number> = {
  b: 1,
  k: 1024,
  kib: 1024,
  kb: 1000,
  m: 1024 ** 2,
  mib: 1024 ** 2,
  mb: 1000 ** 2,
  g: 1024 ** 3,
  gib: 1024 ** 3,
  gb: 1000 ** 3,
};

/** "4MiB", "1KiB", "512", "2MB" → bytes. */
export function parseSize(text: string, what = 'size'): number {
  const m = SIZE.exec(text.trim());
  if (!m) throw new UserError(`${what}: "${text}" is not a size (examples: 4MiB, 64KiB, 1000)`);
  const bytes = Math.floor(Number(m[1]) * SIZE_BYTES[(m[2] ?? 'b').toLowerCase()]!);
  if (!Number.isFinite(bytes) || bytes < 1) throw new UserError(`${what}: must be at least 1 byte`);
  return bytes;
}

const BYTE_UNITS = {
  binary: { step: 1024, names: ['KiB', 'MiB', 'GiB', 'TiB'] },
  decimal: { step: 1000, names: ['kB', 'MB', 'GB', 'TB'] },
} as const;

/**
 * "1.5 MiB": binary units for the admin, as `--split-size` takes them; decimal units ("1.5 MB") for
 * a visitor, as a browser's downloads show them.
 */
export function formatBytes(n: number, units: keyof typeof BYTE_UNITS = 'binary'): string {
  const { step, names } = BYTE_UNITS[units];
  if (n < step) return `${n} B`;
  let v = n / step;
  let i = 0;
  while (v >= step && i < names.length - 1) {
    v /= step;
    i++;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${names[i]}`;
}

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(Math.floor(s % 60)).padStart(2, '0')}s`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h${String(m % 60).padStart(2, '0')}m`;
  return `${Math.floor(h / 24)}d${String(h % 24).padStart(2, '0')}h`;
}

/** "1 thread", "2 threads": a count with its noun, for log lines and messages. */
export function countOf(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}
