// Grep: every line containing PATTERN, keyed by file and line position within its split.
// Edit PATTERN to search for something else.
const PATTERN = /\bwhale\b|\bmonster\b/i;

export function map(key, value, emit) {
  const lines = value.split('\n');
  for (const line of lines) {
    if (PATTERN.test(line)) emit(key, line.trim());
  }
}

export function reduce(key, values) {
  return `${values.length}\t${values.join(' | ')}`;
}
