// Word count whose map throws on about one call in seven, anywhere: retries (on other volunteers
// where possible) must hide it. With --max-attempts 8 a task fails for good with odds (1/7)^8 ≈ 2e-7.
const WORD = /\p{L}+(?:'\p{L}+)*/gu;

export function map(key, value, emit) {
  if (Math.random() < 1 / 7) throw new Error('flaky failure');
  for (const m of value.matchAll(WORD)) emit(m[0].toLowerCase(), '1');
}

export function combine(key, values) {
  let n = 0;
  for (const v of values) n += Number(v);
  return String(n);
}

export function reduce(key, values) {
  return combine(key, values);
}
