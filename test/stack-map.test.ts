/**
 * Stacks mapped back to the author's files: positions decoded from esbuild's own source maps,
 * V8 and Firefox frame syntax, frames of other files left alone, and modules without a usable map.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { bundleJob } from '../server/cli/bundle.js';
import { createStackMapper, decodeMappings, mapStack, originalPosition } from '../server/stack-map.js';
import { ROOT } from './helpers/cluster.js';

const JOB = join(ROOT, 'test/fixtures/ts-job/job.ts');

/** 1-based line and column of the first occurrence of `text` in `source`. */
function positionOf(source: string, text: string): { line: number; column: number } {
  const i = source.indexOf(text);
  assert.ok(i >= 0, `${text} in the bundle`);
  const before = source.slice(0, i).split('\n');
  return { line: before.length, column: before.at(-1)!.length + 1 };
}

test("positions in an esbuild bundle map to the author's files, across sources and backwards lines", async () => {
  const { source, map } = await bundleJob(JOB);
  assert.ok(map);
  const t = positionOf(source, 'throw new Error("poisoned');
  assert.deepEqual(originalPosition(map, t.line, t.column), { source: 'stem.ts', line: 14, column: 35 });
  // job.ts comes after stem.ts in the bundle: its first mapped line goes back to line 1 of another file.
  const c = positionOf(source, 'checkWord(word);');
  assert.deepEqual(originalPosition(map, c.line, c.column), { source: 'job.ts', line: 12, column: 5 });
  const s = positionOf(source, 'n += Number(v)');
  assert.equal(originalPosition(map, s.line, s.column)?.source, 'node_modules/tiny-tally/index.js');
});

test('VLQ fields: multi-digit and negative values, empty lines and segments without a source', () => {
  // Line 1: col 0 -> src 0 line 0 col 0; col 16 (Q... 'gB' = 16) -> line 0 col 8 ('Q' = 8).
  // Line 2 empty. Line 3: col 2 -> line 2 (+2, 'E'), col 4 (-4, 'J'); then a 1-field segment.
  const lines = decodeMappings('AAAA,gBAAQ;;EAEJ,C');
  assert.equal(lines.length, 3);
  assert.deepEqual(lines[0], [
    { column: 0, source: 0, line: 0, sourceColumn: 0 },
    { column: 16, source: 0, line: 0, sourceColumn: 8 },
  ]);
  assert.deepEqual(lines[1], []);
  assert.deepEqual(lines[2], [{ column: 2, source: 0, line: 2, sourceColumn: 4 }]);
});

test("frames of the module are mapped in V8's and Firefox's syntax; other frames are left alone", () => {
  // Line 2's segment keeps the source column of line 1's last one (4), as VLQ fields are relative.
  const map = { sources: ['job.ts'], lines: decodeMappings('AAAA,IAAI;AACA') };
  const url = 'https://m.example:8443/jobs/abc/module.js?retry=2';
  const stack = [
    'Error: x',
    `    at map (${url}:1:5)`,
    `map@${url}:2:1`,
    '    at runMap (tabreduce:engine.js:276:22)',
    '    at f (https://m.example:8443/assets/app.js:1:5)',
  ].join('\n');
  const isModule = (u: string) => u.startsWith('https://m.example:8443/jobs/abc/module.js');
  assert.equal(
    mapStack(stack, map, isModule),
    [
      'Error: x',
      '    at map (job.ts:1:5)',
      'map@job.ts:2:5',
      '    at runMap (tabreduce:engine.js:276:22)',
      '    at f (https://m.example:8443/assets/app.js:1:5)',
    ].join('\n'),
  );
});

test("the master's mapper: only the job's own module URL, and a missing or broken map leaves the stack", async () => {
  const { source } = await bundleJob(JOB);
  const t = positionOf(source, 'throw new Error("poisoned');
  const modules: Record<string, string> = {
    bundled: source,
    plain: 'export function map() {}\nexport function reduce() { return ""; }\n',
    broken: `${source.split('//# sourceMappingURL=')[0]}//# sourceMappingURL=data:application/json;base64,e30K@@\n`,
  };
  const mapper = createStackMapper((id) => modules[id]);
  const err = (id: string) => ({
    name: 'Error',
    message: 'm',
    stack: `Error: m\n    at checkWord (http://h/jobs/${id}/module.js:${t.line}:${t.column})`,
  });
  assert.equal(mapper('bundled', err('bundled')).stack, 'Error: m\n    at checkWord (stem.ts:14:35)');
  assert.deepEqual(mapper('bundled', err('other')), err('other'), "another job's URL");
  assert.deepEqual(mapper('plain', err('plain')), err('plain'));
  assert.deepEqual(mapper('broken', err('broken')), err('broken'));
  assert.deepEqual(mapper('gone', err('gone')), err('gone'));
  assert.deepEqual(mapper('bundled', { name: 'Lost', message: 'gone' }), { name: 'Lost', message: 'gone' });
});
