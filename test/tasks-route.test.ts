/**
 * Issue 14, tasks at scale: `GET /api/jobs/:id/tasks` of a job of 20,000 map tasks on a real
 * master, page by page (`after`, `limit`, `X-Next-After`) and whole (streamed), the tasks that
 * changed since a time (`changedSince`, `X-Next-Changed-Since`) as a hand-driven volunteer fails
 * one task and completes another and as the job is cancelled, `GET /api/jobs/:id/summary`, the
 * 400s for bad parameters, and `/healthz` answering while the whole list is served.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { adminCli, EXAMPLES, removeTempDirs, startMaster, tempDir, until, type MasterProc } from './helpers/cluster.js';
import { openRawClient } from './helpers/raw-volunteer.js';
import { TASKS_HEADERS, type JobSummary, type JobView, type TaskView } from '../shared/api.js';
import type { TaskAssign } from '../shared/protocol.js';

const MAPS = 20_000;
const REDUCES = 2;

let m: MasterProc;
let jobId: string;

async function get(path: string): Promise<Response> {
  return fetch(`${m.url}${path}`, { headers: { authorization: `Bearer ${m.token}` } });
}

async function tasks(query = ''): Promise<{ list: TaskView[]; res: Response }> {
  const res = await get(`/api/jobs/${jobId}/tasks${query}`);
  assert.equal(res.status, 200, `GET tasks${query}`);
  return { list: (await res.json()) as TaskView[], res };
}

/** Every task, `limit` at a time, following X-Next-After. */
async function allPages(limit: number): Promise<{ list: TaskView[]; pages: number }> {
  const list: TaskView[] = [];
  let pages = 0;
  for (let cursor: string | null = '0'; cursor !== null; pages++) {
    const page = await tasks(`?after=${cursor}&limit=${limit}`);
    assert.ok(page.list.length <= limit);
    list.push(...page.list);
    cursor = page.res.headers.get(TASKS_HEADERS.nextAfter);
    if (cursor !== null) assert.equal(Number(cursor), page.list.at(-1)!.id, 'the next page starts after the last task');
  }
  return { list, pages };
}

/** The `changedSince` that covers everything from now on, as the master says it. */
async function changesFromNow(): Promise<number> {
  const { res } = await tasks('?limit=1');
  const since = Number(res.headers.get(TASKS_HEADERS.nextChangedSince));
  assert.ok(Number.isSafeInteger(since) && since > 0);
  return since;
}

/** What changed since `since`, as task ids. */
async function changedIds(since: number): Promise<number[]> {
  return (await tasks(`?changedSince=${since}`)).list.map((t) => t.id);
}

/** Longer than the margin X-Next-Changed-Since keeps, so what happened before is not sent again. */
const pastTheMargin = () => new Promise((r) => setTimeout(r, 1_200));

before(async () => {
  m = await startMaster();
  const dir = tempDir('tabreduce-tasks-route-');
  // Lines of 70 bytes split at 64: one map task per line.
  const input = join(dir, 'lines.txt');
  writeFileSync(input, `${'word '.repeat(14)}\n`.repeat(MAPS));
  const sub = await adminCli(m)([
    'submit',
    join(EXAMPLES, 'word-count.js'),
    input,
    '--split-size',
    '64',
    '--reduces',
    String(REDUCES),
    '--task-timeout',
    '10m',
  ]);
  assert.equal(sub.code, 0, sub.stderr);
  jobId = sub.stdout.split('\n')[0]!.trim();
});

after(async () => {
  await m?.stop();
  removeTempDirs();
});

test('pages hold every task once, in id order, and the whole list is the pages joined', async () => {
  const job = (await (await get(`/api/jobs/${jobId}`)).json()) as JobView;
  assert.equal(job.maps.total, MAPS);
  const { list: paged, pages } = await allPages(5_000);
  assert.equal(pages, Math.ceil((MAPS + REDUCES) / 5_000));
  assert.equal(paged.length, MAPS + REDUCES);
  for (let i = 1; i < paged.length; i++) assert.ok(paged[i - 1]!.id < paged[i]!.id, `ids ascend at ${i}`);
  assert.deepEqual(
    paged.map((t) => `${t.phase} ${t.index}`),
    [
      ...Array.from({ length: MAPS }, (_, i) => `map ${i}`),
      ...Array.from({ length: REDUCES }, (_, i) => `reduce ${i}`),
    ],
  );
  // A limit that does not divide the list, and `after` alone (a page of the default size).
  assert.deepEqual((await allPages(777)).list, paged);
  const tail = await tasks(`?after=${paged.at(-3)!.id}`);
  assert.deepEqual(tail.list, paged.slice(-2));
  assert.equal(tail.res.headers.get(TASKS_HEADERS.nextAfter), null, 'the last page says there is no next');
  const first = await tasks('?after=0');
  assert.equal(first.list.length, 5_000);
  assert.equal(first.res.headers.get(TASKS_HEADERS.nextAfter), String(paged[4_999]!.id));

  const whole = await tasks();
  assert.deepEqual(whole.list, paged);
  assert.equal(whole.res.headers.get(TASKS_HEADERS.nextAfter), null);
});

