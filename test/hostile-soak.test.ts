/**
 * Hostile-crowd soak: honest tabs and Node volunteers beside scripted attackers of every kind the
 * threat model names, all at once. Attackers connect from 127.0.0.2 and 127.0.0.3 (loopback stands
 * for other hosts): they forge failures from fresh identities, flood results for leases they do not
 * hold, send huge frames before hello, forge counters, take tasks and vanish, and reconnect in a
 * tight loop. Every job that should succeed equals `tabreduce local`, the one that must fail fails
 * with its own error, none is stuck, and the master answers `/healthz` throughout.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { WebSocket } from 'ws';
import type { Browser } from 'playwright-core';
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
  TEST_JOBS,
  type MasterProc,
  type VolunteerProc,
} from './helpers/cluster.js';
import { launchBrowser, openTab } from './helpers/browser.js';
import type { JobView, TaskView } from '../shared/api.js';
import type { MasterMessage } from '../shared/protocol.js';
import { socketOf, textFrameHeader } from './helpers/raw-volunteer.js';

after(removeTempDirs);

const corpus = corpusFiles();
const JOBS = [
  { module: join(EXAMPLES, 'word-count.js'), files: corpus, args: ['--reduces', '5', '--split-size', '48KiB'] },
  {
    module: join(EXAMPLES, 'inverted-index.js'),
    files: corpus.slice(0, 4),
    args: ['--reduces', '3', '--split-size', '64KiB'],
  },
  {
    module: join(TEST_JOBS, 'slow-word-count.js'),
    files: corpus.slice(4),
    args: ['--reduces', '4', '--split-size', '64KiB'],
  },
];
const FAILING = {
  module: join(TEST_JOBS, 'throws.js'),
  files: corpus.slice(0, 1),
  args: ['--max-attempts', '3'],
  error: /map task 0 \(input "pg-being_ernest\.txt"\) failed 3 times: /,
  own: /RangeError: cannot parse record/,
};

/** One attacker: a loop of connections from `address`, bounded in time, each doing `act`. */
function attacker(
  m: () => MasterProc,
  address: string,
  until: () => boolean,
  act: (ws: WebSocket, msg: MasterMessage | null) => void,
  pauseMs = 200,
) {
  return (async () => {
    let connections = 0;
    while (!until() && connections < 400) {
      connections++;
      const ws = new WebSocket(m().url.replace(/^http/, 'ws') + '/ws', { localAddress: address });
      ws.on('error', () => {});
      await new Promise<void>((done) => {
        ws.on('open', () => act(ws, null));
        ws.on('message', (d) => {
          try {
            act(ws, JSON.parse(d.toString()) as MasterMessage);
          } catch {
            // a socket closing under the attacker
          }
        });
        ws.on('close', () => done());
        setTimeout(() => ws.terminate(), 3_000 + Math.random() * 3_000);
      });
      await sleep(pauseMs);
    }
    return connections;
  })();
}

const hello = (extra: object = {}) =>
  JSON.stringify({
    type: 'hello',
    protocol: 2,
    threads: 256,
    slots: 512,
    paused: false,
    agent: '\u001b]0;pwned\u0007attacker',
    running: [],
    ...extra,
  });

