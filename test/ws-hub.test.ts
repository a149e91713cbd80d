/**
 * The hub in-process, on a real socket and a real SQLite file: what it does when handling a frame
 * throws something other than a storage error.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { WebSocket } from 'ws';
import { openDatabase } from '../server/db.js';
import { createStores } from '../server/sql/index.js';
import { Scheduler } from '../server/scheduler/index.js';
import { insertJob, newJobId } from '../server/submit-job.js';
import { stageInputs } from '../server/receive-job.js';
import { LocalBlobStore } from '../server/blobs/local-blob-store.js';
import { createHub } from '../server/ws-hub.js';
import { createFrameParser } from '../server/frame-parser.js';
import type { MasterMessage } from '../shared/protocol.js';
import { removeTempDirs, sleep, tempDir } from './helpers/cluster.js';

after(removeTempDirs);

test('a frame whose handling throws (not a storage error) ends its attempt lost and drops the sender', async () => {
  const dir = tempDir();
  const db = openDatabase(join(dir, 'db.sqlite'));
  const stores = createStores(db);
  const blobs = new LocalBlobStore(join(dir, 'blobs'));
  const scheduler = new Scheduler(db, stores, { blobs });
  const id = newJobId();
  await insertJob(
    stores,
    {
      id,
      moduleName: 'words.js',
      module: `export function map(k, v, emit) { emit(v.trim(), '1'); }\nexport function reduce(k, vs) { return String(vs.length); }\n`,
      inputs: await stageInputs(blobs, id, [{ name: 'a.txt', bytes: Buffer.from('a\n') }], 1024),
      reduces: 1,
      splitSize: 1024,
      taskTimeoutMs: 10_000,
      maxAttempts: 4,
      verify: 'off',
    },
    Date.now(),
    stores.transaction,
  );
  scheduler.durably(() => scheduler.jobAdded(id));
  // A bug no check foresaw: storing a map output throws.
  stores.outputs.putMap = () => {
    throw new TypeError('a bug in the commit path');
  };
  const logs: string[] = [];
  const parser = createFrameParser({ log: (l) => logs.push(l) });
  const hub = createHub(scheduler, {
    maxMessageBytes: 1024 ** 2,
    maxPerIp: 10,
    parser,
    admitOrigin: () => null,
    log: (l) => logs.push(l),
  });
  const server = createServer();
  server.on('upgrade', (req, socket, head) => hub.upgrade(req, socket, head));
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  try {
    const ws = new WebSocket(`ws://127.0.0.1:${(server.address() as AddressInfo).port}/ws`);
    const got: MasterMessage[] = [];
    let closed: number | null = null;
    ws.on('message', (d) => got.push(JSON.parse(d.toString()) as MasterMessage));
    ws.on('close', (code) => (closed = code));
    await new Promise((ok) => ws.once('open', ok));
    ws.send(
      JSON.stringify({ type: 'hello', protocol: 2, threads: 1, slots: 1, paused: false, agent: 't', running: [] }),
    );
    for (let i = 0; i < 100 && !got.some((m) => m.type === 'task.assign'); i++) await sleep(20);
    const task = got.find((m): m is Extract<MasterMessage, { type: 'task.assign' }> => m.type === 'task.assign')!;
    ws.send(
      JSON.stringify({
        type: 'task.result',
        lease: task.lease,
        output: '[0,"a",["1"]]\n',
        stats: { ms: 1, recordsIn: 1, recordsOut: 1 },
      }),
    );
    for (let i = 0; i < 100 && closed === null; i++) await sleep(20);
    scheduler.flush();
    assert.equal(closed, 1008, 'the sender is dropped');
    assert.ok(
      got.some((m) => m.type === 'error' && /could not handle task\.result/.test(m.message)),
      'and told why',
    );
    const attempt = stores.attempts.byLease(task.lease)!;
    assert.equal(attempt.outcome, 'lost', 'its attempt does not stay running');
    assert.match(attempt.error ?? '', /a bug in the commit path/);
    assert.equal(stores.tasks.get(task.taskId)!.state, 'pending', 'the task runs again elsewhere');
    assert.ok(logs.some((l) => l.includes('error handling task.result')));
  } finally {
    hub.close();
    server.close();
    await parser.close();
    db.close();
  }
});
