/**
 * A thread of the frame parser (frame-parser.ts): parses and checks a large frame from a volunteer
 * so that the master's event loop never does.
 */
import { parentPort } from 'node:worker_threads';
import { readlinkSync } from 'node:fs';
import { setPriority } from 'node:os';
import { parseVolunteerMessage } from '../shared/protocol.js';

/**
 * This thread runs at a lower priority than the event loop. A crafted 16 MB frame costs it seconds
 * of parsing and GC; at equal priority, on two cores, that competed with the event loop for CPU and
 * /healthz's p99 rose to 425 ms under `npm run bench -- frames`. On Linux a thread's id (from
 * /proc/thread-self) takes a priority of its own; elsewhere the thread keeps the process's.
 */
try {
  setPriority(Number(readlinkSync('/proc/thread-self').split('/').pop()), 10);
} catch {
  // not Linux, or not allowed: parse at the normal priority
}

export interface ParseRequest {
  id: number;
  bytes: Uint8Array;
}

export type ParseReply = { id: number } & ReturnType<typeof parseVolunteerMessage>;

const decoder = new TextDecoder();

parentPort!.on('message', (req: ParseRequest) => {
  const parsed = parseVolunteerMessage(decoder.decode(req.bytes));
  parentPort!.postMessage({ id: req.id, ...parsed } satisfies ParseReply);
});
