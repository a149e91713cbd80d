import { Hono } from 'hono';
import { streamSSE } from 'hono/streaming';
import type { Scheduler } from '../scheduler.js';
import { jobView, workerView } from '../views.js';
import { ThroughputMeter } from '../throughput.js';

/**
 * Server-sent events for the status page: `jobs` (full list) on connect, then `job` for each job that
 * changed, `workers` when volunteers change, and `throughput` every second. Changes are batched
 * every 250 ms so a burst of 2,000 commits per second costs a handful of frames.
 */
export function eventRoutes(scheduler: Scheduler, meter: ThroughputMeter) {
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
      await stream.writeSSE({ event: 'jobs', data: JSON.stringify(scheduler.jobs.list(200).map(jobView)) });
      let tick = 0;
      while (open) {
        for (const id of dirtyJobs) {
          const row = scheduler.jobs.get(id);
          if (row) await stream.writeSSE({ event: 'job', data: JSON.stringify(jobView(row)) });
        }
        dirtyJobs.clear();
        // Heartbeat times change constantly; resend workers at least every 2 s.
        if (dirtyWorkers || tick % 8 === 0) {
          dirtyWorkers = false;
          const list = [...scheduler.volunteers.values()].map((v) => workerView(scheduler, v));
          await stream.writeSSE({ event: 'workers', data: JSON.stringify(list) });
        }
        if (tick % 4 === 0) await stream.writeSSE({ event: 'throughput', data: JSON.stringify(meter.recent()) });
        tick++;
        await stream.sleep(250);
      }
    }),
  );
  return app;
}
