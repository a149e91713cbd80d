/** UTF-8 text to and from ArrayBuffers that can be transferred between threads. */
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Encodes text into a buffer of its own, so transferring it moves exactly these bytes. */
export function encodeText(text: string): ArrayBuffer {
  return bufferOf(encoder.encode(text));
}

/** The buffer holding exactly `bytes`, to transfer: theirs when they fill it, else a copy. */
export function bufferOf(bytes: Uint8Array<ArrayBuffer>): ArrayBuffer {
  const buf = bytes.buffer;
  return bytes.byteOffset === 0 && bytes.byteLength === buf.byteLength
    ? buf
    : buf.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
}

export function decodeText(buf: ArrayBuffer): string {
  return decoder.decode(buf);
}
