/**
 * The messages between `tabreduce volunteer` (node-volunteer.ts) and each of its sandbox processes
 * (sandbox-host.ts) over Node's IPC channel. Both ends are our code; job code never sees them.
 */
import type { SerializedError } from '../../shared/errors.js';
import type { TaskStats } from '../../shared/protocol.js';

/** A task as it crosses into the sandbox: a map's split as `key` + `data`, a reduce's records text as `data`. */
export interface SandboxTask {
  type: 'task';
  lease: string;
  jobId: string;
  moduleUrl: string;
  phase: 'map' | 'reduce';
  nReduce: number;
  key: string;
  data: string;
  /** A map's bad lines it may skip (0: none), and its split's first line number. */
  skipBadRecords: number;
  firstLine: number;
}

/** What the engine inside the isolate answers for one task: its output as the text the master stores. */
export type RealmReply = { ok: true; output: string; stats: TaskStats } | { ok: false; error: SerializedError };

export type ToSandbox =
  | SandboxTask
  /** The answer to `source.get`: the module's text and its full URL (stack traces name it), or why not. */
  | { type: 'source'; id: number; ok: true; url: string; source: string }
  | { type: 'source'; id: number; ok: false; error: SerializedError };

export type FromSandbox =
  /** Started: the isolate and the engine in it are ready for a first task. */
  | { type: 'ready' }
  /** The sandbox needs a job module's text: the volunteer fetches it from the master, once per job. */
  | { type: 'source.get'; id: number; moduleUrl: string }
  | ({ type: 'result'; lease: string } & RealmReply);
