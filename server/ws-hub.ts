import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { parseVolunteerMessage } from '../shared/protocol.js';
import type { Connection, Scheduler, Volunteer } from './scheduler/index.js';
import { isStorageError } from './storage-errors.js';
import type { OriginGate } from './origin-check.js';

export interface HubOptions {
  /** Largest frame a volunteer may send; larger ones close the socket with 1009. */
  maxMessageBytes: number;
  /** Concurrent volunteer sockets from one IP address; more are refused with 429. */
  maxPerIp: number;
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
/** Invalid frames tolerated before the socket is closed. */
const MAX_INVALID = 20;

/** Accepts volunteer WebSockets on `/ws`, validates every frame, and feeds the scheduler. */
export function createHub(scheduler: Scheduler, opts: HubOptions) {
  const perIp = new Map<string, number>();
  const wss = new WebSocketServer({ noServer: true, maxPayload: opts.maxMessageBytes, perMessageDeflate: false });

  wss.on('connection', (ws: WebSocket) => {
    let volunteer: Volunteer | null = null;
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
      const parsed = parseVolunteerMessage(data.toString());
      if (!parsed.ok) {
        reply(`invalid message: ${parsed.error}`);
        if (++invalid > MAX_INVALID) ws.close(1008, 'too many invalid messages');
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
          volunteer = scheduler.batched(() => scheduler.hello(conn, msg));
          return;
        }
        const v = volunteer;
        // A heartbeat writes nothing: it needs no transaction (they are most of the frames: 10,000
        // volunteers send 5,000 a second).
        if (msg.type === 'heartbeat') scheduler.seen(v);
        else scheduler.batched(() => scheduler.handle(v, msg));
      } catch (e) {
        if (isStorageError(e)) {
          // The group commit was rolled back (the scheduler reloaded its state and closes every
          // socket). The volunteer keeps its results; it reconnects with backoff and sends them
          // again, by which time space may have been freed.
          opts.log(`storage error handling ${msg.type}: ${(e as Error).message}; asking the volunteer to retry`);
          ws.close(1011, 'master storage full; retrying');
          return;
        }
        // A bug must not take the master down; the volunteer hears about it.
        opts.log(`error handling ${msg.type}: ${(e as Error).stack ?? String(e)}`);
        reply(`the master could not handle ${msg.type}`);
      }
    });
    ws.on('close', () => {
      clearTimeout(helloTimer);
      if (volunteer) scheduler.closed(volunteer, conn);
    });
    ws.on('error', (e) => opts.log(`volunteer socket error: ${e.message}`));
  });

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
