/**
 * `tabreduce/client` against a real master and a real Node volunteer: jobs submitted from files,
 * strings and streams, progress while waiting, the output stream equal to `tabreduce local`'s,
 * cancelling a running job, and the typed errors.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import {
  MasterUnreachableError,
  Tabreduce,
  TabreduceError,
  TokenRefusedError,
  UserError,
  type JobView,
} from '../server/client/index.js';
import {
  corpusFiles,
  EXAMPLES,
  localOutput,
  removeTempDirs,
  ROOT,
  startMaster,
  startVolunteer,
  tempDir,
  until,
  type MasterProc,
  type VolunteerProc,
} from './helpers/cluster.js';

const WORD_COUNT = join(EXAMPLES, 'word-count.js');
const TS_WORD_COUNT = join(EXAMPLES, 'ts-word-count', 'job.ts');

let m: MasterProc;
let v: VolunteerProc;
let tr: Tabreduce;

before(async () => {
  m = await startMaster();
  v = startVolunteer(m.url, 1);
  tr = new Tabreduce({ server: m.url, token: m.token });
  await until('a volunteer', async () => (await tr.workers()).some((w) => w.state === 'connected'));
});

after(async () => {
  await v?.kill();
  await m?.kill();
  removeTempDirs();
});

/** A port nothing listens on: one the system just gave out and took back. */
async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((ok) => s.listen(0, '127.0.0.1', ok));
  const port = (s.address() as { port: number }).port;
  await new Promise((ok) => s.close(ok));
  return port;
}

