/** The volunteer page's pure logic (settings from the address, the words it shows), without a browser. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { defaultThreads, readSettings, threadsUrl } from '../client/volunteer/settings.js';
import { describe as describeTab, taskLines } from '../client/volunteer/view.js';
import { formatBytes, formatSeconds } from '../client/volunteer/format.js';
import { initialSnapshot, type TabSnapshot } from '../client/volunteer/wire.js';

function snapshot(over: Partial<TabSnapshot> = {}): TabSnapshot {
  return { ...initialSnapshot(), state: 'connected', volunteerId: 'v1', ...over };
}

const task = (lease: string, status: 'fetching' | 'running' | 'reporting' = 'running') => ({
  lease,
  jobId: 'j',
  jobName: 'Word count',
  phase: 'map' as const,
  index: 0,
  label: 'book.txt',
  bytes: 2_500_000,
  status,
  startedAt: 1_000,
});

describe('volunteer page settings', () => {
  it('defaults to half the cores, at least one thread', () => {
    assert.deepEqual([1, 2, 3, 4, 16].map(defaultThreads), [1, 1, 1, 2, 8]);
    assert.equal(readSettings('', 8, null).threads, 4);
    assert.equal(readSettings('', undefined, null).threads, 1);
  });

  it('takes ?threads=N when it is a whole number, clamped to 1..256', () => {
    assert.equal(readSettings('?threads=3', 2, null).threads, 3);
    assert.equal(readSettings('?threads=0', 8, null).threads, 1);
    assert.equal(readSettings('?threads=9999', 8, null).threads, 256);
    assert.equal(readSettings('?threads=two', 8, null).threads, 4);
    assert.equal(readSettings('?threads=-2', 8, null).threads, 4);
    assert.equal(readSettings('?threads=1.5', 8, null).threads, 4);
  });

  it('holds one task beyond its threads unless asked otherwise', () => {
    assert.equal(readSettings('', 8, null).prefetch, 1);
    assert.equal(readSettings('?prefetch=0', 8, null).prefetch, 0);
    assert.equal(readSettings('?prefetch=2', 8, null).prefetch, 2);
  });

  it('keeps the threads choice in the address, leaving the rest alone', () => {
    assert.equal(threadsUrl('http://h:1/?threads=1&x=y#top', 3), 'http://h:1/?threads=3&x=y#top');
    assert.equal(threadsUrl('http://h:1/', 2), 'http://h:1/?threads=2');
  });
});

describe('volunteer page words', () => {
  it('says what the tab is doing in each state', () => {
    assert.equal(describeTab(snapshot({ state: 'connecting' }), null, null).connection, 'Connecting…');
    const re = describeTab(snapshot({ state: 'reconnecting', retryInMs: 3000 }), null, 3);
    assert.equal(re.connection, 'Reconnecting in 3 s');
    assert.match(re.detail, /Trying again in 3 s/);
    assert.equal(describeTab(snapshot(), null, null).title, 'Ready for work');
    assert.equal(describeTab(snapshot({ tasks: [task('a')] }), null, null).title, 'Your tab is computing');
    assert.equal(describeTab(snapshot({ paused: true }), null, null).title, 'Paused');
    assert.equal(describeTab(snapshot({ paused: true, tasks: [task('a')] }), null, null).title, 'Pausing…');
    const fatal = describeTab(snapshot(), 'no workers here', null);
    assert.equal(fatal.tone, 'error');
    assert.equal(fatal.detail, 'no workers here');
  });

  it('tells running tasks from waiting, fetching and reporting ones', () => {
    const s = snapshot({
      tasks: [task('a'), task('b'), task('c', 'reporting'), task('d', 'fetching')],
      computing: ['a'],
    });
    const lines = taskLines(s, 4_200);
    assert.deepEqual(
      lines.map((l) => [l.status, l.statusText]),
      [
        ['running', 'Working · 3 s'],
        ['waiting', 'Waiting for a free thread'],
        ['reporting', 'Sending the result'],
        ['fetching', 'Getting the data'],
      ],
    );
    assert.equal(lines[0]!.size, '2.5 MB');
    assert.equal(lines[0]!.step, 'Step 1 · map');
  });

  it('formats sizes and durations for people', () => {
    assert.deepEqual([999, 1000, 15_300, 2_500_000, 3e9].map(formatBytes), [
      '999 B',
      '1.0 kB',
      '15 kB',
      '2.5 MB',
      '3.0 GB',
    ]);
    assert.deepEqual([0, 1499, 61_000, 3_720_000].map(formatSeconds), ['0 s', '1 s', '1 min 1 s', '1 h 2 min']);
  });
});
