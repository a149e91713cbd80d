// Word count by stem, in TypeScript: "walks", "walked" and "walking" count as "walk". The stemmer
// is a module of its own, imported as in any project; `tabreduce submit job.ts …` bundles the two
// (and any npm package they import) into the one module volunteers run.
import type { CombineFn, MapFn, ReduceFn } from 'tabreduce';
import { stem } from './stem.js';

const WORD = /\p{L}+(?:'\p{L}+)*/gu;

export const map: MapFn = (_file, text, emit) => {
  for (const m of text.matchAll(WORD)) emit(stem(m[0].toLowerCase()), '1');
};

export const combine: CombineFn = (_stem, counts) => {
  let n = 0;
  for (const c of counts) n += Number(c);
  return String(n);
};

export const reduce: ReduceFn = combine;
