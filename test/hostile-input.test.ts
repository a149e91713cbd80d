/**
 * Bad input against a real master process: malformed, fuzzed and oversized WebSocket frames, wrong
 * leases, missing or wrong admin tokens, bad modules and inputs. Each gets a clear error, the master
 * stays up, and a job submitted afterwards still runs exactly.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import type { Duplex } from 'node:stream';
import { join } from 'node:path';
import fc from 'fast-check';
import { WebSocket } from 'ws';
import {
  adminCli,
  apiGet,
  cli,
  corpusFiles,
  EXAMPLES,
  localOutput,
  removeTempDirs,
  sleep,
  startMaster,
  startVolunteer,
  tempDir,
  type MasterProc,
} from './helpers/cluster.js';
import type { MasterMessage } from '../shared/protocol.js';
import { openRawClient } from './helpers/raw-volunteer.js';

let m: MasterProc;
let dir: string;

before(async () => {
  m = await startMaster({ args: ['--max-message', '1MiB', '--max-upload', '8MiB'] });
  dir = tempDir();
});
after(async () => {
  await m.kill();
  removeTempDirs();
});

/** A raw protocol client on this file's master (or another): see helpers/raw-volunteer.ts. */
const rawClient = (base = m.url) => openRawClient(base);

async function healthy() {
  const res = await fetch(`${m.url}/healthz`);
  assert.equal(res.status, 200, 'the master is still up');
}

function hello(extra: object = {}) {
  return JSON.stringify({
    type: 'hello',
    protocol: 2,
    threads: 1,
    slots: 0,
    paused: true,
    agent: 'test',
    running: [],
    ...extra,
  });
}

test('malformed frames get an error reply and are otherwise ignored', async () => {
  const c = await rawClient();
  c.ws.send('not json');
  assert.match(JSON.stringify(await c.next('error')), /not JSON/);
  c.ws.send(JSON.stringify({ type: 'heartbeat', running: [] }));
  await new Promise((r) => setTimeout(r, 100));
  assert.match(JSON.stringify(c.got.at(-1)), /first message must be hello/);
  c.ws.send(Buffer.from([1, 2, 3]), { binary: true });
  await new Promise((r) => setTimeout(r, 100));
  assert.match(JSON.stringify(c.got.at(-1)), /binary frames/);
  c.ws.send(hello());
  await c.next('welcome');
  assert.equal(c.closed(), null, 'still connected after a few bad frames');
  c.ws.close();
  await healthy();
});

test('heartbeats write nothing: no group commit, however many arrive', async () => {
  const commits = async () =>
    Number(/^tabreduce_group_commits_total (\d+)$/m.exec(await (await fetch(`${m.url}/metrics`)).text())?.[1]);
  const c = await rawClient();
  c.ws.send(hello());
  await c.next('welcome');
  await sleep(50);
  const before = await commits();
  assert.ok(before >= 1, 'the hello was committed');
  for (let i = 0; i < 200; i++) c.ws.send(JSON.stringify({ type: 'heartbeat', running: [] }));
  await sleep(200);
  assert.equal(await commits(), before);
  assert.equal(c.closed(), null);
  c.ws.close();
});

test('fuzzed frames never crash the master; a flood of invalid frames closes the socket', async () => {
  const samples = fc.sample(
    fc.oneof(
      fc.string(),
      fc.json(),
      fc
        .record({
          type: fc.constantFrom('hello', 'heartbeat', 'task.result', 'task.fail', 'volunteer.update'),
          x: fc.anything(),
        })
        .map((o) => JSON.stringify(o)),
    ),
    300,
  );
  const c = await rawClient();
  c.ws.send(hello());
  await c.next('welcome');
  for (const s of samples) if (c.ws.readyState === WebSocket.OPEN) c.ws.send(s);
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(c.closed()?.code, 1008, 'closed for too many invalid messages');
  await healthy();
});

test('a frame larger than --max-message closes that socket only', async () => {
  const c = await rawClient();
  c.ws.send(hello());
  await c.next('welcome');
  c.ws.send('x'.repeat(2 * 1024 * 1024));
  for (let i = 0; i < 50 && !c.closed(); i++) await new Promise((r) => setTimeout(r, 20));
  assert.equal(c.closed()?.code, 1009, 'closed with 1009 message too big');
  await healthy();
});

