// Requests and bytes per path from web server access logs in the Common Log Format, one request a
// line:
//
//   203.0.113.9 - - [10/Oct/2026:13:55:36 +0000] "GET /docs/index.html HTTP/1.1" 200 2326
//
// `records = 'lines'` has `map` called once per line. A line that is not a request throws, which
// fails the job, unless it is submitted with `--skip-bad-records N`: then up to N such lines are
// skipped and listed by `tabreduce status JOB`. The counters (`ctx.count`) say what the job saw,
// summed over the committed tasks only, so they are the same however often a task ran.
import type { MapFn, ReduceFn } from 'tabreduce';

export const records = 'lines';

const LINE = /^(\S+) \S+ \S+ \[([^\]]+)\] "(\S+) (\S+) [^"]*" (\d{3}) (\d+|-)$/;

export const map: MapFn = (_file, line, emit, ctx) => {
  if (line === '') return;
  const m = LINE.exec(line);
  if (!m) throw new SyntaxError('not a Common Log Format request');
  const [, , , method, path, status, size] = m;
  const bytes = size === '-' ? 0 : Number(size);
  ctx.count('requests');
  ctx.count(`status ${status![0]}xx`);
  ctx.count(`method ${method}`);
  ctx.count('bytes sent', bytes);
  emit(path!.split('?')[0]!, `1 ${bytes}`);
};

// "requests bytes" per path: the sums of its lines' pairs.
function sum(values: string[]): string {
  let requests = 0;
  let bytes = 0;
  for (const v of values) {
    const [r, b] = v.split(' ');
    requests += Number(r);
    bytes += Number(b);
  }
  return `${requests} ${bytes}`;
}

export const combine: ReduceFn = (_path, values) => sum(values);

export const reduce: ReduceFn = (_path, values, ctx) => {
  ctx.count('paths');
  return sum(values);
};
