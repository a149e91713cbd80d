/**
 * A `multipart/form-data` body written as a stream: fields, then files whose bytes are read only as
 * the request goes out. FormData cannot hold a stream of unknown length, and a job's inputs may be
 * larger than memory.
 */
import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import type { ReadableStream as NodeReadableStream } from 'node:stream/web';

/** What a file part carries: a path on disk (read as it is sent), text, bytes, or a stream of bytes. */
export type PartData =
  { path: string } | string | Uint8Array | Readable | ReadableStream<Uint8Array> | NodeReadableStream<Uint8Array>;

export type Part =
  | { kind: 'field'; name: string; value: string }
  | { kind: 'file'; name: string; filename: string; type: string; data: PartData };

/** Quotes a name for a Content-Disposition header as browsers do (RFC 7578 §4.2). */
function quote(s: string): string {
  return `"${s.replace(/"/g, '%22').replace(/\r/g, '%0D').replace(/\n/g, '%0A')}"`;
}

function chunks(data: PartData): AsyncIterable<Uint8Array> | Uint8Array[] {
  if (typeof data === 'string') return [Buffer.from(data, 'utf8')];
  if (data instanceof Uint8Array) return [data];
  if ('path' in data) return createReadStream(data.path);
  if (data instanceof Readable) return data;
  return Readable.fromWeb(data as NodeReadableStream<Uint8Array>);
}

async function* encode(parts: Part[], boundary: string): AsyncGenerator<Uint8Array> {
  for (const p of parts) {
    const disposition = `form-data; name=${quote(p.name)}${p.kind === 'file' ? `; filename=${quote(p.filename)}` : ''}`;
    const type = p.kind === 'file' ? `\r\ncontent-type: ${p.type}` : '';
    yield Buffer.from(`--${boundary}\r\ncontent-disposition: ${disposition}${type}\r\n\r\n`);
    if (p.kind === 'field') yield Buffer.from(p.value, 'utf8');
    else
      for await (const c of chunks(p.data)) {
        // A Readable in object or string mode hands out strings; the wire takes bytes.
        yield typeof c === 'string' ? Buffer.from(c, 'utf8') : c;
      }
    yield Buffer.from('\r\n');
  }
  yield Buffer.from(`--${boundary}--\r\n`);
}

/** The body and its content-type. The body is read once: a request that fails cannot be resent. */
export function multipartBody(parts: Part[]): { body: ReadableStream<Uint8Array>; contentType: string } {
  const boundary = `----tabreduce${randomBytes(12).toString('hex')}`;
  const body = Readable.toWeb(Readable.from(encode(parts, boundary))) as unknown as ReadableStream<Uint8Array>;
  return { body, contentType: `multipart/form-data; boundary=${boundary}` };
}
