/** The tab's settings: `?threads=N` (the contract), `?prefetch=N`, and what the visitor chose before a reload. */

export interface TabSettings {
  threads: number;
  /**
   * Tasks held beyond the threads, 1 by default: the next task's input arrives while the last one's
   * output goes up, so a thread does not sit idle for the round trip between tasks (since inputs and
   * outputs travel over HTTP, a fifth of a short map task's time). The master times a task held
   * beyond the threads from when a thread is due to take it (server/scheduler/memory.ts
   * `clockStart`), so waiting draws no needless backup; a closed tab's extra task waits 10 s like
   * the rest.
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
    prefetch: intParam(params, 'prefetch', 0, 16) ?? 1,
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

/** This browser's localStorage (kept across visits), or null where it is disabled. */
export function localStore(): Storage | null {
  try {
    return window.localStorage;
  } catch {
    return null;
  }
}

const NAME_KEY = 'tabreduce.name';
const RULES_KEY = 'tabreduce.rules';

/** When the tab computes, as the visitor chose; kept for every tab of this browser. */
export interface Rules {
  /** Only while this tab is visible: a hidden tab (another tab in front, a minimised window) pauses. */
  visibleOnly: boolean;
  /** Pause while the computer runs on battery, where the browser tells (navigator.getBattery). */
  pauseOnBattery: boolean;
}

export function readName(storage: Storage | null): string {
  try {
    return storage?.getItem(NAME_KEY) ?? '';
  } catch {
    return '';
  }
}

export function saveName(storage: Storage | null, name: string): void {
  try {
    if (name) storage?.setItem(NAME_KEY, name);
    else storage?.removeItem(NAME_KEY);
  } catch {
    // Without storage the name lasts for this page.
  }
}

export function readRules(storage: Storage | null): Rules {
  try {
    const v = JSON.parse(storage?.getItem(RULES_KEY) ?? '{}') as Partial<Rules> | null;
    return { visibleOnly: v?.visibleOnly === true, pauseOnBattery: v?.pauseOnBattery === true };
  } catch {
    return { visibleOnly: false, pauseOnBattery: false };
  }
}

export function saveRules(storage: Storage | null, rules: Rules): void {
  try {
    storage?.setItem(RULES_KEY, JSON.stringify(rules));
  } catch {
    // see saveName
  }
}

const COMPUTE_KEY = 'tabreduce.computeMs';

/**
 * Processor time this identity gave in earlier pages of this tab. The master does not count it,
 * so the tab keeps it next to the identity (sessionStorage) and a reload goes on from it.
 */
export function readComputeMs(storage: Storage | null, volunteerId: string): number {
  try {
    const v = JSON.parse(storage?.getItem(COMPUTE_KEY) ?? 'null') as { id?: unknown; ms?: unknown } | null;
    return v && v.id === volunteerId && typeof v.ms === 'number' && v.ms >= 0 ? v.ms : 0;
  } catch {
    return 0;
  }
}

export function saveComputeMs(storage: Storage | null, volunteerId: string, ms: number): void {
  try {
    storage?.setItem(COMPUTE_KEY, JSON.stringify({ id: volunteerId, ms: Math.round(ms) }));
  } catch {
    // see saveName
  }
}
