// Word count where, in a browser tab, half of all map and reduce attempts straggle for 4 s: with
// --task-timeout 2s each straggler gets a backup attempt, and the loser finishes after the winner
// committed, often after the job is already done. Outside a tab it does not sleep.
const IN_TAB = typeof WorkerGlobalScope !== 'undefined';
const WORD = /\p{L}+(?:'\p{L}+)*/gu;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export async function map(key, value, emit) {
  if (IN_TAB && Math.random() < 0.5) await sleep(4000);
  for (const m of value.matchAll(WORD)) emit(m[0].toLowerCase(), '1');
}

export function combine(key, values) {
  let n = 0;
  for (const v of values) n += Number(v);
  return String(n);
}

let tossed = false;
export async function reduce(key, values) {
  // One coin toss per reduce task, not per key: the task's later keys run as microtasks right after
  // this first call, before the zero-delay timer re-arms the toss for the worker's next task.
  if (IN_TAB && !tossed) {
    tossed = true;
    if (Math.random() < 0.5) await sleep(4000);
    setTimeout(() => (tossed = false), 0);
  }
  return combine(key, values);
}
