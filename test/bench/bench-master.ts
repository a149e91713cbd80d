/**
 * The master as a benchmark runs it: `node [--cpu-prof] dist/server/cli.js serve` as a child process.
 * Like test/helpers/cluster.ts startMaster, but it can pass flags to node itself (NODE_OPTIONS may not
 * carry --cpu-prof on Node 20) and it keeps only the tail of the log, as 10,000 volunteers write a lot.
 */
import { spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CLI, tempDir, type MasterProc, type VolunteerProc } from '../helpers/cluster.js';
import { findProfile } from './cpu-profile.js';
import { nodeCommand, track } from './bench-kit.js';

export interface BenchMasterOptions {
  data?: string;
  port?: number;
  /** Write a CPU profile of the master to this directory (read it after `stop()`). */
  profileDir?: string;
  args?: string[];
  /**
   * Simulated volunteers all come from 127.0.0.1, and the master caps sockets per address
   * (--max-per-ip, default 1024): raise the cap to this many.
   */
  maxPerIp?: number;
  /** Run it on these cores only (`taskset -c`), as if on a machine of its own. */
  cpus?: string;
}

export interface BenchMaster extends MasterProc {
  pid: number;
  /** The CPU profile written at a clean stop, if profiling. */
  profile(): string | null;
}

const KEEP_LOG_CHARS = 64 * 1024;

export async function startBenchMaster(opts: BenchMasterOptions = {}): Promise<BenchMaster> {
  const data = opts.data ?? tempDir('tabreduce-bench-data-');
  const nodeArgs: string[] = [];
  if (opts.profileDir) {
    mkdirSync(opts.profileDir, { recursive: true });
    nodeArgs.push('--cpu-prof', '--cpu-prof-dir', opts.profileDir);
  }
  const args = [...nodeArgs, CLI, 'serve', '--port', String(opts.port ?? 0), '--data', data, ...(opts.args ?? [])];
  if (opts.maxPerIp) args.push('--max-per-ip', String(opts.maxPerIp));
  const [command, argv] = nodeCommand(args, opts.cpus);
  const proc = track(spawn(command, argv, { env: { ...process.env, TABREDUCE_TOKEN: '' }, stdio: 'pipe' }));
  let out = '';
  const keep = (d: Buffer) => {
    out += d.toString();
    if (out.length > 2 * KEEP_LOG_CHARS) out = out.slice(-KEEP_LOG_CHARS);
  };
  proc.stdout!.on('data', keep);
  proc.stderr!.on('data', keep);
  const url = await new Promise<string>((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`master did not start in 15s:\n${out}`)), 15_000);
    const check = () => {
      const m = /listening on (https?:\/\/[^\s]+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        proc.stdout!.off('data', check);
        ok(m[1]!);
      }
    };
    proc.stdout!.on('data', check);
    proc.once('exit', (code) => {
      clearTimeout(timer);
      fail(new Error(`master exited with ${code}:\n${out}`));
    });
  });
  const token = readFileSync(join(data, 'admin-token'), 'utf8').trim();
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  return {
    url,
    port: Number(new URL(url).port),
    data,
    token,
    proc,
    pid: proc.pid!,
    output: () => out,
    async kill() {
      proc.kill('SIGKILL');
      await exited;
    },
    async stop() {
      proc.kill('SIGTERM');
      // A master that does not stop within 20 s is killed: the benchmark must end by itself.
      const timer = setTimeout(() => proc.kill('SIGKILL'), 20_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
    profile: () => {
      const file = opts.profileDir ? findProfile(opts.profileDir) : null;
      // TABREDUCE_BENCH_PROFILES=DIR keeps the master's profiles (temp dirs are removed at the end),
      // to open in Chrome DevTools or to compare two builds function by function.
      const keepIn = process.env.TABREDUCE_BENCH_PROFILES;
      if (file && keepIn) {
        mkdirSync(keepIn, { recursive: true });
        copyFileSync(file, join(keepIn, `master-${proc.pid}.cpuprofile`));
      }
      return file;
    },
  };
}

/** `tabreduce volunteer` as a child; with `profileDir`, under `node --cpu-prof` (one profile per thread). */
export function startBenchVolunteer(url: string, threads: number, profileDir?: string): VolunteerProc {
  const nodeArgs = profileDir ? ['--cpu-prof', '--cpu-prof-dir', profileDir] : [];
  const proc = track(
    spawn(process.execPath, [...nodeArgs, CLI, 'volunteer', '--server', url, '--threads', String(threads)], {
      stdio: 'pipe',
    }),
  );
  let out = '';
  const keep = (d: Buffer) => {
    out = (out + d.toString()).slice(-KEEP_LOG_CHARS);
  };
  proc.stdout!.on('data', keep);
  proc.stderr!.on('data', keep);
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
