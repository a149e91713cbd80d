/**
 * A hostile crowd against a real master process: frames that cost the master before hello, results
 * for leases a socket does not hold, forged counters, identities made to forge failures, and an
 * output too large for the transport. Attackers connect from 127.0.0.2 (loopback: another "host"),
 * honest volunteers from 127.0.0.1. Each attack is contained and honest jobs stay exact.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  adminCli,
  apiGet,
  corpusFiles,
  EXAMPLES,
  localOutput,
  removeTempDirs,
  sleep,
  startMaster,
  startVolunteer,
  tempDir,
  until,
  type MasterProc,
} from './helpers/cluster.js';
import type { WorkerView } from '../shared/api.js';
import type { MasterMessage } from '../shared/protocol.js';
import { openRawClient, socketOf, textFrameHeader } from './helpers/raw-volunteer.js';

let m: MasterProc;

before(async () => {
  m = await startMaster({ args: ['--max-message', '256KiB'] });
});
after(async () => {
  await m.kill();
  removeTempDirs();
});

const ATTACKER = '127.0.0.2';

/** A raw protocol client from the attacker's address (helpers/raw-volunteer.ts). */
const rawClient = (address = ATTACKER) => openRawClient(m.url, address);

function hello(extra: object = {}) {
  return JSON.stringify({
    type: 'hello',
    protocol: 2,
    threads: 1,
    slots: 1,
    paused: false,
    agent: 'attacker',
    running: [],
    ...extra,
  });
}

/** Polls /healthz every 10 ms while `during` runs; returns the latencies. */
async function healthLatencies(during: Promise<unknown>): Promise<number[]> {
  const times: number[] = [];
  let running = true;
  void during.finally(() => (running = false));
  while (running) {
    const t0 = performance.now();
    const res = await fetch(`${m.url}/healthz`);
    await res.text();
    times.push(performance.now() - t0);
    await sleep(10);
  }
  return times.sort((a, b) => a - b);
}

test('a 60 MB frame before hello is cut off after a few KB while /healthz stays fast', async () => {
  // One request first: the test's own HTTP client and connection warm up outside the measure.
  await fetch(`${m.url}/healthz`).then((r) => r.text());
  const c = await rawClient();
  const socket = socketOf(c.ws);
  // Write a frame header for a 60 MB text frame by hand, then stream its body: the master must not
  // wait for (or buffer) the whole frame before it acts.
  const size = 60 * 1024 ** 2;
  const header = textFrameHeader(size);
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  const sending = (async () => {
    socket.write(header);
    for (let sent = 0; sent < size && !socket.destroyed; sent += chunk.length) {
      if (!socket.write(chunk)) await new Promise((r) => socket.once('drain', r).once('close', r));
    }
  })();
  // Polled until the socket is cut, and for at least half a second: enough samples for a p99.
  const times = await healthLatencies(Promise.all([Promise.race([c.done, sleep(10_000)]), sleep(500)]));
  await Promise.race([sending, sleep(1_000)]);
  assert.ok(c.closed(), 'the socket was closed by the master');
  const p99 = times[Math.floor(times.length * 0.99)] ?? 0;
  assert.ok(
    p99 < 100,
    `/healthz p99 ${p99.toFixed(1)} ms while the frame arrived: ${times.map((t) => t.toFixed(0)).join(' ')}`,
  );
  assert.match(m.output(), /sent \d+ bytes before hello; cutting it/);
});

test('results for leases the socket does not hold use up its invalid-message budget', async () => {
  const c = await rawClient();
  c.ws.send(hello({ slots: 0, paused: true }));
  await c.next('welcome');
  for (let i = 0; i < 30 && !c.closed(); i++) {
    const lease = i.toString(16).padStart(32, '0');
    c.ws.send(
      JSON.stringify({ type: 'task.result', lease, output: '', stats: { ms: 1, recordsIn: 0, recordsOut: 0 } }),
    );
    await sleep(5);
  }
  await Promise.race([c.done, sleep(5_000)]);
  assert.equal(c.closed()?.code, 1008);
  // The 21st refusal closes the socket; its ack may or may not leave before the close.
  const acks = c.got.filter((x) => x.type === 'task.ack').length;
  assert.ok(acks >= 20 && acks <= 21, `refused ${acks} times, then cut`);
});

