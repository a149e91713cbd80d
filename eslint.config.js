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
);
