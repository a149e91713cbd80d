import { Hono } from 'hono';
import { HTTPException } from 'hono/http-exception';
import type { Scheduler } from './scheduler/index.js';
import type { Stores } from './sql/index.js';
import { errorResponse } from './http-errors.js';
import { safeEqual } from './secrets.js';
import { jobRoutes } from './routes/jobs.js';
import { dataRoutes } from './routes/data.js';
import type { BlobStore } from './blobs/blob-store.js';
import { eventRoutes } from './routes/events.js';
import { renderMetrics } from './routes/metrics.js';
import { pageRoutes } from './routes/pages.js';
import { workerView } from './views.js';
import { ThroughputMeter } from './throughput.js';
import type { CreditBoard } from '../shared/api.js';

export interface AppOptions {
  token: string;
  clientDir: string;
  maxUploadBytes: number;
  blobs: BlobStore;
  log: (line: string) => void;
}

function tokenMatches(expected: string, header: string | undefined): boolean {
  return safeEqual(expected, /^Bearer (.+)$/.exec(header ?? '')?.[1]);
}

export function createApp(scheduler: Scheduler, stores: Stores, opts: AppOptions) {
  const app = new Hono();
  const meter = new ThroughputMeter(scheduler, scheduler.clock);

  app.use('/api/*', async (c, next) => {
    if (!tokenMatches(opts.token, c.req.header('authorization'))) {
      throw new HTTPException(401, {
        message:
          'missing or wrong admin token: send "Authorization: Bearer TOKEN" (the master prints where the token is)',
      });
    }
    // Answer from durable state only: commit what volunteers sent in this turn first.
    scheduler.flush();
    await next();
  });
  app.route('/api/jobs', jobRoutes(scheduler, stores, opts.blobs, opts.maxUploadBytes, opts.log));
  app.route('/data', dataRoutes(scheduler, stores, opts.blobs, opts.maxUploadBytes));
  app.get('/api/workers', (c) => c.json([...scheduler.volunteers.values()].map((v) => workerView(scheduler, v))));
  app.get('/api/throughput', (c) => c.json(meter.recent()));
  app.route('/api/events', eventRoutes(scheduler, stores.jobs, meter));
  app.get('/metrics', (c) => {
    c.header('content-type', 'text/plain; version=0.0.4; charset=utf-8');
    return c.body(renderMetrics(scheduler, stores));
  });
  app.get('/healthz', (c) => c.json({ ok: true }));
  app.get('/credit', (c) => {
    const id = c.req.query('volunteer');
    const mine = id ? stores.trust.get(id.slice(0, 64)) : undefined;
    const board: CreditBoard = {
      you: mine ? mine.credit_ms / 1000 : null,
      // A short id: enough for a tab to find itself, not enough to reconnect as someone.
      top: stores.trust.top(5).map((t) => ({ volunteer: t.volunteer_id.slice(0, 6), seconds: t.credit_ms / 1000 })),
    };
    return c.json(board);
  });
  app.route('/', pageRoutes(stores.jobs, opts.clientDir));
  app.notFound((c) => c.json({ error: `no route ${c.req.method} ${c.req.path}` }, 404));
  app.onError((e, c) => errorResponse(e, c, opts.log));
  return app;
}
