/**
 * How people get the `tabreduce` command. In the clone, `npx tabreduce` installs the clone itself
 * into npx's cache as a link, and npm runs a link's `prepare` script: that was `npm run build`, so
 * the first call sat silent for 15 s rebuilding dist/, under a master serving from it. `prepare`
 * now builds for every npm command but `exec` (what `npx` is), so `npm install` still builds.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CLI, ROOT, removeTempDirs, tempDir } from './helpers/cluster.js';

after(removeTempDirs);

test('npx tabreduce in the clone runs the built CLI without rebuilding it', () => {
  const before = statSync(CLI).mtimeMs;
  const r = spawnSync('npx', ['tabreduce', '--help'], {
    cwd: ROOT,
    // A cache of its own, so this is the first call; offline, as the clone needs nothing fetched.
    env: { ...process.env, npm_config_cache: tempDir('tabreduce-npx-cache-'), npm_config_offline: 'true' },
    encoding: 'utf8',
    timeout: 120_000,
  });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^tabreduce: MapReduce on volunteers' browser tabs\n/);
  assert.equal(statSync(CLI).mtimeMs, before, 'dist/ was not rebuilt');
});

test('prepare builds for npm install, ci and link, and not for npm exec', () => {
  const prepare = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: { prepare: string } })
    .scripts.prepare;
  // An `npm` first on PATH that notes what it was asked to run.
  const bin = tempDir('tabreduce-fake-npm-');
  const mark = join(bin, 'calls');
  writeFileSync(join(bin, 'npm'), `#!/bin/sh\necho "$@" >> "${mark}"\n`);
  chmodSync(join(bin, 'npm'), 0o755);
  const calls = (command: string) => {
    writeFileSync(mark, '');
    const r = spawnSync('sh', ['-c', prepare], {
      env: { ...process.env, PATH: `${bin}:${process.env['PATH']}`, npm_command: command },
      encoding: 'utf8',
    });
    assert.equal(r.status, 0, r.stderr);
    return existsSync(mark) ? readFileSync(mark, 'utf8') : '';
  };
  for (const command of ['install', 'ci', 'link']) assert.equal(calls(command), 'run build\n', command);
  assert.equal(calls('exec'), '', 'npx builds nothing');
});
