import { readFile, stat } from 'node:fs/promises';
import { UserError, toError } from '../../shared/errors.js';

/** Reads a file the user named, with an error that says which and why. */
export async function readInput(path: string, what: string): Promise<Buffer> {
  try {
    const s = await stat(path);
    if (s.isDirectory()) throw new UserError(`${what} ${path} is a directory; name the files inside it`);
    return await readFile(path);
  } catch (e) {
    if (e instanceof UserError) throw e;
    const err = toError(e) as NodeJS.ErrnoException;
    if (err.code === 'ENOENT') throw new UserError(`${what} not found: ${path}`);
    if (err.code === 'EACCES') throw new UserError(`cannot read ${what} ${path}: permission denied`);
    throw new UserError(`cannot read ${what} ${path}: ${err.message}`);
  }
}

export async function checkReadable(path: string, what: string): Promise<number> {
  try {
    const s = await stat(path);
    if (s.isDirectory()) throw new UserError(`${what} ${path} is a directory; name the files inside it`);
    return s.size;
  } catch (e) {
    if (e instanceof UserError) throw e;
    const err = toError(e) as NodeJS.ErrnoException;
    if (err.code === 'ENOENT') throw new UserError(`${what} not found: ${path}`);
    throw new UserError(`cannot read ${what} ${path}: ${err.message}`);
  }
}