test('forged counters are refused as invalid; they never reach the job', async () => {
  const cli = adminCli(m);
  const dir = tempDir();
  writeFileSync(join(dir, 'one.txt'), 'one two\n');
  const sub = await cli(['submit', join(EXAMPLES, 'word-count.js'), join(dir, 'one.txt'), '--reduces', '1']);
  assert.equal(sub.code, 0, sub.stderr);
  const id = sub.stdout.trim();
  const c = await rawClient();
  c.ws.send(hello());
  const task = (await c.next('task.assign')) as Extract<MasterMessage, { type: 'task.assign' }>;
  c.ws.send(
    JSON.stringify({
      type: 'task.result',
      lease: task.lease,
      output: '[0,"one",["1"]]\n',
      stats: { ms: 1, recordsIn: 1, recordsOut: 2 ** 53 },
    }),
  );
  await sleep(200);
  assert.match(JSON.stringify(c.got.filter((x) => x.type === 'error')), /recordsOut/);
  c.ws.close();
  // The task goes to an honest volunteer after the attacker's socket is gone; the job is exact.
  const v = startVolunteer(m.url, 1);
  try {
    const wait = await cli(['wait', id], 60_000);
    assert.equal(wait.code, 0, wait.stderr);
    const out = await cli(['result', id]);
    assert.equal(out.stdout, 'one\t1\ntwo\t1\n');
  } finally {
    await v.kill();
  }
});

test('four identities forging failures from one address cannot fail a job beside one honest volunteer', async () => {
  const cli = adminCli(m);
  const files = corpusFiles().slice(0, 2);
  const honest = startVolunteer(m.url, 1);
  await until(
    'the honest volunteer',
    async () => (await apiGet<WorkerView[]>(m, '/api/workers')).some((w) => w.state === 'connected'),
    15_000,
  );
  const forged = { count: 0 };
  const liars = await Promise.all(
    Array.from({ length: 4 }, async () => {
      const c = await rawClient();
      c.ws.on('message', (d) => {
        const msg = JSON.parse(d.toString()) as MasterMessage;
        if (msg.type !== 'task.assign') return;
        forged.count++;
        c.ws.send(
          JSON.stringify({
            type: 'task.fail',
            lease: msg.lease,
            reason: 'threw',
            error: { name: 'Error', message: 'forged' },
          }),
        );
      });
      c.ws.send(hello({ threads: 256, slots: 512 }));
      await c.next('welcome');
      return c;
    }),
  );
  const sub = await cli([
    'submit',
    join(EXAMPLES, 'word-count.js'),
    ...files,
    '--split-size',
    '64KiB',
    '--reduces',
    '3',
    '--max-attempts',
    '2',
  ]);
  assert.equal(sub.code, 0, sub.stderr);
  const id = sub.stdout.trim();
  try {
    const wait = await cli(['wait', id], 120_000);
    assert.equal(wait.code, 0, `${wait.stderr}\n${honest.output()}`);
    assert.ok(forged.count > 0, 'the liars were given tasks and forged failures');
    const out = await cli(['result', id]);
    assert.equal(out.stdout, await localOutput(join(EXAMPLES, 'word-count.js'), files, ['--reduces', '3']));
  } finally {
    for (const c of liars) c.ws.close();
    await honest.kill();
  }
});

test('an output larger than the master takes fails the job in seconds, naming size, limit and flag', async () => {
  const small = await startMaster({ args: ['--max-upload', '256KiB'] });
  const cli = adminCli(small);
  const dir = tempDir();
  const job = join(dir, 'huge.js');
  writeFileSync(
    job,
    `export function map(key, value, emit) { emit('big', 'x'.repeat(300000)); }
export function reduce(key, values) { return String(values.length); }
`,
  );
  writeFileSync(join(dir, 'in.txt'), 'a\n');
  const v1 = startVolunteer(small.url, 1);
  const v2 = startVolunteer(small.url, 1);
  try {
    const t0 = Date.now();
    const r = await cli(['submit', job, join(dir, 'in.txt'), '--reduces', '1', '--wait'], 60_000);
    assert.equal(r.code, 1, r.stderr);
    assert.ok(Date.now() - t0 < 30_000, `failed after ${Date.now() - t0} ms`);
    assert.match(r.stderr, /OutputTooLarge: the map output is \d+ bytes, over the master's limit of 262144 bytes/);
    assert.match(r.stderr, /--max-upload/);
  } finally {
    await v1.kill();
    await v2.kill();
    await small.stop();
  }
});
