/**
 * Browser tabs run real jobs: word count and inverted index over the corpus are exact, and tasks run
 * side by side on different tabs in both phases. References are `tabreduce local` and counts computed
 * here independently, never the distributed run itself.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import {
  EXAMPLES,
  TEST_JOBS,
  adminCli,
  corpusFiles,
  independentWordCount,
  localOutput,
  parseOutput,
  until,
} from './helpers/cluster.js';
import { apiText, browserSuite, openTabs, screenshotPath, submitJob, tasksOf, waitJob } from './helpers/browser.js';
import type { AttemptView, TaskView } from '../shared/api.js';

const { newContext, master } = browserSuite();

/** Every attempt of every task, with its task. */
function attempts(tasks: TaskView[]): (AttemptView & { task: TaskView })[] {
  return tasks.flatMap((t) => t.attempts.map((a) => ({ ...a, task: t })));
}

/** The longest time two successful attempts of `phase` on different volunteers ran at once, ms. */
function longestOverlap(tasks: TaskView[], phase: 'map' | 'reduce'): number {
  const ok = attempts(tasks).filter((a) => a.task.phase === phase && a.outcome === 'succeeded');
  let best = 0;
  for (const a of ok) {
    for (const b of ok) {
      if (a.worker === b.worker) continue;
      best = Math.max(best, Math.min(a.endedAt!, b.endedAt!) - Math.max(a.startedAt, b.startedAt));
    }
  }
  return best;
}

