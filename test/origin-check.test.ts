/** The `/ws` origin rule as a pure function: the set-ups an operator meets, each admitted or refused. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isLoopbackName, originRefusal, parseOrigin, type OriginPolicy } from '../server/origin-check.js';

const open: OriginPolicy = { allowed: [], loopbackOnly: false };
const loopback: OriginPolicy = { allowed: [], loopbackOnly: true };
const admitted = (origin: string | undefined, host: string | undefined, policy: OriginPolicy) =>
  originRefusal(origin, host, policy) === null;

test("the master's own pages are admitted however it was reached", () => {
  // --host 127.0.0.1 (the default), reached as 127.0.0.1 or localhost.
  assert.ok(admitted('http://127.0.0.1:8080', '127.0.0.1:8080', loopback));
  assert.ok(admitted('http://localhost:8080', 'localhost:8080', loopback));
  assert.ok(admitted('http://[::1]:8080', '[::1]:8080', loopback));
  // --host 0.0.0.0, reached on a LAN address or a name.
  assert.ok(admitted('http://192.168.1.20:8080', '192.168.1.20:8080', open));
  assert.ok(admitted('http://compute.lan:8080', 'COMPUTE.lan:8080', open));
  // TLS on the default port: the browser leaves :443 out of both; a client may spell it out.
  assert.ok(admitted('https://compute.example.org', 'compute.example.org', open));
  assert.ok(admitted('https://compute.example.org', 'compute.example.org:443', open));
  // A reverse proxy that ends TLS and passes Host on to a plain-HTTP master.
  assert.ok(admitted('https://compute.example.org', 'compute.example.org', open));
  // Not a browser: no Origin at all.
  assert.ok(admitted(undefined, '127.0.0.1:8080', loopback));
  assert.ok(admitted(undefined, undefined, loopback));
});

test('pages elsewhere are refused, with the reason and the way to admit them', () => {
  assert.equal(
    originRefusal('http://evil.example', '127.0.0.1:8080', loopback),
    "origin http://evil.example may not volunteer here: it is not this master's (127.0.0.1:8080); its operator can admit it with tabreduce serve --allow-origin http://evil.example",
  );
  // Same host, another port: another origin (another program on the machine).
  assert.ok(!admitted('http://127.0.0.1:3000', '127.0.0.1:8080', loopback));
  // The page is on localhost but the socket was opened to 127.0.0.1: a page that is not ours.
  assert.ok(!admitted('http://localhost:8080', '127.0.0.1:8080', loopback));
  assert.ok(!admitted('null', '127.0.0.1:8080', loopback), 'a sandboxed frame or a file:// page');
  assert.ok(!admitted('chrome-extension://abc', '127.0.0.1:8080', open));
  assert.ok(!admitted('http://evil.example', undefined, open), 'no Host to be the same as');
  assert.ok(!admitted('http://evil.example', 'bad host', open));
  // DNS rebinding: evil.example now resolves to 127.0.0.1, so Host and Origin agree.
  assert.match(
    originRefusal('http://evil.example:8080', 'evil.example:8080', loopback)!,
    /listens on loopback only, and evil\.example is not a loopback name; .*--allow-origin http:\/\/evil\.example:8080$/,
  );
  // A master on every interface cannot tell its names from a rebinding one: there Host decides.
  assert.ok(admitted('http://evil.example:8080', 'evil.example:8080', open));
});

test('--allow-origin admits exactly the origin given, normalised', () => {
  const policy: OriginPolicy = { allowed: [parseOrigin('HTTPS://Compute.Example.org:443/')], loopbackOnly: true };
  assert.deepEqual(policy.allowed, ['https://compute.example.org']);
  assert.ok(admitted('https://compute.example.org', '127.0.0.1:8080', policy), 'a proxy that rewrites Host');
  assert.ok(!admitted('http://compute.example.org', '127.0.0.1:8080', policy), 'not under another scheme');
  assert.ok(!admitted('https://compute.example.org:8443', '127.0.0.1:8080', policy), 'nor on another port');
  assert.equal(parseOrigin('http://[::1]:9000'), 'http://[::1]:9000');
  for (const bad of ['compute.example.org', 'ftp://x', 'http://x/app', 'http://x/?a=1', 'http://u:p@x', '*', '']) {
    assert.throws(() => parseOrigin(bad), /--allow-origin: .* is not an origin: give scheme, host and port/, bad);
  }
});

test('loopback names', () => {
  for (const h of ['localhost', 'LOCALHOST', '127.0.0.1', '127.1.2.3', '::1', '[::1]']) assert.ok(isLoopbackName(h), h);
  for (const h of ['0.0.0.0', '::', '192.168.1.2', 'localhost.evil.example', '127.0.0.1.evil.example'])
    assert.ok(!isLoopbackName(h), h);
});
