/** SQLite and file-system errors that mean "the data directory cannot take more writes now". */
export function isStorageError(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') return false;
  return (
    code === 'SQLITE_FULL' ||
    code.startsWith('SQLITE_IOERR') ||
    code === 'SQLITE_READONLY' ||
    code === 'ENOSPC' ||
    code === 'EROFS'
  );
}

export const STORAGE_FULL_MESSAGE =
  'the master cannot write to its data directory (disk full or read-only); nothing was changed. Free space in the data directory and retry';
