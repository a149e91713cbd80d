// Word count that takes its time: each map waits SLOW_MAP_MS, and about one reduce key in 400
// waits 150 ms, so a test can kill processes while tasks are in flight. Output is word count's.
const SLOW_MAP_MS = 60;
const WORD = /\p{L}+(?:'\p{L}+)*/gu;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function map(key, value, emit) {
  await sleep(SLOW_MAP_MS);
  for (const m of value.matchAll(WORD)) emit(m[0].toLowerCase(), '1');
}

export function combine(key, values) {
  let n = 0;
  for (const v of values) n += Number(v);
  return String(n);
}

export async function reduce(key, values) {
  if (Math.random() < 0.0025) await sleep(150);
  return combine(key, values);
}
