/**
 * Where a job's data lives: its input files, its map tasks' outputs and its output partitions. SQLite
 * keeps only metadata (which blob, which byte range); the bytes stay here, so the master's memory
 * holds at most a chunk of any of them at a time.
 *
 * Names are `JOB/KIND/FILE` (`JOB/input/0`, `JOB/map/12-LEASE`, `JOB/out/3-LEASE`): every blob
 * belongs to one job, so deleting a job is deleting one prefix, and a blob no row refers to is found
 * by listing the job's blobs. The default store is local files under `DATA/blobs`
 * (local-blob-store.ts). The interface is kept to what an S3-compatible store can do as well: create
 * an object from a stream, read a byte range, delete, list by prefix. Such a store would add
 * presigned URLs (`urlFor`), so volunteers read inputs and write outputs there directly; the README's
 * "Data path" section describes that design.
 */
import type { Readable } from 'node:stream';

export interface BlobWriter {
  /** Appends bytes; resolves once they are written (so a caller that awaits it has backpressure). */
  write(chunk: Uint8Array): Promise<void>;
  /** Bytes written so far. */
  readonly bytes: number;
  /** Makes the blob durable and visible under its name; returns its size. */
  commit(): Promise<number>;
  /** Throws away what was written. Safe to call after commit (does nothing) or twice. */
  abort(): Promise<void>;
}

export interface BlobStore {
  /** A new blob, invisible under its name (and left nowhere after a crash) until `commit`. */
  create(name: string): Promise<BlobWriter>;
  /** Bytes `start` (inclusive) to `end` (exclusive) of a blob, or all of it, as a stream. */
  read(name: string, range?: { start: number; end: number }): Readable;
  /**
   * A small range read at once, for data small enough to travel inside a task's message. Stores that
   * cannot read synchronously (a remote one) leave it out, and every range goes by URL instead.
   */
  readSync?(name: string, start: number, end: number): Buffer;
  /** The blob's size, or null when there is none. */
  size(name: string): Promise<number | null>;
  delete(name: string): Promise<void>;
  /** Deletes every blob whose name starts with `prefix` (`JOB/` or `JOB/map/`). */
  deletePrefix(prefix: string): Promise<void>;
  /** Names and sizes of the blobs whose names start with `prefix`. */
  list(prefix: string): AsyncIterable<{ name: string; bytes: number }>;
  /** The jobs that have any blob. */
  jobs(): Promise<string[]>;
  /** Removes what unfinished writes left behind (a crash mid-upload); run before serving. */
  clearUnfinished(): Promise<void>;
}

const NAME = /^[a-z0-9]{1,64}(\/[a-z0-9][a-z0-9._-]{0,127}){1,3}$/;

/** Refuses names that could leave the store's directory or collide with its own files. */
export function checkBlobName(name: string): string {
  if (!NAME.test(name) || name.includes('..')) throw new Error(`invalid blob name ${JSON.stringify(name)}`);
  return name;
}

const PREFIX = /^[a-z0-9]{1,64}\/([a-z]{1,16}\/)?$/;

/** A prefix is a job (`JOB/`) or one kind of a job's data (`JOB/map/`). */
export function checkBlobPrefix(prefix: string): string {
  if (!PREFIX.test(prefix)) throw new Error(`invalid blob prefix ${JSON.stringify(prefix)}`);
  return prefix;
}

export const blobNames = {
  input: (jobId: string, file: number) => `${jobId}/input/${file}`,
  mapOutput: (jobId: string, mapIdx: number, lease: string) => `${jobId}/map/${mapIdx}-${lease}`,
  output: (jobId: string, part: number, lease: string) => `${jobId}/out/${part}-${lease}`,
  mapPrefix: (jobId: string) => `${jobId}/map/`,
  inputPrefix: (jobId: string) => `${jobId}/input/`,
  jobPrefix: (jobId: string) => `${jobId}/`,
};
