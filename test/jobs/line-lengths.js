// Counts lines by their length modulo 50: one pass over each split, 50 keys out, so a job over GiBs
// costs little beyond moving its data.
export function map(key, value, emit) {
  const counts = new Map();
  let start = 0;
  while (start < value.length) {
    let end = value.indexOf('\n', start);
    if (end === -1) end = value.length;
    const k = String((end - start) % 50);
    counts.set(k, (counts.get(k) ?? 0) + 1);
    start = end + 1;
  }
  for (const [k, n] of counts) emit(k, String(n));
}

export function reduce(key, values) {
  let n = 0;
  for (const v of values) n += Number(v);
  return String(n);
}
