/** The tab's settings: `?threads=N` (the contract), `?prefetch=N`, and what the visitor chose before a reload. */

export interface TabSettings {
  threads: number;
  /**
   * Tasks held beyond the threads. 0 by default: a task waiting in a tab still ages toward the job's
   * task timeout (drawing a needless backup attempt) and is lost for 10 s if the tab closes, while the
   * round trip it would hide is small: word count over 13 MB with 2 tabs and 1 MiB splits took
   * 12.5 s and 16.3 s with 0, 12.8 s and 15.2 s with 1 (alternating runs, loaded 2-core machine).
   */
  prefetch: number;
  /** Logical processors the browser reports (navigator.hardwareConcurrency). */
  cores: number;
  paused: boolean;
}

export const MAX_THREADS = 256;

/** This tab's sessionStorage, or null where the browser's privacy settings disable it. */
export function sessionStore(): Storage | null {
  try {
    return window.sessionStorage;
  } catch {
    return null;
  }
}
const PAUSED_KEY = 'tabreduce.paused';

function intParam(params: URLSearchParams, name: string, min: number, max: number): number | null {
  const raw = params.get(name);
  if (raw === null || !/^\d+$/.test(raw.trim())) return null;
  return Math.min(max, Math.max(min, Number(raw)));
}

/** Half the cores, at least 1: the visitor keeps the other half for everything else they do. */
export function defaultThreads(cores: number): number {
  return Math.max(1, Math.floor(cores / 2));
}

export function readSettings(search: string, cores: number | undefined, storage: Storage | null): TabSettings {
  const params = new URLSearchParams(search);
  const n = cores && cores > 0 ? cores : 1;
  return {
    threads: intParam(params, 'threads', 1, MAX_THREADS) ?? defaultThreads(n),
    prefetch: intParam(params, 'prefetch', 0, 16) ?? 0,
    cores: n,
    paused: storage?.getItem(PAUSED_KEY) === '1',
  };
}

/** Pause survives a reload of this tab: a visitor who paused does not expect a reload to resume. */
export function savePaused(storage: Storage | null, paused: boolean): void {
  try {
    if (paused) storage?.setItem(PAUSED_KEY, '1');
    else storage?.removeItem(PAUSED_KEY);
  } catch {
    // Storage can be full or disabled; pause still works for this page.
  }
}

/** The threads choice goes into the address, so a reload or a bookmark keeps it. */
export function threadsUrl(href: string, threads: number): string {
  const url = new URL(href);
  url.searchParams.set('threads', String(threads));
  return url.toString();
}
