/**
 * The files the user names: job modules and inputs read, `--out` directories written. Every way the
 * file system can refuse becomes one line that names the path and the reason (exit 2), never a stack.
 */
import { createWriteStream } from 'node:fs';
import { mkdir, open, readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import { UserError, toError } from '../../shared/errors.js';

/** What the common error codes mean to a person; others keep Node's own words. */
const REASONS: Record<string, string> = {
  ENOENT: 'no such file or directory',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EISDIR: 'it is a directory',
  ENOTDIR: 'a part of the path is not a directory',
  EEXIST: 'it already exists',
  ENOSPC: 'no space left on the device',
  EDQUOT: 'disk quota exceeded',
  EROFS: 'read-only file system',
  ELOOP: 'too many symbolic links',
  ENAMETOOLONG: 'the name is too long',
  EMFILE: 'too many open files',
  EIO: 'input/output error',
  EFBIG: 'the file is too large',
};

/** A Node file-system error (it carries the call and the path that failed). */
export function isFsError(e: unknown): e is NodeJS.ErrnoException & { code: string } {
  const err = e as NodeJS.ErrnoException | null;
  return err instanceof Error && typeof err.code === 'string' && typeof err.syscall === 'string';
}

/** The reason an fs call failed, in words: "permission denied", not "EACCES: permission denied, open '…'". */
export function fsReason(e: unknown): string {
  const err = toError(e) as NodeJS.ErrnoException;
  if (err.code && REASONS[err.code]) return REASONS[err.code]!;
  return err.message.replace(/^E[A-Z]+: /, '').replace(/, \w+ '.*'$/s, '');
}

/** One line for an fs error on a path the user named; `action` is "read input file", "write", … */
export function fsUserError(e: unknown, action: string, path: string): UserError {
  const err = toError(e) as NodeJS.ErrnoException;
  if (err.code === 'ENOENT' && action.startsWith('read '))
    return new UserError(`${action.slice(5)} not found: ${path}`);
  return new UserError(`cannot ${action} ${path}: ${fsReason(e)}`);
}

/** Reads a file the user named, with an error that says which and why. */
export async function readInput(path: string, what: string): Promise<Buffer> {
  await checkReadable(path, what);
  try {
    return await readFile(path);
  } catch (e) {
    throw fsUserError(e, `read ${what}`, path);
  }
}

/**
 * Checks that a file the user named can be read, before anything is uploaded or run: it exists, is
 * not a directory, and opens (a file without read permission fails here, not halfway through an
 * upload). Returns its size.
 */
export async function checkReadable(path: string, what: string): Promise<number> {
  try {
    const s = await stat(path);
    if (s.isDirectory()) throw new UserError(`${what} ${path} is a directory; name a file`);
    await (await open(path, 'r')).close();
    return s.size;
  } catch (e) {
    if (e instanceof UserError) throw e;
    throw fsUserError(e, `read ${what}`, path);
  }
}

/**
 * The input files the user named, with each directory replaced by the files under it: recursively,
 * in path order (JavaScript string order, the same on every machine), hidden files and directories
 * (a name starting with ".") skipped. Links to files are followed; links to directories are not,
 * so a link back up the tree cannot loop.
 */
export async function expandInputs(paths: string[]): Promise<string[]> {
  const files: string[] = [];
  for (const path of paths) {
    let isDir: boolean;
    try {
      isDir = (await stat(path)).isDirectory();
    } catch (e) {
      throw fsUserError(e, 'read input file', path);
    }
    if (!isDir) {
      files.push(path);
      continue;
    }
    const found = (await filesUnder(path)).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    if (found.length === 0) throw new UserError(`input directory ${path} holds no files (hidden ones are skipped)`);
    files.push(...found);
  }
  return files;
}

async function filesUnder(dir: string): Promise<string[]> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (e) {
    throw fsUserError(e, 'read input directory', dir);
  }
  const files: string[] = [];
  for (const e of entries) {
    if (e.name.startsWith('.')) continue;
    const path = join(dir, e.name);
    if (e.isDirectory()) files.push(...(await filesUnder(path)));
    else if (e.isFile()) files.push(path);
    else if (e.isSymbolicLink() && (await stat(path).catch(() => null))?.isFile()) files.push(path);
  }
  return files;
}

/** `--out DIR`: made if missing; a file in the way is named, not a stack. */
export async function prepareOutDir(dir: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true });
  } catch (e) {
    const code = (toError(e) as NodeJS.ErrnoException).code;
    if (code === 'EEXIST' || code === 'ENOTDIR')
      throw new UserError(`--out ${dir} is a file, not a directory; name a directory (it is made if missing)`);
    throw fsUserError(e, 'create the --out directory', dir);
  }
}

/** Writes one output file from text or a stream; a refusal of the disk names the file. */
export async function writeOutFile(path: string, data: string | Readable): Promise<void> {
  const file = createWriteStream(path);
  try {
    if (typeof data === 'string') {
      file.end(data);
      await finished(file);
    } else {
      await pipeline(data, file);
    }
  } catch (e) {
    file.destroy();
    if (isFsError(e)) throw fsUserError(e, 'write', path);
    throw e;
  }
}
