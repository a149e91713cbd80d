/** Request and response bodies as Node streams, for routes that stream data instead of buffering it. */
import { Readable } from 'node:stream';
import type { IncomingMessage } from 'node:http';
import type { Context } from 'hono';

/** The request's body as a Node stream: the socket itself under the Node server, else the web stream. */
export function requestBody(c: Context): Readable {
  const incoming = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming;
  if (incoming && typeof incoming.pipe === 'function') return incoming;
  const body = c.req.raw.body;
  return body ? Readable.fromWeb(body as import('node:stream/web').ReadableStream) : Readable.from([]);
}

/** A response whose body is pulled from `chunks` as the client reads it. */
export function streamResponse(chunks: AsyncIterable<Buffer>, headers: Record<string, string>): Response {
  const body = Readable.toWeb(Readable.from(chunks)) as unknown as ReadableStream;
  return new Response(body, { headers });
}
