/**
 * A job as the author wrote it, made into the one self-contained module volunteers run:
 * `submit` and `local` bundle a `.ts`, `.mts`, `.js` or `.mjs` file with esbuild, together with its
 * relative imports and the npm packages it imports (resolved from the author's own node_modules,
 * upward from the job file), into an ES module that carries an inline source map. The master still
 * checks that module and refuses imports; it maps volunteers' stack traces back to the author's
 * files with the map (server/stack-map.ts). Types are stripped, not checked: `tabreduce check` runs
 * the author's tsc.
 */
import { builtinModules } from 'node:module';
import { basename, dirname, extname, join, resolve } from 'node:path';
import type { BuildFailure, Message, Plugin } from 'esbuild';
import { UserError } from '../../shared/errors.js';
import { checkJobModule } from '../module-check.js';
import { originalPosition, readInlineSourceMap, type SourceMap } from '../stack-map.js';
import { checkReadable, readInput } from './files.js';

export const JOB_EXTENSIONS = ['.ts', '.mts', '.js', '.mjs'];

export interface JobSource {
  /** The name the module is submitted under: the job file's, ending in `.js` once bundled. */
  name: string;
  source: string;
  /** The bundle's source map (sources relative to the job file's directory); null when not bundled. */
  map: SourceMap | null;
}

const BUILTINS = new Set(builtinModules.filter((m) => !m.startsWith('_')));

/**
 * Refuses Node's built-in modules: volunteers' tabs have none. A bare name that is also an installed
 * npm package (`buffer`, `events`, `punycode` are browser versions of built-ins) is that package.
 */
const refuseNodeBuiltins: Plugin = {
  name: 'tabreduce-refuse-node-builtins',
  setup(build) {
    build.onResolve({ filter: /^[^./]/ }, async (args) => {
      if (args.pluginData === 'tabreduce-resolving') return undefined;
      const bare = args.path.startsWith('node:') ? null : args.path.split('/')[0]!;
      if (bare !== null && !BUILTINS.has(bare)) return undefined;
      if (bare !== null) {
        const found = await build.resolve(args.path, {
          kind: args.kind,
          resolveDir: args.resolveDir,
          importer: args.importer,
          pluginData: 'tabreduce-resolving',
        });
        if (found.errors.length === 0 && /[\\/]node_modules[\\/]/.test(found.path)) return found;
      }
      return {
        errors: [
          {
            text: `imports the Node built-in ${JSON.stringify(args.path)}, but job code runs in volunteers' browser tabs, which have no Node modules`,
          },
        ],
      };
    });
  },
};

/**
 * esbuild's messages carry no kind: the few that are not about the text itself are known by their
 * opening words, and the rest come from its parser, so they are called syntax errors as the master's
 * check calls them.
 */
const NOT_SYNTAX = /^(?:Could not resolve|No matching export|Could not read|Cannot read)/;

/** An esbuild message as `file:line:column: reason`, the file named from the job's directory as given. */
function describeMessage(m: Message, jobDir: string): string {
  const where = m.location ? `${join(jobDir, m.location.file)}:${m.location.line}:${m.location.column + 1}: ` : '';
  const kind = m.pluginName === '' && !NOT_SYNTAX.test(m.text) ? 'syntax error: ' : '';
  return `${where}${kind}${m.text}`;
}

/** Why a build failed, as one line: its first error, and how many more there are. */
function buildError(e: unknown, jobDir: string): UserError | null {
  const errors = (e as Partial<BuildFailure>).errors;
  if (!Array.isArray(errors) || errors.length === 0) return null;
  const more = errors.length > 1 ? ` (and ${errors.length - 1} more error${errors.length > 2 ? 's' : ''})` : '';
  return new UserError(`${describeMessage(errors[0]!, jobDir)}${more}`);
}

/** Bundles the job at `path` into one ES module with an inline source map. */
export async function bundleJob(path: string): Promise<JobSource> {
  const ext = extname(path);
  if (!JOB_EXTENSIONS.includes(ext)) {
    throw new UserError(
      `${path}: a job module is a .ts, .mts, .js or .mjs file (use --no-bundle to send another file as it is)`,
    );
  }
  await checkReadable(path, 'job module');
  const abs = resolve(path);
  const name = `${basename(path, ext)}.js`;
  // Loaded here, not at start-up: only submit and local bundle.
  const esbuild = await import('esbuild');
  let text: string;
  try {
    const result = await esbuild.build({
      entryPoints: [abs],
      // Messages then name files from the job's directory, which describeMessage puts back as given.
      absWorkingDir: dirname(abs),
      bundle: true,
      write: false,
      format: 'esm',
      // Tabs and the Node volunteer's sandbox are browser-like: packages' "browser" builds are the ones.
      platform: 'browser',
      target: 'es2022',
      // Sources named relative to the job file's directory: stacks then read `job.ts:12:5`.
      outfile: join(dirname(abs), `${name}.bundle.js`),
      sourcemap: 'inline',
      sourcesContent: false,
      define: { 'process.env.NODE_ENV': '"production"' },
      legalComments: 'none',
      logLevel: 'silent',
      plugins: [refuseNodeBuiltins],
    });
    text = result.outputFiles[0]!.text;
  } catch (e) {
    throw buildError(e, dirname(path)) ?? e;
  }
  const map = readInlineSourceMap(text);
  checkBundle(text, name, path, map);
  return { name, source: text, map };
}

/**
 * The master's check of the bundle, run here first so nothing is uploaded in vain; a line it names
 * is a line of the bundle, so it is shown as the author's.
 */
function checkBundle(source: string, name: string, path: string, map: SourceMap | null): void {
  try {
    checkJobModule(source, name);
  } catch (e) {
    if (!(e instanceof UserError) || !e.message.startsWith(`${name}:`)) throw e;
    const m = /^[^:]+:(\d+)(?::(\d+))?: (.*)$/s.exec(e.message);
    const p = m && map ? originalPosition(map, Number(m[1]), Number(m[2] ?? 1)) : null;
    if (!m || !p) throw new UserError(`${path}${e.message.slice(name.length)}`);
    throw new UserError(`${join(dirname(path), p.source)}:${p.line}:${p.column}: ${m[3]}`);
  }
}

/** The job's module as `submit` and `local` send and run it: bundled, or with `--no-bundle` as it is. */
export async function loadJobSource(path: string, opts: { bundle: boolean }): Promise<JobSource> {
  if (opts.bundle) return bundleJob(path);
  const source = (await readInput(path, 'job module')).toString('utf8');
  checkJobModule(source, path);
  return { name: basename(path), source, map: null };
}
