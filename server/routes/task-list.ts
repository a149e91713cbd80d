/**
 * `GET /api/jobs/:id/tasks[?after=ID][&limit=N][&changedSince=MS]` (README "HTTP API"). The body is
 * the contract's bare array of TaskView, always; where to go next is in the headers:
 * `X-Next-After` when `limit` cut the list short, and `X-Next-Changed-Since` on every answer.
 * Without `after` or `limit` the whole selection is streamed out page by page, the event loop
 * turning between pages; a page asked for with `limit` is read the same way, then sent whole.
 */
import type { Context } from 'hono';
import { badRequest } from '../http-errors.js';
import type { Clock } from '../scheduler/index.js';
import type { Stores } from '../sql/index.js';
import type { JobRow } from '../sql/job-store.js';
import { TASKS_HEADERS, TASKS_PAGE_LIMIT, type TaskView } from '../../shared/api.js';
import { changedTaskIds, nextTurn, TaskPager } from '../task-pages.js';

/**
 * How far before the start of an answer `X-Next-Changed-Since` points. Every change is stamped with
 * the master's clock and written on this event loop, so none stamped before the answer began can
 * appear after its reads; the margin is for the clock itself, which NTP may step back. It costs only
 * the tasks that changed in that second being sent twice.
 */
export const CHANGED_SINCE_MARGIN_MS = 1_000;

export interface TaskQuery {
  after: number;
  limit: number | null;
  changedSince: number | null;
}

function wholeNumber(c: Context, name: string, what: string, min: number, max: number): number | undefined {
  const raw = c.req.query(name);
  if (raw === undefined) return undefined;
  const n = /^\d{1,16}$/.test(raw) ? Number(raw) : NaN;
  if (!(n >= min && n <= max)) throw badRequest(`${name} must be ${what}, got ${JSON.stringify(raw)}`);
  return n;
}

export function parseTaskQuery(c: Context): TaskQuery {
  const after = wholeNumber(c, 'after', 'a task id (a whole number), as in X-Next-After', 0, Number.MAX_SAFE_INTEGER);
  const limit = wholeNumber(c, 'limit', `a whole number from 1 to ${TASKS_PAGE_LIMIT}`, 1, TASKS_PAGE_LIMIT);
  const changedSince = wholeNumber(
    c,
    'changedSince',
    'a time in epoch milliseconds (a whole number), as in X-Next-Changed-Since',
    0,
    Number.MAX_SAFE_INTEGER,
  );
  const paged = after !== undefined || limit !== undefined;
  return {
    after: after ?? 0,
    limit: paged ? (limit ?? TASKS_PAGE_LIMIT) : null,
    changedSince: changedSince ?? null,
  };
}

const encoder = new TextEncoder();

/** A page's tasks as JSON array elements, without the brackets: pages join with a comma. */
function elements(page: TaskView[]): string {
  return JSON.stringify(page).slice(1, -1);
}

/** The answer to `GET /api/jobs/:id/tasks` for `job`; `beforeRead` makes what is read durable. */
export async function taskListResponse(
  c: Context,
  stores: Stores,
  job: JobRow,
  clock: Clock,
  beforeRead: () => void,
): Promise<Response> {
  const q = parseTaskQuery(c);
  const startedAt = clock.now();
  const ids = q.changedSince === null ? null : await changedTaskIds(stores, job, q.changedSince, beforeRead);
  const pager = new TaskPager(stores, job.id, { after: q.after, limit: q.limit, ids });
  c.header('content-type', 'application/json; charset=utf-8');
  c.header(TASKS_HEADERS.nextChangedSince, String(Math.max(0, startedAt - CHANGED_SINCE_MARGIN_MS)));
  c.header('cache-control', 'no-store');

  if (q.limit !== null) {
    const parts: string[] = [];
    for (let page = pager.next(); page; page = pager.next()) {
      if (page.length > 0) parts.push(elements(page));
      await nextTurn();
      beforeRead();
    }
    if (pager.more) c.header(TASKS_HEADERS.nextAfter, String(pager.after));
    return c.body(`[${parts.join(',')}]`);
  }

  let opened = false;
  let written = false;
  const body = new ReadableStream<Uint8Array>({
    pull: async (controller) => {
      if (opened) {
        await nextTurn();
        beforeRead();
      }
      const page = pager.next();
      let text = opened ? '' : '[';
      opened = true;
      if (!page) {
        controller.enqueue(encoder.encode(`${text}]`));
        controller.close();
        return;
      }
      if (page.length > 0) {
        text += `${written ? ',' : ''}${elements(page)}`;
        written = true;
      }
      controller.enqueue(encoder.encode(text));
    },
  });
  return c.body(body);
}
