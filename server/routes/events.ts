import { Hono } from 'hono';
import { streamSSE } from 'hono/streaming';
import type { Scheduler } from '../scheduler/index.js';
import type { JobStore } from '../sql/job-store.js';
import { jobView, workerView } from '../views.js';
import type { ThroughputMeter } from '../throughput.js';
import type { ThroughputSample } from '../../shared/api.js';

/**
 * Server-sent events for the status page: `jobs` (full list) on connect, then `job` for each job that
 * changed (`deleted` with its id once it is gone), `workers` when volunteers change, and `throughput`
 * every second. Changes are batched every 250 ms so a burst of 2,000 commits per second costs a
 * handful of frames.
 *
 * `throughput` carries the whole window (ten minutes) on connect, then only the seconds from the
 * last one sent on: a client merges samples by `t`. The list may be empty; it is sent anyway, so a
 * client that hears nothing for a few seconds knows the stream is dead.
 */
export function eventRoutes(scheduler: Scheduler, jobs: JobStore, meter: ThroughputMeter) {
  const app = new Hono();
  app.get('/', (c) =>
    streamSSE(c, async (stream) => {
      const dirtyJobs = new Set<string>();
      let dirtyWorkers = true;
      const off = scheduler.on((e) => {
        if (e.kind === 'job' || e.kind === 'commit') dirtyJobs.add(e.jobId);
        if (e.kind === 'volunteers') dirtyWorkers = true;
      });
      let open = true;
      stream.onAbort(() => {
        open = false;
        off();
      });
      await stream.writeSSE({
        event: 'jobs',
        data: JSON.stringify(jobs.list(200).map((j) => jobView(j, scheduler.waitingFor(j.id)))),
      });
      let tick = 0;
      let sentThroughput: number | null = null;
      while (open) {
        for (const id of dirtyJobs) {
          const row = jobs.get(id);
          if (row)
            await stream.writeSSE({ event: 'job', data: JSON.stringify(jobView(row, scheduler.waitingFor(row.id))) });
          else await stream.writeSSE({ event: 'deleted', data: JSON.stringify({ id }) });
        }
        dirtyJobs.clear();
        // Heartbeats and current tasks change constantly; resend workers every second, which at 100
        // volunteers is ~25 KB/s per open status page.
        if (dirtyWorkers || tick % 4 === 0) {
          dirtyWorkers = false;
          const list = [...scheduler.volunteers.values()].map((v) => workerView(scheduler, v));
          await stream.writeSSE({ event: 'workers', data: JSON.stringify(list) });
        }
        if (tick % 4 === 0) {
          const samples: ThroughputSample[] = sentThroughput === null ? meter.recent() : meter.since(sentThroughput);
          if (samples.length > 0) sentThroughput = samples.at(-1)!.t;
          else sentThroughput ??= 0;
          await stream.writeSSE({ event: 'throughput', data: JSON.stringify(samples) });
        }
        tick++;
        await stream.sleep(250);
      }
    }),
  );
  return app;
}
