import tseslint from 'typescript-eslint';
import svelte from 'eslint-plugin-svelte';
import svelteParser from 'svelte-eslint-parser';

const noServerImports = {
  group: ['**/server', '**/server/**'],
  message:
    'client/ and shared/ never import the master: put HTTP shapes in shared/api.ts, wire types in shared/protocol.ts.',
};
const noClientImports = {
  group: ['**/client', '**/client/**'],
  message: 'shared/ never imports client/: move the code both sides need into shared/.',
};

export default tseslint.config(
  { ignores: ['dist/', 'data/', 'node_modules/', 'test/fixtures/', '.svelte-kit/'] },
  ...tseslint.configs.recommended,
  ...svelte.configs['flat/recommended'],
  {
    files: ['**/*.svelte', '**/*.svelte.ts'],
    languageOptions: { parser: svelteParser, parserOptions: { parser: tseslint.parser } },
  },
  {
    rules: {
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', destructuredArrayIgnorePattern: '^_' },
      ],
      '@typescript-eslint/no-non-null-assertion': 'off',
      'no-constant-condition': ['error', { checkLoops: false }],
    },
  },
  {
    // client/ and shared/ run in browsers and workers: a value import from server/ drags the master
    // (SQLite, Node) into the bundle, and a type import ties the page to the master's rows instead of
    // the HTTP contract in shared/api.ts.
    files: ['client/**'],
    rules: { 'no-restricted-imports': ['error', { patterns: [noServerImports] }] },
  },
  {
    // Both sides import shared/, so it imports neither.
    files: ['shared/**'],
    rules: { 'no-restricted-imports': ['error', { patterns: [noServerImports, noClientImports] }] },
  },
  {
    // Job modules are plain JavaScript examples for authors.
    files: ['shared/examples/**/*.js', 'test/jobs/**/*.js'],
    rules: { '@typescript-eslint/no-unused-vars': 'off' },
  },
  {
    // The scheduler's rule of direction (README "Architecture"): no circles between its rooms.
    files: ['server/scheduler/context.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: [{ group: ['./*'], message: 'context.ts imports no sibling: the other rooms import it.' }] },
      ],
    },
  },
  {
    files: ['server/scheduler/memory.ts', 'server/scheduler/group-commit.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [{ group: ['./*', '!./context.js'], message: 'memory and group commit import only the context.' }],
        },
      ],
    },
  },
  {
    files: ['server/scheduler/*.ts'],
    ignores: [
      'server/scheduler/index.ts',
      'server/scheduler/context.ts',
      'server/scheduler/memory.ts',
      'server/scheduler/group-commit.ts',
    ],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['./*', '!./context.js', '!./memory.js', '!./group-commit.js'],
              message:
                'a rule imports the context, memory and group commit, never another rule; the façade orders rules.',
            },
          ],
        },
      ],
    },
  },
);
