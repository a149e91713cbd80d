/**
 * Real processes for tests: a master (`tabreduce serve`) on an ephemeral port with a temp data dir,
 * Node volunteers, and the CLI. Everything runs from `dist/` as a user would run it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
export const CLI = join(ROOT, 'dist/server/cli.js');
export const CORPUS_DIR = join(ROOT, 'test/fixtures/corpus');
export const EXAMPLES = join(ROOT, 'shared/examples');
export const TEST_JOBS = join(ROOT, 'test/jobs');

export function corpusFiles(): string[] {
  return readdirSync(CORPUS_DIR)
    .filter((f) => f.endsWith('.txt'))
    .sort()
    .map((f) => join(CORPUS_DIR, f));
}

const dirs: string[] = [];
export function tempDir(prefix = 'tabreduce-test-'): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(d);
  return d;
}
export function removeTempDirs(): void {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
}

const children = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL');
});

function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

export interface MasterProc {
  url: string;
  port: number;
  data: string;
  token: string;
  proc: ChildProcess;
  output: () => string;
  /** SIGKILL and wait for the exit. */
  kill(): Promise<void>;
  /** SIGTERM and wait for a clean exit. */
  stop(): Promise<number | null>;
}

export interface MasterOptions {
  data?: string;
  port?: number;
  args?: string[];
  env?: Record<string, string>;
}

export async function startMaster(opts: MasterOptions = {}): Promise<MasterProc> {
  const data = opts.data ?? tempDir();
  const args = [CLI, 'serve', '--port', String(opts.port ?? 0), '--data', data, ...(opts.args ?? [])];
  const proc = track(
    spawn(process.execPath, args, { env: { ...process.env, TABREDUCE_TOKEN: '', ...opts.env }, stdio: 'pipe' }),
  );
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const url = await new Promise<string>((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`master did not start in 15s:\n${out}`)), 15_000);
    const check = () => {
      const m = /listening on (https?:\/\/[^\s]+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        ok(m[1]!);
      }
    };
    proc.stdout!.on('data', check);
    proc.once('exit', (code) => {
      clearTimeout(timer);
      fail(new Error(`master exited with ${code}:\n${out}`));
    });
  });
  const token = opts.env?.['TABREDUCE_TOKEN'] || readFileSync(join(data, 'admin-token'), 'utf8').trim();
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  return {
    url,
    port: Number(new URL(url).port),
    data,
    token,
    proc,
    output: () => out,
    async kill() {
      proc.kill('SIGKILL');
      await exited;
    },
    async stop() {
      proc.kill('SIGTERM');
      return exited;
    },
  };
}

export interface VolunteerProc {
  proc: ChildProcess;
  output: () => string;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

export function startVolunteer(
  url: string,
  threads = 1,
  extra: string[] = [],
  env: Record<string, string> = {},
): VolunteerProc {
  const proc = track(
    spawn(process.execPath, [CLI, 'volunteer', '--server', url, '--threads', String(threads), ...extra], {
      stdio: 'pipe',
      env: { ...process.env, ...env },
    }),
  );
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  return {
    proc,
    output: () => out,
    async kill(signal = 'SIGKILL') {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      await exited;
    },
  };
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `tabreduce ARGS`; never rejects on a non-zero exit. */
export function cli(
  args: string[],
  opts: { env?: Record<string, string>; cwd?: string; timeoutMs?: number; uid?: number; gid?: number } = {},
) {
  return new Promise<CliResult>((ok, fail) => {
    const proc = track(
      spawn(process.execPath, [CLI, ...args], {
        env: { ...process.env, TABREDUCE_TOKEN: '', TABREDUCE_URL: '', ...opts.env },
        cwd: opts.cwd ?? ROOT,
        stdio: ['ignore', 'pipe', 'pipe'],
        uid: opts.uid,
        gid: opts.gid,
      }),
    );
    let stdout = '';
    let stderr = '';
    proc.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      fail(new Error(`tabreduce ${args.join(' ')} timed out\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, opts.timeoutMs ?? 120_000);
    proc.once('exit', (code) => {
      clearTimeout(timer);
      ok({ code, stdout, stderr });
    });
  });
}

/** The CLI pointed at a master with its token. */
export function adminCli(m: MasterProc) {
  return (args: string[], timeoutMs?: number) =>
    cli([...args, '--server', m.url], { env: { TABREDUCE_TOKEN: m.token }, timeoutMs });
}

/** `tabreduce local` output, the reference for distributed runs. */
export async function localOutput(module: string, inputs: string[], extra: string[] = []): Promise<string> {
  const r = await cli(['local', module, ...inputs, ...extra]);
  if (r.code !== 0) throw new Error(`tabreduce local failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}

/** The master's HTTP API with the admin token. */
export async function apiGet<T>(m: MasterProc, path: string): Promise<T> {
  const res = await fetch(`${m.url}${path}`, { headers: { authorization: `Bearer ${m.token}` } });
  if (!res.ok) throw new Error(`GET ${path}: HTTP ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

export async function until<T>(
  what: string,
  fn: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 60_000,
  everyMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * An independent word count: the same notion of a word as shared/examples/word-count.js, written
 * separately (whole-file, no splitting, no engine), to check the engine and the cluster against.
 */
export function independentWordCount(files: string[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const f of files) {
    const text = readFileSync(f, 'utf8');
    for (const m of text.matchAll(/\p{L}+(?:'\p{L}+)*/gu)) {
      const w = m[0].toLowerCase();
      counts.set(w, (counts.get(w) ?? 0) + 1);
    }
  }
  return counts;
}

/** Parses `key<TAB>value` output into a map, failing on duplicate keys. */
export function parseOutput(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const tab = line.indexOf('\t');
    const k = line.slice(0, tab);
    if (out.has(k)) throw new Error(`duplicate key in output: ${k}`);
    out.set(k, line.slice(tab + 1));
  }
  return out;
}

/** Bytes of the files under a directory, walked; 0 when it does not exist. */
export function dirBytes(dir: string): number {
  if (!existsSync(dir)) return 0;
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    n += e.isDirectory() ? dirBytes(p) : statSync(p).size;
  }
  return n;
}
