// Word count that counts what it sees (ctx.count) and takes its time: each map waits 40 ms, and one
// split in five waits 600 ms more, past a short --task-timeout, so backups race the first attempt.
const WORD = /\p{L}+(?:'\p{L}+)*/gu;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function map(key, value, emit, ctx) {
  let h = 0;
  for (let i = 0; i < value.length; i += 97) h = (h * 31 + value.charCodeAt(i)) | 0;
  await sleep(Math.abs(h) % 5 === 0 ? 640 : 40);
  ctx.count('splits');
  ctx.count('chars', value.length);
  for (const m of value.matchAll(WORD)) {
    ctx.count('words');
    emit(m[0].toLowerCase(), '1');
  }
}

export function combine(key, values, ctx) {
  ctx.count('combined keys');
  let n = 0;
  for (const v of values) n += Number(v);
  return String(n);
}

export function reduce(key, values, ctx) {
  ctx.count('keys');
  let n = 0;
  for (const v of values) n += Number(v);
  if (n === 1) ctx.count('words seen once');
  return String(n);
}