describe('a job from submit to result', () => {
  test('submit from paths, wait with progress, result equal to local, then delete', async () => {
    const inputs = corpusFiles().slice(0, 2);
    const id = await tr.submit({ module: WORD_COUNT, inputs, reduces: 3, splitSize: 64 * 1024, name: 'from paths' });
    const events: JobView[] = [];
    for await (const job of tr.wait(id, { intervalMs: 100 })) events.push(job);
    assert.ok(events.length >= 2, `progress events: ${events.map((e) => e.state).join(', ')}`);
    assert.ok(
      events.slice(0, -1).some((e) => e.state !== 'succeeded'),
      'a snapshot before the end',
    );
    const last = events.at(-1)!;
    assert.equal(last.state, 'succeeded');
    assert.equal(last.name, 'from paths');
    assert.equal(last.maps.done, last.maps.total);
    assert.deepEqual(await tr.finished(id), last);

    const expected = await localOutput(WORD_COUNT, inputs, ['--reduces', '3', '--split-size', '64KiB']);
    assert.equal(await text(await tr.result(id)), expected);
    // One partition alone is that partition's share of the same output.
    const part0 = await text(await tr.result(id, { partition: 0 }));
    assert.ok(part0.length > 0 && expected.startsWith(part0));

    assert.ok((await tr.jobs()).some((j) => j.id === id));
    assert.ok((await tr.summary(id)).attempts.succeeded >= last.maps.total + last.reduces.total);
    assert.equal((await tr.tasks(id)).length, last.maps.total + last.reduces.total);

    const deleted = await tr.delete(id);
    assert.equal(deleted.id, id);
    assert.ok(deleted.freedBytes > 0);
    await assert.rejects(tr.job(id), (e: unknown) => e instanceof TabreduceError && e.status === 404);
  });

  test('a .ts module by path is bundled as submit bundles it', async () => {
    const inputs = corpusFiles().slice(2, 3);
    const id = await tr.submit({ module: TS_WORD_COUNT, inputs, reduces: 2 });
    assert.equal((await tr.finished(id, { intervalMs: 100 })).state, 'succeeded');
    assert.equal(await text(await tr.result(id)), await localOutput(TS_WORD_COUNT, inputs, ['--reduces', '2']));
  });

  test('submit from a source string and inputs as text, bytes, a Node stream and a web stream', async () => {
    const [a, b, c, d] = corpusFiles()
      .slice(3, 7)
      .map((p) => readFileSync(p, 'utf8'));
    const source = readFileSync(WORD_COUNT, 'utf8');
    const id = await tr.submit({
      module: { name: 'word-count.js', source },
      inputs: [
        { name: 'a.txt', data: a! },
        { name: 'b.txt', data: new TextEncoder().encode(b!) },
        // Chunks that split lines and characters: the stream's bytes go as they are.
        { name: 'c.txt', data: Readable.from(chunked(Buffer.from(c!), 1000)) },
        { name: 'd.txt', data: Readable.toWeb(Readable.from(chunked(Buffer.from(d!), 777))) as ReadableStream },
      ],
      reduces: 2,
    });
    assert.equal((await tr.finished(id, { intervalMs: 100 })).state, 'succeeded');
    const dir = tempDir();
    const files = ['a.txt', 'b.txt', 'c.txt', 'd.txt'].map((n) => join(dir, n));
    [a, b, c, d].forEach((t, i) => writeFileSync(files[i]!, t!));
    const expected = await localOutput(WORD_COUNT, files, ['--reduces', '2']);
    assert.equal(await text(await tr.result(id)), expected);
    const job = await tr.job(id);
    assert.equal(job.inputBytes, Buffer.byteLength(a! + b! + c! + d!));
  });

  test('cancel a running job', async () => {
    const dir = tempDir();
    const module = join(dir, 'sleepy.js');
    writeFileSync(
      module,
      `export async function map(key, value, emit) { await new Promise((r) => setTimeout(r, 2000)); emit(key, '1'); }\n` +
        `export function reduce(key, values) { return String(values.length); }\n`,
    );
    const id = await tr.submit({ module, inputs: [{ name: 'lines.txt', data: 'x\n'.repeat(5000) }], splitSize: 1000 });
    await until('the job running', async () => {
      const workers = await tr.workers();
      return workers.some((w) => w.tasks.some((t) => t.jobId === id));
    });
    const cancelled = await tr.cancel(id);
    assert.equal(cancelled.id, id);
    assert.equal(cancelled.state, 'cancelled');
    assert.equal((await tr.finished(id)).state, 'cancelled');
    await assert.rejects(
      tr.result(id),
      (e: unknown) => e instanceof TabreduceError && e.status === 400 && /cancelled/.test(e.message),
    );
  });

  test('workers lists the volunteer and what it runs', async () => {
    const workers = await tr.workers();
    const w = workers.find((x) => x.state === 'connected');
    assert.ok(w, JSON.stringify(workers));
    assert.equal(w.threads, 1);
    assert.ok(w.done > 0);
  });

  test('waiting stops when its signal aborts, and the job goes on', async () => {
    const dir = tempDir();
    const module = join(dir, 'sleepy.js');
    writeFileSync(
      module,
      `export async function map(key, value, emit) { await new Promise((r) => setTimeout(r, 1000)); emit(key, '1'); }\n` +
        `export function reduce(key, values) { return String(values.length); }\n`,
    );
    const id = await tr.submit({ module, inputs: [{ name: 'few.txt', data: 'x\n'.repeat(300) }], splitSize: 200 });
    const ac = new AbortController();
    const seen: string[] = [];
    await assert.rejects(async () => {
      for await (const job of tr.wait(id, { signal: ac.signal, intervalMs: 50 })) {
        seen.push(job.state);
        ac.abort(new Error('enough'));
      }
    }, /enough/);
    assert.equal(seen.length, 1);
    assert.equal((await tr.job(id)).id, id);
    await tr.cancel(id);
  });
});

test("the package exports it as 'tabreduce/client', built, with its types", async () => {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
    exports: Record<string, { types: string; default: string }>;
  };
  const entry = pkg.exports['./client']!;
  assert.ok(existsSync(join(ROOT, entry.types)), entry.types);
  // Named through a variable: the typecheck must not depend on dist/ having been built.
  const specifier = 'tabreduce/client';
  const built = (await import(specifier)) as typeof import('../server/client/index.js');
  const client = new built.Tabreduce({ server: m.url, token: m.token });
  assert.ok(Array.isArray(await client.jobs()));
  await assert.rejects(client.job('nope'), (e: unknown) => e instanceof built.TabreduceError && e.status === 404);
});

