/** --tls-cert/--tls-key: the API over HTTPS and volunteers over WSS, with a throwaway certificate. */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generate } from 'selfsigned';
import { WebSocket } from 'ws';
import {
  cli,
  corpusFiles,
  EXAMPLES,
  localOutput,
  removeTempDirs,
  startMaster,
  startVolunteer,
  tempDir,
} from './helpers/cluster.js';

after(removeTempDirs);

test('a master with --tls-cert/--tls-key serves HTTPS and WSS to its own pages; a job runs end to end over TLS', async () => {
  const dir = tempDir();
  const pems = await generate([{ name: 'commonName', value: '127.0.0.1' }], {
    keyType: 'ec',
    algorithm: 'sha256',
    extensions: [{ name: 'subjectAltName', altNames: [{ type: 7, ip: '127.0.0.1' }] }],
  });
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  writeFileSync(cert, pems.cert);
  writeFileSync(key, pems.private);
  const m = await startMaster({ args: ['--tls-cert', cert, '--tls-key', key] });
  // Node trusts the throwaway certificate through NODE_EXTRA_CA_CERTS, as an operator's CA would be.
  const env = { NODE_EXTRA_CA_CERTS: cert };
  const v = startVolunteer(m.url, 1, [], env);
  try {
    assert.match(m.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    const files = corpusFiles().slice(0, 2);
    const r = await cli(
      ['submit', join(EXAMPLES, 'word-count.js'), ...files, '--reduces', '2', '--wait', '--server', m.url],
      {
        env: { ...env, TABREDUCE_TOKEN: m.token },
      },
    );
    assert.equal(r.code, 0, r.stderr + v.output());
    const out = await cli(['result', r.stdout.split('\n')[0]!, '--server', m.url], {
      env: { ...env, TABREDUCE_TOKEN: m.token },
    });
    assert.equal(out.stdout, await localOutput(join(EXAMPLES, 'word-count.js'), files, ['--reduces', '2']));
    // A page of this master (Origin https://127.0.0.1:PORT, as the browser loaded it) may open
    // the volunteer socket over WSS; a page elsewhere may not.
    const upgrade = (origin: string) =>
      new Promise<number>((ok, fail) => {
        const ws = new WebSocket(`${m.url.replace(/^https/, 'wss')}/ws`, { ca: pems.cert, headers: { origin } });
        ws.once('open', () => {
          ws.close();
          ok(101);
        });
        ws.once('unexpected-response', (_req, res) => ok(res.statusCode ?? 0));
        ws.once('error', fail);
      });
    assert.equal(await upgrade(m.url), 101);
    assert.equal(await upgrade('https://evil.example'), 403);
    // Plain HTTP to the TLS port is not served.
    await assert.rejects(fetch(m.url.replace('https:', 'http:') + '/healthz'));
    const onlyOne = await cli(['serve', '--tls-cert', cert, '--data', tempDir()]);
    assert.equal(onlyOne.code, 2);
    assert.match(onlyOne.stderr, /--tls-cert and --tls-key go together/);
  } finally {
    await v.kill();
    await m.kill();
  }
});
