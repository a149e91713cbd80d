/**
 * The volunteer's reconnect backoff, driven through the real VolunteerSession with a fake socket and
 * Node's mocked timers: minutes of reconnecting play out in milliseconds, with no master.
 */
import { afterEach, beforeEach, test, mock } from 'node:test';
import assert from 'node:assert/strict';
import { VolunteerSession, type Executor, type SocketLike } from '../shared/volunteer-session.js';
import type { MasterMessage, TaskAssign } from '../shared/protocol.js';

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

const WELCOME: MasterMessage = { type: 'welcome', volunteerId: 'v1', secret: 's', heartbeatMs: 2_000, kept: [] };
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
  input: [],
};

const executor: Executor = {
  run: () => Promise.resolve({ outputJson: '""', stats: { ms: 1, recordsIn: 0, recordsOut: 0 } }),
  cancel: () => {},
  setThreads: () => {},
};

function startSession() {
  const sockets: FakeSocket[] = [];
  const session = new VolunteerSession({
    url: 'ws://master/ws',
    threads: 1,
    prefetch: 0,
    agent: 'test',
    connect: () => {
      const s = new FakeSocket();
      sockets.push(s);
      return s;
    },
    executor,
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
    await Promise.resolve();
    await Promise.resolve();
    assert.match(s.sent.at(-1)!, /"type":"task.result"/);
    s.receive({ type: 'task.ack', lease: LEASE, outcome: 'committed' });
  });
  assert.equal(wait, 500);
  assert.equal(session.snapshot().done, 1);
  session.stop();
});
