/**
 * Jobs as authors write them: a TypeScript job with a relative import and an npm package from its
 * own node_modules (test/fixtures/ts-job) is bundled at submit and runs exactly on a Node volunteer
 * as in `tabreduce local`; Node built-ins are refused at submit with the file and line; a thrown
 * error's stack names the author's `.ts` files and lines, distributed and local; `--no-bundle`
 * sends the file as it is; `tabreduce check` runs the project's own tsc.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  EXAMPLES,
  ROOT,
  adminCli,
  apiGet,
  cli,
  corpusFiles,
  independentWordCount,
  localOutput,
  parseOutput,
  removeTempDirs,
  startMaster,
  startVolunteer,
  tempDir,
  until,
  type CliResult,
  type MasterProc,
  type VolunteerProc,
} from './helpers/cluster.js';
import { stem } from './fixtures/ts-job/stem.js';
import type { JobView, TaskView } from '../shared/api.js';

const FIXTURE = join(ROOT, 'test/fixtures/ts-job');
const JOB = join(FIXTURE, 'job.ts');

let master: MasterProc;
let volunteer: VolunteerProc;
let run: (args: string[], timeoutMs?: number) => Promise<CliResult>;
let dir: string;
let poison: string;

before(async () => {
  dir = tempDir('tabreduce-bundle-test-');
  poison = join(dir, 'poison.txt');
  writeFileSync(poison, 'a clean line\nthen one tabreducepoison word\n');
  master = await startMaster();
  volunteer = startVolunteer(master.url, 2);
  run = adminCli(master);
  await until('the volunteer to join', async () => (await apiGet<unknown[]>(master, '/api/workers')).length === 1);
});

after(async () => {
  await volunteer?.kill();
  await master?.stop();
  removeTempDirs();
});

/** The stemmed word count of the corpus, computed here from the fixture's stemmer, not by a job. */
function stemmedCounts(files: string[]): Map<string, string> {
  const counts = new Map<string, number>();
  for (const [w, n] of independentWordCount(files)) counts.set(stem(w), (counts.get(stem(w)) ?? 0) + n);
  return new Map([...counts].map(([k, n]) => [k, String(n)]));
}

/** The frames a failure at the fixture's poison word must show: the stemmer's throw, then map's call. */
function assertAuthorFrames(stack: string): void {
  assert.match(stack, /at checkWord \(stem\.ts:14:\d+\)/, `the throw in stem.ts; stack:\n${stack}`);
  assert.match(stack, /\(job\.ts:12:\d+\)/, `the call in job.ts; stack:\n${stack}`);
  assert.doesNotMatch(stack, /module\.js:\d+|job\.mjs:\d+/, 'no frame left in the bundle');
}

