/**
 * The import rules between server/, shared/ and client/: the lint rule that keeps the master out of
 * the pages and shared code, and the cycle check `npm run check` runs, each shown to catch a breach.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { ESLint } from 'eslint';
import { parseCircular, parseDependencyTree } from 'dpdm';
import { ROOT, removeTempDirs, tempDir } from './helpers/cluster.js';

after(removeTempDirs);

const eslint = new ESLint({ cwd: ROOT });

/** The import specifier that reaches `target` (a path from the repository root) from `file`. */
function specifier(file: string, target: string): string {
  const path = relative(dirname(file), target);
  return path.startsWith('.') ? path : `./${path}`;
}

function moduleSource(file: string, imports: string): string {
  if (!file.endsWith('.svelte')) return `${imports}\nexport const used = [view];\n`;
  return `<script lang="ts">\n  ${imports}\n  console.log(view);\n</script>\n`;
}

async function restrictedImports(file: string, imports: string): Promise<ESLint.LintResult['messages']> {
  const [result] = await eslint.lintText(moduleSource(file, imports), { filePath: join(ROOT, file) });
  assert.ok(result, file);
  return result.messages;
}

test('client/ and shared/ may not import server/, as a type or a value, from .ts or .svelte', async () => {
  const files = [
    'client/status/job-list.ts',
    'client/status/job-list.svelte',
    'shared/api-copy.ts',
    'shared/sub/copy.ts',
  ];
  for (const file of files) {
    const from = specifier(file, 'server/views.js');
    for (const imports of [
      `import type { JobView as view } from '${from}';`,
      `import { jobView as view } from '${from}';`,
    ]) {
      const messages = await restrictedImports(file, imports);
      assert.deepEqual(
        messages.map((m) => [m.ruleId, m.severity]),
        [['no-restricted-imports', 2]],
        `${file}: ${imports}`,
      );
      assert.match(messages[0]!.message, /shared\/api\.ts/);
    }
  }
});

test('shared/ may not import client/', async () => {
  const file = 'shared/api-copy.ts';
  const messages = await restrictedImports(
    file,
    `import { apiFetch as view } from '${specifier(file, 'client/status/api.js')}';`,
  );
  assert.deepEqual(
    messages.map((m) => m.ruleId),
    ['no-restricted-imports'],
  );
});

test('imports of shared/ from client/ and shared/ pass the lint', async () => {
  for (const file of ['client/status/job-list.ts', 'client/status/job-list.svelte', 'shared/api-copy.ts']) {
    const imports = `import { estimateRemainingMs as view } from '${specifier(file, 'shared/api.js')}';`;
    assert.deepEqual(await restrictedImports(file, imports), [], file);
  }
});

// Kept to the globs `npm run check` hands to dpdm, so this test and the check judge the same files.
const SOURCES = ['server/**/*.ts', 'shared/**/*.ts', 'client/**/*.ts'];

test('server/, shared/ and client/ import each other without a cycle', async () => {
  const tree = await parseDependencyTree(SOURCES, { cwd: ROOT, context: ROOT });
  const files = Object.keys(tree).filter((f) => !f.includes('node_modules'));
  assert.ok(files.includes('server/views.ts') && files.includes('shared/api.ts'), files.join(' '));
  // dpdm maps a `.js` specifier to its `.ts` file only through tsconfig.json's NodeNext resolution;
  // an import it cannot resolve loses its edge, and a cycle through that edge would go unseen.
  const unresolved = Object.values(tree)
    .flatMap((deps) => deps ?? [])
    .filter((d) => d.request.startsWith('.') && d.id === null);
  assert.deepEqual(unresolved, []);
  assert.deepEqual(parseCircular(tree), []);
});

test('the cycle check finds a cycle written with NodeNext `.js` specifiers', async () => {
  const dir = tempDir();
  // Without a tsconfig.json dpdm cannot map `./b.js` to b.ts and sees no cycle at all.
  writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({ extends: join(ROOT, 'tsconfig.json') }));
  writeFileSync(join(dir, 'a.ts'), "import { b } from './b.js';\nexport const a = () => b;\n");
  writeFileSync(join(dir, 'b.ts'), "import type { a } from './a.js';\nexport const b: typeof a | null = null;\n");
  const tree = await parseDependencyTree(['*.ts'], { cwd: dir, context: dir });
  assert.deepEqual(
    parseCircular(tree).map((cycle) => cycle.toSorted()),
    [['a.ts', 'b.ts']],
  );
});

test("the scheduler's rooms keep their rule of direction: no rule imports another, the context no sibling", async () => {
  const cases: [file: string, imports: string, allowed: boolean][] = [
    ['server/scheduler/commit.ts', "import { dispatch as view } from './dispatch.js';", false],
    ['server/scheduler/settle.ts', "import { commitResult as view } from './commit.js';", false],
    ['server/scheduler/commit.ts', "import { Scheduler as view } from './index.js';", false],
    ['server/scheduler/memory.ts', "import { send as view } from './group-commit.js';", false],
    ['server/scheduler/context.ts', "import { track as view } from './memory.js';", false],
    ['server/scheduler/commit.ts', "import { forget as view } from './memory.js';", true],
    ['server/scheduler/dispatch.ts', "import { sendRaw as view } from './group-commit.js';", true],
    ['server/scheduler/index.ts', "import { dispatch as view } from './dispatch.js';", true],
  ];
  for (const [file, imports, allowed] of cases) {
    const messages = await restrictedImports(file, imports);
    assert.deepEqual(
      messages.map((m) => m.ruleId),
      allowed ? [] : ['no-restricted-imports'],
      `${file}: ${imports}`,
    );
  }
});
