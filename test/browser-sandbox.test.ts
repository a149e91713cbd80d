/**
 * Job code is contained: a runaway map is stopped at the hard limit without freezing the page, the
 * job fails with a clear error and the same tab runs the next job; and job code cannot reach any
 * host but the master.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { readdirSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { basename, join } from 'node:path';
import {
  EXAMPLES,
  ROOT,
  TEST_JOBS,
  adminCli,
  apiGet,
  corpusFiles,
  localOutput,
  parseOutput,
  tempDir,
  until,
} from './helpers/cluster.js';
import { apiText, browserSuite, openTab, screenshotPath, submitJob, tasksOf, waitJob } from './helpers/browser.js';

const { newContext, master } = browserSuite();

describe('job code in a tab is contained', () => {
  it('runaway code fails the job with a clear error, the page stays responsive, and the tab runs the next job', async () => {
    const m = await master();
    const context = await newContext();
    const tab = await openTab(context, m);
    const cli = adminCli(m);
    const runaway = cli([
      'submit',
      join(TEST_JOBS, 'runaway.js'),
      corpusFiles()[0]!,
      '--reduces',
      '1',
      '--task-timeout',
      '1s',
      '--max-attempts',
      '2',
      '--wait',
    ]);

    // While a worker spins in `while (true) {}`, the page still answers and paints.
    await until('the runaway map to start', async () => (await tab.page.locator('.task.running').count()) > 0);
    for (let i = 0; i < 3; i++) {
      const t0 = Date.now();
      await tab.page.evaluate(() => new Promise((r) => requestAnimationFrame(() => r(null))));
      assert.ok(Date.now() - t0 < 2000, `the page took ${Date.now() - t0} ms to paint a frame`);
    }

    const r = await runaway;
    assert.equal(r.code, 1, `submit --wait should fail: ${r.stdout} ${r.stderr}`);
    const id = r.stdout.split('\n')[0]!;
    const job = await apiGet<{ state: string; error: string }>(m, `/api/jobs/${id}`);
    assert.equal(job.state, 'failed');
    assert.match(job.error, /map task 0 .* failed 2 times/);
    assert.match(job.error, /still running after 3\.0s, its time limit/);
    assert.match(r.stderr, /time limit/);
    const attempts = (await tasksOf(m, id)).flatMap((t) => t.attempts);
    assert.equal(attempts.length, 2);
    for (const a of attempts) {
      assert.equal(a.worker, tab.id);
      assert.equal(a.outcome, 'failed');
      assert.equal(a.error?.name, 'TimeoutError');
      // Stopped at the 3 s hard limit, not left running until the master gave up on it.
      assert.ok(a.endedAt! - a.startedAt < 6000, `attempt ended after ${a.endedAt! - a.startedAt} ms`);
    }
    await until('the page to show the failures', async () => (await tab.page.locator('.failures').count()) > 0);
    await tab.page.locator('.failures summary').click();
    await tab.page.screenshot({ path: screenshotPath('volunteer-after-runaway.png'), fullPage: true });

    // The same tab, still connected as the same volunteer, runs the next job.
    const wc = join(EXAMPLES, 'word-count.js');
    const inputs = corpusFiles().slice(0, 3);
    const next = await cli(['submit', wc, ...inputs, '--reduces', '2', '--wait']);
    assert.equal(next.code, 0, next.stderr);
    const nextId = next.stdout.split('\n')[0]!;
    assert.equal(await apiText(m, `/api/jobs/${nextId}/output`), await localOutput(wc, inputs, ['--reduces', '2']));
    for (const a of (await tasksOf(m, nextId)).flatMap((t) => t.attempts)) assert.equal(a.worker, tab.id);
    assert.equal((await tab.state()).state, 'connected');
    await context.close();
  });

  it("an error thrown by job code comes back from the tab's worker with its name, message and stack", async () => {
    const m = await master();
    const context = await newContext();
    const tab = await openTab(context, m);
    const input = corpusFiles()[0]!;
    const id = await submitJob(m, [join(TEST_JOBS, 'throws.js'), input, '--reduces', '1', '--max-attempts', '1']);
    const end = await waitJob(m, id);
    assert.equal(end.state, 'failed');
    const [attempt] = (await tasksOf(m, id))[0]!.attempts;
    assert.equal(attempt!.worker, tab.id);
    assert.equal(attempt!.error?.name, 'RangeError');
    assert.equal(attempt!.error?.message, `cannot parse record in ${basename(input)}`);
    // The stack is the browser's, its frames in the job module mapped back to the author's file and line.
    assert.match(attempt!.error?.stack ?? '', /at (Module\.)?map \(throws\.js:3:9\)/);
    assert.match(end.error ?? '', /RangeError: cannot parse record in/);
    await context.close();
  });

  it('job code cannot reach another origin, only the master', async () => {
    // The "other host": a server on another loopback port, counting every connection it gets.
    let connections = 0;
    const other: Server = createServer((_req, res) => res.end('secret'));
    other.on('connection', () => connections++);
    await new Promise<void>((r) => other.listen(0, '127.0.0.1', r));
    const port = (other.address() as AddressInfo).port;
    try {
      const m = await master();
      const context = await newContext();
      const tab = await openTab(context, m);
      const input = join(tempDir(), 'targets.txt');
      writeFileSync(input, `self /\nhttp http://127.0.0.1:${port}/steal\nws ws://127.0.0.1:${port}/socket\n`);
      const id = await submitJob(m, [join(TEST_JOBS, 'exfiltrate.js'), input, '--reduces', '1']);
      assert.equal((await waitJob(m, id)).state, 'succeeded');
      const results = parseOutput(await apiText(m, `/api/jobs/${id}/output`));

      // The control: the same code does reach the master, so "blocked" below is not a broken job.
      assert.equal(results.get('self fetch'), 'reached fetch 200');
      for (const vector of ['fetch', 'fetch no-cors', 'xhr', 'eventsource', 'import', 'webtransport', 'websocket']) {
        assert.match(results.get(vector) ?? 'missing', /^blocked /, `${vector}: ${results.get(vector)}`);
      }
      assert.equal(connections, 0, 'the other host was contacted');
      // And it was the page's policy that refused them, not some network failure.
      const violations = (results.get('violations') ?? '').split(' ; ');
      const base = `127.0.0.1:${port}`;
      for (const expected of [
        `connect-src http://${base}/steal`,
        `connect-src https://${base}/steal`,
        `connect-src ws://${base}/socket`,
      ]) {
        assert.ok(violations.includes(expected), `no violation "${expected}" in ${JSON.stringify(violations)}`);
      }
      // import() in a module is refused at submit; evaluated from a string it is refused by script-src.
      assert.ok(
        violations.some((v) => /^script-src eval$/.test(v)),
        `the evaluated import was not refused by script-src: ${JSON.stringify(violations)}`,
      );
      assert.equal((await tasksOf(m, id))[0]!.attempts[0]!.worker, tab.id);

      // The policy that does it, on the page, the worker scripts and the job's module.
      const workers = readdirSync(join(ROOT, 'dist/client/assets')).filter((f) => /worker.*\.js$/.test(f));
      assert.ok(workers.length >= 2, `worker scripts in the build: ${workers.join(', ')}`);
      for (const path of ['/', ...workers.map((f) => `/assets/${f}`), `/jobs/${id}/module.js`]) {
        const res = await fetch(`${m.url}${path}`);
        assert.equal(res.status, 200, path);
        const csp = res.headers.get('content-security-policy') ?? '';
        assert.match(csp, /connect-src 'self'/, path);
        assert.match(csp, /script-src 'self'/, path);
      }
      await context.close();
    } finally {
      other.close();
    }
  });
});
