/** An error as the CLI, the master and the status page print it. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { describeError } from '../shared/errors.js';

test('describeError shows "Name: message" once, then the stack, whichever engine wrote the stack', () => {
  const err = new TypeError('no maps about Rapunzel');
  const described = describeError(err);
  assert.match(described, /^TypeError: no maps about Rapunzel\n\s+at /);
  assert.equal(described.split('\n').filter((l) => l.includes('Rapunzel')).length, 1);
  // Firefox and Safari stacks have no first line of their own.
  assert.equal(
    describeError({ name: 'RangeError', message: 'bad record', stack: 'map@job.js:3:9\n@job.js:1:1' }),
    'RangeError: bad record\nmap@job.js:3:9\n@job.js:1:1',
  );
  assert.equal(describeError({ name: 'Error', message: 'lost' }), 'Error: lost');
  assert.equal(describeError({ name: 'Error', message: 'lost', stack: 'Error: lost' }), 'Error: lost');
});
