/**
 * Job stacks in the author's terms. `tabreduce submit` bundles a job with an inline source map
 * (server/cli/bundle.ts) and volunteers run the bundle as it is: no engine they have maps a stack
 * (Chromium's `Error.stack` ignores source maps, isolated-vm has none), so their stacks name lines of
 * the bundle. The master, which holds the module and its map, rewrites each frame that names the
 * module to the author's `job.ts:LINE:COLUMN` once, when the failure arrives; `tabreduce local` does
 * the same for its own runs. A module without a map, or a map that does not decode, leaves stacks as
 * they are.
 */
import type { SerializedError } from '../shared/errors.js';

/** One mapped span of a generated line: where it starts, and the source position it came from. */
interface Segment {
  column: number;
  source: number;
  line: number;
  sourceColumn: number;
}

export interface SourceMap {
  sources: string[];
  /** Segments of each generated line (0-based), by ascending column. */
  lines: Segment[][];
}

export interface SourcePosition {
  source: string;
  /** 1-based, as stacks count. */
  line: number;
  column: number;
}

const INLINE_MAP = /\/\/# sourceMappingURL=data:application\/json(?:;charset=[\w-]+)?;base64,([A-Za-z0-9+/]+=*)\s*$/;
const BASE64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const DIGIT = new Int8Array(128).fill(-1);
for (let i = 0; i < BASE64.length; i++) DIGIT[BASE64.charCodeAt(i)] = i;

/** Decodes a source map's `mappings` (base64 VLQ, fields relative to the previous segment's). */
export function decodeMappings(mappings: string): Segment[][] {
  const lines: Segment[][] = [];
  let line: Segment[] = [];
  let source = 0;
  let sourceLine = 0;
  let sourceColumn = 0;
  let column = 0;
  const fields: number[] = [];
  let value = 0;
  let shift = 0;
  const endSegment = () => {
    if (fields.length >= 4) {
      column += fields[0]!;
      source += fields[1]!;
      sourceLine += fields[2]!;
      sourceColumn += fields[3]!;
      line.push({ column, source, line: sourceLine, sourceColumn });
    } else if (fields.length >= 1) {
      column += fields[0]!;
    }
    fields.length = 0;
  };
  for (let i = 0; i < mappings.length; i++) {
    const c = mappings.charCodeAt(i);
    if (c === 59 /* ; */ || c === 44 /* , */) {
      endSegment();
      if (c === 59) {
        lines.push(line.sort((a, b) => a.column - b.column));
        line = [];
        column = 0;
      }
      continue;
    }
    const d = c < 128 ? DIGIT[c]! : -1;
    if (d < 0) throw new Error(`invalid character in source map mappings at ${i}`);
    value += (d & 31) * 2 ** shift;
    shift += 5;
    if (d & 32) continue;
    fields.push(value % 2 === 1 ? -(value - 1) / 2 : value / 2);
    value = 0;
    shift = 0;
  }
  endSegment();
  lines.push(line.sort((a, b) => a.column - b.column));
  return lines;
}

/** The source map a module carries in its last line, or null if it has none or it does not decode. */
export function readInlineSourceMap(source: string): SourceMap | null {
  const m = INLINE_MAP.exec(source);
  if (!m) return null;
  try {
    const json = JSON.parse(Buffer.from(m[1]!, 'base64').toString('utf8')) as {
      sources?: unknown;
      sourceRoot?: unknown;
      mappings?: unknown;
    };
    if (!Array.isArray(json.sources) || typeof json.mappings !== 'string') return null;
    const root =
      typeof json.sourceRoot === 'string' && json.sourceRoot !== '' ? json.sourceRoot.replace(/\/?$/, '/') : '';
    return {
      sources: json.sources.map((s) => `${root}${String(s)}`),
      lines: decodeMappings(json.mappings),
    };
  } catch {
    return null;
  }
}

/** Where 1-based `line:column` of the generated code came from, or null if that span is not mapped. */
export function originalPosition(map: SourceMap, line: number, column: number): SourcePosition | null {
  const segments = map.lines[line - 1];
  if (!segments || segments.length === 0) return null;
  // The last segment that starts at or before the column.
  let lo = 0;
  let hi = segments.length - 1;
  if (segments[0]!.column > column - 1) return null;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (segments[mid]!.column <= column - 1) lo = mid;
    else hi = mid - 1;
  }
  const s = segments[lo]!;
  const source = map.sources[s.source];
  if (source === undefined) return null;
  return { source, line: s.line + 1, column: s.sourceColumn + 1 };
}

/**
 * `URL:LINE:COLUMN` at the end of a frame's token, as V8 (`at f (URL:L:C)`) and Firefox (`f@URL:L:C`)
 * write it; `prefix` is Firefox's `f@`. Stacks come from volunteers, so each token is parsed from
 * its end in one pass: one pattern over the whole stack took 90 ms on a crafted 20,000-character
 * stack (the protocol's limit), time the master's event loop would lose per failure.
 */
function frameLocation(token: string): { prefix: string; url: string; line: number; column: number } | null {
  const c = token.lastIndexOf(':');
  const l = c > 0 ? token.lastIndexOf(':', c - 1) : -1;
  if (l < 0) return null;
  const line = token.slice(l + 1, c);
  const column = token.slice(c + 1);
  if (!/^\d{1,9}$/.test(line) || !/^\d{1,9}$/.test(column)) return null;
  const head = token.slice(0, l);
  const at = head.lastIndexOf('@');
  const url = head.slice(at + 1);
  if (!/^[a-z][\w+.-]*:\/\//.test(url)) return null;
  return { prefix: head.slice(0, at + 1), url, line: Number(line), column: Number(column) };
}

/** Rewrites the locations in `stack` whose URL `isModule` accepts to positions in the map's sources. */
export function mapStack(stack: string, map: SourceMap, isModule: (url: string) => boolean): string {
  return stack
    .split(/([\s()]+)/)
    .map((token) => {
      const f = frameLocation(token);
      if (!f || !isModule(f.url)) return token;
      const p = originalPosition(map, f.line, f.column);
      return p ? `${f.prefix}${p.source}:${p.line}:${p.column}` : token;
    })
    .join('');
}

/** Decoded maps kept at once: a master has a few jobs failing at a time, and each decode is one pass. */
const CACHED_MAPS = 8;

/**
 * The master's mapper: `(jobId, error)` returns the error with its stack in the job's sources.
 * `moduleOf` reads a job's module (once per job while it stays among the newest few).
 */
export function createStackMapper(moduleOf: (jobId: string) => string | undefined) {
  const maps = new Map<string, SourceMap | null>();
  const mapOf = (jobId: string): SourceMap | null => {
    let map = maps.get(jobId);
    if (map === undefined) {
      const source = moduleOf(jobId);
      map = source === undefined ? null : readInlineSourceMap(source);
      maps.set(jobId, map);
      if (maps.size > CACHED_MAPS) maps.delete(maps.keys().next().value!);
    }
    return map;
  };
  const suffix = (jobId: string) => `/jobs/${jobId}/module.js`;
  return (jobId: string, error: SerializedError): SerializedError => {
    const map = error.stack ? mapOf(jobId) : null;
    if (!map || !error.stack) return error;
    const isModule = (url: string) => url.replace(/[?#].*$/, '').endsWith(suffix(jobId));
    return { ...error, stack: mapStack(error.stack, map, isModule) };
  };
}
