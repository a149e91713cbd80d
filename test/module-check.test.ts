/**
 * The submit check (server/module-check.ts) refuses job modules that would reach for a module system
 * at run time: `import()` and `import.meta` anywhere in the tree, with the file, line and reason. The
 * sandbox must hold for code that hides them from the parser; test/sandbox.test.ts shows it does.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkJobModule } from '../server/module-check.js';

const GOOD = `export function map(key, value, emit) {
  emit(key, '1');
}
export function reduce(key, values) {
  return String(values.length);
}
`;

function refusal(source: string, file = 'job.js'): string {
  try {
    checkJobModule(source, file);
  } catch (e) {
    return (e as Error).message;
  }
  assert.fail('the module was accepted');
}

test('import() is refused wherever it hides, with the line of the first one', () => {
  const cases: [string, number][] = [
    [`${GOOD}export async function x() {\n  return import('node:fs');\n}\n`, 8],
    [`const load = () => [1, { a: async () => (await import(String('node:' + 'fs'))).default }];\n${GOOD}`, 1],
    [`${GOOD}class A {\n  static {\n    if (globalThis.x) import('./y.js').then(() => {});\n  }\n}\n`, 9],
    [`${GOOD}const t = \`\${await import('x')}\`;\nimport('z');\n`, 7],
  ];
  for (const [source, line] of cases) {
    const message = refusal(source, 'jobs/wc.js');
    assert.match(message, new RegExp(`^jobs/wc\\.js:${line}: job modules must be self-contained`), message);
    assert.match(message, /import\(\)/);
  }
});

test('import.meta is refused with its line', () => {
  const message = refusal(`${GOOD}\nexport function where() {\n  return import.meta.url;\n}\n`);
  assert.match(message, /^job\.js:9: job modules may not use import\.meta/);
});

test('the words alone are fine: in strings, comments, property names and Function bodies', () => {
  const source = `${GOOD}
// import('node:fs') in a comment
const s = "import('node:fs') and import.meta in a string";
const o = { import: 1, meta: 2 };
const f = () => o.import + o.meta;
export const probe = () => Function('return import("node:fs")');
`;
  assert.deepEqual([...checkJobModule(source, 'job.js')].sort(), ['map', 'probe', 'reduce']);
});
