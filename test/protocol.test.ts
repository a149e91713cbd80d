/** The protocol parser and output checks, including random and mutated frames (fast-check). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseVolunteerMessage, checkMapOutput, checkReduceOutput, PROTOCOL_VERSION } from '../shared/protocol.js';

const lease = 'a'.repeat(32);
const stats = { ms: 1, recordsIn: 1, recordsOut: 0 };
const valid = [
  { type: 'hello', protocol: PROTOCOL_VERSION, threads: 2, slots: 3, paused: false, agent: 'x', running: [] },
  { type: 'heartbeat', running: [lease] },
  { type: 'volunteer.update', threads: 1, slots: 1, paused: true },
  { type: 'task.result', lease, output: '[0,"a",["1"]]\n', stats },
  { type: 'task.fail', lease, reason: 'threw', error: { name: 'Error', message: 'm' } },
  { type: 'task.result', lease, uploaded: true, stats },
];

test('valid messages parse', () => {
  for (const m of valid) assert.equal(parseVolunteerMessage(JSON.stringify(m)).ok, true, m.type);
});

test('invalid messages are refused with a reason', () => {
  const cases: [unknown, RegExp][] = [
    ['{', /not JSON/],
    [{ type: 'nope' }, /type/],
    [{ type: 'heartbeat' }, /running/],
    [{ type: 'task.result', lease: 'short', output: '', stats }, /lease/],
    [{ ...valid[0], protocol: 1 }, /protocol/],
    [{ type: 'task.result', lease, output: [[]], stats }, /output/],
    [{ type: 'task.result', lease, output: '', uploaded: true, stats }, /either output or uploaded/],
    [{ type: 'task.result', lease, stats }, /either output or uploaded/],
    [{ type: 'task.result', lease, uploaded: false, stats }, /uploaded/],
    [{ ...valid[0], threads: 0 }, /threads/],
    [{ ...valid[0], extra: 1 }, /extra|Unrecognized/i],
    [{ ...valid[4], reason: 'bored' }, /reason/],
  ];
  for (const [m, why] of cases) {
    const r = parseVolunteerMessage(typeof m === 'string' ? m : JSON.stringify(m));
    assert.equal(r.ok, false);
    if (!r.ok) assert.match(r.error, why);
  }
});

test('the parser never throws on arbitrary or mutated input', () => {
  fc.assert(
    fc.property(fc.string(), (s) => {
      parseVolunteerMessage(s);
    }),
    { numRuns: 2000 },
  );
  fc.assert(
    fc.property(fc.constantFrom(...valid), fc.jsonValue(), fc.string(), (m, junk, key) => {
      const mutated: Record<string, unknown> = { ...m, [key]: junk };
      const r = parseVolunteerMessage(JSON.stringify(mutated));
      if (r.ok) assert.ok(key in m || key === '__proto__', `accepted an unknown field ${key}`);
    }),
    { numRuns: 2000 },
  );
  fc.assert(
    fc.property(fc.anything(), (x) => {
      let text: string;
      try {
        text = JSON.stringify(x) ?? 'null';
      } catch {
        return;
      }
      parseVolunteerMessage(text);
      checkMapOutput(x, 3);
      checkReduceOutput(x);
    }),
    { numRuns: 2000 },
  );
});

test('map output must have one partition per reduce, strictly ascending unique keys, string values', () => {
  assert.equal(
    checkMapOutput(
      [
        [
          ['a', ['1']],
          ['b', ['2', '3']],
        ],
        [],
      ],
      2,
    ),
    null,
  );
  assert.match(checkMapOutput([[]], 2)!, /2 partitions/);
  assert.match(
    checkMapOutput(
      [
        [
          ['b', ['1']],
          ['a', ['1']],
        ],
      ],
      1,
    )!,
    /ascending/,
  );
  assert.match(
    checkMapOutput(
      [
        [
          ['a', ['1']],
          ['a', ['1']],
        ],
      ],
      1,
    )!,
    /ascending/,
  );
  assert.match(checkMapOutput([[['a', [1]]]], 1)!, /strings/);
  assert.match(checkMapOutput([[['a', []]]], 1)!, /without values/);
  assert.equal(checkReduceOutput('a\t1\n'), null);
  assert.match(checkReduceOutput('a\t1')!, /newline/);
  assert.match(checkReduceOutput(5)!, /string/);
});
