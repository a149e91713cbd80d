/**
 * The default blob store: one file per blob under `DATA/blobs/jobs/`, written first into
 * `DATA/blobs/tmp/` and renamed into place once complete and fsynced, so a name never shows half a
 * blob, even after a SIGKILL or a power cut. What a crash leaves in `tmp/` is removed at the next
 * start (`clearUnfinished`).
 */
import { createReadStream, closeSync, openSync, readSync, type ReadStream } from 'node:fs';
import { mkdir, open, readdir, rename, rm, stat, unlink, type FileHandle } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import { checkBlobName, checkBlobPrefix, type BlobStore, type BlobWriter } from './blob-store.js';

function isMissing(e: unknown): boolean {
  return (e as NodeJS.ErrnoException).code === 'ENOENT';
}

/**
 * Makes a rename or unlink in `dir` durable. On the thread pool, as the file's own fsync is: an
 * upload's commit must not hold the master's event loop for a disk flush.
 */
async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Descriptors kept open for `readSync`: small map inputs are read one assignment at a time, many a
 * second from the same input blob, and an open and a close per read were two more system calls on
 * the event loop each time. The newest few stay open; deleting a blob closes its descriptor.
 */
const READ_FDS = 8;

/**
 * A blob read in order, small piece after small piece (a job of small splits: each map task's input
 * starts where the last one ended), is read a window of this many bytes at a time and served from it:
 * a `pread` per task was 5% of the master's CPU under `npm run bench -- dispatch`. A read that does
 * not start where the last one ended (a reduce's span of each map output) reads just what it asks.
 */
const READ_WINDOW = 256 * 1024;
const WINDOWED_READ_MAX = 64 * 1024;

export class LocalBlobStore implements BlobStore {
  private readonly jobsDir: string;
  private readonly tmpDir: string;
  /** Open descriptors by blob name, least recently read first. */
  private readonly fds = new Map<string, number>();
  /** Per kept descriptor: where its last read ended, and the window read ahead, if any. */
  private readonly windows = new Map<string, { lastEnd: number; start: number; bytes: Buffer | null }>();
  /**
   * Directories known to exist: a mkdir per upload and per commit was 2.4% of the master's CPU under
   * `npm run bench -- tabs`. Forgotten when this store removes them, and re-made if they vanish.
   */
  private readonly dirs = new Set<string>();

  constructor(readonly root: string) {
    this.jobsDir = join(root, 'jobs');
    this.tmpDir = join(root, 'tmp');
  }

  private path(name: string): string {
    return join(this.jobsDir, checkBlobName(name));
  }

  /** Runs `fn`, which needs `dir`; makes `dir` first if it is not known to exist, or if `fn` finds it missing. */
  private async inDir<T>(dir: string, fn: () => Promise<T>): Promise<T> {
    if (!this.dirs.has(dir)) {
      await mkdir(dir, { recursive: true });
      this.dirs.add(dir);
      return fn();
    }
    try {
      return await fn();
    } catch (e) {
      if (!isMissing(e)) throw e;
      this.dirs.delete(dir);
      return this.inDir(dir, fn);
    }
  }

  async create(name: string): Promise<BlobWriter> {
    const target = this.path(name);
    const tmp = join(this.tmpDir, randomBytes(12).toString('hex'));
    const fh: FileHandle = await this.inDir(this.tmpDir, () => open(tmp, 'wx', 0o600));
    let bytes = 0;
    let state: 'open' | 'committed' | 'aborted' = 'open';
    const abort = async () => {
      if (state !== 'open') return;
      state = 'aborted';
      await fh.close().catch(() => {});
      await unlink(tmp).catch(() => {});
    };
    return {
      get bytes() {
        return bytes;
      },
      write: async (chunk) => {
        if (state !== 'open') throw new Error(`blob ${name} is ${state}`);
        let off = 0;
        while (off < chunk.length) {
          const { bytesWritten } = await fh.write(chunk, off, chunk.length - off);
          off += bytesWritten;
        }
        bytes += chunk.length;
      },
      commit: async () => {
        if (state !== 'open') throw new Error(`blob ${name} is ${state}`);
        try {
          await fh.sync();
          await fh.close();
          await this.inDir(dirname(target), () => rename(tmp, target));
          await syncDir(dirname(target));
          state = 'committed';
          return bytes;
        } catch (e) {
          await abort();
          throw e;
        }
      },
      abort,
    };
  }

