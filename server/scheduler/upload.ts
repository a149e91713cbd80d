/**
 * A job's maps run while its upload is still arriving. The job goes in, shown and active, once its
 * options and module are checked and its first input is stored; each input's map tasks are offered
 * as soon as that input is stored and split; the reduces go in when the upload is complete, and the
 * barrier waits for that (`ActiveJob.uploading`), since until then more maps may come.
 *
 * An upload that fails part way (interrupted, too large, a bad byte) takes its job with it: running
 * attempts are cancelled and the job is deleted, as if it had never been submitted. A master that
 * stops mid-upload deletes the job at its next start (recovery.ts). A job that ends on its own while
 * its upload arrives (a map failed too often, an admin cancelled it) stays, with its reason, and the
 * rest of the upload is refused.
 */
import {
  addUploadedMaps,
  beginUploadJob,
  endUploadJob,
  type JobSpec,
  type StagedInput,
  type Transaction,
} from '../submit-job.js';
import { nextJobState } from '../../shared/states.js';
import { blobNames } from '../blobs/blob-store.js';
import { discard, emit, type Context } from './context.js';
import { activate, dropInputs, moveJob } from './memory.js';
import { durably, flush } from './group-commit.js';

/** A durable transaction of its own, outside the group commit (as a job's insertion runs). */
function ownTransaction(ctx: Context): Transaction {
  return (fn) => {
    flush(ctx);
    return ctx.stores.transaction(fn);
  };
}

/**
 * At start, before anything is recovered: a job whose upload was arriving lost it with the master,
 * and goes as if never submitted (its blobs go in the sweep that follows, as blobs of no job). Not
 * on a reload after a failed commit: the upload is still arriving then.
 */
export function removeAbandonedUploads(ctx: Context): void {
  const { jobs } = ctx.stores;
  for (const id of jobs.abandonedUploads()) {
    ctx.stores.transaction(() => jobs.remove(id));
    ctx.log(`removed job ${id}: the master stopped while its input was uploading; submit it again`);
  }
}

/** Inserts and activates a job whose inputs are still arriving; it has no tasks yet. */
export function beginUpload(ctx: Context, spec: JobSpec): void {
  beginUploadJob(ctx.stores, spec, ctx.clock.now(), ownTransaction(ctx));
  durably(ctx, () => {
    const row = ctx.stores.jobs.get(spec.id);
    if (row) activate(ctx, row);
    emit(ctx, { kind: 'job', jobId: spec.id });
  });
}

/** Whether the job is still taking its upload: active, not ended. */
export function stillUploading(ctx: Context, jobId: string): boolean {
  return ctx.mem.active.get(jobId)?.uploading === true;
}

/**
 * Inserts the map tasks of inputs just stored, numbered from `first`; the caller dispatches them.
 * False when the job ended meanwhile: then none of them goes in, and the upload must stop.
 */
export async function addUploadedInputs(
  ctx: Context,
  spec: JobSpec,
  inputs: StagedInput[],
  first: number,
): Promise<boolean> {
  if (!stillUploading(ctx, spec.id)) return false;
  const total = inputs.reduce((n, i) => n + i.splits.length, 0);
  const added = await addUploadedMaps(ctx.stores, spec, inputs, first, ownTransaction(ctx), () =>
    stillUploading(ctx, spec.id),
  );
  const job = ctx.mem.active.get(spec.id);
  if (!job || added < total) return false;
  job.drained = false;
  return true;
}

/**
 * The upload is complete: the reduces go in, the map count is final, and if every map is already
 * done the barrier happens now. False when the job ended meanwhile. Runs inside the group commit;
 * the caller dispatches.
 */
export function endUpload(ctx: Context, spec: JobSpec): boolean {
  const job = ctx.mem.active.get(spec.id);
  if (!job?.uploading) return false;
  const { jobs } = ctx.stores;
  const counts = endUploadJob(ctx.stores, spec);
  job.uploading = false;
  job.drained = false;
  const state = jobs.get(spec.id)?.state;
  if (state && counts.maps_done >= counts.maps_total) {
    const next = nextJobState(state, { type: 'maps-done' });
    if (next !== state && jobs.advance(spec.id, state, next)) {
      // As at a commit's barrier (commit.ts): a verified job keeps its inputs, in case a map is taken back.
      if (job.verify === 'off') {
        dropInputs(ctx, spec.id);
        discard(ctx, blobNames.inputPrefix(spec.id));
      }
      moveJob(ctx, job, next);
    }
  }
  emit(ctx, { kind: 'job', jobId: spec.id });
  return true;
}
