/**
 * What a stopped master left behind, put right before it serves again: a job whose submit never
 * finished (rows and blobs), blobs of jobs that no longer exist, inputs and map outputs a finished
 * job no longer needs, and task outputs uploaded but never committed. An output uploaded for an
 * attempt that is still running is kept and handed back to the scheduler: its volunteer reconnects
 * within the reassignment window and sends `task.result`, and the commit happens as if the master
 * had never stopped.
 */
import type { Stores } from '../sql/index.js';
import type { Upload } from '../scheduler/context.js';
import { blobNames, type BlobStore } from './blob-store.js';
import { MapOutputCheck, ReduceOutputCheck } from '../output-check.js';

export interface SweepResult {
  /** Blobs deleted. */
  deleted: number;
  /** Uploads of running attempts, by lease. */
  uploads: Map<string, Upload>;
}

export async function sweepBlobs(stores: Stores, blobs: BlobStore, log: (line: string) => void): Promise<SweepResult> {
  const { jobs, outputs, attempts } = stores;
  await blobs.clearUnfinished();
  let deleted = 0;
  const uploads = new Map<string, Upload>();
  for (const id of jobs.unready()) {
    stores.transaction(() => jobs.remove(id));
    log(`removed job ${id}: the master stopped before its submit finished`);
  }
  const known = new Set(jobs.ids());
  for (const id of await blobs.jobs()) {
    if (!known.has(id)) {
      await blobs.deletePrefix(blobNames.jobPrefix(id));
      deleted++;
      continue;
    }
    const job = jobs.get(id);
    if (!job) continue;
    const finished = job.state === 'succeeded' || job.state === 'failed' || job.state === 'cancelled';
    // A verified job keeps its inputs until it ends (a map taken back after the barrier runs again).
    const inputsKept = job.state === 'queued' || job.state === 'mapping' || (job.verify !== 'off' && !finished);
    if (!inputsKept) await blobs.deletePrefix(blobNames.inputPrefix(id));
    if (finished) await blobs.deletePrefix(blobNames.mapPrefix(id));
    const referenced = new Set([...outputs.mapBlobs(id), ...outputs.outputBlobs(id)]);
    for (const kind of finished ? ['out'] : ['map', 'out']) {
      for await (const { name } of blobs.list(`${id}/${kind}/`)) {
        if (referenced.has(name)) continue;
        const lease = /-([0-9a-f]{32})$/.exec(name)?.[1];
        const attempt = lease ? attempts.byLease(lease) : undefined;
        if (lease && attempt?.outcome === 'running') {
          const upload = await recheck(blobs, name, kind === 'map' ? job.n_reduce : null).catch(() => null);
          if (upload) {
            uploads.set(lease, upload);
            continue;
          }
        }
        await blobs.delete(name);
        deleted++;
      }
    }
  }
  if (deleted > 0) log(`removed ${deleted} blobs that no job needs (left by a stop mid-upload or mid-commit)`);
  return { deleted, uploads };
}

/** Reads an uploaded output back to learn what its commit needs (it was checked on the way in). */
async function recheck(blobs: BlobStore, name: string, nReduce: number | null): Promise<Upload> {
  const check = nReduce === null ? new ReduceOutputCheck() : new MapOutputCheck(nReduce);
  for await (const chunk of blobs.read(name)) check.push(chunk as Buffer);
  const s = check.end();
  return {
    blob: name,
    bytes: s.bytes,
    records: s.records,
    offsets: 'offsets' in s ? (s.offsets as number[]) : null,
    hash: s.hash,
  };
}
