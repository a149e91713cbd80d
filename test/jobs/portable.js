// Word count by UTF-8 length that leans on every portable global a Web Worker and the Node
// volunteer's sandbox both give job code: setTimeout, setInterval, clearTimeout, clearInterval,
// queueMicrotask, TextEncoder and TextDecoder, in async map and reduce. Its output must be the same
// in a tab, on a Node volunteer and under `tabreduce local`.
const WORD = /\p{L}+(?:'\p{L}+)*/gu;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const microtask = () => new Promise((resolve) => queueMicrotask(resolve));

export async function map(key, value, emit) {
  await sleep(5);
  let ticks = 0;
  await new Promise((resolve) => {
    const timer = setInterval(() => {
      if (++ticks === 3) {
        clearInterval(timer);
        resolve();
      }
    }, 1);
  });
  const cancelled = setTimeout(() => emit('cancelled timer fired', key), 0);
  clearTimeout(cancelled);
  await microtask();
  const encoder = new TextEncoder();
  const decoder = new TextDecoder('utf-8', { fatal: true });
  for (const m of value.matchAll(WORD)) {
    const bytes = encoder.encode(m[0].toLowerCase());
    emit(decoder.decode(bytes), String(bytes.length));
  }
  emit('~ticks', String(ticks));
  emit('~replaced', new TextDecoder().decode(new Uint8Array([0x61, 0xff, 0xe2, 0x82, 0x62, 0xf0, 0x9f, 0x8e, 0x89])));
  emit('~bom', String(new TextDecoder().decode(new Uint8Array([0xef, 0xbb, 0xbf, 0x78])).length));
}

export async function reduce(key, values) {
  await microtask();
  if (key.startsWith('~')) return [...new Set(values)].join(' ');
  let n = 0;
  for (const v of values) n += Number(v);
  return `${values.length} ${n}`;
}
