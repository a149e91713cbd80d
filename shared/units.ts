import { UserError } from './errors.js';

const DURATION = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h)?$/;
const DURATION_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** "10s", "500ms", "2m", or a bare number of milliseconds → milliseconds. */
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

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(Math.floor(s % 60)).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}
