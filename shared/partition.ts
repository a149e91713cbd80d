const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;
const utf8 = new TextEncoder();

/** FNV-1a 32-bit over the UTF-8 bytes of `text`, as an unsigned integer. */
export function fnv1a32(text: string): number {
  let h = FNV_OFFSET;
  // ASCII fast path: most keys are words; encoding them would allocate per call.
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0x80) return fnv1a32Bytes(utf8.encode(text));
    h = Math.imul(h ^ c, FNV_PRIME);
  }
  return h >>> 0;
}

export function fnv1a32Bytes(bytes: Uint8Array): number {
  let h = FNV_OFFSET;
  for (const b of bytes) h = Math.imul(h ^ b, FNV_PRIME);
  return h >>> 0;
}

/** The design's default partition: FNV-1a 32-bit, `& 0x7fffffff`, `% nReduce`. */
export function defaultPartition(key: string, nReduce: number): number {
  return (fnv1a32(key) & 0x7fffffff) % nReduce;
}
