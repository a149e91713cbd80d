import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { jobInsight, SHOW_STRAGGLERS } from '../client/status/job-insight.js';
import { tidyStack } from '../client/status/format.js';
import { activity, cellOf } from '../client/status/activity-model.js';
import type { AttemptView, TaskView } from '../shared/api.js';

function attempt(
  worker: string,
  startedAt: number,
  endedAt: number | null,
  outcome: AttemptView['outcome'],
): AttemptView {
  return { worker, startedAt, endedAt, outcome, error: null, backup: false };
}

function task(id: number, phase: 'map' | 'reduce', index: number, attempts: AttemptView[]): TaskView {
  const state = attempts.some((a) => a.outcome === 'succeeded')
    ? 'succeeded'
    : attempts.some((a) => a.outcome === 'running')
      ? 'running'
      : 'pending';
  return { id, phase, index, state, input: null, attempts };
}

describe('job insight (the job page: phases, durations, stragglers, volunteers)', () => {
  it('phases: start, end at the last commit, nearest-rank min / median / p90 / max, and the barrier', () => {
    // Ten maps of 100..1000 ms, all on v1, starting at 1000; two reduces on v2.
    const tasks = Array.from({ length: 10 }, (_, i) =>
      task(i + 1, 'map', i, [attempt('v1', 1_000, 1_000 + (i + 1) * 100, 'succeeded')]),
    );
    tasks.push(task(11, 'reduce', 0, [attempt('v2', 2_500, 2_700, 'succeeded')]));
    tasks.push(task(12, 'reduce', 1, [attempt('v2', 2_600, null, 'running')]));
    const r = jobInsight(tasks, 3_000);
    const [maps, reduces] = r.phases;
    assert.deepEqual(maps, {
      phase: 'map',
      committed: 10,
      tasks: 10,
      startedAt: 1_000,
      endedAt: 2_000,
      durations: { min: 100, p50: 500, p90: 900, max: 1_000 },
    });
    assert.equal(reduces!.committed, 1);
    assert.equal(reduces!.endedAt, null, 'a phase has not ended while a task of it runs');
    assert.deepEqual(reduces!.durations, { min: 200, p50: 200, p90: 200, max: 200 });
    assert.equal(r.barrierMs, 500);
  });

  it('stragglers: over twice the median and 500 ms more, running ones counted to now, slowest first', () => {
    const tasks = Array.from({ length: 20 }, (_, i) => task(i + 1, 'map', i, [attempt('v1', 0, 1_000, 'succeeded')]));
    tasks.push(task(21, 'map', 20, [attempt('v2', 0, 2_400, 'succeeded')])); // 2.4 s: over 2 s and 1.5 s
    tasks.push(task(22, 'map', 21, [attempt('v3', 0, 1_900, 'succeeded')])); // 1.9 s: under 2 × median
    tasks.push(task(23, 'map', 22, [attempt('v3', 0, null, 'running')])); // 5 s so far
    tasks.push(task(24, 'map', 23, [attempt('v3', 0, 9_000, 'failed'), attempt('v1', 9_000, 10_000, 'succeeded')]));
    const r = jobInsight(tasks, 5_000);
    assert.deepEqual(
      r.stragglers.map((s) => [s.index, s.worker, s.ms, s.running]),
      [
        [22, 'v3', 5_000, true],
        [20, 'v2', 2_400, false],
      ],
      'a failed attempt is not a straggler, however long it ran',
    );
    assert.equal(r.stragglerCount, 2);
  });

  it('names at most a few stragglers but counts them all', () => {
    const tasks = Array.from({ length: 30 }, (_, i) => task(i + 1, 'map', i, [attempt('v1', 0, 100, 'succeeded')]));
    for (let i = 0; i < 8; i++) tasks.push(task(100 + i, 'map', 30 + i, [attempt('v2', 0, 5_000 + i, 'succeeded')]));
    const r = jobInsight(tasks, 10_000);
    assert.equal(r.stragglers.length, SHOW_STRAGGLERS);
    assert.equal(r.stragglerCount, 8);
    assert.equal(r.stragglers[0]!.ms, 5_007);
  });

  it("volunteers: committed and other attempts, busy time, and a rate over each one's own span", () => {
    const tasks = [
      task(1, 'map', 0, [attempt('a', 0, 1_000, 'succeeded')]),
      task(2, 'map', 1, [attempt('a', 1_000, 2_000, 'succeeded')]),
      task(3, 'map', 2, [attempt('b', 0, 4_000, 'lost'), attempt('a', 4_000, 4_000, 'succeeded')]),
      task(4, 'map', 3, [attempt('b', 4_000, null, 'running')]),
    ];
    const r = jobInsight(tasks, 6_000);
    assert.deepEqual(r.volunteers, [
      { worker: 'a', committed: 3, other: 0, busyMs: 2_000, perSecond: 0.75 },
      { worker: 'b', committed: 0, other: 1, busyMs: 6_000, perSecond: 0 },
    ]);
  });

  it('an empty job, and one not started, have no durations and no barrier', () => {
    assert.deepEqual(
      jobInsight([], 0).phases.map((p) => p.durations),
      [null, null],
    );
    const r = jobInsight([task(1, 'map', 0, []), task(2, 'reduce', 0, [])], 0);
    assert.deepEqual(
      r.phases.map((p) => [p.startedAt, p.endedAt]),
      [
        [null, null],
        [null, null],
      ],
    );
    assert.equal(r.barrierMs, null);
  });
});

