/**
 * The globals job code gets in the Node volunteer's sandbox, beyond ECMAScript's own: the portable
 * ones a Web Worker also has (shared/portable-globals.d.ts: timers, TextEncoder, TextDecoder) and
 * queueMicrotask. Nothing else: no fetch, no process, no require, no import(). Runs inside the
 * isolate, first thing in each job's context (sandbox-realm.ts imports it before the engine).
 *
 * Timers need a clock that runs while no job code does, so they are the one service the host
 * provides: it hands over two fire-and-forget callbacks on `globalThis.__tabreduceHost`, taken and
 * deleted here before any job code exists, and later calls `fireTimer(id)` when one is due.
 */
import { TextDecoder, TextEncoder } from './text-codec.js';

export interface RealmHost {
  /** Asks the host to call fireTimer(id) in `ms` milliseconds. */
  setTimer(id: number, ms: number): void;
  clearTimer(id: number): void;
}

const scope = globalThis as unknown as Record<string, unknown>;
const host = scope['__tabreduceHost'] as RealmHost;
delete scope['__tabreduceHost'];

/** Live timers per job context: far more than any job needs, few enough that the host's map stays small. */
const MAX_TIMERS = 100_000;

interface Timer {
  fn: (...args: unknown[]) => void;
  args: unknown[];
  /** The period of an interval; null for a timeout. */
  every: number | null;
}

const timers = new Map<number, Timer>();
let nextTimer = 1;
let uncaught: (e: unknown) => void = () => {};

/** Where errors thrown by timer and microtask callbacks go (the running task fails with them). */
export function onUncaught(handler: (e: unknown) => void): void {
  uncaught = handler;
}

function delay(ms: unknown): number {
  const n = Number(ms);
  return Number.isFinite(n) && n > 0 ? Math.min(n, 2 ** 31 - 1) : 0;
}

function schedule(fn: unknown, ms: unknown, args: unknown[], repeat: boolean): number {
  if (typeof fn !== 'function') throw new TypeError('the callback of a timer must be a function');
  if (timers.size >= MAX_TIMERS) throw new RangeError(`more than ${MAX_TIMERS} timers at once`);
  const id = nextTimer++;
  const wait = delay(ms);
  timers.set(id, { fn: fn as Timer['fn'], args, every: repeat ? wait : null });
  host.setTimer(id, wait);
  return id;
}

function clear(id: unknown): void {
  if (typeof id === 'number' && timers.delete(id)) host.clearTimer(id);
}

/** Called by the host when timer `id` is due. */
export function fireTimer(id: number): void {
  const t = timers.get(id);
  if (!t) return;
  if (t.every === null) timers.delete(id);
  else host.setTimer(id, t.every);
  try {
    t.fn(...t.args);
  } catch (e) {
    uncaught(e);
  }
}

const globals: Record<string, unknown> = {
  setTimeout: (fn: unknown, ms?: unknown, ...args: unknown[]) => schedule(fn, ms, args, false),
  setInterval: (fn: unknown, ms?: unknown, ...args: unknown[]) => schedule(fn, ms, args, true),
  clearTimeout: clear,
  clearInterval: clear,
  queueMicrotask: (fn: unknown) => {
    if (typeof fn !== 'function') throw new TypeError('queueMicrotask needs a function');
    void Promise.resolve()
      .then(() => (fn as () => void)())
      .catch((e: unknown) => uncaught(e));
  },
  TextEncoder,
  TextDecoder,
};
for (const [name, value] of Object.entries(globals)) {
  Object.defineProperty(globalThis, name, { value, writable: true, configurable: true, enumerable: false });
}
