/**
 * Task data over HTTP, for volunteers (not under /api: a lease, not the admin token, authorises it).
 * `GET /data/LEASE/input` streams a running task's input; `PUT /data/LEASE/output` takes its output
 * as a stream, checks it on the way into the blob store, and answers once it is durable, after which
 * the volunteer sends `task.result` with `uploaded: true` over its socket and the commit happens
 * there, exactly once, as for an output sent inline. A lease is 128 random bits known only to the
 * master and the volunteer it was given to, and is good only while its attempt runs.
 */
import { Hono } from 'hono';
import type { Scheduler } from '../scheduler/index.js';
import type { Stores } from '../sql/index.js';
import { blobNames, type BlobStore } from '../blobs/blob-store.js';
import { inputBytes, mapInputStream, reduceInputStream } from '../blobs/job-data.js';
import { MapOutputCheck, OutputError, ReduceOutputCheck } from '../output-check.js';
import { requestBody, streamResponse } from '../http-body.js';
import { formatBytes } from '../../shared/units.js';

const LEASE = /^[0-9a-f]{32}$/;
const GONE = 'this task is no longer yours: it ended, or went to another volunteer';

export function dataRoutes(scheduler: Scheduler, stores: Stores, blobs: BlobStore, maxOutputBytes: number) {
  const app = new Hono();

  app.get('/:lease/input', (c) => {
    const lease = c.req.param('lease');
    const run = LEASE.test(lease) ? scheduler.running(lease) : null;
    if (!run) return c.json({ error: GONE }, 410);
    const l = run.lease;
    const headers: Record<string, string> = {
      'content-type': 'text/plain; charset=utf-8',
      'cache-control': 'no-store',
    };
    if (l.phase === 'map') {
      const src = stores.tasks.input(l.taskId) ?? { inline: Buffer.alloc(0) };
      headers['content-length'] = String(inputBytes(src));
      return streamResponse(mapInputStream(blobs, src), headers);
    }
    if (l.bytes !== null) headers['content-length'] = String(l.bytes);
    return streamResponse(reduceInputStream(stores.outputs, blobs, l.jobId, l.index), headers);
  });

  app.put('/:lease/output', async (c) => {
    const lease = c.req.param('lease');
    const run = LEASE.test(lease) ? scheduler.running(lease) : null;
    if (!run) return c.json({ error: GONE }, 410);
    const l = run.lease;
    const tooLarge = () =>
      c.json(
        {
          error:
            `the ${l.phase} output is larger than the master's limit of ${formatBytes(maxOutputBytes)}; ` +
            'raise it with `tabreduce serve --max-upload`, or make the output smaller',
        },
        413,
      );
    const declared = Number(c.req.header('content-length') ?? NaN);
    if (declared > maxOutputBytes) return tooLarge();
    if (l.uploading) return c.json({ error: 'an upload for this task is already under way' }, 409);
    l.uploading = true;
    const name =
      l.phase === 'map' ? blobNames.mapOutput(l.jobId, l.index, lease) : blobNames.output(l.jobId, l.index, lease);
    const check = l.phase === 'map' ? new MapOutputCheck(run.nReduce) : new ReduceOutputCheck();
    const body = requestBody(c);
    const writer = await blobs.create(name);
    try {
      for await (const chunk of body as AsyncIterable<Buffer>) {
        if (writer.bytes + chunk.length > maxOutputBytes) {
          body.resume();
          await writer.abort();
          return tooLarge();
        }
        check.push(chunk);
        await writer.write(chunk);
      }
      const summary = check.end();
      await writer.commit();
      const upload = {
        blob: name,
        bytes: summary.bytes,
        records: summary.records,
        offsets: 'offsets' in summary ? (summary.offsets as number[]) : null,
        hash: summary.hash,
      };
      if (!scheduler.uploaded(lease, upload)) {
        scheduler.discardBlob(name);
        return c.json({ error: GONE }, 410);
      }
      return c.json({ bytes: summary.bytes });
    } catch (e) {
      await writer.abort();
      body.resume();
      if (e instanceof OutputError) return c.json({ error: `invalid ${l.phase} output: ${e.message}` }, 400);
      throw e;
    } finally {
      l.uploading = false;
    }
  });
  return app;
}