test('results for unknown or forged leases are refused', async () => {
  const c = await rawClient();
  c.ws.send(hello());
  await c.next('welcome');
  c.ws.send(
    JSON.stringify({
      type: 'task.result',
      lease: 'b'.repeat(32),
      output: 'x\t1\n',
      stats: { ms: 1, recordsIn: 1, recordsOut: 1 },
    }),
  );
  const ack = (await c.next('task.ack')) as Extract<MasterMessage, { type: 'task.ack' }>;
  assert.equal(ack.outcome, 'refused');
  assert.match(ack.reason!, /unknown lease/);
  c.ws.send(
    JSON.stringify({ type: 'task.fail', lease: 'nothex', reason: 'threw', error: { name: 'E', message: 'm' } }),
  );
  await new Promise((r) => setTimeout(r, 100));
  assert.match(JSON.stringify(c.got.at(-1)), /lease must be 32 hex digits/);
  c.ws.close();
  await healthy();
});

test('the API refuses a missing or wrong token without saying more', async () => {
  for (const headers of [{}, { authorization: 'Bearer wrong' }, { authorization: `Basic ${m.token}` }] as Record<
    string,
    string
  >[]) {
    const res = await fetch(`${m.url}/api/jobs`, { headers });
    assert.equal(res.status, 401);
    assert.match(((await res.json()) as { error: string }).error, /admin token/);
  }
  const cliNoToken = await adminCli({ ...m, token: '' })(['status']);
  assert.equal(cliNoToken.code, 3);
  assert.match(cliNoToken.stderr, /no admin token: pass --token/);
  const cliWrong = await adminCli({ ...m, token: 'nope' })(['status']);
  assert.equal(cliWrong.code, 3);
  assert.match(cliWrong.stderr, /refused the admin token/);
});

async function postJob(parts: {
  module?: [string, string];
  inputs?: [string, Uint8Array | string][];
  fields?: Record<string, string>;
}) {
  const form = new FormData();
  if (parts.module) form.append('module', new Blob([parts.module[1]]), parts.module[0]);
  for (const [name, body] of parts.inputs ?? []) form.append('input', new Blob([body as BlobPart]), name);
  for (const [k, v] of Object.entries(parts.fields ?? {})) form.append(k, v);
  const res = await fetch(`${m.url}/api/jobs`, {
    method: 'POST',
    body: form,
    headers: { authorization: `Bearer ${m.token}` },
  });
  return { status: res.status, body: (await res.json()) as { error?: string; id?: string } };
}

const GOOD =
  'export function map(k, v, emit) { emit(k, "1"); }\nexport function reduce(k, vs) { return String(vs.length); }\n';

