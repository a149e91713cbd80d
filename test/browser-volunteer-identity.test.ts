/**
 * A volunteer as a person sees it, in real Chromium against a real master: its running total
 * survives a reload, the name it chose reaches the status page, `/api/workers` and `tabreduce
 * workers` (cleaned and cut by the master), a tab without one shows a short browser label, and the
 * rules "only while this tab is visible" and "pause on battery" pause and resume the tab.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { EXAMPLES, TEST_JOBS, adminCli, apiGet, corpusFiles, until, type MasterProc } from './helpers/cluster.js';
import { browserSuite, openTab, readState, submitJob, waitConnected, waitJob } from './helpers/browser.js';
import { openRawClient } from './helpers/raw-volunteer.js';
import { PROTOCOL_VERSION } from '../shared/protocol.js';
import { agentLabel, cleanVolunteerName } from '../shared/volunteer-label.js';
import type { WorkerView } from '../shared/api.js';

const { newContext, master } = browserSuite();

const workers = (m: MasterProc) => apiGet<WorkerView[]>(m, '/api/workers');
const worker = async (m: MasterProc, id: string) => (await workers(m)).find((w) => w.id === id);

describe('a volunteer keeps its contribution and its name', () => {
  it("a reload shows the volunteer's running total, not zero", async () => {
    const m = await master();
    const context = await newContext();
    const tab = await openTab(context, m);
    // Over a second of processor time on any machine, so the page's whole seconds are not 0 s: the
    // corpus in about 27 maps that each wait 60 ms in the job's worker.
    const id = await submitJob(m, [
      join(TEST_JOBS, 'slow-word-count.js'),
      ...corpusFiles(),
      '--reduces',
      '2',
      '--split-size',
      '128KiB',
    ]);
    assert.equal((await waitJob(m, id)).state, 'succeeded');
    const done = (await worker(m, tab.id))!.done;
    assert.ok(done >= 3, `the tab ran the job's tasks (${done})`);
    await until('the tab to count every task', async () => (await tab.state()).done === done);
    const bytes = await tab.page.getByTestId('bytes').innerText();
    assert.notEqual(bytes, '0 B');
    const compute = await tab.page.getByTestId('compute').innerText();
    assert.notEqual(compute, '0 s');

    await tab.page.reload();
    assert.equal(await waitConnected(tab.page), tab.id, 'the same volunteer');
    await until('the total back on the page', async () => (await readState(tab.page)).done === done);
    assert.equal(await tab.page.getByTestId('bytes').innerText(), bytes);
    assert.equal(await tab.page.getByTestId('compute').innerText(), compute, 'processor time carried over');

    // Another job adds to the total, not to a count started afresh.
    const second = await submitJob(m, [join(EXAMPLES, 'word-count.js'), corpusFiles()[2]!, '--reduces', '1']);
    assert.equal((await waitJob(m, second)).state, 'succeeded');
    const after = (await worker(m, tab.id))!.done;
    assert.ok(after > done);
    await until('the total to grow', async () => (await readState(tab.page)).done === after);
    await context.close();
  });

  it('a chosen name reaches the status page, /api/workers and `tabreduce workers`, and outlives a reload', async () => {
    const m = await master();
    const context = await newContext();
    await context.addInitScript((token) => localStorage.setItem('tabreduce.adminToken', token), m.token);
    const tab = await openTab(context, m);
    // Without a name: a short label, not the user-agent string.
    const before = (await worker(m, tab.id))!;
    assert.equal(before.name, null);
    assert.equal(before.label, 'Chrome on Linux');
    assert.match(await tab.page.getByTestId('name-hint').innerText(), /shows “Chrome on Linux”/);

    await tab.page.getByTestId('name').fill('  Ada \u202e Lovelace\u200b  ');
    await tab.page.getByTestId('save-name').click();
    await until('the master to have the name', async () => (await worker(m, tab.id))?.name === 'Ada Lovelace');
    assert.match(await tab.page.getByTestId('name-hint').innerText(), /“Ada Lovelace”/);

    const status = await context.newPage();
    await status.goto(`${m.url}/status`);
    const row = status.locator(`tr.worker[data-worker="${tab.id}"]`);
    await row.waitFor();
    assert.equal(await row.locator('td').first().innerText(), 'Ada Lovelace');
    assert.equal(await row.locator('td.agent').innerText(), 'Chrome on Linux');
    // A job's page names it so too: the timeline's row and the volunteers' share of the work.
    const job = await submitJob(m, [join(EXAMPLES, 'word-count.js'), corpusFiles()[0]!, '--reduces', '1']);
    assert.equal((await waitJob(m, job)).state, 'succeeded');
    // The volunteers panel gives its rate over the last minute: tasks and input data a second.
    await until('the rate in the volunteers panel', async () =>
      /\/s · .*B\/s/.test(await row.locator('td.rate').innerText()),
    );
    await status.evaluate(`location.hash = '#/jobs/${job}'`);
    await status.locator('svg.gantt text.worker').first().waitFor();
    assert.equal(await status.locator('svg.gantt text.worker').first().textContent(), 'Ada Lovelace');
    await until(
      'the share table',
      async () => (await status.locator('[data-insight] tr[data-volunteer] td').count()) > 0,
    );
    assert.equal(
      await status.locator(`[data-insight] tr[data-volunteer="${tab.id}"] td`).first().innerText(),
      'Ada Lovelace',
    );

    const cli = await adminCli(m)(['workers']);
    assert.equal(cli.code, 0, cli.stderr);
    assert.match(cli.stdout, new RegExp(`^${tab.id} .* Ada Lovelace · Chrome on Linux$`, 'm'));

    // Kept by the browser and sent again with the next hello.
    await tab.page.reload();
    await waitConnected(tab.page);
    assert.equal(await tab.page.getByTestId('name').inputValue(), 'Ada Lovelace');
    await until('the name after the reload', async () => (await worker(m, tab.id))?.name === 'Ada Lovelace');
    // An empty name drops it.
    await tab.page.getByTestId('name').fill('');
    await tab.page.getByTestId('save-name').click();
    await until('the name gone', async () => (await worker(m, tab.id))?.name === null);
    await context.close();
  });

  it('the master keeps a name short and plain, whatever a volunteer sends', async () => {
    const m = await master();
    const raw = await openRawClient(m.url);
    const sent = `\x1b[31m${'é'.repeat(30)}\n\t${'x'.repeat(120)}\u202e\x00`;
    raw.ws.send(
      JSON.stringify({
        type: 'hello',
        protocol: PROTOCOL_VERSION,
        threads: 1,
        slots: 1,
        paused: false,
        agent: 'test',
        name: sent,
        running: [],
      }),
    );
    const welcome = await raw.next('welcome');
    assert.ok(welcome.type === 'welcome');
    assert.deepEqual(welcome.totals, { done: 0, bytes: 0 });
    const w = (await worker(m, welcome.volunteerId))!;
    assert.equal(w.name, `[31m${'é'.repeat(30)} xxxxx`);
    assert.equal(Array.from(w.name!).length, 40);
    // Too long to be a name at all: refused like any invalid frame.
    const raw2 = await openRawClient(m.url);
    raw2.ws.send(
      JSON.stringify({
        type: 'hello',
        protocol: PROTOCOL_VERSION,
        threads: 1,
        slots: 1,
        paused: false,
        agent: 'test',
        name: 'x'.repeat(201),
        running: [],
      }),
    );
    const error = await raw2.next('error');
    assert.ok(error.type === 'error');
    assert.match(error.message, /name/);
    raw.ws.close();
    raw2.ws.close();
  });

  it('"only while this tab is visible" pauses a hidden tab and resumes it when it is back', async () => {
    const m = await master();
    const context = await newContext();
    const tab = await openTab(context, m);
    const setHidden = (hidden: boolean) =>
      tab.page.evaluate(`{
        Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => ${hidden ? "'hidden'" : "'visible'"} });
        document.dispatchEvent(new Event('visibilitychange'));
      }`);
    // Not chosen: hiding changes nothing.
    await setHidden(true);
    await tab.page.waitForTimeout(300);
    assert.equal((await tab.state()).paused, false);
    await setHidden(false);

    await tab.page.getByTestId('visible-only').check();
    await setHidden(true);
    await until('the master to see the pause', async () => (await worker(m, tab.id))?.state === 'paused');
    assert.equal(await tab.page.getByTestId('activity').innerText(), 'Paused while this tab is hidden');
    assert.match(await tab.page.getByTestId('pause').innerText(), /Pause/, 'the pause button is still the visitor’s');
    await setHidden(false);
    await until('the master to see it resume', async () => (await worker(m, tab.id))?.state === 'connected');

    // Kept for this browser: a new tab has it too.
    const other = await openTab(context, m);
    assert.equal(await other.page.getByTestId('visible-only').isChecked(), true);
    await context.close();
  });

  it('"pause on battery" follows the charger where the browser tells, and is not offered where it does not', async () => {
    const m = await master();
    const context = await newContext();
    // A battery the test controls: window.battery.set(charging).
    await context.addInitScript(`{
      const battery = new EventTarget();
      battery.charging = false;
      battery.set = (charging) => { battery.charging = charging; battery.dispatchEvent(new Event('chargingchange')); };
      window.battery = battery;
      navigator.getBattery = () => Promise.resolve(battery);
    }`);
    const tab = await openTab(context, m);
    const box = tab.page.getByTestId('pause-on-battery');
    await box.check();
    await until('the master to see the pause', async () => (await worker(m, tab.id))?.state === 'paused');
    assert.equal(await tab.page.getByTestId('activity').innerText(), 'Paused on battery');
    await tab.page.evaluate('window.battery.set(true)');
    await until('plugged in: it resumes', async () => (await worker(m, tab.id))?.state === 'connected');
    await tab.page.evaluate('window.battery.set(false)');
    await until('unplugged: it pauses', async () => (await worker(m, tab.id))?.state === 'paused');
    await box.uncheck();
    await until('the rule off: it resumes', async () => (await worker(m, tab.id))?.state === 'connected');

    const bare = await newContext();
    await bare.addInitScript('delete Navigator.prototype.getBattery; delete navigator.getBattery;');
    const plain = await openTab(bare, m);
    assert.equal(await plain.page.getByTestId('visible-only').count(), 1);
    assert.equal(await plain.page.getByTestId('pause-on-battery').count(), 0);
    await bare.close();
    await context.close();
  });
});

describe('volunteer labels and names', () => {
  it('labels a browser and a system in a few words', () => {
    const cases: [string, string][] = [
      [
        'tab Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.0.0 Safari/537.36',
        'Chrome on Linux',
      ],
      ['tab Mozilla/5.0 (Android 14; Mobile; rv:128.0) Gecko/128.0 Firefox/128.0', 'Firefox on Android'],
      [
        'tab Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1',
        'Safari on iOS',
      ],
      [
        'tab Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 Edg/126.0.0.0',
        'Edge on Windows',
      ],
      [
        'tab Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15',
        'Safari on macOS',
      ],
      ['tab SomethingNew/1.0', 'a browser'],
      ['tabreduce-volunteer node/v22.11.0', 'Node 22'],
      ['simulated volunteer 3', 'simulated volunteer 3'],
    ];
    for (const [agent, want] of cases) assert.equal(agentLabel(agent), want, agent);
  });

  it('cleans a name: no unseen characters, one space between words, at most 40 characters', () => {
    assert.equal(cleanVolunteerName('  Grace\n\tHopper  '), 'Grace Hopper');
    assert.equal(cleanVolunteerName('\u202eevil\u2066 \u200bname\x7f'), 'evil name');
    assert.equal(cleanVolunteerName('\x00\x1b'), '');
    assert.equal(cleanVolunteerName('🙂'.repeat(50)), '🙂'.repeat(40), 'whole code points');
  });
});
