/**
 * A volunteer socket driven by hand, for attack tests and benchmarks: it collects every frame the
 * master sends and how the socket closed, and can write raw WebSocket frames past the `ws` client.
 */
import type { Socket } from 'node:net';
import { WebSocket } from 'ws';
import type { MasterMessage } from '../../shared/protocol.js';

/** Opens `/ws` on the master at `base`, from `address` when given (127.0.0.2 and up stand for other hosts). */
export async function openRawClient(base: string, address?: string) {
  const ws = new WebSocket(base.replace(/^http/, 'ws') + '/ws', address ? { localAddress: address } : {});
  const got: MasterMessage[] = [];
  let closed: { code: number; reason: string } | null = null;
  ws.on('message', (d) => got.push(JSON.parse(d.toString()) as MasterMessage));
  const done = new Promise<void>((r) =>
    ws.on('close', (code, reason) => {
      closed = { code, reason: reason.toString() };
      r();
    }),
  );
  await new Promise<void>((ok, fail) => {
    ws.once('open', () => ok());
    ws.once('error', fail);
  });
  ws.on('error', () => {});
  /** The first frame of `type` from the `from`th on, waiting up to 4 s for it. */
  const next = async (type: MasterMessage['type'], from = 0) => {
    for (let i = 0; i < 200; i++) {
      const found = got.slice(from).find((x) => x.type === type);
      if (found) return found;
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error(`no ${type} from the master; got ${JSON.stringify(got)}`);
  };
  return { ws, got, next, done, closed: () => closed };
}

/** The TCP socket under a `ws` client, to write what the client itself would refuse to send. */
export function socketOf(ws: WebSocket): Socket {
  return (ws as unknown as { _socket: Socket })._socket;
}

/**
 * The header of a client's text frame of `size` bytes: FIN, text, masked, 64-bit length, and a zero
 * mask, so the body that follows is sent as it is.
 */
export function textFrameHeader(size: number): Buffer {
  const header = Buffer.alloc(14);
  header[0] = 0x81;
  header[1] = 0x80 | 127;
  header.writeBigUInt64BE(BigInt(size), 2);
  return header;
}