describe("stacks on the status page: the job's frames first", () => {
  it("folds each run of tabreduce's own frames into one line", () => {
    const stack = [
      'RangeError: cannot parse record in a.txt',
      '    at Module.map (http://127.0.0.1:1/jobs/abc/module.js:3:9)',
      '    at B (http://127.0.0.1:1/assets/worker-BI28vgYt.js:6:5200)',
      '    at K (http://127.0.0.1:1/assets/worker-BI28vgYt.js:7:297)',
      '    at Object.run (http://127.0.0.1:1/assets/worker-BI28vgYt.js:9:84)',
    ].join('\n');
    assert.equal(
      tidyStack(stack),
      [
        'RangeError: cannot parse record in a.txt',
        '    at Module.map (http://127.0.0.1:1/jobs/abc/module.js:3:9)',
        "    at … (3 frames of tabreduce's own code)",
      ].join('\n'),
    );
    const node =
      'E: x\n    at map (job-module.js:2:1)\n    at runMap (tabreduce:engine.js:276:22)\n    at helper (job-module.js:9:3)';
    assert.equal(
      tidyStack(node.replace('job-module.js:2', 'data:text/javascript;base64,QUJD:2')),
      "E: x\n    at map (job-module.js:2:1)\n    at … (1 frame of tabreduce's own code)\n    at helper (job-module.js:9:3)",
    );
  });

  it('keeps a stack with none of the job frames whole: the fault is then ours to read', () => {
    const ours =
      'TypeError: x is undefined\n    at V (http://h/assets/worker-1.js:1:2)\n    at U (http://h/assets/worker-1.js:1:9)';
    assert.equal(tidyStack(ours), ours);
  });
});

describe('whole-job activity: attempt time per volunteer and slice', () => {
  it('spreads each attempt over the slices it spans, by outcome, and colours a cell by its largest', () => {
    const tasks = [
      task(1, 'map', 0, [attempt('a', 0, 1_500, 'succeeded')]),
      task(2, 'map', 1, [attempt('a', 1_500, 2_000, 'failed'), attempt('b', 2_000, null, 'running')]),
    ];
    const r = activity(tasks, 0, 4_000, 3_000, 4, 10);
    assert.equal(r.attempts, 3);
    assert.equal(r.sliceMs, 1_000);
    const [a, b] = r.rows;
    assert.equal(a!.worker, 'a', 'the busiest volunteer first');
    assert.equal(a!.busyMs, 2_000);
    assert.deepEqual(cellOf(a!, 0), { outcome: 'succeeded', ms: 1_000 });
    assert.deepEqual(
      cellOf(a!, 1),
      { outcome: 'failed', ms: 1_000 },
      '500 ms succeeded, 500 ms failed: a tie shows the failure',
    );
    assert.equal(cellOf(a!, 2), null);
    assert.equal(b!.busyMs, 1_000, 'a running attempt runs to now');
    assert.deepEqual(cellOf(b!, 2), { outcome: 'running', ms: 1_000 });
    assert.equal(cellOf(b!, 3), null);
  });

  it('past the row limit, the least busy volunteers share one row that sums them', () => {
    const tasks = Array.from({ length: 6 }, (_, i) =>
      task(i + 1, 'map', i, [attempt(`v${i}`, 0, (i + 1) * 100, 'succeeded')]),
    );
    const r = activity(tasks, 0, 1_000, 1_000, 2, 3);
    assert.deepEqual(
      r.rows.map((x) => [x.worker, x.volunteers, x.busyMs]),
      [
        ['v5', 1, 600],
        ['v4', 1, 500],
        [null, 4, 1_000],
      ],
    );
  });
});