test('bad jobs are refused with a clear reason and nothing is queued', async () => {
  const before_ = (await (
    await fetch(`${m.url}/api/jobs`, { headers: { authorization: `Bearer ${m.token}` } })
  ).json()) as unknown[];
  const cases: [Parameters<typeof postJob>[0], number, RegExp][] = [
    [{ inputs: [['a.txt', 'x']] }, 400, /missing the "module" file/],
    [{ module: ['job.js', GOOD] }, 400, /no "input" files/],
    [
      { module: ['job.js', 'export function map(k, v, e) {\n  e(k,\n}\n'], inputs: [['a.txt', 'x']] },
      400,
      /job\.js:3:1: syntax error/,
    ],
    [{ module: ['job.js', 'export function map() {}\n'], inputs: [['a.txt', 'x']] }, 400, /does not export "reduce"/],
    [
      { module: ['job.js', `import fs from 'node:fs';\n${GOOD}`], inputs: [['a.txt', 'x']] },
      400,
      /job\.js:1: job modules must be self-contained/,
    ],
    [
      {
        module: ['job.js', `${GOOD}export async function f() {\n  return import('node:fs');\n}\n`],
        inputs: [['a.txt', 'x']],
      },
      400,
      /job\.js:4: job modules must be self-contained, but this loads code with import\(\)/,
    ],
    [
      { module: ['job.js', `${GOOD}\nconst here = import.meta.url;\n`], inputs: [['a.txt', 'x']] },
      400,
      /job\.js:4: job modules may not use import\.meta/,
    ],
    [
      { module: ['job.js', GOOD], inputs: [['a.txt', 'x']], fields: { reduces: '0' } },
      400,
      /reduces must be a whole number from 1/,
    ],
    [
      { module: ['job.js', GOOD], inputs: [['a.txt', 'x']], fields: { reduces: 'ten' } },
      400,
      /reduces must be a whole number/,
    ],
    [{ module: ['job.js', GOOD], inputs: [['a.txt', 'x']], fields: { splitSize: '1' } }, 400, /split size must be/],
    [
      { module: ['job.js', GOOD], inputs: [['a.txt', 'x']], fields: { verify: 'some' } },
      400,
      /verify must be one of off, adaptive, all, got "some"/,
    ],
    [
      { module: ['job.js', GOOD], inputs: [['a.txt', new Uint8Array([0x61, 0xff, 0x0a])]] },
      400,
      /input a\.txt is not valid UTF-8 \(bad byte near offset 1\)/,
    ],
    [
      {
        module: ['job.js', GOOD],
        inputs: [
          ['dir1/a.txt', 'x'],
          ['dir2/a.txt', 'y'],
        ],
      },
      400,
      /two inputs have the base name "a\.txt"/,
    ],
  ];
  for (const [parts, status, why] of cases) {
    const r = await postJob(parts);
    assert.equal(r.status, status, JSON.stringify(r.body));
    assert.match(r.body.error ?? '', why);
  }
  const big = await postJob({ module: ['job.js', GOOD], inputs: [['big.txt', 'a\n'.repeat(5 * 1024 * 1024)]] });
  assert.equal(big.status, 413);
  assert.match(big.body.error!, /upload larger than the master's limit/);
  const after_ = (await (
    await fetch(`${m.url}/api/jobs`, { headers: { authorization: `Bearer ${m.token}` } })
  ).json()) as unknown[];
  assert.equal(after_.length, before_.length, 'nothing was queued');
});

test('the CLI explains bad input before uploading anything', async () => {
  const run = adminCli(m);
  const bad = join(dir, 'bad.js');
  writeFileSync(bad, 'export function map(k, v, e) {\n  e(k,\n}\n');
  const cases: [string[], RegExp][] = [
    [['submit', bad, corpusFiles()[0]!], /bad\.js:3:1: syntax error/],
    [['submit', join(EXAMPLES, 'word-count.js'), join(dir, 'missing.txt')], /input file not found: .*missing\.txt/],
    [['submit', join(EXAMPLES, 'word-count.js')], /no input files/],
    [
      ['submit', join(EXAMPLES, 'word-count.js'), corpusFiles()[0]!, '--reduces', '0'],
      /reduces must be a whole number from 1/,
    ],
    [
      ['submit', join(EXAMPLES, 'word-count.js'), corpusFiles()[0]!, '--split-size', 'lots'],
      /--split-size: "lots" is not a size/,
    ],
    [
      ['submit', join(EXAMPLES, 'word-count.js'), corpusFiles()[0]!, '--task-timeout', 'soon'],
      /--task-timeout: "soon" is not a duration/,
    ],
    [
      ['submit', join(EXAMPLES, 'word-count.js'), corpusFiles()[0]!, '--verify', 'twice'],
      /--verify must be one of off, adaptive, all, got "twice"/,
    ],
    [['status', 'nosuchjob'], /no job "nosuchjob"/],
    [['result', 'nosuchjob'], /no job "nosuchjob"/],
  ];
  for (const [args, why] of cases) {
    const r = await run(args);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, why);
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace for user errors');
  }
});

