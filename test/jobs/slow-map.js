// Word count whose maps take 2-5 s each in a browser tab (the classic lab's slow workers), well
// under the default 10 s task timeout. Outside a tab it does not sleep.
const IN_TAB = typeof WorkerGlobalScope !== 'undefined';
const WORD = /\p{L}+(?:'\p{L}+)*/gu;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export async function map(key, value, emit) {
  if (IN_TAB) await sleep(2000 + Math.random() * 3000);
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
