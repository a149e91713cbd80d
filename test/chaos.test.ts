/**
 * Soak: a mixed stream of jobs (word count, inverted index, a job that throws now and then, one that
 * always throws) runs in the default `--verify adaptive` on browser tabs and Node volunteers, beside
 * two liars on addresses of their own (one lies always, one once it is trusted), while a chaos
 * driver closes and reopens tabs, SIGKILLs volunteers, and SIGKILLs and restarts the master mid-map,
 * near the barrier, mid-reduce and during bursts of commits. Every job ends as it should, with
 * output identical to `tabreduce local`; the liars' results are rejected and none of their lies is
 * committed; the data directory passes an integrity check.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { Browser, BrowserContext } from 'playwright-core';
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
  until,
  type MasterProc,
  type VolunteerProc,
} from './helpers/cluster.js';
import { launchBrowser, openTab, type Tab } from './helpers/browser.js';
import { startScriptedVolunteer, type ScriptedVolunteer } from './helpers/scripted-volunteer.js';
import type { JobView, TaskView, WorkerView } from '../shared/api.js';

after(removeTempDirs);

interface Spec {
  module: string;
  files: string[];
  args: string[];
  /** Flags for submit only (local has no retries or timeouts). */
  submitArgs?: string[];
  /** The module whose local output is the reference, when not `module` itself. */
  reference?: string;
  /** A pattern the job's error must match, for jobs that must fail. */
  fails?: RegExp;
}

const corpus = corpusFiles();
const SPECS: Spec[] = [
  {
    module: join(TEST_JOBS, 'slow-word-count.js'),
    files: corpus.slice(0, 4),
    // More reduces than volunteers: the reduce phase runs in rounds, so a kill can land between them.
    args: ['--reduces', '12', '--split-size', '48KiB'],
  },
  { module: join(EXAMPLES, 'inverted-index.js'), files: corpus, args: ['--reduces', '4', '--split-size', '96KiB'] },
  {
    module: join(TEST_JOBS, 'flaky.js'),
    reference: join(EXAMPLES, 'word-count.js'),
    files: corpus.slice(2, 6),
    args: ['--reduces', '3', '--split-size', '64KiB'],
    submitArgs: ['--max-attempts', '8'],
  },
  {
    module: join(TEST_JOBS, 'throws.js'),
    files: corpus.slice(0, 1),
    args: [],
    submitArgs: ['--max-attempts', '3'],
    fails: /map task 0 \(input "pg-being_ernest\.txt"\) failed 3 times: RangeError: cannot parse record/,
  },
  // Many small maps: bursts of commits.
  {
    module: join(EXAMPLES, 'word-count.js'),
    files: corpus.slice(0, 2),
    args: ['--reduces', '7', '--split-size', '24KiB'],
  },
];

/**
 * Verification's defaults but two: trust after 3 agreeing results (the soak is short), and every
 * result of a trusted volunteer checked. Below 1, a lie taken alone in a job that ends before a spot
 * check catches its author stands (README "Verification"), and this soak asserts exact outputs.
 */
const MASTER_ARGS = ['--reassign-after', '3s', '--heartbeat', '1s', '--trust-after', '3', '--spot-check', '1'];

