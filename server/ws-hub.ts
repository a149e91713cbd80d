import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { parseVolunteerMessage, type Parsed, type VolunteerMessage } from '../shared/protocol.js';
import type { FrameParser } from './frame-parser.js';
import type { Connection, Scheduler, Volunteer } from './scheduler/index.js';
import { isStorageError } from './storage-errors.js';
import type { OriginGate } from './origin-check.js';

export interface HubOptions {
  /** Largest frame a volunteer may send; larger ones close the socket with 1009. */
  maxMessageBytes: number;
  /** Concurrent volunteer sockets from one IP address; more are refused with 429. */
  maxPerIp: number;
  /** Parses large frames off the event loop. */
  parser: FrameParser;
  log: (line: string) => void;
  /** Which pages may open `/ws` (origin-check.ts); refused ones get 403. */
  admitOrigin: OriginGate;
}

/** A socket that has not said hello within this long is closed (slowloris guard). */
const HELLO_TIMEOUT_MS = 10_000;
/**
 * Messages a volunteer may send per second, on average and in a burst. A 16-thread tab committing
 * 1 KiB tasks sends ~400/s (measured with the dispatch benchmark); 2,000 leaves room and still cuts
 * off a flood long before it costs the master real CPU.
 */
const RATE_PER_SECOND = 2_000;
const RATE_BURST = 4_000;
/**
 * Frames larger than this are parsed on the frame parser's thread. JSON.parse of a crafted 64 MB
 * frame (millions of tiny arrays) held the event loop for seconds (`npm run bench -- frames`);
 * below 256 KiB a parse takes about a millisecond, less than the hand-off to a thread.
 */
export const OFF_THREAD_BYTES = 256 * 1024;
/** Invalid frames, and results for leases the sender does not hold, tolerated before the socket is closed. */
const MAX_INVALID = 20;
/**
 * Bytes a socket may send before its hello is accepted. A hello is a few hundred bytes, or 36 KB
 * with the 1,024 leases the protocol lets a reconnecting volunteer list; anything larger is not a
 * volunteer, and is cut off before the master buffers, let alone parses, a frame of up to
 * `--max-message`.
 */
export const PRE_HELLO_BYTES = 48 * 1024;
/**
 * Bytes per second a socket, and all the sockets of one address together, may send, on average; a
 * burst may be one `--max-message` frame. Past that the master stops reading the socket (TCP pushes
 * back on the sender) until the budget refills: an honest tab's large result arrives a little
 * later, while a flood costs the master no more than this rate of parsing. A 16-thread tab of the
 * dispatch benchmark sends ~1 MB/s. At 64 MiB/s per address, crafted 16 MB results for made-up
 * leases held /healthz's p99 at 232 ms (`npm run bench -- frames`, attacker on the same 2 cores);
 * at 16 MiB/s, one such frame a second, it was 106 ms with the box busy with other work.
 */
export const BYTES_PER_SECOND = 16 * 1024 ** 2;
/**
 * New volunteer sockets an address may open per second, on average and in a burst. A reconnecting
 * volunteer opens one every second or so with backoff; a classroom behind one NAT opening its tabs
 * at once fits in the burst. An attacker reconnecting in a loop (3,600 sockets in 10 s under
 * `npm run bench -- frames`) cost the master a third of a core in handshakes alone.
 */
export const CONNECTIONS_PER_SECOND = 50;
export const CONNECTIONS_BURST = 500;
export const BYTES_PER_SECOND_PER_ADDRESS = 16 * 1024 ** 2;