test('after all that, an empty input, CRLF lines and a file without a final newline work, exactly as local', async () => {
  const empty = join(dir, 'empty.txt');
  const crlf = join(dir, 'crlf.txt');
  const noNewline = join(dir, 'no-newline.txt');
  writeFileSync(empty, '');
  writeFileSync(crlf, 'qxone qxtwo\r\nqxtwo qxthree\r\n');
  writeFileSync(noNewline, 'qxthree qxfour');
  const v = startVolunteer(m.url, 2);
  try {
    const run = adminCli(m);
    const files = [empty, crlf, noNewline, corpusFiles()[5]!];
    const r = await run([
      'submit',
      join(EXAMPLES, 'word-count.js'),
      ...files,
      '--reduces',
      '3',
      '--split-size',
      '16KiB',
      '--wait',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const out = await run(['result', r.stdout.split('\n')[0]!]);
    assert.equal(
      out.stdout,
      await localOutput(join(EXAMPLES, 'word-count.js'), files, ['--reduces', '3', '--split-size', '16KiB']),
    );
    assert.match(out.stdout, /^qxthree\t2$/m);
    assert.match(out.stdout, /^qxtwo\t2$/m);
  } finally {
    await v.kill();
  }
  await healthy();
});

/** Terminal controls: C0 but newline and tab, DEL, C1, and the bidi overrides that reorder a line. */
const CONTROLS = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/;

test("what volunteers say reaches the admin's terminal without escape sequences; --json keeps it exactly", async () => {
  // Clear the screen, home the cursor, retitle the window, overwrite the line with a fake verdict,
  // an 8-bit CSI, a terminal reset, and a right-to-left override.
  const hostile = 'boom\x1b[2J\x1b[H\x1b]0;pwned\x07\rjob succeeded\x9b31m\x1bc\u202eevil\x00';
  const stack = `Error: ${hostile}\n    at map (job.js:1:1)\r\n\tat \x1b[1mrun\x1b[0m (engine.js:2:2)`;
  const agent = `Mozilla/5.0 \x1b]0;owned\x1b\\\x1b[31mred\x1b[0m\nfake row\x85`;
  const h = await startMaster();
  try {
    const c = await rawClient(h.url);
    c.ws.send(hello({ agent, slots: 1, paused: false }));
    await c.next('welcome');
    const run = adminCli(h);
    const sub = await run(['submit', join(EXAMPLES, 'word-count.js'), corpusFiles()[0]!, '--max-attempts', '1']);
    assert.equal(sub.code, 0, sub.stderr);
    const id = sub.stdout.trim();
    const task = (await c.next('task.assign')) as Extract<MasterMessage, { type: 'task.assign' }>;
    c.ws.send(
      JSON.stringify({
        type: 'task.fail',
        lease: task.lease,
        reason: 'threw',
        error: { name: 'Error', message: hostile, stack },
      }),
    );
    const [wait, status, workers, statusJson, workersJson] = await Promise.all([
      run(['wait', id]),
      run(['wait', id]).then(() => run(['status', id])),
      run(['workers']),
      run(['wait', id]).then(() => run(['status', id, '--json'])),
      run(['workers', '--json']),
    ]);
    assert.equal(wait.code, 1);
    for (const [what, text] of [
      ['wait', wait.stderr],
      ['status', status.stdout],
      ['workers', workers.stdout],
      ['status --json', statusJson.stdout],
      ['workers --json', workersJson.stdout],
    ]) {
      assert.doesNotMatch(text!, CONTROLS, `${what} prints no control character`);
    }
    // The words stay; only what a terminal would act on goes. A stack keeps its lines.
    assert.match(
      wait.stderr,
      /failed 1 time: Error: boomjob succeededevil\n {4}at map \(job\.js:1:1\)\n\tat run \(engine\.js:2:2\)\n$/,
    );
    assert.match(status.stdout, /\nfailed +map 0 \(\S+\) on [0-9a-f]{16}: boom job succeededevil\n/);
    assert.match(workers.stdout, /Mozilla\/5\.0 red fake row\n$/, 'one row per volunteer, whatever the agent says');
    // JSON escapes what it must and the rest is escaped too (DEL, C1, bidi), so scripts get the
    // volunteer's text exactly.
    const detail = JSON.parse(statusJson.stdout) as {
      tasks: { attempts: { error: { message: string; stack: string } | null }[] }[];
    };
    const failed = detail.tasks.flatMap((t) => t.attempts).find((a) => a.error)!;
    assert.equal(failed.error!.message, hostile);
    assert.equal(failed.error!.stack, stack);
    assert.equal((JSON.parse(workersJson.stdout) as { agent: string }[])[0]!.agent, agent);
    // The master's own log quotes the failure too, on the operator's terminal.
    assert.match(h.output(), /job code threw: boomjob succeededevil\n/);
    assert.doesNotMatch(h.output(), CONTROLS);
    c.ws.close();
  } finally {
    await h.kill();
  }
});

/** Opens `/ws` of `base` as a page on `origin` would; the master's answer: open, or its refusal. */
function upgrade(
  base: string,
  headers: Record<string, string> = {},
): Promise<'open' | { status: number; body: string }> {
  return new Promise((ok, fail) => {
    const ws = new WebSocket(base.replace(/^http/, 'ws') + '/ws', { headers });
    ws.once('open', () => {
      ws.close();
      ok('open');
    });
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => ok({ status: res.statusCode ?? 0, body }));
    });
    ws.once('error', fail);
  });
}

