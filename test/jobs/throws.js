// Every map call throws, so the job must fail after --max-attempts with this message and stack.
export function map(key, value, emit) {
  throw new RangeError(`cannot parse record in ${key}`);
}

export function reduce(key, values) {
  return String(values.length);
}