describe('browser tabs run jobs', () => {
  it('word count with 3 tabs over the corpus is exact', async () => {
    const m = await master();
    const context = await newContext();
    const tabs = await openTabs(context, m, 3);
    const wc = join(EXAMPLES, 'word-count.js');
    const args = ['--split-size', '256KiB', '--reduces', '5'];
    // It counts one attempt per task, and the pages' counts against the commits: as before verification.
    const r = await adminCli(m)(['submit', wc, ...corpusFiles(), ...args, '--verify', 'off', '--wait']);
    assert.equal(r.code, 0, r.stderr);
    const id = r.stdout.split('\n')[0]!;
    const out = await apiText(m, `/api/jobs/${id}/output`);

    assert.equal(out, await localOutput(wc, corpusFiles(), args), 'output differs from tabreduce local');
    const counts = parseOutput(out);
    const expected = independentWordCount(corpusFiles());
    assert.equal(counts.size, expected.size);
    for (const [w, n] of expected) assert.equal(counts.get(w), String(n), `count of ${w}`);

    const tasks = await tasksOf(m, id);
    const ids = new Set(tabs.map((t) => t.id));
    const won = attempts(tasks).filter((a) => a.outcome === 'succeeded');
    assert.equal(won.length, tasks.length, 'one successful attempt per task');
    for (const a of won) assert.ok(ids.has(a.worker), `attempt by ${a.worker}, not one of the tabs`);
    assert.equal(new Set(won.map((a) => a.worker)).size, 3, 'all three tabs took part');
    // The pages count what the master committed for them.
    const shown = await until('the pages to show every committed task', async () => {
      const states = await Promise.all(tabs.map((t) => t.state()));
      const sum = states.reduce((n, s) => n + s.done, 0);
      return sum === tasks.length ? states : undefined;
    });
    for (const [i, t] of tabs.entries()) {
      assert.equal(shown[i]!.done, won.filter((a) => a.worker === t.id).length, `tasks done shown by tab ${t.id}`);
    }
    await context.close();
  });

  it('inverted index with 2 tabs over the corpus is exact', async () => {
    const m = await master();
    const context = await newContext();
    const tabs = await openTabs(context, m, 2);
    const ii = join(EXAMPLES, 'inverted-index.js');
    const args = ['--split-size', '256KiB', '--reduces', '3'];
    const id = await submitJob(m, [ii, ...corpusFiles(), ...args]);
    assert.equal((await waitJob(m, id)).state, 'succeeded');
    const out = await apiText(m, `/api/jobs/${id}/output`);

    assert.equal(out, await localOutput(ii, corpusFiles(), args), 'output differs from tabreduce local');
    // Independently: each word's set of files, from whole files.
    const docs = new Map<string, Set<string>>();
    for (const f of corpusFiles()) {
      for (const m of readFileSync(f, 'utf8').matchAll(/\p{L}+(?:'\p{L}+)*/gu)) {
        const w = m[0].toLowerCase();
        const s = docs.get(w) ?? new Set();
        s.add(basename(f));
        docs.set(w, s);
      }
    }
    const index = parseOutput(out);
    assert.equal(index.size, docs.size);
    for (const [w, s] of docs) {
      const files = [...s].sort();
      assert.equal(index.get(w), `${files.length} ${files.join(',')}`, `index entry of ${w}`);
    }
    const workers = new Set(attempts(await tasksOf(m, id)).map((a) => a.worker));
    assert.deepEqual(workers, new Set(tabs.map((t) => t.id)), 'both tabs took part');
    await context.close();
  });

  it("two jobs at once on the same tabs are both exact, and one job's changed built-ins never reach the other", async () => {
    const m = await master();
    const context = await newContext();
    await openTabs(context, m, 2);
    const wc = join(EXAMPLES, 'word-count.js');
    const polluter = join(TEST_JOBS, 'polluter.js');
    const files = corpusFiles();
    const args = ['--split-size', '128KiB', '--reduces', '2'];
    // Submitted together, their tasks interleave on both tabs.
    const [a, b] = await Promise.all([
      submitJob(m, [polluter, ...files, ...args]),
      submitJob(m, [wc, ...files, ...args]),
    ]);
    assert.equal((await waitJob(m, a)).state, 'succeeded');
    assert.equal((await waitJob(m, b)).state, 'succeeded');
    assert.equal(await apiText(m, `/api/jobs/${a}/output`), await localOutput(polluter, files, args));
    const out = await apiText(m, `/api/jobs/${b}/output`);
    assert.ok(!out.includes('POLLUTED BY ANOTHER JOB'), 'word count ran in a worker the other job had changed');
    assert.equal(out, await localOutput(wc, files, args));
    // They really did share the tabs at the same time.
    const [ta, tb] = await Promise.all([tasksOf(m, a), tasksOf(m, b)]);
    const span = (ts: TaskView[]) => {
      const all = attempts(ts);
      return [Math.min(...all.map((x) => x.startedAt)), Math.max(...all.map((x) => x.endedAt ?? 0))] as const;
    };
    const [sa, sb] = [span(ta), span(tb)];
    assert.ok(Math.min(sa[1], sb[1]) > Math.max(sa[0], sb[0]), 'the two jobs ran at the same time');
    await context.close();
  });

  it('maps run side by side on two tabs, and so do reduces', async () => {
    const m = await master();
    const context = await newContext({ viewport: { width: 1100, height: 900 } });
    const tabs = await openTabs(context, m, 2);
    const job = join(TEST_JOBS, 'timing.js');
    // Two maps and two reduces on two tabs: enough for each phase to run side by side.
    const inputs = corpusFiles().slice(0, 2);
    const args = ['--reduces', '2'];
    const id = await submitJob(m, [job, ...inputs, ...args, '--name', 'Word frequencies']);

    // A visitor's view mid-task, kept for a human to look at.
    const page = tabs[0]!.page;
    await until('the tab to show a running task', async () => (await page.locator('.task.running').count()) > 0);
    await page.screenshot({ path: screenshotPath('volunteer-computing.png'), fullPage: true });
    await page.setViewportSize({ width: 390, height: 844 });
    await page.screenshot({ path: screenshotPath('volunteer-computing-phone.png'), fullPage: true });

    assert.equal((await waitJob(m, id)).state, 'succeeded');
    assert.equal(await apiText(m, `/api/jobs/${id}/output`), await localOutput(job, inputs, args));
    const tasks = await tasksOf(m, id);
    // Each call sleeps 1.5 s in a tab: overlapping by a second means they truly ran at once.
    assert.ok(longestOverlap(tasks, 'map') >= 1000, `maps never overlapped: ${JSON.stringify(tasks)}`);
    assert.ok(longestOverlap(tasks, 'reduce') >= 1000, `reduces never overlapped: ${JSON.stringify(tasks)}`);
    await context.close();
  });
});