test('soak: jobs stay exact while tabs close, volunteers die and the master is SIGKILLed again and again', async () => {
  const expected = Promise.all(
    SPECS.map((s) => (s.fails ? Promise.resolve('') : localOutput(s.reference ?? s.module, s.files, s.args))),
  );
  let m: MasterProc = await startMaster({ args: MASTER_ARGS });
  const { data, port, token } = m;
  const logs: string[] = [];
  let browser: Browser | null = null;
  const nodes: VolunteerProc[] = [];
  const tabs: Tab[] = [];
  // The liars, each on an address of its own and lying its own way (7 and 5 times every count), so
  // that no two of them ever agree: honest volunteers outnumber them on every task's votes.
  const liars: ScriptedVolunteer[] = [];
  let turned = false;
  const counts = { tabsClosed: 0, volunteersKilled: 0, masterKills: [] as string[] };
  const workers = async () => {
    try {
      return await apiGet<WorkerView[]>(m, '/api/workers');
    } catch {
      return [];
    }
  };
  // Alone, a liar's result would commit unconfirmed: the liars join (and come back after a restart)
  // once two honest volunteers are there.
  const honestThere = async () => {
    const ids = liars.map((l) => l.id());
    const honest = (await workers()).filter((w) => w.state === 'connected' && !ids.includes(w.id));
    return honest.length >= 2;
  };
  try {
    browser = await launchBrowser();
    const context: BrowserContext = await browser.newContext();
    tabs.push(await openTab(context, m), await openTab(context, m));
    nodes.push(startVolunteer(m.url, 1), startVolunteer(m.url, 1));
    await until('honest volunteers', honestThere);
    liars.push(
      await startScriptedVolunteer(m.url, { address: '127.0.0.2', lies: () => true }),
      await startScriptedVolunteer(m.url, { address: '127.0.0.3', lies: () => turned, factor: 5 }),
    );
    const [liar, turncoat] = liars as [ScriptedVolunteer, ScriptedVolunteer];
    await until('the liars to be welcomed', () => liar.id() && turncoat.id());
    const recordOf = async (v: ScriptedVolunteer) => (await workers()).find((w) => w.id === v.id())?.trust;

    const ids: string[] = [];
    const submit = async (spec: Spec) => {
      // The master may be down at this moment: try again until it takes the job.
      for (let i = 0; i < 100; i++) {
        const r = await adminCli(m)(['submit', spec.module, ...spec.files, ...spec.args, ...(spec.submitArgs ?? [])]);
        if (r.code === 0) return r.stdout.split('\n')[0]!.trim();
        await sleep(300);
      }
      throw new Error(`could not submit ${spec.module}`);
    };
    // Half the jobs up front, the rest while the chaos runs.
    for (const spec of SPECS.slice(0, 3)) ids.push(await submit(spec));

    const restartMaster = async (why: string) => {
      logs.push(m.output());
      await m.kill();
      counts.masterKills.push(why);
      await sleep(300 + Math.random() * 700);
      m = await startMaster({ data, port, args: MASTER_ARGS });
      await until('honest volunteers back', honestThere);
      for (const l of liars) await l.reconnect();
    };
    const jobs = async () => {
      try {
        return await apiGet<JobView[]>(m, '/api/jobs');
      } catch {
        return [];
      }
    };

    const kills = new Set<string>();
    let finished = false;
    let lastKill = 0;
    // Extra runs of the slow word count, submitted when the jobs end before every kind of kill
    // has happened (a fast run can finish its reduces between two kills).
    const SLOW = SPECS.findIndex((sp) => sp.module.endsWith('slow-word-count.js'));
    const extra: string[] = [];
    const KINDS = ['mid-map', 'barrier', 'mid-reduce', 'commits'];
    const done = (list: JobView[]) => {
      const all = [...ids, ...extra];
      const ours = list.filter((j) => all.includes(j.id));
      return (
        ids.length === SPECS.length &&
        ours.length === all.length &&
        ours.every((j) => ['succeeded', 'failed', 'cancelled'].includes(j.state))
      );
    };
    // The killer: watches job phases closely and kills the master once at each interesting moment,
    // leaving a few seconds between kills so the jobs make progress.
    const killer = (async () => {
      while (!finished) {
        await sleep(100);
        if (Date.now() - lastKill < 4_000) continue;
        // The extra runs count too: they are there to give the killer the moments it missed.
        const ours = (await jobs()).filter((j) => ids.includes(j.id) || extra.includes(j.id));
        const mapping = ours.find((j) => j.state === 'mapping' && j.maps.done > 0 && j.maps.done < j.maps.total - 3);
        const barrier = ours.find(
          (j) =>
            (j.state === 'mapping' && j.maps.done >= j.maps.total - 3) ||
            (j.state === 'reducing' && j.reduces.done === 0),
        );
        const reducing = ours.find((j) => j.state === 'reducing' && j.reduces.done >= 1);
        let why: string | null = null;
        if (mapping && !kills.has('mid-map')) why = 'mid-map';
        else if (barrier && !kills.has('barrier')) why = 'barrier';
        else if (reducing && !kills.has('mid-reduce')) why = 'mid-reduce';
        else if ((mapping ?? reducing) && !kills.has('commits')) why = 'commits';
        if (!why) continue;
        const j = (why === 'mid-map' ? mapping : why === 'barrier' ? barrier : (reducing ?? mapping))!;
        kills.add(why);
        await restartMaster(
          `${why} (${j.name}: maps ${j.maps.done}/${j.maps.total}, reduces ${j.reduces.done}/${j.reduces.total})`,
        );
        lastKill = Date.now();
      }
    })();

    const deadline = Date.now() + 300_000;
    try {
      for (let step = 0; ; step++) {
        if (Date.now() > deadline) throw new Error(`jobs stuck: ${JSON.stringify(await jobs())}`);
        // The turncoat lies once its results are accepted alone (here: checked all the same).
        if (!turned && (await recordOf(turncoat))?.trusted) turned = true;
        if (done(await jobs())) {
          const caught = ((await recordOf(turncoat))?.rejected ?? 0) > 0;
          if ((KINDS.every((k) => kills.has(k)) && caught) || extra.length >= 6) break;
          extra.push(await submit(SPECS[SLOW]!));
        }
        if (step % 3 === 1 && ids.length < SPECS.length) ids.push(await submit(SPECS[ids.length]!));
        // Tabs and volunteers come and go.
        if (step % 2 === 0 && tabs.length > 0) {
          const i = Math.floor(Math.random() * tabs.length);
          await tabs.splice(i, 1)[0]!.close();
          counts.tabsClosed++;
        }
        if (tabs.length < 2) {
          try {
            tabs.push(await openTab(context, m));
          } catch {
            // The master may be restarting: the next step opens one.
          }
        }
        if (step % 3 === 2) {
          const i = Math.floor(Math.random() * nodes.length);
          await nodes.splice(i, 1)[0]!.kill('SIGKILL');
          counts.volunteersKilled++;
          nodes.push(startVolunteer(m.url, 1));
        }
        await sleep(1_500);
      }
    } finally {
      finished = true;
      await killer;
    }

    const want = await expected;
    const runs: [Spec, string, string][] = [
      ...SPECS.map((spec, i): [Spec, string, string] => [spec, ids[i]!, want[i]!]),
      ...extra.map((id): [Spec, string, string] => [SPECS[SLOW]!, id, want[SLOW]!]),
    ];
    for (const [spec, id, wanted] of runs) {
      const job = await apiGet<JobView>(m, `/api/jobs/${id}`);
      if (spec.fails) {
        assert.equal(job.state, 'failed', `${spec.module} should fail`);
        assert.match(job.error ?? '', spec.fails);
        continue;
      }
      assert.equal(job.state, 'succeeded', `${spec.module}: ${job.error}`);
      assert.equal(job.verify, 'adaptive');
      const out = await adminCli(m)(['result', id]);
      assert.equal(out.stdout, wanted, `${spec.module} output equals local`);
      const tasks = await apiGet<TaskView[]>(m, `/api/jobs/${id}/tasks`);
      // Committed once (in the default mode, the committed result and those that agreed with it; a
      // voter alone on the master after a restart may run its task again rather than stall it), and
      // the job counts each task once by how it was confirmed.
      for (const t of tasks) {
        const won = t.attempts.filter((a) => a.outcome === 'succeeded');
        assert.ok(won.length >= 1, `${t.phase} ${t.index} committed`);
      }
      const v = job.verification;
      assert.equal(v.verified + v.spotChecked + v.trusted + v.unconfirmed, tasks.length, 'each task committed once');
    }
    assert.ok(
      KINDS.every((k) => kills.has(k)),
      `kills: ${counts.masterKills.join('; ')} (after ${extra.length} extra jobs)`,
    );
    logs.push(m.output());
    for (const log of logs) assert.ok(!log.includes(token), 'the admin token never appears in the master log');
  } finally {
    for (const n of nodes) await n.kill();
    for (const l of liars) await l.close();
    await browser?.close();
    await m.kill();
  }
  const db = new Database(join(data, 'tabreduce.db'), { readonly: true });
  assert.equal(db.pragma('integrity_check', { simple: true }), 'ok');
  // Every liar lost votes, none of its lies was committed, and no honest result was ever rejected.
  const outcomes = db.prepare('SELECT outcome, count(*) AS n FROM attempt WHERE volunteer_id = ? GROUP BY outcome');
  const committedLies = db
    .prepare(`SELECT count(*) FROM attempt WHERE outcome = 'succeeded' AND lease IN (SELECT value FROM json_each(?))`)
    .pluck();
  const byOutcome = (id: string) =>
    Object.fromEntries((outcomes.all(id) as { outcome: string; n: number }[]).map((r) => [r.outcome, r.n]));
  const [liar, turncoat] = liars as [ScriptedVolunteer, ScriptedVolunteer];
  for (const l of liars) {
    const mine = byOutcome(l.id()!);
    assert.ok(l.lied().length > 0, 'it lied');
    assert.ok((mine['rejected'] ?? 0) > 0, `its results were rejected: ${JSON.stringify(mine)}`);
    assert.equal(committedLies.get(JSON.stringify(l.lied())), 0, 'none of its lies was committed');
  }
  assert.equal(byOutcome(liar.id()!)['succeeded'] ?? 0, 0, 'nothing of the liar stands');
  // The turncoat lied only once trusted, and a spot check caught it.
  const record = db.prepare('SELECT agreed, rejected FROM trust WHERE volunteer_id = ?').get(turncoat.id()) as {
    agreed: number;
    rejected: number;
  };
  assert.ok(turned && record.agreed >= 3 && record.rejected > 0, JSON.stringify(record));
  const honestRejected = db
    .prepare(`SELECT count(*) FROM attempt WHERE outcome = 'rejected' AND volunteer_id NOT IN (?, ?)`)
    .pluck()
    .get(liar.id(), turncoat.id());
  assert.equal(honestRejected, 0, 'no honest result was rejected');
  db.close();
  console.log(
    `chaos: master killed ${counts.masterKills.length} times (${counts.masterKills.join('; ')}), ` +
      `${counts.tabsClosed} tabs closed, ${counts.volunteersKilled} volunteers killed; ` +
      `${liar.lied().length} + ${turncoat.lied().length} lies, rejected`,
  );
});