test('changedSince brings only the tasks that changed, the cancelled ones included', async () => {
  // A new volunteer gets one task at a time until it has shown it can take more.
  const v = await openRawClient(m.url);
  v.ws.send(
    JSON.stringify({ type: 'hello', protocol: 2, threads: 1, slots: 1, paused: false, agent: 'test', running: [] }),
  );
  const assigns = () => v.got.filter((x): x is TaskAssign => x.type === 'task.assign');
  const assigned = (n: number) => until(`${n} tasks assigned`, () => (assigns().length >= n ? true : undefined));
  await assigned(1);
  const a = assigns()[0]!;
  const idle = await changesFromNow();
  await pastTheMargin();
  const since = await changesFromNow();
  assert.deepEqual(await changedIds(since), [], 'nothing changed yet');
  assert.deepEqual(await changedIds(idle), [a.taskId], 'the assignment');

  // A fails; the freed slot takes the next task (B, or A again), which succeeds and frees it again.
  v.ws.send(
    JSON.stringify({ type: 'task.fail', lease: a.lease, reason: 'threw', error: { name: 'Error', message: 'boom' } }),
  );
  await assigned(2);
  const b = assigns()[1]!;
  v.ws.send(
    JSON.stringify({
      type: 'task.result',
      lease: b.lease,
      output: '',
      stats: { ms: 5, recordsIn: 14, recordsOut: 0 },
    }),
  );
  await assigned(3);
  const c = assigns()[2]!;
  const changed = (await tasks(`?changedSince=${since}`)).list;
  assert.deepEqual(
    changed.map((t) => t.id),
    [...new Set([a.taskId, b.taskId, c.taskId])].sort((x, y) => x - y),
  );
  const byId = new Map(changed.map((t) => [t.id, t]));
  assert.equal(byId.get(b.taskId)!.state, 'succeeded');
  assert.equal(byId.get(c.taskId)!.state, 'running');
  assert.equal(byId.get(a.taskId)!.attempts[0]!.outcome, 'failed');
  assert.equal(byId.get(a.taskId)!.attempts[0]!.error?.message, 'boom');

  const summary = (await (await get(`/api/jobs/${jobId}/summary`)).json()) as JobSummary;
  assert.deepEqual(summary.attempts, {
    running: 1,
    succeeded: 1,
    failed: 1,
    lost: 0,
    superseded: 0,
    voted: 0,
    rejected: 0,
  });
  assert.equal(summary.recentFailures.length, 1);
  assert.deepEqual(
    { ...summary.recentFailures[0], startedAt: 0, endedAt: 0 },
    {
      taskId: a.taskId,
      phase: 'map',
      index: a.index,
      input: 'lines.txt',
      worker: (v.got.find((x) => x.type === 'welcome') as { volunteerId: string }).volunteerId,
      startedAt: 0,
      endedAt: 0,
      error: { name: 'Error', message: 'boom' },
    },
  );
  assert.ok(summary.durations && summary.durations.maxMs >= 0 && summary.durations.meanMs === summary.durations.maxMs);

  // Cancelling cancels every open task without an attempt of its own: all of them have changed.
  await pastTheMargin();
  const beforeCancel = await changesFromNow();
  const cancel = await fetch(`${m.url}/api/jobs/${jobId}/cancel`, {
    method: 'POST',
    headers: { authorization: `Bearer ${m.token}` },
  });
  assert.equal(cancel.status, 200);
  const all = (await tasks()).list;
  const cancelled = (await tasks(`?changedSince=${beforeCancel}`)).list;
  assert.deepEqual(
    cancelled.map((t) => t.id),
    all.filter((t) => t.id !== b.taskId).map((t) => t.id),
  );
  assert.ok(cancelled.every((t) => t.state === 'cancelled'));
  // Paged too, and the pages are the same as the whole.
  const firstPage = await tasks(`?changedSince=${beforeCancel}&limit=3000`);
  assert.deepEqual(firstPage.list, cancelled.slice(0, 3000));
  const next = firstPage.res.headers.get(TASKS_HEADERS.nextAfter);
  assert.deepEqual(
    (await tasks(`?changedSince=${beforeCancel}&after=${next}&limit=3000`)).list,
    cancelled.slice(3000, 6000),
  );
  assert.deepEqual(await changedIds(Date.now() + 60_000), []);
  v.ws.close();
});

test('the master keeps answering while it serves the whole list', async () => {
  let done = false;
  const health: number[] = [];
  const probe = (async () => {
    while (!done) {
      const t = performance.now();
      assert.equal((await fetch(`${m.url}/healthz`)).status, 200);
      health.push(performance.now() - t);
    }
  })();
  const { list } = await tasks();
  done = true;
  await probe;
  assert.equal(list.length, MAPS + REDUCES);
  assert.ok(health.length >= 3, `/healthz answered ${health.length} times while the list was served`);
  assert.ok(Math.max(...health) < 500, `/healthz took up to ${Math.round(Math.max(...health))} ms meanwhile`);
});

test('bad parameters are refused with a 400 that names them; an unknown job is a 404', async () => {
  for (const [query, name] of [
    ['after=abc', 'after'],
    ['after=-1', 'after'],
    ['limit=0', 'limit'],
    ['limit=5001', 'limit'],
    ['limit=2.5', 'limit'],
    ['changedSince=yesterday', 'changedSince'],
    ['changedSince=', 'changedSince'],
  ] as const) {
    const res = await get(`/api/jobs/${jobId}/tasks?${query}`);
    assert.equal(res.status, 400, query);
    const body = (await res.json()) as { error: string };
    assert.match(body.error, new RegExp(`^${name} must be `), query);
  }
  for (const path of ['/tasks', '/tasks?limit=5', '/summary']) {
    const res = await get(`/api/jobs/nosuchjob${path}`);
    assert.equal(res.status, 404, path);
    assert.match(((await res.json()) as { error: string }).error, /no job "nosuchjob"/);
  }
});
