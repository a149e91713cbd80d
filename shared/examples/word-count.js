// Word count: how often each word occurs across the inputs.
// Words are runs of letters (any script) or apostrophes inside a word, lower-cased.
const WORD = /\p{L}+(?:'\p{L}+)*/gu;

export function map(key, value, emit) {
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
