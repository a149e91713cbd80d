import { Hono } from 'hono';
import { badRequest, conflict, notFound } from '../http-errors.js';
import { newJobId, type JobSpec, type StagedInput } from '../submit-job.js';
import { toError } from '../../shared/errors.js';
import { countOf, formatBytes } from '../../shared/units.js';
import { receiveJob, UploadTooLarge } from '../receive-job.js';
import { requestBody, streamResponse } from '../http-body.js';
import { blobNames, type BlobStore } from '../blobs/blob-store.js';
import { outputStream } from '../blobs/job-data.js';
import { jobView } from '../views.js';
import { summarizeJob } from '../job-summary.js';
import { taskListResponse } from './task-list.js';
import type { Scheduler } from '../scheduler/index.js';
import type { Stores } from '../sql/index.js';
import type { JobRow } from '../sql/job-store.js';
import { isJobFinished } from '../../shared/states.js';
import type { DeletedJob } from '../../shared/api.js';

/** The master's log line for a new job: what it runs, on how much, cut into how many tasks. */
export function submittedLine(spec: JobSpec): string {
  const bytes = spec.inputs.reduce((n, i) => n + i.bytes, 0);
  const maps = spec.inputs.reduce((n, i) => n + i.splits.length, 0);
  const name = spec.name && spec.name !== spec.moduleName ? ` (${JSON.stringify(spec.name)})` : '';
  return `job ${spec.id} submitted: ${spec.moduleName}${name} on ${countOf(spec.inputs.length, 'input')} of ${formatBytes(bytes)}, ${countOf(maps, 'map')} and ${countOf(spec.reduces, 'reduce')}`;
}

/** An error's first line, for a log line. */
function firstLine(e: unknown): string {
  return toError(e).message.split('\n')[0]!;
}

export function jobRoutes(
  scheduler: Scheduler,
  stores: Stores,
  blobs: BlobStore,
  maxUploadBytes: number,
  log: (line: string) => void,
) {
  const app = new Hono();
  const { jobs, outputs } = stores;
  const flush = () => scheduler.flush();
  const job = (id: string) => {
    const row = jobs.get(id);
    if (!row) throw notFound(`no job ${JSON.stringify(id)}`);
    return row;
  };

  app.post('/', async (c) => {
    const id = newJobId();
    // Its maps run while the rest of its upload arrives (server/scheduler/upload.ts).
    let begun = false;
    const early = {
      begin: (spec: JobSpec) => {
        // Set first: a begin that fails part way leaves a job for abandonUpload to delete.
        begun = true;
        scheduler.beginUpload(spec);
      },
      input: (spec: JobSpec, inputs: StagedInput[], first: number) => scheduler.addUploadedInputs(spec, inputs, first),
    };
    /** The job ended on its own while its upload arrived: it stays, and the submit says why. */
    const ended = () => {
      const why = scheduler.endedDuringUpload(id) ?? `job ${id} ended while its input was uploading`;
      return c.json({ error: `${why}; see tabreduce status ${id}`, id }, 409);
    };
    let spec;
    try {
      spec = await receiveJob(requestBody(c), c.req.header('content-type') ?? '', id, {
        blobs,
        maxUploadBytes,
        early,
      });
    } catch (e) {
      if (begun && scheduler.endedDuringUpload(id)) return ended();
      if (begun) await scheduler.abandonUpload(id, firstLine(e));
      if (e instanceof UploadTooLarge) return c.json({ error: e.message }, 413);
      throw e;
    }
    try {
      if (!begun) await scheduler.submit(spec);
      else if (!scheduler.endUpload(spec)) return ended();
    } catch (e) {
      if (begun) await scheduler.abandonUpload(id, firstLine(e));
      else await blobs.deletePrefix(blobNames.jobPrefix(id)).catch(() => {});
      throw e;
    }
    log(submittedLine(spec));
    return c.json({ id }, 201);
  });

  const view = (row: JobRow) => jobView(row, scheduler.waitingFor(row.id));
  app.get('/', (c) => c.json(jobs.list().map(view)));
  app.get('/:id', (c) => c.json(view(job(c.req.param('id')))));
  // Both read a big job a page at a time, and make each page durable first as the /api middleware does.
  app.get('/:id/tasks', (c) => taskListResponse(c, stores, job(c.req.param('id')), scheduler.clock, flush));
  app.get('/:id/summary', async (c) => c.json(await summarizeJob(stores, job(c.req.param('id')).id, flush)));
  app.get('/:id/output', (c) => {
    const j = job(c.req.param('id'));
    if (j.state !== 'succeeded') {
      throw badRequest(`job ${j.id} is ${j.state}; output is ready when it has succeeded`);
    }
    const p = c.req.query('partition');
    const headers = { 'content-type': 'text/plain; charset=utf-8' };
    if (p === undefined) return streamResponse(outputStream(outputs, blobs, j.id), headers);
    if (!/^\d+$/.test(p) || Number(p) >= j.n_reduce) {
      throw badRequest(`partition must be a whole number from 0 to ${j.n_reduce - 1}`);
    }
    const bytes = outputs.part(j.id, Number(p))?.bytes ?? 0;
    return streamResponse(outputStream(outputs, blobs, j.id, Number(p)), {
      ...headers,
      'content-length': String(bytes),
    });
  });
  app.post('/:id/cancel', (c) => {
    const j = job(c.req.param('id'));
    if (isJobFinished(j.state))
      throw badRequest(`job ${j.id} has already ${j.state === 'cancelled' ? 'been cancelled' : j.state}`);
    scheduler.cancel(j.id);
    return c.json(view(job(j.id)));
  });
  app.delete('/:id', async (c) => {
    const id = job(c.req.param('id')).id;
    const r = await scheduler.deleteJob(id, 'by an admin');
    if (r.kind === 'missing') throw notFound(`no job ${JSON.stringify(id)}`);
    if (r.kind === 'unfinished') throw conflict(`job ${id} is ${r.state}; cancel it first (tabreduce cancel ${id})`);
    return c.json({ id, freedBytes: r.freedBytes } satisfies DeletedJob);
  });
  return app;
}