describe('typed errors', () => {
  test('a refused token is a TokenRefusedError with status 401', async () => {
    const bad = new Tabreduce({ server: m.url, token: 'not-the-token' });
    await assert.rejects(bad.jobs(), (e: unknown) => {
      assert.ok(e instanceof TokenRefusedError && e instanceof TabreduceError);
      assert.equal(e.status, 401);
      assert.equal(e.tokenSent, true);
      assert.match(e.message, /refused the admin token/);
      return true;
    });
  });

  test('an unreachable master is a MasterUnreachableError naming it and why', async () => {
    const server = `http://127.0.0.1:${await closedPort()}`;
    const gone = new Tabreduce({ server, token: 'x' });
    await assert.rejects(gone.workers(), (e: unknown) => {
      assert.ok(e instanceof MasterUnreachableError && e instanceof TabreduceError);
      assert.equal(e.status, null);
      assert.equal(e.server, server);
      assert.equal(e.reason, 'ECONNREFUSED');
      assert.equal(e.message, `cannot reach the master at ${server} (ECONNREFUSED)`);
      return true;
    });
  });

  test("an unknown job is a TabreduceError with status 404 and the master's message", async () => {
    await assert.rejects(tr.job('no-such-job'), (e: unknown) => {
      assert.ok(e instanceof TabreduceError && !(e instanceof MasterUnreachableError));
      assert.equal(e.status, 404);
      assert.equal(e.message, 'no job "no-such-job"');
      assert.equal(e.path, '/api/jobs/no-such-job');
      return true;
    });
    await assert.rejects(tr.cancel('no-such-job'), (e: unknown) => e instanceof TabreduceError && e.status === 404);
  });

  test('bad input is a UserError before anything is uploaded', async () => {
    const before = (await tr.jobs()).length;
    await assert.rejects(
      tr.submit({ module: WORD_COUNT, inputs: [join(tempDir(), 'missing.txt')] }),
      (e: unknown) => e instanceof UserError && /input file not found/.test(e.message),
    );
    await assert.rejects(
      tr.submit({
        module: WORD_COUNT,
        inputs: [
          { name: 'a', data: 'x' },
          { name: 'a', data: 'y' },
        ],
      }),
      (e: unknown) => e instanceof UserError && /base name "a"/.test(e.message),
    );
    await assert.rejects(
      tr.submit({ module: WORD_COUNT, inputs: corpusFiles().slice(0, 1), reduces: 0 }),
      (e: unknown) => e instanceof UserError && /reduces must be/.test(e.message),
    );
    await assert.rejects(
      tr.submit({ module: { name: 'bad.js', source: 'export function map( {' }, inputs: [{ name: 'a', data: 'x' }] }),
      (e: unknown) => e instanceof TabreduceError && e.status === 400,
    );
    assert.equal((await tr.jobs()).length, before);
    assert.throws(() => new Tabreduce({ server: 'ftp://x' }), UserError);
  });

  test("a refusal while an input is still streaming up is the master's answer, not a broken connection", async () => {
    const small = await startMaster({ args: ['--max-upload', '1MiB'] });
    try {
      const limited = new Tabreduce({ server: small.url, token: small.token });
      const source = readFileSync(WORD_COUNT, 'utf8');
      const big = () => Readable.from(chunked(Buffer.from('a line\n'.repeat(1_200_000)), 64 * 1024));
      await assert.rejects(
        limited.submit({ module: { name: 'wc.js', source }, inputs: [{ name: 'big.txt', data: big() }] }),
        (e: unknown) => e instanceof TabreduceError && e.status === 413 && /larger than/.test(e.message),
      );
      // A bad byte 3 MB in: the master stops reading there and names the offset.
      const bad = Buffer.from('a line\n'.repeat(500_000));
      bad[3_000_001] = 0xff;
      await assert.rejects(
        tr.submit({ module: { name: 'wc.js', source }, inputs: [{ name: 'bad.txt', data: bad }] }),
        (e: unknown) =>
          e instanceof TabreduceError &&
          e.status === 400 &&
          /bad\.txt is not valid UTF-8.*offset 3000001/.test(e.message),
      );
      assert.deepEqual(await limited.jobs(), []);
    } finally {
      await small.kill();
    }
  });

  test('defaults: TABREDUCE_URL and TABREDUCE_TOKEN', async () => {
    const saved = { url: process.env['TABREDUCE_URL'], token: process.env['TABREDUCE_TOKEN'] };
    try {
      process.env['TABREDUCE_URL'] = `${m.url}/`;
      process.env['TABREDUCE_TOKEN'] = m.token;
      const fromEnv = new Tabreduce();
      assert.equal(fromEnv.server, m.url);
      assert.ok(Array.isArray(await fromEnv.jobs()));
    } finally {
      for (const [k, v] of [
        ['TABREDUCE_URL', saved.url],
        ['TABREDUCE_TOKEN', saved.token],
      ] as const) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  });
});

function* chunked(buf: Buffer, size: number): Generator<Buffer> {
  for (let i = 0; i < buf.length; i += size) yield buf.subarray(i, i + size);
}