describe('a TypeScript job with imports', () => {
  test('bundles and runs exactly on a Node volunteer, as in local', async () => {
    const args = ['--split-size', '256KiB', '--reduces', '3'];
    const r = await run(['submit', JOB, ...corpusFiles(), ...args, '--wait'], 300_000);
    assert.equal(r.code, 0, r.stderr);
    const id = r.stdout.split('\n')[0]!;
    const res = await fetch(`${master.url}/api/jobs/${id}/output`, {
      headers: { authorization: `Bearer ${master.token}` },
    });
    const out = await res.text();
    const local = await localOutput(JOB, corpusFiles(), args);
    assert.equal(out, local, 'output differs from tabreduce local');
    assert.deepEqual(parseOutput(out), stemmedCounts(corpusFiles()), 'counts by stem');
    const job = await apiGet<JobView>(master, `/api/jobs/${id}`);
    assert.equal(job.name, 'job', 'named after the job file');
  });

  test('the master gets one module: no imports, an inline source map, no source text', async () => {
    const id = (await run(['submit', JOB, poison, '--max-attempts', '1'])).stdout.split('\n')[0]!;
    const module = await (await fetch(`${master.url}/jobs/${id}/module.js`)).text();
    assert.doesNotMatch(module, /^\s*import\b|\brequire\(/m);
    assert.match(module, /\n\/\/# sourceMappingURL=data:application\/json;base64,[A-Za-z0-9+/=]+\n?$/);
    const map = JSON.parse(Buffer.from(module.split('base64,')[1]!, 'base64').toString()) as Record<string, unknown>;
    assert.deepEqual(
      [...(map['sources'] as string[])].sort(),
      ['job.ts', 'node_modules/tiny-tally/index.js', 'stem.ts'],
      'sources named from the job directory',
    );
    assert.equal(map['sourcesContent'], undefined, "the author's source text stays home");
  });

  test("a thrown error's stack names the .ts files and lines, distributed and local", async () => {
    const r = await run(['submit', JOB, poison, '--max-attempts', '1', '--wait']);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /failed: .*Error: poisoned word in the input/);
    assertAuthorFrames(r.stderr);
    const id = r.stdout.split('\n')[0]!;
    const tasks = await apiGet<TaskView[]>(master, `/api/jobs/${id}/tasks`);
    const failed = tasks.flatMap((t) => t.attempts).filter((a) => a.outcome === 'failed');
    assert.equal(failed.length, 1);
    assertAuthorFrames(failed[0]!.error!.stack ?? '');
    const job = await apiGet<JobView>(master, `/api/jobs/${id}`);
    assertAuthorFrames(job.error!);

    const local = await cli(['local', JOB, poison]);
    assert.equal(local.code, 1, local.stderr);
    assertAuthorFrames(local.stderr);
  });

  test('a Node built-in is refused at submit with the file and line, and nothing is queued', async () => {
    const before = (await apiGet<JobView[]>(master, '/api/jobs')).length;
    const r = await run(['submit', join(FIXTURE, 'reads-files.ts'), poison]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /^tabreduce: \S*reads-files\.ts:2:\d+: imports the Node built-in "node:fs"/);
    assert.equal(r.stderr.trim().split('\n').length, 1, 'one line');
    assert.equal((await apiGet<JobView[]>(master, '/api/jobs')).length, before);

    const bare = join(dir, 'bare.mjs');
    writeFileSync(
      bare,
      "import path from 'path';\nexport function map(k, v, emit) { emit(path.sep, v); }\nexport function reduce() { return ''; }\n",
    );
    const b = await cli(['local', bare, poison]);
    assert.equal(b.code, 2, b.stderr);
    assert.match(b.stderr, /bare\.mjs:1:\d+: imports the Node built-in "path"/);
  });

  test('an import that is not installed is named with its file and line', async () => {
    const missing = join(dir, 'missing.ts');
    writeFileSync(
      missing,
      "export function map(): void {}\nimport { x } from 'no-such-package';\nexport function reduce(): string { return x; }\n",
    );
    const r = await run(['submit', missing, poison]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /missing\.ts:2:\d+: Could not resolve "no-such-package"/);
  });
});

describe('the TypeScript word-count example', () => {
  const example = join(EXAMPLES, 'ts-word-count/job.ts');

  test('counts by stem, the same on a Node volunteer as in local', async () => {
    const text = join(dir, 'stems.txt');
    writeFileSync(text, "Walks walked walking; the boxes, a box, the ponies' pony. Running runs. Hopes hope buses\n");
    const expected = 'a\t1\nbox\t2\nbus\t1\nhope\t2\npony\t2\nrun\t2\nthe\t2\nwalk\t3\n';
    assert.equal(await localOutput(example, [text], ['--reduces', '1']), expected);
    const inputs = [text, ...corpusFiles().slice(0, 2)];
    const r = await run(['submit', example, ...inputs, '--reduces', '2', '--wait']);
    assert.equal(r.code, 0, r.stderr);
    const out = await (
      await fetch(`${master.url}/api/jobs/${r.stdout.split('\n')[0]!}/output`, {
        headers: { authorization: `Bearer ${master.token}` },
      })
    ).text();
    assert.equal(out, await localOutput(example, inputs, ['--reduces', '2']));
  });
});

describe('--no-bundle', () => {
  test('sends the file as it is; without it a .js module is bundled', async () => {
    const wc = join(EXAMPLES, 'word-count.js');
    const plain = (await run(['submit', wc, poison, '--no-bundle'])).stdout.split('\n')[0]!;
    const sent = await (await fetch(`${master.url}/jobs/${plain}/module.js`)).text();
    assert.equal(sent, readFileSync(wc, 'utf8'));
    const bundled = (await run(['submit', wc, poison])).stdout.split('\n')[0]!;
    const b = await (await fetch(`${master.url}/jobs/${bundled}/module.js`)).text();
    assert.notEqual(b, sent);
    assert.match(b, /sourceMappingURL=data:/);
  });

  test('a .ts module sent as it is is refused, saying that submit bundles it', async () => {
    const r = await run(['submit', JOB, poison, '--no-bundle']);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /job\.ts: the master takes JavaScript; .*--no-bundle/);
  });
});

describe('tabreduce check', () => {
  /** A job project in a temp dir, with the repository's tsc installed in its node_modules/.bin when `tsc`. */
  function project(source: string, tsc: boolean): string {
    const d = tempDir('tabreduce-check-test-');
    if (tsc) {
      mkdirSync(join(d, 'node_modules/.bin'), { recursive: true });
      symlinkSync(join(ROOT, 'node_modules/typescript/bin/tsc'), join(d, 'node_modules/.bin/tsc'));
    }
    writeFileSync(join(d, 'job.ts'), source);
    return join(d, 'job.ts');
  }
  const GOOD = `export function map(key: string, value: string, emit: (k: string, v: string) => void): void {
  emit(key, String(value.length));
}
export function reduce(_key: string, values: string[]): string {
  return String(values.length);
}
`;

  test('reports a type error with its file and line (exit 2), and passes a clean job (exit 0)', async () => {
    const bad = project(GOOD.replace('return String(values.length);', 'return values.length;'), true);
    const r = await cli(['check', bad], { timeoutMs: 120_000 });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stdout, /job\.ts\(5,3\): error TS2322: Type 'number' is not assignable to type 'string'/);
    assert.match(r.stderr, /tabreduce: \S*job\.ts: tsc found type errors/);

    const good = project(GOOD, true);
    const ok = await cli(['check', good], { timeoutMs: 120_000 });
    assert.equal(ok.code, 0, ok.stderr + ok.stdout);
    assert.match(ok.stderr, /no type errors/);
  });

  test('without a tsc installed, says how to install one (exit 2)', async () => {
    const r = await cli(['check', project(GOOD, false)]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /no TypeScript compiler in node_modules\/\.bin .*npm install --save-dev typescript/);
  });

  test('refuses what submit would refuse', async () => {
    const r = await cli(['check', join(FIXTURE, 'reads-files.ts')]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /reads-files\.ts:2:\d+: imports the Node built-in "node:fs"/);
  });
});
