// Inverted index: for each word, the sorted list of input files that contain it.
const WORD = /\p{L}+(?:'\p{L}+)*/gu;

export function map(key, value, emit) {
  const seen = new Set();
  for (const m of value.matchAll(WORD)) {
    const word = m[0].toLowerCase();
    if (!seen.has(word)) {
      seen.add(word);
      emit(word, key);
    }
  }
}

export function reduce(key, values) {
  const docs = [...new Set(values)].sort();
  return `${docs.length} ${docs.join(',')}`;
}