test('hostile soak: honest jobs stay exact while attackers of every kind hammer the master', async () => {
  const expected = Promise.all(JOBS.map((j) => localOutput(j.module, j.files, j.args)));
  const m = await startMaster({ args: ['--reassign-after', '3s', '--heartbeat', '1s', '--max-message', '4MiB'] });
  let browser: Browser | null = null;
  const nodes: VolunteerProc[] = [];
  let finished = false;
  const stop = () => finished;
  const health: number[] = [];
  try {
    browser = await launchBrowser();
    const context = await browser.newContext();
    await openTab(context, m);
    nodes.push(startVolunteer(m.url, 1), startVolunteer(m.url, 1));

    // Two rounds of the jobs, the second submitted when the first has ended, so the attackers meet
    // every phase (upload, maps, barrier, reduces) at least twice.
    const ROUNDS = 2;
    const SPECS = [...JOBS, FAILING];
    const ids: string[] = [];
    const submitRound = async () => {
      for (const j of SPECS) {
        const r = await adminCli(m)(['submit', j.module, ...j.files, ...j.args]);
        assert.equal(r.code, 0, r.stderr);
        ids.push(r.stdout.split('\n')[0]!.trim());
      }
    };
    await submitRound();

    const attacks = {
      // Forges a failure for every task it is given, from a fresh identity on each connection.
      forger: attacker(
        () => m,
        '127.0.0.2',
        stop,
        (ws, msg) => {
          if (!msg) ws.send(hello());
          else if (msg.type === 'task.assign')
            ws.send(
              JSON.stringify({
                type: 'task.fail',
                lease: msg.lease,
                reason: 'threw',
                error: { name: 'Error', message: '\u001b[2Jforged' },
              }),
            );
        },
      ),
      // Sends results for leases it does not hold until it is cut off.
      flooder: attacker(
        () => m,
        '127.0.0.2',
        stop,
        (ws, msg) => {
          if (!msg) ws.send(hello({ slots: 0, paused: true }));
          else if (msg.type === 'welcome')
            for (let i = 0; i < 40; i++) {
              const lease = Math.floor(Math.random() * 2 ** 48)
                .toString(16)
                .padStart(32, '0');
              ws.send(
                JSON.stringify({
                  type: 'task.result',
                  lease,
                  output: '',
                  stats: { ms: 1, recordsIn: 0, recordsOut: 0 },
                }),
              );
            }
        },
      ),
      // Streams a frame of 60 MB before any hello.
      bigFrame: attacker(
        () => m,
        '127.0.0.3',
        stop,
        (ws, msg) => {
          if (msg) return;
          const socket = socketOf(ws);
          socket.write(textFrameHeader(60 * 1024 ** 2));
          const chunk = Buffer.alloc(256 * 1024, 0x20);
          for (let i = 0; i < 8; i++) socket.write(chunk);
        },
        500,
      ),
      // Takes a task and answers it with counters no task can have.
      counterForger: attacker(
        () => m,
        '127.0.0.3',
        stop,
        (ws, msg) => {
          if (!msg) ws.send(hello({ threads: 1, slots: 1 }));
          else if (msg.type === 'task.assign')
            ws.send(
              JSON.stringify({
                type: 'task.result',
                lease: msg.lease,
                output: '',
                stats: { ms: 1, recordsIn: 2 ** 60, recordsOut: 2 ** 60 },
              }),
            );
        },
      ),
      // Claims many threads, takes tasks and never answers; its socket dies after a few seconds.
      vanisher: attacker(
        () => m,
        '127.0.0.3',
        stop,
        (ws, msg) => {
          if (!msg) ws.send(hello());
        },
      ),
      // Says hello and leaves at once, again and again.
      churner: attacker(
        () => m,
        '127.0.0.2',
        stop,
        (ws, msg) => {
          if (!msg) ws.send(hello());
          else if (msg.type === 'welcome') ws.close();
        },
        50,
      ),
    };

    const poller = (async () => {
      while (!finished) {
        const t0 = performance.now();
        try {
          await (await fetch(`${m.url}/healthz`)).text();
          health.push(performance.now() - t0);
        } catch {
          health.push(Infinity);
        }
        await sleep(50);
      }
    })();

    const deadline = Date.now() + 240_000;
    const ended = (j: JobView) => ['succeeded', 'failed', 'cancelled'].includes(j.state);
    try {
      for (;;) {
        const jobs = await Promise.all(ids.map((id) => apiGet<JobView>(m, `/api/jobs/${id}`)));
        if (jobs.every(ended)) {
          if (ids.length === SPECS.length * ROUNDS) break;
          await submitRound();
          continue;
        }
        if (Date.now() > deadline) throw new Error(`jobs stuck: ${JSON.stringify(jobs)}`);
        await sleep(1_000);
      }
    } finally {
      finished = true;
      await poller;
    }
    const connections = Object.fromEntries(
      await Promise.all(Object.entries(attacks).map(async ([k, p]) => [k, await p] as const)),
    );

    const want = await expected;
    for (const [n, id] of ids.entries()) {
      const i = n % SPECS.length;
      const job = await apiGet<JobView>(m, `/api/jobs/${id}`);
      if (i === JOBS.length) {
        assert.equal(job.state, 'failed');
        // It fails because its code fails on honest volunteers. The error quoted is the one of the
        // attempt that reached the limit, which may be a forger's when forgers failed it too (telling
        // a liar's report from an honest one is what result verification adds); the honest errors
        // are among its attempts either way.
        assert.match(job.error ?? '', FAILING.error);
        const attempts = (await apiGet<TaskView[]>(m, `/api/jobs/${id}/tasks`)).flatMap((t) => t.attempts);
        assert.ok(
          attempts.some((a) => a.outcome === 'failed' && FAILING.own.test(`${a.error?.name}: ${a.error?.message}`)),
          'its own error is among its failed attempts',
        );
        continue;
      }
      assert.equal(job.state, 'succeeded', `${JOBS[i]!.module}: ${job.error}`);
      const out = await adminCli(m)(['result', id]);
      assert.equal(out.stdout, want[i], `${JOBS[i]!.module} equals local`);
      const tasks = await apiGet<TaskView[]>(m, `/api/jobs/${id}/tasks`);
      // Once: the committed result and those that agreed with it, each from another volunteer, and the
      // job counts each task once by how it was confirmed.
      for (const t of tasks) {
        const won = t.attempts.filter((a) => a.outcome === 'succeeded');
        assert.ok(
          won.length >= 1 && new Set(won.map((a) => a.worker)).size === won.length,
          `${t.phase} ${t.index} once`,
        );
      }
      const v = job.verification;
      assert.equal(v.verified + v.spotChecked + v.trusted + v.unconfirmed, tasks.length, 'each task committed once');
      assert.ok(job.recordsOut < 2 ** 40, 'no forged counter reached the job');
    }
    health.sort((a, b) => a - b);
    const p99 = health[Math.floor(health.length * 0.99)]!;
    // The box's two cores also run Chromium, two volunteers and six attackers: the bound is loose here;
    // the master alone under the frame attack is held to 100 ms in hostile-crowd.test.ts.
    assert.ok(p99 < 1_000, `/healthz p99 ${p99.toFixed(0)} ms over ${health.length} polls`);
    console.log(
      `hostile soak: attacker connections ${JSON.stringify(connections)}; /healthz p50 ` +
        `${health[Math.floor(health.length / 2)]!.toFixed(1)} ms, p99 ${p99.toFixed(1)} ms`,
    );
  } finally {
    finished = true;
    for (const n of nodes) await n.kill();
    await browser?.close();
    await m.kill();
  }
});
