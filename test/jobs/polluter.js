// A job that changes a built-in, as a bundled polyfill might: in a worker shared with other jobs,
// every later toLowerCase() there would return "POLLUTED BY ANOTHER JOB". Its own output does not depend on it.
export function map(key, value, emit) {
  String.prototype.toLowerCase = function () {
    return 'POLLUTED BY ANOTHER JOB';
  };
  emit(key, String(value.length));
}

export function reduce(key, values) {
  let n = 0;
  for (const v of values) n += Number(v);
  return String(n);
}
