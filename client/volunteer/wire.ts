/**
 * What crosses between the page, the session worker and the job workers. Wire types alone, as in
 * Comlink's own protocol.ts: each side imports these and nothing of the other side.
 */
import type { SerializedError } from '../../shared/errors.js';
import type { TaskStats } from '../../shared/protocol.js';
import type { SkipOptions } from '../../shared/task-runner.js';
import { noStageTimes, type SessionSnapshot } from '../../shared/volunteer-session.js';

export interface Identity {
  id: string;
  secret: string;
}

/** How the page asks the session worker to run. */
export interface SessionConfig {
  /** ws:// or wss:// URL of the master's /ws. */
  url: string;
  threads: number;
  prefetch: number;
  paused: boolean;
  agent: string;
  /** The name the visitor chose ('' for none); sent with hello and whenever it changes. */
  name?: string;
  identity: Identity | null;
}

/** The session's snapshot plus which held tasks are in a Web Worker right now (the rest wait). */
export interface TabSnapshot extends SessionSnapshot {
  computing: string[];
  /** Processor time given so far: the sum over threads of time spent running tasks, ms. */
  computeMs: number;
  /** While reconnecting: when the next attempt is due (epoch ms). */
  retryAt: number | null;
}

/** What the page shows before the session worker has said anything. */
export function initialSnapshot(): TabSnapshot {
  return {
    state: 'connecting',
    volunteerId: null,
    paused: false,
    threads: 1,
    tasks: [],
    done: 0,
    failed: 0,
    bytesDone: 0,
    lastError: null,
    retryInMs: null,
    stages: { map: noStageTimes(), reduce: noStageTimes() },
    computing: [],
    computeMs: 0,
    retryAt: null,
  };
}

/** The session worker's API, called by the page through Comlink. */
export interface SessionWorkerApi {
  start(config: SessionConfig, onChange: (s: TabSnapshot) => void, saveIdentity: (id: Identity) => void): void;
  setPaused(paused: boolean): void;
  setThreads(threads: number): void;
  setName(name: string): void;
}

/**
 * One task for a job worker. The input travels as UTF-8 bytes in a transferred ArrayBuffer (the
 * split's text for a map, the records text for a reduce): a move, not a structured-clone copy.
 */
export interface JobRequest {
  moduleUrl: string;
  phase: 'map' | 'reduce';
  nReduce: number;
  /** Map only: the input file's base name. */
  key: string;
  data: ArrayBuffer;
  /** Map only, when its job skips bad lines. */
  skip?: SkipOptions;
}

export type JobReply =
  | {
      ok: true;
      stats: TaskStats;
      /** The output in UTF-8 (a map's records, a reduce's `key<TAB>value` lines), transferred back. */
      output: ArrayBuffer;
    }
  | { ok: false; error: SerializedError };

export interface JobWorkerApi {
  run(req: JobRequest): Promise<JobReply>;
}

/**
 * Posted (outside Comlink) by a job worker whose job code called close(): a closed worker otherwise
 * goes silent, and its task would look merely slow until the hard limit.
 */
export const CLOSED_NOTICE = 'tabreduce.worker-closed';
export interface ClosedNotice {
  type: typeof CLOSED_NOTICE;
}

export function isClosedNotice(data: unknown): data is ClosedNotice {
  return typeof data === 'object' && data !== null && (data as { type?: unknown }).type === CLOSED_NOTICE;
}
