/** The protocol parser and output checks, including random and mutated frames (fast-check). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseVolunteerMessage } from '../shared/protocol.js';
import { checkRecord } from '../shared/records.js';

const lease = 'a'.repeat(32);
const valid = [
  { type: 'hello', protocol: 2, threads: 2, slots: 3, paused: false, agent: 'x', running: [] },
  { type: 'heartbeat', running: [lease] },
  { type: 'volunteer.update', threads: 1, slots: 1, paused: true },
  { type: 'task.result', lease, output: '[0,"a",["1"]]\n', stats: { ms: 1, recordsIn: 1, recordsOut: 0 } },
  { type: 'task.result', lease, uploaded: true, stats: { ms: 1, recordsIn: 1, recordsOut: 0 } },
  { type: 'task.fail', lease, reason: 'threw', error: { name: 'Error', message: 'm' } },
];

test('valid messages parse', () => {
  for (const m of valid) assert.equal(parseVolunteerMessage(JSON.stringify(m)).ok, true, m.type);
});

test('invalid messages are refused with a reason', () => {
  const cases: [unknown, RegExp][] = [
    ['{', /not JSON/],
    [{ type: 'nope' }, /type/],
    [{ type: 'heartbeat' }, /running/],
    [{ type: 'task.result', lease: 'short', output: '', stats: { ms: 1, recordsIn: 0, recordsOut: 0 } }, /lease/],
    [{ type: 'task.result', lease, output: [[]], stats: { ms: 1, recordsIn: 0, recordsOut: 0 } }, /output/],
    [{ ...valid[0], protocol: 1 }, /protocol/],
    [{ type: 'task.result', lease, stats: { ms: 1, recordsIn: 0, recordsOut: 0 } }, /either output or uploaded/],
    [
      { type: 'task.result', lease, output: '', uploaded: true, stats: { ms: 1, recordsIn: 0, recordsOut: 0 } },
      /either output or uploaded/,
    ],
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
      checkRecord(x, 3, null);
      checkRecord(x, 3, { part: 1, key: 'k' });
    }),
    { numRuns: 2000 },
  );
});

test('a record is [partition, key, [values]]: partitions in order, keys strictly ascending, string values', () => {
  assert.equal(checkRecord([0, 'a', ['1']], 2, null), null);
  assert.equal(checkRecord([1, 'a', ['1', '2']], 2, { part: 0, key: 'b' }), null);
  assert.match(checkRecord([2, 'a', ['1']], 2, null)!, /from 0 to 1/);
  assert.match(checkRecord([0, 'a', ['1']], 2, { part: 1, key: 'a' })!, /partition order/);
  assert.match(checkRecord([0, 'a', ['1']], 1, { part: 0, key: 'b' })!, /ascending/);
  assert.match(checkRecord([0, 'a', ['1']], 1, { part: 0, key: 'a' })!, /ascending/);
  assert.match(checkRecord([0, 'a', [1]], 1, null)!, /strings/);
  assert.match(checkRecord([0, 'a', []], 1, null)!, /without values/);
  assert.match(checkRecord([0.5, 'a', ['1']], 1, null)!, /whole number/);
  assert.match(checkRecord({ 0: 0 }, 1, null)!, /\[partition, key, \[values\]\]/);
});
