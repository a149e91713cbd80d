import { Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { badRequest, notFound } from '../http-errors.js';
import { JOB_DEFAULTS, type JobInput } from '../submit-job.js';
import { jobView } from '../views.js';
import { summarizeJob } from '../job-summary.js';
import { taskListResponse } from './task-list.js';
import type { Scheduler } from '../scheduler/index.js';
import type { Stores } from '../sql/index.js';
import { isJobFinished } from '../../shared/states.js';

function intField(body: Record<string, unknown>, name: string, fallback: number): number {
  const raw = body[name];
  if (raw === undefined || raw === '') return fallback;
  if (typeof raw !== 'string' || !/^-?\d+$/.test(raw.trim())) throw badRequest(`${name} must be a whole number`);
  return Number(raw);
}

export function jobRoutes(scheduler: Scheduler, stores: Stores, maxUploadBytes: number) {
  const app = new Hono();
  const { jobs, outputs } = stores;
  const flush = () => scheduler.flush();
  const job = (id: string) => {
    const row = jobs.get(id);
    if (!row) throw notFound(`no job ${JSON.stringify(id)}`);
    return row;
  };

  app.post(
    '/',
    bodyLimit({
      maxSize: maxUploadBytes,
      onError: (c) => c.json({ error: `upload larger than the master's limit of ${maxUploadBytes} bytes` }, 413),
    }),
    async (c) => {
      const type = c.req.header('content-type') ?? '';
      if (!type.startsWith('multipart/form-data')) throw badRequest('send the job as multipart/form-data');
      const body = await c.req.parseBody({ all: true });
      const mod = body['module'];
      if (!(mod instanceof File)) throw badRequest('missing the "module" file');
      const rawInputs = body['input'];
      const files = (Array.isArray(rawInputs) ? rawInputs : rawInputs === undefined ? [] : [rawInputs]).filter(
        (f): f is File => f instanceof File,
      );
      if (files.length === 0) throw badRequest('no "input" files');
      const inputs: JobInput[] = await Promise.all(
        files.map(async (f) => ({ name: f.name, bytes: new Uint8Array(await f.arrayBuffer()) })),
      );
      const name = typeof body['name'] === 'string' ? body['name'] : undefined;
      if (name !== undefined && name.length > 200) throw badRequest('name is longer than 200 characters');
      const id = scheduler.submit({
        name,
        moduleName: mod.name || 'module.js',
        module: await mod.text(),
        inputs,
        reduces: intField(body, 'reduces', JOB_DEFAULTS.reduces),
        splitSize: intField(body, 'splitSize', JOB_DEFAULTS.splitSize),
        taskTimeoutMs: intField(body, 'taskTimeoutMs', JOB_DEFAULTS.taskTimeoutMs),
        maxAttempts: intField(body, 'maxAttempts', JOB_DEFAULTS.maxAttempts),
      });
      return c.json({ id }, 201);
    },
  );

  app.get('/', (c) => c.json(jobs.list().map(jobView)));
  app.get('/:id', (c) => c.json(jobView(job(c.req.param('id')))));
  // Both read a big job a page at a time, and make each page durable first as the /api middleware does.
  app.get('/:id/tasks', (c) => taskListResponse(c, stores, job(c.req.param('id')), scheduler.clock, flush));
  app.get('/:id/summary', async (c) => c.json(await summarizeJob(stores, job(c.req.param('id')).id, flush)));
  app.get('/:id/output', (c) => {
    const j = job(c.req.param('id'));
    if (j.state !== 'succeeded') {
      throw badRequest(`job ${j.id} is ${j.state}; output is ready when it has succeeded`);
    }
    const p = c.req.query('partition');
    c.header('content-type', 'text/plain; charset=utf-8');
    if (p === undefined) return c.body(outputs.all(j.id).join(''));
    if (!/^\d+$/.test(p) || Number(p) >= j.n_reduce) {
      throw badRequest(`partition must be a whole number from 0 to ${j.n_reduce - 1}`);
    }
    return c.body(outputs.get(j.id, Number(p)) ?? '');
  });
  app.post('/:id/cancel', (c) => {
    const j = job(c.req.param('id'));
    if (isJobFinished(j.state))
      throw badRequest(`job ${j.id} has already ${j.state === 'cancelled' ? 'been cancelled' : j.state}`);
    scheduler.cancel(j.id);
    return c.json(jobView(job(j.id)));
  });
  return app;
}
