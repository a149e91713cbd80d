/**
 * Parses large volunteer frames on a worker thread, so that no frame, however large or however
 * crafted, holds the master's event loop: the thread hands back a result's output in the form the
 * commit stores (frame-parser-worker.ts). One thread is enough: the byte budgets of ws-hub.ts bound
 * what reaches it, and on two cores a second would only compete with the event loop.
 */
import { Worker } from 'node:worker_threads';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Parsed, VolunteerMessage } from '../shared/protocol.js';
import type { ParseReply, ParseRequest } from './frame-parser-worker.js';

export interface FrameParser {
  /** Parses one frame; a frame the thread could not handle (it died) is answered as invalid. */
  parse(bytes: Uint8Array): Promise<Parsed<VolunteerMessage>>;
  close(): Promise<void>;
}

/** The thread, compiled beside this module in `dist/`, or from source under tsx (as the tests run). */
function spawn(): Worker {
  const compiled = new URL('./frame-parser-worker.js', import.meta.url);
  if (existsSync(fileURLToPath(compiled))) return new Worker(compiled);
  // As in wal-checkpointer.ts: on Node 20 tsx registers its loader on the main thread only.
  const source = new URL('./frame-parser-worker.ts', import.meta.url).href;
  const tsx = import.meta.resolve('tsx/esm/api');
  const boot = `import(${JSON.stringify(tsx)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(source)}); });`;
  return new Worker(boot, { eval: true, execArgv: [] });
}

export function createFrameParser(opts: { log: (line: string) => void }): FrameParser {
  let worker: Worker | null = null;
  let nextId = 0;
  let closing = false;
  const pending = new Map<number, (r: Parsed<VolunteerMessage>) => void>();

  const start = (): Worker => {
    const w = spawn();
    w.unref();
    w.on('message', (reply: ParseReply) => {
      const done = pending.get(reply.id);
      pending.delete(reply.id);
      done?.(reply.ok ? { ok: true, msg: reply.msg } : { ok: false, error: reply.error });
    });
    w.on('error', (e) => opts.log(`frame parser thread failed: ${e.message}`));
    w.on('exit', () => {
      if (worker === w) worker = null;
      // A frame that killed the thread (out of memory, say) is refused, and so are those queued behind it.
      for (const done of pending.values()) done({ ok: false, error: 'the frame could not be parsed' });
      pending.clear();
      if (!closing) opts.log('frame parser thread exited; a new one starts with the next large frame');
    });
    return w;
  };

  return {
    parse(bytes) {
      worker ??= start();
      const w = worker;
      const id = nextId++;
      return new Promise((resolve) => {
        pending.set(id, resolve);
        // The frame's own buffer moves to the thread when it is not shared with other data.
        const whole = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength;
        const own = whole ? bytes : new Uint8Array(bytes);
        w.postMessage({ id, bytes: own } satisfies ParseRequest, [own.buffer as ArrayBuffer]);
      });
    },
    async close() {
      closing = true;
      await worker?.terminate();
    },
  };
}
