// A light English stemmer: folds plurals and the common verb endings together ("walks", "walked",
// "walking" -> "walk"). It is the "S-stemmer" of Harman (1991) plus -ing and -ed; far cruder than
// Porter's, but small enough to read and enough to show a job importing a module of its own.

const VOWEL = /[aeiouy]/;

/** Strips a plural -s/-es/-ies. */
function singular(word: string): string {
  if (word.endsWith('ies') && !word.endsWith('eies') && !word.endsWith('aies')) return `${word.slice(0, -3)}y`;
  if (word.endsWith('es') && !/(?:ae|ee|oe)s$/.test(word)) {
    // "boxes", "wishes", "churches", "buses": -es after a sibilant; "hopes" keeps its e.
    return /(?:x|z|ch|sh|ss|us)es$/.test(word) ? word.slice(0, -2) : word.slice(0, -1);
  }
  if (word.endsWith('s') && !/(?:us|ss|is)$/.test(word)) return word.slice(0, -1);
  return word;
}

/** Strips -ing or -ed when a vowel is left in the stem ("sing" and "red" stay whole). */
function bare(word: string): string {
  for (const suffix of ['ing', 'ed']) {
    if (!word.endsWith(suffix)) continue;
    const stem = word.slice(0, -suffix.length);
    if (stem.length < 3 || !VOWEL.test(stem)) return word;
    // "running" -> "run", but "falling" -> "fall" and "hissing" -> "hiss".
    if (/([^aeioulsz])\1$/.test(stem)) return stem.slice(0, -1);
    return stem;
  }
  return word;
}

export function stem(word: string): string {
  return word.length <= 3 ? word : bare(singular(word));
}