/** Accepts volunteer WebSockets on `/ws`, validates every frame, and feeds the scheduler. */
export function createHub(scheduler: Scheduler, opts: HubOptions) {
  const perIp = new Map<string, number>();
  const addressBudgets = new Map<string, ByteBudget>();
  const wss = new WebSocketServer({ noServer: true, maxPayload: opts.maxMessageBytes, perMessageDeflate: false });

  wss.on('connection', (ws: WebSocket, req: IncomingMessage) => {
    let volunteer: Volunteer | null = null;
    /** Frames of this socket waiting for a large one before them to be parsed off-thread. */
    let queue: Promise<void> | null = null;
    const address = req.socket.remoteAddress ?? '?';
    meterBytes(req.socket as Socket, address, () => volunteer !== null);
    let tokens = RATE_BURST;
    let refilledAt = Date.now();
    let invalid = 0;
    const send = (text: string) => {
      if (ws.readyState !== ws.OPEN) return;
      // A client that stops reading would make the master buffer for it without end. It would not
      // read a close frame either, so the socket is cut at once; its tasks wait the usual delay.
      if (ws.bufferedAmount > opts.maxMessageBytes * 2) {
        opts.log(`volunteer socket stopped reading (${ws.bufferedAmount} bytes waiting); cutting it`);
        ws.terminate();
        return;
      }
      ws.send(text);
    };
    const conn: Connection = {
      send,
      sendAll: (texts) => {
        // Corked, the frames leave in one write instead of one system call each.
        const socket = (ws as unknown as { _socket?: Duplex })._socket;
        socket?.cork();
        try {
          for (const t of texts) send(t);
        } finally {
          socket?.uncork();
        }
      },
      close: (code, reason) => ws.close(code, reason),
    };
    const reply = (message: string) => conn.send(JSON.stringify({ type: 'error', message }));
    const helloTimer = setTimeout(() => ws.close(4002, 'no hello'), HELLO_TIMEOUT_MS);

    ws.on('message', (data, isBinary) => {
      // Frames still arriving on a socket the master is closing are not acted on.
      if (ws.readyState !== ws.OPEN) return;
      const now = Date.now();
      tokens = Math.min(RATE_BURST, tokens + ((now - refilledAt) / 1000) * RATE_PER_SECOND);
      refilledAt = now;
      if (--tokens < 0) {
        ws.close(1008, 'too many messages');
        return;
      }
      if (isBinary) {
        reply('binary frames are not part of the protocol; send JSON text');
        if (++invalid > MAX_INVALID) ws.close(1008, 'too many invalid messages');
        return;
      }
      const bytes = data as Buffer;
      // A large frame is parsed on another thread; the socket's frames are handled in order, so
      // the ones after it wait for it.
      if (queue || bytes.length > OFF_THREAD_BYTES) {
        const prev = queue ?? Promise.resolve();
        const mine: Promise<void> = prev
          .then(async () => {
            const parsed = bytes.length > OFF_THREAD_BYTES ? await opts.parser.parse(bytes) : parse(bytes);
            if (ws.readyState === ws.OPEN) act(parsed);
          })
          .catch((e: unknown) => opts.log(`could not parse a frame: ${(e as Error).message}`))
          .finally(() => {
            if (queue === mine) queue = null;
          });
        queue = mine;
        return;
      }
      act(parse(bytes));
    });

    const parse = (bytes: Buffer) => parseVolunteerMessage(bytes.toString());

    /** Acts on one parsed frame. */
    const act = (parsed: Parsed<VolunteerMessage>): void => {
      if (!parsed.ok) {
        reply(`invalid message: ${parsed.error}`);
        if (++invalid > MAX_INVALID) ws.close(1008, 'too many invalid messages');
        return;
      }
      // Results for leases the sender does not hold cost as much as invalid frames, so they share the budget.
      if (volunteer && invalid + volunteer.refused > MAX_INVALID) {
        ws.close(1008, 'too many invalid messages');
        return;
      }
      const msg = parsed.msg;
      try {
        if (!volunteer) {
          if (msg.type !== 'hello') {
            reply('the first message must be hello');
            return;
          }
          clearTimeout(helloTimer);
          volunteer = scheduler.batched(() => scheduler.hello(conn, msg, address));
          return;
        }
        const v = volunteer;
        // A heartbeat writes nothing: it needs no transaction (they are most of the frames: 10,000
        // volunteers send 5,000 a second).
        if (msg.type === 'heartbeat') scheduler.seen(v);
        else scheduler.batched(() => scheduler.handle(v, msg));
        if (v.refused + invalid > MAX_INVALID) ws.close(1008, 'too many results for leases it does not hold');
      } catch (e) {
        if (isStorageError(e)) {
          // The group commit was rolled back (the scheduler reloaded its state and closes every
          // socket). The volunteer keeps its results; it reconnects with backoff and sends them
          // again, by which time space may have been freed.
          opts.log(`storage error handling ${msg.type}: ${(e as Error).message}; asking the volunteer to retry`);
          ws.close(1011, 'master storage full; retrying');
          return;
        }
        // A bug must not take the master down, nor leave the attempt it concerned running for ever:
        // that attempt ends lost, and the sender hears why and is dropped.
        opts.log(`error handling ${msg.type}: ${(e as Error).stack ?? String(e)}`);
        reply(`the master could not handle ${msg.type}`);
        const v = volunteer;
        if (v && msg.type !== 'hello') {
          try {
            scheduler.batched(() => scheduler.dropAfterError(v, e as Error));
          } catch (again) {
            opts.log(`could not drop volunteer ${v.id}: ${(again as Error).message}`);
          }
        }
      }
    };
    ws.on('close', () => {
      clearTimeout(helloTimer);
      if (volunteer) scheduler.closed(volunteer, conn);
    });
    ws.on('error', (e) => opts.log(`volunteer socket error: ${e.message}`));
  });

  /**
   * New sockets per address: a token bucket. An operator who raises `--max-per-ip` expects that many
   * volunteers from one address to (re)connect together, so the burst is at least that.
   */
  const connectionBudgets = new Map<string, { tokens: number; at: number }>();
  const burst = Math.max(CONNECTIONS_BURST, opts.maxPerIp);
  const rate = Math.max(CONNECTIONS_PER_SECOND, opts.maxPerIp / 10);
  function takeConnection(ip: string): boolean {
    const now = performance.now();
    const b = connectionBudgets.get(ip) ?? { tokens: burst, at: now };
    b.tokens = Math.min(burst, b.tokens + ((now - b.at) / 1000) * rate);
    b.at = now;
    connectionBudgets.set(ip, b);
    // Forget full buckets now and then, so addresses seen once do not pile up.
    if (connectionBudgets.size > 10_000) {
      for (const [k, v] of connectionBudgets) if (v.tokens >= burst) connectionBudgets.delete(k);
    }
    if (b.tokens < 1) return false;
    b.tokens--;
    return true;
  }

  /**
   * Counts the bytes a socket sends: before hello at most `PRE_HELLO_BYTES`, then at most
   * `BYTES_PER_SECOND` for the socket and `BYTES_PER_SECOND_PER_ADDRESS` for its address, by pausing
   * the socket until the budgets refill.
   */
  function meterBytes(socket: Socket, address: string, greeted: () => boolean): void {
    const own = new ByteBudget(BYTES_PER_SECOND, opts.maxMessageBytes);
    let shared = addressBudgets.get(address);
    if (!shared) {
      shared = new ByteBudget(BYTES_PER_SECOND_PER_ADDRESS, opts.maxMessageBytes);
      addressBudgets.set(address, shared);
    }
    const budget = shared;
    budget.sockets++;
    let before = 0;
    let timer: NodeJS.Timeout | null = null;
    socket.on('data', (chunk: Buffer) => {
      if (!greeted()) {
        before += chunk.length;
        if (before > PRE_HELLO_BYTES) {
          opts.log(`socket from ${address} sent ${before} bytes before hello; cutting it`);
          socket.destroy();
          return;
        }
      }
      const wait = Math.max(own.take(chunk.length), budget.take(chunk.length));
      if (wait > 0 && !timer) {
        socket.pause();
        timer = setTimeout(() => {
          timer = null;
          socket.resume();
        }, wait);
      }
    });
    socket.once('close', () => {
      if (timer) clearTimeout(timer);
      if (--budget.sockets === 0) addressBudgets.delete(address);
    });
  }

  return {
    wss,
    upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
      const path = (req.url ?? '').split('?')[0];
      if (path !== '/ws') {
        socket.end('HTTP/1.1 404 Not Found\r\n\r\n');
        return;
      }
      const refusal = opts.admitOrigin(req.headers.origin, req.headers.host);
      if (refusal !== null) {
        const body = `${refusal}\n`;
        socket.end(
          `HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
        );
        return;
      }
      const ip = req.socket.remoteAddress ?? '?';
      const n = perIp.get(ip) ?? 0;
      if (!takeConnection(ip)) {
        socket.end(
          'HTTP/1.1 429 Too Many Requests\r\nContent-Type: text/plain\r\nRetry-After: 1\r\n\r\ntoo many new connections from this address\n',
        );
        return;
      }
      if (n >= opts.maxPerIp) {
        socket.end(
          'HTTP/1.1 429 Too Many Requests\r\nContent-Type: text/plain\r\n\r\ntoo many volunteer connections from this address\n',
        );
        return;
      }
      wss.handleUpgrade(req, socket, head, (ws) => {
        perIp.set(ip, (perIp.get(ip) ?? 0) + 1);
        ws.once('close', () => {
          const left = (perIp.get(ip) ?? 1) - 1;
          if (left <= 0) perIp.delete(ip);
          else perIp.set(ip, left);
        });
        wss.emit('connection', ws, req);
      });
    },
    close(): void {
      for (const ws of wss.clients) ws.close(1001, 'master shutting down');
      wss.close();
    },
  };
}

/** A token bucket of bytes: `take` returns how many milliseconds to wait until the debt is paid. */
class ByteBudget {
  private tokens: number;
  private at = performance.now();
  sockets = 0;

  constructor(
    private readonly perSecond: number,
    private readonly burst: number,
  ) {
    this.tokens = burst;
  }

  take(bytes: number): number {
    const now = performance.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.at) / 1000) * this.perSecond);
    this.at = now;
    this.tokens -= bytes;
    return this.tokens >= 0 ? 0 : (-this.tokens / this.perSecond) * 1000;
  }
}
