/** The master as an operator meets it: start-up messages, the token file, shutdown, bad set-ups. */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cli, removeTempDirs, startMaster, tempDir } from './helpers/cluster.js';

after(removeTempDirs);

test('serve prints the URLs and the token file, creates it with mode 0600, and stops cleanly on SIGTERM', async () => {
  const m = await startMaster();
  assert.match(m.output(), /volunteers: open http:\/\/127\.0\.0\.1:\d+\//);
  assert.match(m.output(), /status: {5}http:\/\/127\.0\.0\.1:\d+\/status/);
  assert.match(m.output(), new RegExp(`admin token: ${join(m.data, 'admin-token')}`));
  assert.doesNotMatch(m.output(), new RegExp(m.token), 'the token itself is not printed');
  assert.equal(statSync(join(m.data, 'admin-token')).mode & 0o777, 0o600);
  const metrics = await (await fetch(`${m.url}/metrics`)).text();
  assert.match(metrics, /^tabreduce_jobs\{state="queued"\} 0$/m);
  assert.match(metrics, /^# TYPE tabreduce_attempts_total counter$/m);
  assert.equal(await m.stop(), 0, 'exit code 0 after SIGTERM');
  // The same token survives a restart.
  const again = await startMaster({ data: m.data });
  assert.equal(again.token, m.token);
  await again.stop();
});

test('TABREDUCE_TOKEN replaces the token file', async () => {
  const m = await startMaster({ env: { TABREDUCE_TOKEN: 'sesame-0123456789' } });
  assert.match(m.output(), /admin token: the TABREDUCE_TOKEN environment variable/);
  const ok = await fetch(`${m.url}/api/jobs`, { headers: { authorization: 'Bearer sesame-0123456789' } });
  assert.equal(ok.status, 200);
  await m.stop();
});

test('an unusable data directory or a taken port is refused with a clear message', async () => {
  const file = join(tempDir(), 'not-a-dir');
  writeFileSync(file, 'x');
  const r = await cli(['serve', '--port', '0', '--data', join(file, 'data')]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /cannot use the data directory .*not-a-dir\/data: .*pass --data with a writable directory/);
  const m = await startMaster();
  const taken = await cli(['serve', '--port', String(m.port), '--data', tempDir()]);
  assert.equal(taken.code, 2);
  assert.match(taken.stderr, new RegExp(`port ${m.port} on 127\\.0\\.0\\.1 is in use; pick another with --port`));
  await m.stop();
  const bad = await cli(['serve', '--reassign-after', 'ten', '--data', tempDir()]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--reassign-after: "ten" is not a duration/);
});

test('a second master on the same --data is refused, naming the lock and its holder; a SIGKILLed master leaves no lock', async () => {
  const m = await startMaster();
  const second = await cli(['serve', '--port', '0', '--data', m.data], { timeoutMs: 15_000 });
  assert.equal(second.code, 2, second.stderr);
  assert.equal(
    second.stderr,
    `tabreduce: the data directory ${m.data} is in use by another master (pid ${m.proc.pid}), which holds its lock ${join(m.data, 'lock')}; stop that master, or pass another --data\n`,
  );
  assert.equal((await fetch(`${m.url}/healthz`)).status, 200, 'the first master is undisturbed');
  await m.kill();
  // The lock died with the process: the next master starts at once on the same data.
  const next = await startMaster({ data: m.data });
  assert.equal((await fetch(`${next.url}/healthz`)).status, 200);
  assert.equal(await next.stop(), 0);
  // And one stopped cleanly releases it too.
  const third = await startMaster({ data: m.data });
  await third.stop();
});
