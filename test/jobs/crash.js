// The classic lab's crash test, for browser tabs: in a tab, a third of map and reduce calls kill
// their own Web Worker with close(), and another third stall for up to 10 s. The output (four keys
// that depend on every split exactly once) must still equal `tabreduce local`, where neither happens.
const IN_TAB = typeof WorkerGlobalScope !== 'undefined';
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function maybeCrash() {
  if (!IN_TAB) return;
  const r = Math.random();
  if (r < 1 / 3) {
    self.close();
    // close() lets the current task finish; never let this one produce a result.
    await new Promise(() => {});
  } else if (r < 2 / 3) {
    await sleep(Math.random() * 10_000);
  }
}

export async function map(key, value, emit) {
  await maybeCrash();
  emit('a', key);
  emit('b', String(key.length));
  emit('c', String(value.length));
  emit('d', 'xyzzy');
}

export async function reduce(key, values) {
  await maybeCrash();
  return [...values].sort().join(' ');
}