  read(name: string, range?: { start: number; end: number }): ReadStream {
    const path = this.path(name);
    if (!range) return createReadStream(path, { highWaterMark: 256 * 1024 });
    if (range.end <= range.start) return createReadStream(path, { start: 0, end: -1 });
    // createReadStream's `end` is inclusive.
    return createReadStream(path, { start: range.start, end: range.end - 1, highWaterMark: 256 * 1024 });
  }

  readSync(name: string, start: number, end: number): Buffer {
    const fd = this.fdFor(name);
    const w = this.windows.get(name) ?? { lastEnd: -1, start: 0, bytes: null };
    this.windows.set(name, w);
    try {
      if (w.bytes && start >= w.start && end <= w.start + w.bytes.length) {
        w.lastEnd = end;
        return w.bytes.subarray(start - w.start, end - w.start);
      }
      const sequential = start === w.lastEnd && end - start <= WINDOWED_READ_MAX;
      const bytes = this.pread(fd, name, start, sequential ? start + READ_WINDOW : end, end);
      w.lastEnd = end;
      if (!sequential) return bytes;
      w.start = start;
      w.bytes = bytes;
      return bytes.subarray(0, end - start);
    } catch (e) {
      this.closeFds((n) => n === name);
      throw e;
    }
  }

  /** Bytes [start, upTo) of the blob, or fewer where it ends, but never fewer than up to `need`. */
  private pread(fd: number, name: string, start: number, upTo: number, need: number): Buffer {
    const buf = Buffer.allocUnsafe(Math.max(0, upTo - start));
    let off = 0;
    while (off < buf.length) {
      const n = readSync(fd, buf, off, buf.length - off, start + off);
      if (n === 0) break;
      off += n;
    }
    if (start + off < need) throw new Error(`blob ${name} is shorter than ${need} bytes`);
    return off === buf.length ? buf : buf.subarray(0, off);
  }

  private fdFor(name: string): number {
    let fd = this.fds.get(name);
    if (fd !== undefined) {
      this.fds.delete(name);
    } else {
      fd = openSync(this.path(name), 'r');
      for (const [old, oldFd] of this.fds) {
        if (this.fds.size < READ_FDS) break;
        this.fds.delete(old);
        this.windows.delete(old);
        closeSync(oldFd);
      }
    }
    this.fds.set(name, fd);
    return fd;
  }

  /** Closes the kept descriptors of the blobs `which` names: they are being deleted. */
  private closeFds(which: (name: string) => boolean): void {
    for (const [name, fd] of this.fds) {
      if (!which(name)) continue;
      this.fds.delete(name);
      this.windows.delete(name);
      closeSync(fd);
    }
  }

  async size(name: string): Promise<number | null> {
    try {
      return (await stat(this.path(name))).size;
    } catch (e) {
      if (isMissing(e)) return null;
      throw e;
    }
  }

  async delete(name: string): Promise<void> {
    this.closeFds((n) => n === name);
    await unlink(this.path(name)).catch((e: unknown) => {
      if (!isMissing(e)) throw e;
    });
  }

  async deletePrefix(prefix: string): Promise<void> {
    const dir = checkBlobPrefix(prefix).replace(/\/$/, '');
    this.closeFds((n) => n.startsWith(`${dir}/`));
    const gone = join(this.jobsDir, dir);
    for (const d of this.dirs) if (d === gone || d.startsWith(`${gone}/`)) this.dirs.delete(d);
    await rm(gone, { recursive: true, force: true });
  }

  async *list(prefix: string): AsyncIterable<{ name: string; bytes: number }> {
    const dir = checkBlobPrefix(prefix).replace(/\/$/, '');
    const walk = async function* (this: LocalBlobStore, rel: string): AsyncGenerator<{ name: string; bytes: number }> {
      let entries;
      try {
        entries = await readdir(join(this.jobsDir, rel), { withFileTypes: true });
      } catch (e) {
        if (isMissing(e)) return;
        throw e;
      }
      for (const e of entries) {
        const name = `${rel}/${e.name}`;
        if (e.isDirectory()) yield* walk.call(this, name);
        else if (e.isFile()) {
          const s = await stat(join(this.jobsDir, name)).catch(() => null);
          if (s) yield { name, bytes: s.size };
        }
      }
    };
    yield* walk.call(this, dir);
  }

  async jobs(): Promise<string[]> {
    try {
      return (await readdir(this.jobsDir, { withFileTypes: true })).filter((e) => e.isDirectory()).map((e) => e.name);
    } catch (e) {
      if (isMissing(e)) return [];
      throw e;
    }
  }

  async clearUnfinished(): Promise<void> {
    await rm(this.tmpDir, { recursive: true, force: true });
    await mkdir(this.tmpDir, { recursive: true });
  }
}
