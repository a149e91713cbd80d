/**
 * Summarises a V8 `.cpuprofile` (from `node --cpu-prof`) into what a reader needs to see where the
 * master's time goes: self time by area (SQLite, JSON, zod, ws, GC...), the hottest functions by
 * self time, and the master's own functions by inclusive time.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  hitCount?: number;
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export interface ProfileSummary {
  /** Wall time covered by the profile, ms. */
  wallMs: number;
  /** Time the main thread was not idle, ms. */
  busyMs: number;
  areas: { area: string; ms: number }[];
  hottest: { fn: string; ms: number }[];
  inclusive: { fn: string; ms: number }[];
}

/** Short location: the part of the URL after `dist/` or `node_modules/`. */
function where(url: string): string {
  if (!url) return '';
  const m = /(?:dist\/|node_modules\/)(.*)$/.exec(url);
  if (m) return m[1]!;
  // A page's scripts: the path on the master (/assets/…, /jobs/ID/module.js).
  return url.replace(/^file:\/\//, '').replace(/^https?:\/\/[^/]+/, '');
}

function label(f: CallFrame): string {
  const loc = where(f.url);
  return loc ? `${f.functionName || '(anonymous)'} ${loc}:${f.lineNumber + 1}` : f.functionName || '(native)';
}

/** The area a frame's time belongs to; frames without a URL (native) take their caller's area. */
function areaOf(f: CallFrame, parentArea: string): string {
  const { url, functionName: fn } = f;
  if (fn === '(garbage collector)') return 'GC';
  if (fn === '(idle)') return 'idle';
  if (fn === '(program)') return 'V8 / native (program)';
  if (!url) {
    if (fn === 'parse' || fn === 'stringify') return 'JSON parse/stringify';
    if (parentArea.startsWith('SQLite')) return 'SQLite (native statement execution)';
    return parentArea;
  }
  if (url.includes('better-sqlite3') || url.includes('/server/sql/')) return 'SQLite (JS side)';
  if (url.includes('node_modules/zod')) return 'zod validation';
  if (url.includes('node_modules/ws/')) return 'ws (WebSocket framing)';
  if (url.includes('hono')) return 'HTTP (hono)';
  if (url.includes('/dist/server/') || url.includes('/dist/shared/')) {
    return `master: ${where(url).replace(/\.js$/, '')}`;
  }
  if (url.startsWith('node:')) return 'Node internals (net, streams, timers)';
  return where(url);
}

export function summarizeProfile(file: string, top = 12): ProfileSummary {
  const p = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  // Self time per node: each sample's delta belongs to the node sampled.
  const self = new Map<number, number>();
  p.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (p.timeDeltas[i] ?? 0) / 1000));

  const area = new Map<number, string>();
  const areaFor = (id: number): string => {
    const known = area.get(id);
    if (known !== undefined) return known;
    const par = parent.get(id);
    const a = areaOf(byId.get(id)!.callFrame, par === undefined ? 'V8 / native (program)' : areaFor(par));
    area.set(id, a);
    return a;
  };

  const areas = new Map<string, number>();
  const hottest = new Map<string, number>();
  let busy = 0;
  for (const [id, ms] of self) {
    const a = areaFor(id);
    if (a !== 'idle') busy += ms;
    areas.set(a, (areas.get(a) ?? 0) + ms);
    const key = label(byId.get(id)!.callFrame);
    if (a !== 'idle') hottest.set(key, (hottest.get(key) ?? 0) + ms);
  }

  // Inclusive time of the master's own functions, counting a recursive function once per stack.
  const total = new Map<number, number>();
  const totalOf = (id: number): number => {
    const known = total.get(id);
    if (known !== undefined) return known;
    let t = self.get(id) ?? 0;
    for (const c of byId.get(id)!.children ?? []) t += totalOf(c);
    total.set(id, t);
    return t;
  };
  const inclusive = new Map<string, number>();
  const visit = (id: number, onStack: Set<string>) => {
    const f = byId.get(id)!.callFrame;
    const own = f.url.includes('/dist/server/') || f.url.includes('/dist/shared/');
    const key = label(f);
    const fresh = own && !onStack.has(key);
    if (fresh) {
      inclusive.set(key, (inclusive.get(key) ?? 0) + totalOf(id));
      onStack.add(key);
    }
    for (const c of byId.get(id)!.children ?? []) visit(c, onStack);
    if (fresh) onStack.delete(key);
  };
  const root = p.nodes.find((n) => !parent.has(n.id));
  if (root) visit(root.id, new Set());

  const sorted = (m: Map<string, number>) => [...m.entries()].sort((a, b) => b[1] - a[1]);
  return {
    wallMs: (p.endTime - p.startTime) / 1000,
    busyMs: busy,
    areas: sorted(areas)
      .filter(([a]) => a !== 'idle')
      .map(([a, ms]) => ({ area: a, ms })),
    hottest: sorted(hottest)
      .slice(0, top)
      .map(([fn, ms]) => ({ fn, ms })),
    inclusive: sorted(inclusive)
      .slice(0, top)
      .map(([fn, ms]) => ({ fn, ms })),
  };
}

/**
 * The newest main-thread `.cpuprofile` in a directory. Node names them
 * CPU.<date>.<time>.<pid>.<thread id>.<seq>.cpuprofile; the master's WAL checkpointer thread writes
 * one too, and thread 0 is the main thread, where the master's work is.
 */
export function findProfile(dir: string): string | null {
  const files = readdirSync(dir)
    .filter((f) => f.endsWith('.cpuprofile'))
    .sort();
  const main = files.filter((f) => /\.\d+\.0\.\d+\.cpuprofile$/.test(f));
  const pick = main.at(-1) ?? files.at(-1);
  return pick ? join(dir, pick) : null;
}

/** Text lines for a report's notes. */
export function renderProfile(s: ProfileSummary, title: string, what = 'the master'): string[] {
  const pct = (ms: number) => `${((ms / Math.max(1, s.busyMs)) * 100).toFixed(1).padStart(5)}%`;
  const out = [
    `### ${title}`,
    '',
    `profiled ${(s.wallMs / 1000).toFixed(1)} s of ${what}; busy ${(s.busyMs / 1000).toFixed(1)} s ` +
      `(${((s.busyMs / s.wallMs) * 100).toFixed(0)}% of one core). Shares below are of busy time.`,
    '',
    'self time by area:',
    ...s.areas.slice(0, 12).map((a) => `  ${pct(a.ms)}  ${a.area}`),
    '',
    'hottest functions (self time):',
    ...s.hottest.map((h) => `  ${pct(h.ms)}  ${h.fn}`),
    ...(s.inclusive.length > 0
      ? ['', "master's functions (inclusive time):", ...s.inclusive.map((h) => `  ${pct(h.ms)}  ${h.fn}`)]
      : []),
  ];
  return out.map((l) => (l.startsWith('###') || l === '' ? l : `    ${l}`));
}
