/**
 * `tabreduce check JOB.ts`: what submit would refuse, and the type errors that bundling does not
 * see (esbuild strips types without checking them). Types are checked by the author's own tsc, the
 * one their project installed, against their own tsconfig.json, so the check agrees with their editor.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, extname, join, relative, resolve } from 'node:path';
import { UserError, toError } from '../../shared/errors.js';
import { bundleJob } from './bundle.js';

/** The first `name` found in `dir` or a directory above it. */
function findUpward(dir: string, name: string): string | null {
  for (let d = dir; ; d = dirname(d)) {
    const p = join(d, name);
    if (existsSync(p)) return p;
    if (dirname(d) === d) return null;
  }
}

/**
 * tsc's flags when the job has no tsconfig.json: strict, the modules a bundler resolves, and the
 * globals of a Web Worker (a tab's; the Node volunteer's sandbox has a subset of them).
 */
const DEFAULT_FLAGS = [
  '--strict',
  '--target',
  'es2022',
  '--module',
  'esnext',
  '--moduleResolution',
  'bundler',
  '--allowImportingTsExtensions',
  '--lib',
  'es2022,webworker',
  '--skipLibCheck',
];

function runTsc(tsc: string, args: string[]): Promise<number> {
  return new Promise((ok, fail) => {
    const p = spawn(tsc, args, { stdio: ['ignore', 'inherit', 'inherit'] });
    p.on('error', (e) => fail(new UserError(`could not run ${tsc}: ${toError(e).message}`)));
    p.on('close', (code) => ok(code ?? 1));
  });
}

/** Exit 0 when the job bundles and type-checks; 2 when it does not, or no tsc is installed. */
export async function checkJob(path: string): Promise<number> {
  await bundleJob(path);
  if (!['.ts', '.mts'].includes(extname(path))) {
    process.stderr.write(`${path}: bundles cleanly (JavaScript: no types to check)\n`);
    return 0;
  }
  const dir = dirname(resolve(path));
  const tsc = findUpward(dir, join('node_modules', '.bin', 'tsc'));
  if (!tsc) {
    throw new UserError(
      `${path} bundles cleanly, but its types are not checked: no TypeScript compiler in node_modules/.bin from ${relative('.', dir) || '.'} upward; install one with \`npm install --save-dev typescript\` in the job's project and run tabreduce check again`,
    );
  }
  const config = findUpward(dir, 'tsconfig.json');
  const args = config ? ['--noEmit', '-p', config] : ['--noEmit', ...DEFAULT_FLAGS, path];
  process.stderr.write(`checking types: ${tsc} ${args.join(' ')}\n`);
  if ((await runTsc(tsc, args)) !== 0) throw new UserError(`${path}: tsc found type errors (listed above)`);
  process.stderr.write(`${path}: bundles cleanly, no type errors\n`);
  return 0;
}
