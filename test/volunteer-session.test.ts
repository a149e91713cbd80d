/**
 * The volunteer's side of the protocol, driven through the real VolunteerSession with a fake socket,
 * a fake `fetch` and Node's mocked timers: minutes of reconnecting and retrying play out in
 * milliseconds, with no master. First the reconnect backoff, then task data over HTTP: inputs
 * fetched by URL, large outputs uploaded, and what each answer of the data routes leads to.
 */
import { afterEach, beforeEach, test, mock } from 'node:test';
import assert from 'node:assert/strict';
import {
  VolunteerSession,
  httpOrigin,
  type Executor,
  type FetchLike,
  type ReadyTask,
  type SocketLike,
} from '../shared/volunteer-session.js';
import { parseVolunteerMessage, type MasterMessage, type TaskAssign } from '../shared/protocol.js';

class FakeSocket implements SocketLike {
  readyState = 0;
  readonly sent: string[] = [];
  onopen: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onclose: ((ev: { code: number; reason: string }) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  send(data: string): void {
    this.sent.push(data);
  }
  close(): void {
    this.readyState = 3;
  }
  /** The master's side: the socket opens. */
  open(): void {
    this.readyState = 1;
    this.onopen?.({});
  }
  receive(msg: MasterMessage): void {
    this.onmessage?.({ data: JSON.stringify(msg) });
  }
  /** The master's side: the socket closes under the volunteer. */
  drop(): void {
    this.readyState = 3;
    this.onclose?.({ code: 1006, reason: '' });
  }
}

const WELCOME = {
  type: 'welcome',
  volunteerId: 'v1',
  secret: 's',
  heartbeatMs: 2_000,
  kept: [],
  inlineBytes: 64,
  maxOutputBytes: 1_000,
} satisfies MasterMessage;
const LEASE = 'a'.repeat(32);
const ASSIGN: TaskAssign = {
  type: 'task.assign',
  lease: LEASE,
  jobId: 'j',
  jobName: 'wc',
  taskId: 1,
  index: 0,
  nReduce: 1,
  moduleUrl: '/jobs/j/module.js',
  hardLimitMs: 60_000,
  phase: 'reduce',
  input: { bytes: 0, text: '' },
};

const STATS = { ms: 1, recordsIn: 0, recordsOut: 0 };

const executor: Executor = {
  run: () => Promise.resolve({ output: '', stats: STATS }),
  cancel: () => {},
  setThreads: () => {},
};

function startSession(options: { executor?: Executor; fetch?: FetchLike; log?: (line: string) => void } = {}) {
  const sockets: FakeSocket[] = [];
  const session = new VolunteerSession({
    url: 'ws://master:8080/ws',
    threads: 1,
    prefetch: 0,
    agent: 'test',
    connect: () => {
      const s = new FakeSocket();
      sockets.push(s);
      return s;
    },
    executor: options.executor ?? executor,
    fetch: options.fetch ?? (() => Promise.reject(new Error('this test expects no HTTP request'))),
    log: options.log,
    backoff: { minMs: 500, maxMs: 10_000 },
  });
  session.start();
  /**
   * One connection: opened and welcomed, `during` runs, it lasts `lastedMs`, then the master drops
   * it. Returns the wait before the next attempt, after which that attempt has opened its socket.
   */
  const connection = async (lastedMs: number, during?: (s: FakeSocket) => Promise<void>): Promise<number> => {
    const s = sockets.at(-1)!;
    s.open();
    s.receive(WELCOME);
    await during?.(s);
    mock.timers.tick(lastedMs);
    s.drop();
    const wait = session.snapshot().retryInMs!;
    const before = sockets.length;
    mock.timers.tick(wait);
    assert.equal(sockets.length, before + 1, 'the next attempt opened a socket');
    return wait;
  };
  return { session, sockets, connection };
}

/** Runs every pending microtask (promise callbacks); the mocked timers leave setImmediate alone. */
const flush = () => new Promise<void>((resolve) => setImmediate(resolve));

beforeEach(() => {
  mock.timers.enable({ apis: ['setTimeout', 'setInterval'] });
  // The top of each jittered range, so a wait shows the cap it was drawn under.
  mock.method(Math, 'random', () => 0.999_999);
});
afterEach(() => {
  mock.timers.reset();
  mock.restoreAll();
});

test('a master that drops the connection right after welcome is retried ever more slowly, up to the cap', async () => {
  const { session, connection } = startSession();
  const waits: number[] = [];
  for (let i = 0; i < 8; i++) waits.push(await connection(0));
  assert.deepEqual(waits, [500, 1_000, 2_000, 4_000, 8_000, 10_000, 10_000, 10_000]);
  // Were every welcome to start the backoff over, each wait would be 500 ms at most (250-500 ms
  // with jitter): more than two reconnects a second, for ever.
  session.stop();
});

test('a connection that lasted 10 s (the cap) starts the backoff over; a shorter one does not', async () => {
  const { session, connection } = startSession();
  for (let i = 0; i < 6; i++) await connection(0);
  assert.equal(await connection(9_999), 10_000, 'just short of 10 s: still backing off');
  assert.equal(await connection(10_000), 500, 'lasted 10 s: back to the first step');
  assert.equal(await connection(0), 1_000);
  session.stop();
});

test('a result acknowledged on the connection starts the backoff over, however short it was', async () => {
  const { session, connection } = startSession();
  for (let i = 0; i < 6; i++) await connection(0);
  const wait = await connection(0, async (s) => {
    s.receive(ASSIGN);
    // The executor's promise settles on the microtask queue, then the result goes out.
    await flush();
    assert.match(s.sent.at(-1)!, /"type":"task.result"/);
    s.receive({ type: 'task.ack', lease: LEASE, outcome: 'committed' });
  });
  assert.equal(wait, 500);
  assert.equal(session.snapshot().done, 1);
  session.stop();
});

// Task data over HTTP.

interface FetchCall {
  url: string;
  method: string;
  headers?: Record<string, string>;
  body?: string | Uint8Array<ArrayBuffer>;
  signal: AbortSignal;
  respond(status: number, body?: string): void;
  /** The request fails as fetch fails when the master cannot be reached. */
  fail(): void;
}

/** A fetch whose requests wait until the test answers them, as the master's data routes would. */
function fakeFetch() {
  const calls: FetchCall[] = [];
  const fetch: FetchLike = (url, init) =>
    new Promise((resolve, reject) => {
      init.signal.addEventListener('abort', () => reject(new DOMException('This operation was aborted', 'AbortError')));
      calls.push({
        url,
        ...init,
        respond: (status, body = '') =>
          resolve({
            status,
            text: () => Promise.resolve(body),
            arrayBuffer: () => Promise.resolve(new TextEncoder().encode(body).buffer),
          }),
        fail: () => reject(new TypeError('fetch failed')),
      });
    });
  return { fetch, calls };
}

/** An executor that records the tasks it is given and answers each with `output(task)`. */
function recordingExecutor(output: (task: ReadyTask) => string = () => '') {
  const ran: ReadyTask[] = [];
  const cancelled: string[] = [];
  const executor: Executor = {
    run: (task) => {
      ran.push(task);
      return Promise.resolve({ output: output(task), stats: STATS });
    },
    cancel: (lease) => cancelled.push(lease),
    setThreads: () => {},
  };
  return { executor, ran, cancelled };
}

const INPUT_URL = `/data/${LEASE}/input`;
const MAP_BY_URL: TaskAssign = {
  ...ASSIGN,
  phase: 'map',
  input: { key: 'book.txt', bytes: 11, url: INPUT_URL },
};

/** A connected session (welcomed with `WELCOME`) and its socket. */
function connected(options: Parameters<typeof startSession>[0]) {
  const { session, sockets } = startSession(options);
  const socket = sockets[0]!;
  socket.open();
  socket.receive(WELCOME);
  return { session, socket, sockets };
}

/** The task messages the volunteer sent, parsed (hello and heartbeats left out). */
function taskMessages(socket: FakeSocket) {
  return socket.sent
    .map((text) => {
      const parsed = parseVolunteerMessage(text);
      assert.ok(parsed.ok, `the master would refuse ${text.slice(0, 200)}`);
      return parsed.msg;
    })
    .filter((m) => m.type === 'task.result' || m.type === 'task.fail');
}

test("the master's HTTP origin is its ws URL's host and port, with http for ws and https for wss", () => {
  assert.equal(httpOrigin('ws://master:8080/ws'), 'http://master:8080');
  assert.equal(httpOrigin('wss://example.org/ws'), 'https://example.org');
  assert.equal(httpOrigin('WSS://[::1]:8443/ws?x=1'), 'https://[::1]:8443');
  assert.throws(() => httpOrigin('http://master/ws'), /must start with ws:\/\/ or wss:\/\//);
});

test('an input sent by URL is fetched from the master, then run; a small output goes inline', async () => {
  const { fetch, calls } = fakeFetch();
  const { executor, ran } = recordingExecutor((t) => `out of ${t.input.text}`);
  const { session, socket } = connected({ fetch, executor });
  socket.receive(MAP_BY_URL);
  assert.deepEqual(
    session.snapshot().tasks.map((t) => [t.status, t.bytes, t.label]),
    [['fetching', 11, 'book.txt']],
  );
  assert.equal(calls.length, 1);
  assert.equal(calls[0]!.url, `http://master:8080${INPUT_URL}`);
  assert.equal(calls[0]!.method, 'GET');
  assert.equal(ran.length, 0, 'nothing runs before its input is in');
  calls[0]!.respond(200, 'hello world');
  await flush();
  assert.equal(ran.length, 1);
  const task = ran[0]!;
  assert.equal(task.phase, 'map');
  assert.deepEqual(task.input, { key: 'book.txt', bytes: 11, url: INPUT_URL, text: 'hello world' });
  assert.deepEqual(taskMessages(socket), [
    { type: 'task.result', lease: LEASE, stats: STATS, output: 'out of hello world' },
  ]);
  assert.equal(calls.length, 1, 'a small output is not uploaded');
  const { map, reduce } = session.snapshot().stages;
  assert.deepEqual([map.tasks, map.computeMs, reduce.tasks], [1, STATS.ms, 0], 'its stage times count it');
  socket.receive({ type: 'task.ack', lease: LEASE, outcome: 'committed' });
  assert.equal(session.snapshot().bytesDone, 11, 'the input bytes count as data processed');
  session.stop();
});

test('an executor that takes bytes gets the fetched bytes and its byte outputs go inline or up as they are', async () => {
  const { fetch, calls } = fakeFetch();
  const ran: ReadyTask[] = [];
  const outputs = [new TextEncoder().encode('small é'), new TextEncoder().encode('é'.repeat(40))];
  const executor: Executor = {
    takesBytes: true,
    run: (task) => {
      ran.push(task);
      return Promise.resolve({ output: outputs[ran.length - 1]!, stats: STATS, queuedMs: 7 });
    },
    cancel: () => {},
    setThreads: () => {},
  };
  const { session, socket } = connected({ fetch, executor });
  socket.receive(MAP_BY_URL);
  await flush();
  calls[0]!.respond(200, 'hello wörld');
  await flush();
  assert.equal(ran[0]!.input.text, undefined, 'no text made of the fetched input');
  assert.equal(new TextDecoder().decode(ran[0]!.input.utf8), 'hello wörld');
  assert.deepEqual(taskMessages(socket), [{ type: 'task.result', lease: LEASE, stats: STATS, output: 'small é' }]);
  socket.receive({ type: 'task.ack', lease: LEASE, outcome: 'committed' });
  assert.equal(session.snapshot().stages.map.queueMs, 7, 'time waiting for a thread is its own stage');

  // 80 bytes: over the 64 the master takes inline, so the bytes are uploaded as they are.
  const second = 'b'.repeat(32);
  socket.receive({ ...MAP_BY_URL, lease: second, input: { ...MAP_BY_URL.input, url: `/data/${second}/input` } });
  await flush();
  calls[1]!.respond(200, 'more');
  await flush();
  const put = calls[2]!;
  assert.equal(put.method, 'PUT');
  assert.equal(put.body, outputs[1], 'the very bytes the executor made');
  session.stop();
});

test('an output over inlineBytes (counted in UTF-8) is uploaded, then reported as uploaded, kept until acknowledged', async () => {
  const { fetch, calls } = fakeFetch();
  // 40 characters but 80 bytes of UTF-8: over the 64 bytes the master takes inline.
  const output = 'é'.repeat(40);
  const { session, socket, sockets } = connected({ fetch, executor: recordingExecutor(() => output).executor });
  socket.receive(ASSIGN);
  await flush();
  assert.equal(calls.length, 1);
  const put = calls[0]!;
  assert.equal(put.url, `http://master:8080/data/${LEASE}/output`);
  assert.equal(put.method, 'PUT');
  assert.equal(put.body, output);
  assert.deepEqual(put.headers, { 'content-type': 'text/plain; charset=utf-8' });
  assert.equal(session.snapshot().tasks[0]!.status, 'reporting');
  assert.deepEqual(taskMessages(socket), [], 'nothing is reported before the master has the output');
  assert.equal(session.snapshot().stages.reduce.tasks, 0, 'a task counts in the stage times once reported');
  put.respond(200, '{"bytes":80}');
  await flush();
  assert.equal(session.snapshot().stages.reduce.tasks, 1);
  const uploaded = { type: 'task.result', lease: LEASE, stats: STATS, uploaded: true };
  assert.deepEqual(taskMessages(socket), [uploaded]);

  // The connection drops before the ack: the report goes out again on the next one, not the upload.
  socket.drop();
  mock.timers.tick(session.snapshot().retryInMs!);
  const again = sockets[1]!;
  again.open();
  assert.deepEqual(JSON.parse(again.sent[0]!).running, [LEASE], 'the volunteer still holds the task');
  again.receive({ ...WELCOME, kept: [LEASE] });
  assert.deepEqual(taskMessages(again), [uploaded]);
  assert.equal(calls.length, 1, 'the output was not uploaded again');
  again.receive({ type: 'task.ack', lease: LEASE, outcome: 'committed' });
  assert.deepEqual(session.snapshot().tasks, []);
  assert.equal(session.snapshot().done, 1);
  session.stop();
});

test('an output over maxOutputBytes fails as too-large, naming its size, the limit and the flag, without an upload', async () => {
  const { fetch, calls } = fakeFetch();
  const { session, socket } = connected({ fetch, executor: recordingExecutor(() => 'x'.repeat(1_500)).executor });
  socket.receive(ASSIGN);
  await flush();
  assert.equal(calls.length, 0);
  const [fail] = taskMessages(socket);
  assert.ok(fail?.type === 'task.fail');
  assert.equal(fail.reason, 'too-large');
  assert.match(fail.error.message, /reduce output is 1500 bytes, over the master's limit of 1000 bytes/);
  assert.match(fail.error.message, /raise the limit with `tabreduce serve --max-upload`/);
  assert.deepEqual(session.snapshot().tasks, []);
  session.stop();
});

test('an upload the master refuses as too large (413) fails as too-large, naming the limit and the flag', async () => {
  const { fetch, calls } = fakeFetch();
  // 250 characters, 500 bytes: the size said is the UTF-8 one.
  const { session, socket } = connected({ fetch, executor: recordingExecutor(() => 'é'.repeat(250)).executor });
  socket.receive(ASSIGN);
  await flush();
  // The master's limit went down since it welcomed this volunteer with 1000 bytes.
  calls[0]!.respond(413, '{"error":"the output is over the upload limit of 400 bytes"}');
  await flush();
  const [fail] = taskMessages(socket);
  assert.ok(fail?.type === 'task.fail');
  assert.equal(fail.reason, 'too-large');
  assert.match(
    fail.error.message,
    /the reduce output is 500 bytes, more than the master takes \(it said: the output is over the upload limit of 400 bytes\)/,
  );
  assert.match(fail.error.message, /raise the limit with `tabreduce serve --max-upload`/);
  assert.equal(session.snapshot().failed, 1);
  session.stop();
});

test('an upload the master finds malformed (400) fails as threw with its reason, said to be a volunteer bug', async () => {
  const { fetch, calls } = fakeFetch();
  const { session, socket } = connected({ fetch, executor: recordingExecutor(() => 'x'.repeat(500)).executor });
  socket.receive(ASSIGN);
  await flush();
  calls[0]!.respond(400, '{"error":"reduce output must end with a newline"}');
  await flush();
  const [fail] = taskMessages(socket);
  assert.ok(fail?.type === 'task.fail');
  assert.equal(fail.reason, 'threw');
  assert.match(fail.error.message, /refused the reduce output as malformed: reduce output must end with a newline/);
  assert.match(fail.error.message, /engine never produces/);
  session.stop();
});

for (const status of [404, 410]) {
  test(`an input the master answers ${status} for drops the task: nothing runs, nothing is sent`, async () => {
    const { fetch, calls } = fakeFetch();
    const { executor, ran } = recordingExecutor();
    const { session, socket } = connected({ fetch, executor });
    socket.receive(MAP_BY_URL);
    calls[0]!.respond(status, '{"error":"no such lease"}');
    await flush();
    assert.equal(ran.length, 0);
    assert.deepEqual(session.snapshot().tasks, []);
    assert.deepEqual(taskMessages(socket), []);
    mock.timers.tick(WELCOME.heartbeatMs);
    assert.deepEqual(JSON.parse(socket.sent.at(-1)!), { type: 'heartbeat', running: [] });
    assert.equal(calls.length, 1, 'not asked again');
    session.stop();
  });
}

test('an upload the master answers 410 for drops the task without a report', async () => {
  const { fetch, calls } = fakeFetch();
  const { session, socket } = connected({ fetch, executor: recordingExecutor(() => 'x'.repeat(500)).executor });
  socket.receive(ASSIGN);
  await flush();
  calls[0]!.respond(410);
  await flush();
  assert.deepEqual(session.snapshot().tasks, []);
  assert.deepEqual(taskMessages(socket), []);
  session.stop();
});

test('a data request that fails (network, 5xx) is retried after 250 ms, 500 ms, ...; then it goes through', async () => {
  const { fetch, calls } = fakeFetch();
  const { executor, ran } = recordingExecutor();
  const { session, socket } = connected({ fetch, executor });
  socket.receive(MAP_BY_URL);
  calls[0]!.fail();
  await flush();
  mock.timers.tick(249);
  await flush();
  assert.equal(calls.length, 1, 'not before 250 ms');
  mock.timers.tick(1);
  await flush();
  assert.equal(calls.length, 2);
  calls[1]!.respond(503, 'restarting');
  await flush();
  mock.timers.tick(499);
  await flush();
  assert.equal(calls.length, 2, 'then not before 500 ms');
  mock.timers.tick(1);
  await flush();
  assert.equal(calls.length, 3);
  assert.equal(calls[2]!.url, calls[0]!.url);
  calls[2]!.respond(200, 'hello world');
  await flush();
  assert.equal(ran[0]?.input.text, 'hello world');
  assert.equal(taskMessages(socket)[0]?.type, 'task.result');
  session.stop();
});

test('a data request still failing after five retries (about 8 s) drops the task, and says so in the log', async () => {
  const { fetch, calls } = fakeFetch();
  const { executor, ran } = recordingExecutor();
  const log: string[] = [];
  const { session, socket } = connected({ fetch, executor, log: (line) => log.push(line) });
  socket.receive(MAP_BY_URL);
  for (const wait of [250, 500, 1_000, 2_000, 4_000]) {
    calls.at(-1)!.fail();
    await flush();
    mock.timers.tick(wait);
    await flush();
  }
  assert.equal(calls.length, 6);
  calls.at(-1)!.respond(502);
  await flush();
  mock.timers.tick(60_000);
  await flush();
  assert.equal(calls.length, 6, 'no seventh try');
  assert.equal(ran.length, 0);
  assert.deepEqual(session.snapshot().tasks, []);
  assert.deepEqual(taskMessages(socket), []);
  assert.match(log.at(-1)!, /dropped a task: could not transfer the input of wc map 0 after 6 tries \(HTTP 502\)/);
  session.stop();
});

test('a cancel during the download aborts it, and the task never runs', async () => {
  const { fetch, calls } = fakeFetch();
  const { executor, ran, cancelled } = recordingExecutor();
  const { session, socket } = connected({ fetch, executor });
  socket.receive(MAP_BY_URL);
  socket.receive({ type: 'task.cancel', lease: LEASE, reason: 'a backup attempt won' });
  assert.equal(calls[0]!.signal.aborted, true);
  await flush();
  assert.equal(ran.length, 0);
  assert.deepEqual(cancelled, [], 'the executor never had it');
  assert.deepEqual(session.snapshot().tasks, []);
  session.stop();
});

test('a cancel during the upload aborts it, or the wait before its retry, and nothing is reported', async () => {
  const { fetch, calls } = fakeFetch();
  const { session, socket } = connected({ fetch, executor: recordingExecutor(() => 'x'.repeat(500)).executor });
  socket.receive(ASSIGN);
  await flush();
  const put = calls[0]!;
  socket.receive({ type: 'task.cancel', lease: LEASE, reason: 'job cancelled' });
  assert.equal(put.signal.aborted, true);
  // A 200 that was already on its way changes nothing: the task is no longer held.
  put.respond(200, '{"bytes":500}');
  await flush();
  assert.deepEqual(taskMessages(socket), []);
  assert.deepEqual(session.snapshot().tasks, []);

  // Cancelled while waiting to retry: no retry goes out.
  socket.receive({ ...ASSIGN, lease: 'b'.repeat(32) });
  await flush();
  calls.at(-1)!.fail();
  await flush();
  socket.receive({ type: 'task.cancel', lease: 'b'.repeat(32), reason: 'job cancelled' });
  mock.timers.tick(10_000);
  await flush();
  assert.equal(calls.length, 2);
  assert.deepEqual(taskMessages(socket), []);
  session.stop();
});

test('a connection replaced by another tab drops a task whose output is uploading, aborting the upload', async () => {
  const { fetch, calls } = fakeFetch();
  const { session, socket } = connected({ fetch, executor: recordingExecutor(() => 'x'.repeat(500)).executor });
  socket.receive(ASSIGN);
  await flush();
  socket.readyState = 3;
  socket.onclose?.({ code: 4001, reason: 'replaced by a newer connection' });
  assert.equal(calls[0]!.signal.aborted, true);
  assert.deepEqual(session.snapshot().tasks, []);
  session.stop();
});