test("a page on another origin cannot open /ws; Node volunteers, the master's own pages and --allow-origin ones can", async () => {
  const evil = await upgrade(m.url, { origin: 'http://evil.example' });
  assert.deepEqual(evil, {
    status: 403,
    body: `origin http://evil.example may not volunteer here: it is not this master's (127.0.0.1:${m.port}); its operator can admit it with tabreduce serve --allow-origin http://evil.example\n`,
  });
  assert.equal(await upgrade(m.url), 'open', 'no Origin: a Node volunteer');
  assert.equal(await upgrade(m.url, { origin: m.url }), 'open', "the master's own page");
  // A browser at localhost sends Host and Origin both as localhost.
  const local = `http://localhost:${m.port}`;
  assert.equal(await upgrade(m.url, { origin: local, host: `localhost:${m.port}` }), 'open');
  for (const [headers, why] of [
    [{ origin: local }, /not this master's \(127\.0\.0\.1:\d+\)/],
    [{ origin: 'null' }, /origin "null" may not volunteer here/],
    [{ origin: `http://127.0.0.1.evil.example:${m.port}` }, /not this master's/],
    // DNS rebinding: evil.example resolved to 127.0.0.1, so Host and Origin agree on a name that is
    // not the master's own. A master on loopback only knows loopback names.
    [
      { origin: `http://evil.example:${m.port}`, host: `evil.example:${m.port}` },
      /listens on loopback only, and evil\.example is not a loopback name/,
    ],
  ] as [Record<string, string>, RegExp][]) {
    const r = await upgrade(m.url, headers);
    assert.ok(r !== 'open', `refused: ${JSON.stringify(headers)}`);
    assert.equal(r.status, 403);
    assert.match(r.body, why);
  }

  const allowing = await startMaster({
    args: ['--allow-origin', 'http://evil.example/', '--allow-origin', 'https://b.example:8443'],
  });
  try {
    assert.equal(await upgrade(allowing.url, { origin: 'http://evil.example' }), 'open');
    assert.equal(await upgrade(allowing.url, { origin: 'https://b.example:8443' }), 'open');
    assert.equal(await upgrade(allowing.url, { origin: allowing.url }), 'open');
    assert.equal(((await upgrade(allowing.url, { origin: 'https://evil.example' })) as { status: number }).status, 403);
  } finally {
    await allowing.kill();
  }
  assert.match(
    (await cli(['serve', '--help'])).stdout,
    /\[--allow-origin URL\]\.\.\.[\s\S]*--allow-origin URL \(repeatable\)/,
  );
  for (const [value, why] of [
    [
      'evil.example',
      /--allow-origin: "evil\.example" is not an origin: give scheme, host and port as in http:\/\/host:8080/,
    ],
    ['ftp://evil.example', /--allow-origin: "ftp:\/\/evil\.example" is not an origin/],
    ['http://evil.example/page', /--allow-origin: "http:\/\/evil\.example\/page" is not an origin/],
  ] as [string, RegExp][]) {
    const r = await cli(['serve', '--port', '0', '--data', tempDir(), '--allow-origin', value], { timeoutMs: 15_000 });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, why);
  }
  await healthy();
});

test('a flood of connections from one address is capped; a flood of messages closes the socket', async () => {
  const capped = await startMaster({ args: ['--max-per-ip', '4'] });
  const wsUrl = capped.url.replace(/^http/, 'ws') + '/ws';
  const open = (): Promise<WebSocket | number> =>
    new Promise((ok) => {
      const ws = new WebSocket(wsUrl);
      ws.once('open', () => ok(ws));
      ws.once('unexpected-response', (_req, res) => ok(res.statusCode ?? 0));
      ws.once('error', () => ok(-1));
    });
  try {
    const sockets = await Promise.all(Array.from({ length: 4 }, open));
    assert.ok(
      sockets.every((s) => s instanceof WebSocket),
      'four connections accepted',
    );
    assert.equal(await open(), 429, 'the fifth is refused with 429');
    const first = sockets[0] as WebSocket;
    await new Promise<void>((ok) => {
      first.once('close', () => ok());
      first.close();
    });
    await new Promise((r) => setTimeout(r, 100));
    const again = await open();
    assert.ok(again instanceof WebSocket, 'a slot frees when a socket closes');

    // 4,000 heartbeats in one go: past the burst allowance, the socket is closed for flooding.
    const flooder = sockets[1] as WebSocket;
    const closed = new Promise<number>((ok) => flooder.once('close', (code) => ok(code)));
    flooder.send(hello());
    const beat = JSON.stringify({ type: 'heartbeat', running: [] });
    for (let i = 0; i < 6_000 && flooder.readyState === WebSocket.OPEN; i++) flooder.send(beat);
    assert.equal(await closed, 1008);
    for (const s of [...sockets, again]) if (s instanceof WebSocket) s.close();
    assert.equal((await fetch(`${capped.url}/healthz`)).status, 200);
  } finally {
    await capped.kill();
  }
});

test('a client that stops reading is cut off; one that reads the same replies is not', async () => {
  // Replies wait in the master for a reader; past 2 x --max-message of them the socket is cut.
  const small = await startMaster({ args: ['--max-message', '16KiB'] });
  const wsUrl = small.url.replace(/^http/, 'ws') + '/ws';
  const join_ = async () => {
    const ws = new WebSocket(wsUrl);
    await new Promise<void>((ok, fail) => {
      ws.once('open', () => ok());
      ws.once('error', fail);
    });
    const welcome = new Promise<MasterMessage>((ok) =>
      ws.once('message', (d) => ok(JSON.parse(d.toString()) as MasterMessage)),
    );
    ws.send(hello());
    const w = await welcome;
    assert.equal(w.type, 'welcome');
    return { ws, id: (w as Extract<MasterMessage, { type: 'welcome' }>).volunteerId };
  };
  const connected = async (id: string) =>
    (await apiGet<{ id: string; state: string }[]>(small, '/api/workers')).some(
      (w) => w.id === id && w.state !== 'disconnected',
    );
  try {
    const reader = await join_();
    const stalled = await join_();
    let replies = 0;
    reader.ws.on('message', () => replies++);
    // Stop reading: what the master sends piles up in the kernel's buffers, then in the master.
    (stalled.ws as unknown as { _socket: Duplex })._socket.pause();
    // Both say hello again and again, ~1,700 a second (under the rate limit); each is answered with an
    // error of ~80 bytes. (Results for leases they do not hold would be answered too, but those use
    // up a socket's invalid-message budget.) The kernel holds ~4 MiB for a socket that does not read
    // (tcp_wmem's maximum), so the master's own buffer passes 32 KiB after about 25 s.
    const forged = () => hello();
    const started = Date.now();
    let cut = false;
    while (!cut && Date.now() - started < 100_000) {
      for (let i = 0; i < 180; i++) {
        for (const c of [reader, stalled]) if (c.ws.readyState === WebSocket.OPEN) c.ws.send(forged());
      }
      await sleep(100);
      cut = !(await connected(stalled.id));
    }
    assert.ok(cut, 'the socket that stopped reading was cut');
    assert.ok(await connected(reader.id), 'the one that reads is still connected');
    assert.equal(reader.ws.readyState, WebSocket.OPEN);
    assert.ok(replies > 1_000, `the reader got its replies (${replies})`);
    assert.equal((await fetch(`${small.url}/healthz`)).status, 200);
    reader.ws.close();
  } finally {
    await small.kill();
  }
});

test('2,000 small files and a line longer than the split size run exactly as local', async () => {
  const many = join(tempDir(), 'many');
  const { mkdirSync } = await import('node:fs');
  mkdirSync(many);
  const files: string[] = [];
  for (let i = 0; i < 2_000; i++) {
    const f = join(many, `doc-${String(i).padStart(4, '0')}.txt`);
    writeFileSync(f, `word${'abcdefg'[i % 7]} shared${'abcde'[i % 5]}\nline two of doc\n`);
    files.push(f);
  }
  const longLine = join(many, 'long-line.txt');
  writeFileSync(longLine, `short\n${'alpha beta '.repeat(20_000)}\nend\n`);
  files.push(longLine);
  const v = [startVolunteer(m.url, 2), startVolunteer(m.url, 2)];
  try {
    const run = adminCli(m);
    const args = ['--reduces', '4', '--split-size', '64KiB'];
    const r = await run(['submit', join(EXAMPLES, 'inverted-index.js'), ...files, ...args, '--wait'], 180_000);
    assert.equal(r.code, 0, r.stderr);
    const id = r.stdout.split('\n')[0]!;
    const out = (await run(['result', id])).stdout;
    assert.equal(out, await localOutput(join(EXAMPLES, 'inverted-index.js'), files, args));
    assert.match(out, /^alpha\t1 long-line\.txt$/m);
    assert.match(out, /^shareda\t400 doc-0000.txt,doc-0005.txt,/m);
  } finally {
    await Promise.all(v.map((x) => x.kill()));
  }
});
