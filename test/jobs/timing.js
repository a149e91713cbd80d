// Word count whose map and reduce calls take 1.5 s each in a browser tab, so tasks that run side
// by side on different tabs overlap clearly in their attempts' times. Outside a tab (`tabreduce
// local`, the reference) it does not sleep.
const IN_TAB = typeof WorkerGlobalScope !== 'undefined';
const WORD = /\p{L}+(?:'\p{L}+)*/gu;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export async function map(key, value, emit) {
  if (IN_TAB) await sleep(1500);
  const counts = new Map();
  for (const m of value.matchAll(WORD)) {
    const w = m[0].toLowerCase();
    counts.set(w, (counts.get(w) ?? 0) + 1);
  }
  for (const [w, n] of counts) emit(w, String(n));
}

let slept = false;
export async function reduce(key, values) {
  // Once per reduce task, not per key: the task's later keys run as microtasks right after this
  // first call, before the zero-delay timer re-arms the sleep for the worker's next task.
  if (IN_TAB && !slept) {
    slept = true;
    await sleep(1500);
    setTimeout(() => (slept = false), 0);
  }
  let n = 0;
  for (const v of values) n += Number(v);
  return String(n);
}
